//! The compiled RouteTable chooses exactly what the reference `select` chooses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use http::{HeaderMap, HeaderName, Method};
use proptest::prelude::*;
use routing::http_route::{
    Candidate, HeaderMatch, HttpRouteMatch, PathMatch, QueryParamMatch, RequestView, RouteOrder,
    RouteTable, select,
};

const HOSTNAMES: [&str; 6] = [
    "a.example.com",
    "*.example.com",
    "*.b.example.com",
    "b.example.com",
    "other.org",
    "A.Example.com",
];
const PATHS: [&str; 7] = ["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/a/b/"];
const HEADERS: [(&str, &str); 3] = [("x", "1"), ("x", "2"), ("y", "1")];
const METHODS: [Option<Method>; 3] = [None, Some(Method::GET), Some(Method::POST)];

prop_compose! {
    fn route_match()(
        exact in any::<bool>(),
        path in 0..PATHS.len(),
        headers in prop::collection::vec(0..HEADERS.len(), 0..3),
        query in prop::option::of(0..2usize),
        method in 0..METHODS.len(),
    ) -> HttpRouteMatch {
        let path = if exact { PathMatch::exact(PATHS[path]) } else { PathMatch::prefix(PATHS[path]) };
        let headers = headers.into_iter().map(|h| HeaderMatch {
            name: HeaderName::from_static(HEADERS[h].0),
            value: HEADERS[h].1.into(),
        }).collect();
        let query = query.map(|q| QueryParamMatch { name: "q".into(), value: q.to_string().into() }).into_iter().collect();
        HttpRouteMatch::new(path.unwrap(), headers, query, METHODS[method].clone())
    }
}

prop_compose! {
    fn candidate()(
        hostnames in prop::collection::vec(0..HOSTNAMES.len(), 0..3),
        route_match in route_match(),
        created in 0..3u64,
        name in 0..3usize,
        rule in 0..3usize,
    ) -> Candidate<usize> {
        Candidate {
            hostnames: hostnames.into_iter().map(|h| HOSTNAMES[h].to_owned()).collect(),
            route_match,
            order: RouteOrder { created, namespaced_name: format!("ns/r{name}"), rule, index: 0 },
            target: 0,
        }
    }
}

const HOSTS: [&str; 8] = [
    "a.example.com",
    "c.b.example.com",
    "b.example.com",
    "x.example.com:8080",
    "other.org",
    "A.EXAMPLE.COM",
    "example.com",
    "deep.x.b.example.com",
];
const REQUEST_PATHS: [&str; 9] = [
    "/", "/a", "/a/", "/a/b", "/a/b/c", "/a/b/", "/ab", "/abc", "/a/bc",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_reference_selection(
        mut candidates in prop::collection::vec(candidate(), 0..40),
        host in 0..HOSTS.len(),
        path in 0..REQUEST_PATHS.len(),
        query in prop::option::of(0..3usize),
        headers in prop::collection::vec(0..HEADERS.len(), 0..3),
        method in 1..METHODS.len(),
    ) {
        // Make every candidate's order key unique, as (route, rule, match) is in a real config.
        for (index, candidate) in candidates.iter_mut().enumerate() {
            candidate.order.index = index;
            candidate.target = index;
        }
        let table = RouteTable::new(candidates.clone());
        let mut header_map = HeaderMap::new();
        for h in headers {
            header_map.append(HeaderName::from_static(HEADERS[h].0), HEADERS[h].1.parse().unwrap());
        }
        let query = query.map(|q| format!("q={q}"));
        let method = METHODS[method].clone().unwrap();
        let request = RequestView {
            host: HOSTS[host],
            path: REQUEST_PATHS[path],
            query: query.as_deref(),
            method: &method,
            headers: &header_map,
        };
        let expected = select(&candidates, &request).map(|c| c.target);
        let chosen = table.select(&request).map(|c| c.target);
        prop_assert_eq!(chosen, expected);
    }
}
