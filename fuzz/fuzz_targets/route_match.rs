//! Fuzzes path and header matching differentially: routes and a request are carved out of the
//! input; the compiled `RouteTable` must choose exactly what the linear `select` chooses, and
//! nothing may panic.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use routing::http_route::{
    Candidate, HeaderMatch, HttpRouteMatch, PathMatch, RequestView, RouteOrder, RouteTable, select,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let (Some(host), Some(path), Some(header)) = (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let mut candidates = Vec::new();
    for (index, spec) in fields.take(32).enumerate() {
        // "E|R|P hostname path [header]" per route (exact, regex, prefix).
        let mut parts = spec.splitn(4, ' ');
        let (Some(kind), Some(hostname), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path_match = match kind {
            "E" => PathMatch::exact(value),
            "R" => PathMatch::regex(value),
            _ => PathMatch::prefix(value),
        };
        let Ok(path_match) = path_match else { continue };
        let headers = parts
            .next()
            .map(|value| HeaderMatch {
                name: HeaderName::from_static("x-fuzz"),
                value: value.into(),
            })
            .into_iter()
            .collect();
        let hostnames = if hostname == "-" {
            vec![]
        } else {
            vec![hostname.to_owned()]
        };
        candidates.push(Candidate {
            hostnames,
            route_match: HttpRouteMatch::new(path_match, headers, vec![], None),
            order: RouteOrder {
                created: (index % 3) as u64,
                namespaced_name: format!("ns/r{}", index % 5),
                rule: index,
                index: 0,
            },
            target: index,
        });
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(header) {
        headers.insert(HeaderName::from_static("x-fuzz"), value);
    }
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let request = RequestView {
        host,
        path,
        query,
        method: &Method::GET,
        headers: &headers,
    };
    let expected = select(&candidates, &request).map(|c| c.target);
    let table = RouteTable::new(candidates);
    assert_eq!(table.select(&request).map(|c| c.target), expected);
});
