//! The worked examples of gateway-api spec §1.3, one test each, through [`select`].

use http::{HeaderMap, HeaderName, Method};

use super::*;

/// A candidate list built from `(route namespace/name, created, rule, hostnames, match)`.
fn candidate(
    route: &str,
    created: u64,
    rule: usize,
    hostnames: &[&str],
    route_match: HttpRouteMatch,
) -> Candidate<String> {
    Candidate {
        hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
        route_match,
        order: RouteOrder {
            created,
            namespaced_name: route.to_owned(),
            rule,
            index: 0,
        },
        target: format!("{route}#{rule}"),
    }
}

fn prefix(value: &str) -> HttpRouteMatch {
    HttpRouteMatch::path(PathMatch::prefix(value).unwrap())
}

fn exact(value: &str) -> HttpRouteMatch {
    HttpRouteMatch::path(PathMatch::exact(value).unwrap())
}

fn header(name: &str, value: &str) -> HeaderMatch {
    HeaderMatch {
        name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
        value: value.into(),
    }
}

fn query(name: &str, value: &str) -> QueryParamMatch {
    QueryParamMatch {
        name: name.to_owned(),
        value: value.into(),
    }
}

fn with(
    headers: Vec<HeaderMatch>,
    queries: Vec<QueryParamMatch>,
    method: Option<Method>,
) -> HttpRouteMatch {
    HttpRouteMatch::new(PathMatch::default_prefix(), headers, queries, method)
}

/// Routes `method host path?query` with `headers` through `candidates`.
fn route<'c>(
    candidates: &'c [Candidate<String>],
    method: Method,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Option<&'c str> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let view = RequestView {
        host,
        path,
        query,
        method: &method,
        headers: &map,
    };
    select(candidates, &view).map(|c| c.target.as_str())
}

#[test]
fn exact_beats_prefix_and_longer_prefix_wins() {
    let candidates = [
        candidate("ns/shop", 1, 0, &[], exact("/shop/cart")),
        candidate("ns/shop", 1, 1, &[], prefix("/shop/cart")),
        candidate("ns/shop", 1, 2, &[], prefix("/shop/")),
        candidate("ns/shop", 1, 3, &[], prefix("/")),
    ];
    let get = |path| route(&candidates, Method::GET, "example.com", path, &[]);
    assert_eq!(get("/shop/cart"), Some("ns/shop#0"));
    assert_eq!(get("/shop/cart/items"), Some("ns/shop#1"));
    assert_eq!(
        get("/shop/other"),
        Some("ns/shop#2"),
        "trailing slash kept in value, ignored for matching"
    );
    assert_eq!(
        get("/shopping"),
        Some("ns/shop#3"),
        "segment-wise: /shop/ does not match /shopping"
    );
    assert_eq!(get("/about"), Some("ns/shop#3"));
}

#[test]
fn path_beats_query_and_header_beats_query() {
    let candidates = [
        candidate("ns/a", 1, 0, &[], prefix("/p")),
        candidate("ns/a", 1, 1, &[], with(vec![], vec![query("x", "1")], None)),
    ];
    assert_eq!(
        route(&candidates, Method::GET, "h", "/p?x=1", &[]),
        Some("ns/a#0")
    );

    let candidates = [
        candidate("ns/a", 1, 0, &[], with(vec![], vec![query("x", "1")], None)),
        candidate(
            "ns/a",
            1,
            1,
            &[],
            with(vec![header("version", "two")], vec![], None),
        ),
    ];
    assert_eq!(
        route(
            &candidates,
            Method::GET,
            "h",
            "/?x=1",
            &[("version", "two")]
        ),
        Some("ns/a#1")
    );
}

#[test]
fn method_beats_headers_but_not_a_longer_prefix() {
    let candidates = [
        candidate(
            "ns/a",
            1,
            0,
            &[],
            with(vec![header("version", "two")], vec![], None),
        ),
        candidate("ns/a", 1, 1, &[], with(vec![], vec![], Some(Method::POST))),
    ];
    assert_eq!(
        route(&candidates, Method::POST, "h", "/", &[("version", "two")]),
        Some("ns/a#1")
    );

    let candidates = [
        candidate("ns/a", 1, 0, &[], with(vec![], vec![], Some(Method::POST))),
        candidate("ns/a", 1, 1, &[], prefix("/longer")),
    ];
    assert_eq!(
        route(&candidates, Method::POST, "h", "/longer/x", &[]),
        Some("ns/a#1")
    );
}

#[test]
fn a_header_match_beats_another_routes_bare_prefix() {
    let candidates = [
        candidate("ns/plain", 1, 0, &[], prefix("/")),
        candidate(
            "ns/header",
            2,
            0,
            &[],
            with(vec![header("env", "canary")], vec![], None),
        ),
    ];
    assert_eq!(
        route(&candidates, Method::GET, "h", "/", &[("env", "canary")]),
        Some("ns/header#0")
    );
    assert_eq!(
        route(&candidates, Method::GET, "h", "/", &[]),
        Some("ns/plain#0")
    );
}

/// Counting is per match: a rule with two ORed one-header matches counts one, and list order
/// decides the tie.
#[test]
fn header_counts_are_per_match_not_per_rule() {
    let mut blue = candidate(
        "ns/r",
        1,
        1,
        &[],
        with(vec![header("color", "blue")], vec![], None),
    );
    let mut green = candidate(
        "ns/r",
        1,
        1,
        &[],
        with(vec![header("color", "green")], vec![], None),
    );
    blue.order.index = 0;
    green.order.index = 1;
    let candidates = [
        candidate(
            "ns/r",
            1,
            0,
            &[],
            with(vec![header("version", "two")], vec![], None),
        ),
        blue,
        green,
    ];
    let request = [("version", "two"), ("color", "blue")];
    assert_eq!(
        route(&candidates, Method::GET, "h", "/", &request),
        Some("ns/r#0")
    );
}

#[test]
fn hostnames_rank_first_but_do_not_bucket() {
    let candidates = [
        candidate("ns/none", 1, 0, &[], prefix("/")),
        candidate("ns/wide", 1, 0, &["*.example.com"], prefix("/")),
        candidate("ns/narrow", 1, 0, &["*.foo.example.com"], prefix("/")),
        candidate("ns/exact", 1, 0, &["a.foo.example.com"], exact("/only")),
    ];
    let get = |host, path| route(&candidates, Method::GET, host, path, &[]);
    assert_eq!(get("a.foo.example.com", "/only"), Some("ns/exact#0"));
    assert_eq!(
        get("a.foo.example.com", "/other"),
        Some("ns/narrow#0"),
        "falls through to wildcards"
    );
    assert_eq!(
        get("b.foo.example.com:8080", "/"),
        Some("ns/narrow#0"),
        "port ignored"
    );
    assert_eq!(
        get("x.y.example.com", "/"),
        Some("ns/wide#0"),
        "wildcards span one or more labels"
    );
    assert_eq!(
        get("example.com", "/"),
        Some("ns/none#0"),
        "*.example.com does not match the apex"
    );
    assert_eq!(
        get("A.FOO.Example.com", "/only"),
        Some("ns/exact#0"),
        "case-insensitive"
    );
}

#[test]
fn ties_go_to_the_oldest_route_then_namespace_name_then_rule_order() {
    let candidates = [
        candidate("ns/b-newer", 2, 0, &[], prefix("/")),
        candidate("ns/c-older", 1, 0, &[], prefix("/")),
    ];
    assert_eq!(
        route(&candidates, Method::GET, "h", "/", &[]),
        Some("ns/c-older#0")
    );
    let candidates = [
        candidate("ns/b", 1, 0, &[], prefix("/")),
        candidate("ns/a", 1, 1, &[], prefix("/")),
        candidate("ns/a", 1, 0, &[], prefix("/")),
    ];
    assert_eq!(
        route(&candidates, Method::GET, "h", "/", &[]),
        Some("ns/a#0")
    );
}

#[test]
fn query_and_header_match_rules() {
    let candidates = [candidate(
        "ns/q",
        1,
        0,
        &[],
        with(
            vec![header("x-env", "prod"), header("X-ENV", "ignored")],
            vec![query("animal", "whale")],
            None,
        ),
    )];
    let get = |query: &str, headers: &[(&str, &str)]| {
        route(&candidates, Method::GET, "h", query, headers)
    };
    assert_eq!(
        get("/?animal=whale", &[("X-Env", "prod")]),
        Some("ns/q#0"),
        "header names case-insensitive"
    );
    assert_eq!(
        get("/?ANIMAL=whale", &[("x-env", "prod")]),
        None,
        "query names case-sensitive"
    );
    assert_eq!(
        get("/?animal=whales", &[("x-env", "prod")]),
        None,
        "exact values, no substring"
    );
    assert_eq!(
        get("/?animal=shark&animal=whale", &[("x-env", "prod")]),
        None,
        "first value counts"
    );
    assert_eq!(
        get("/?animal=whale", &[("x-env", "ignored")]),
        None,
        "duplicate names: first entry wins"
    );
    assert_eq!(
        get("/", &[("x-env", "prod")]),
        None,
        "404 when nothing matches"
    );
}

/// Found by fuzzing: an (invalid) empty hostname matches nothing, in `select` and in the table
/// alike, instead of ranking like a missing hostname list.
#[test]
fn empty_hostnames_match_nothing_in_both_selections() {
    let headers = http::HeaderMap::new();
    let request = RequestView {
        host: "",
        path: "/x",
        query: None,
        method: &http::Method::GET,
        headers: &headers,
    };
    let order = |created, rule| RouteOrder {
        created,
        namespaced_name: "ns/r".into(),
        rule,
        index: 0,
    };
    let candidates = vec![
        Candidate {
            hostnames: vec![],
            route_match: prefix("/"),
            order: order(2, 0),
            target: "any",
        },
        Candidate {
            hostnames: vec![String::new()],
            route_match: prefix("/"),
            order: order(0, 1),
            target: "empty",
        },
    ];
    assert_eq!(select(&candidates, &request).map(|c| c.target), Some("any"));
    assert_eq!(
        RouteTable::new(candidates)
            .select(&request)
            .map(|c| c.target),
        Some("any")
    );
}

/// Regular-expression paths are implementation-specific; here they rank below every prefix
/// (regexes last), and among themselves by header count, then age and name.
#[test]
fn regex_paths_rank_below_every_prefix() {
    let headers = http::HeaderMap::new();
    let view = |path| RequestView {
        host: "a.test",
        path,
        query: None,
        method: &http::Method::GET,
        headers: &headers,
    };
    let order = |rule| RouteOrder {
        created: 0,
        namespaced_name: "ns/r".into(),
        rule,
        index: 0,
    };
    let regex = HttpRouteMatch::path(PathMatch::regex("/v[0-9]+/.*").unwrap());
    let candidates = vec![
        Candidate {
            hostnames: vec![],
            route_match: regex,
            order: order(0),
            target: "regex",
        },
        Candidate {
            hostnames: vec![],
            route_match: prefix("/v1"),
            order: order(1),
            target: "prefix",
        },
    ];
    let table = RouteTable::new(candidates.clone());
    for (path, expected) in [
        ("/v1/x", Some("prefix")),
        ("/v2/x", Some("regex")),
        ("/v/x", None),
    ] {
        assert_eq!(
            select(&candidates, &view(path)).map(|c| c.target),
            expected,
            "{path}"
        );
        assert_eq!(
            table.select(&view(path)).map(|c| c.target),
            expected,
            "{path}"
        );
    }
}

/// With enough regex paths a bucket matches them all in one automaton; the winner must stay
/// the one `select` picks (precedence order, then the other conditions).
#[test]
fn many_regex_paths_choose_as_select_does() {
    let mut with_header = http::HeaderMap::new();
    with_header.insert("x-tier", http::HeaderValue::from_static("gold"));
    let plain = http::HeaderMap::new();
    let candidates: Vec<Candidate<usize>> = (0..40)
        .map(|i| {
            let pattern = match i % 4 {
                0 => format!("/r{}/.*", i % 7),
                1 => "/r[0-9]/items".to_owned(),
                2 => format!("/r{}/[a-z]+", i % 5),
                _ => ".*".to_owned(),
            };
            let headers = if i % 3 == 0 {
                vec![header("x-tier", "gold")]
            } else {
                vec![]
            };
            Candidate {
                hostnames: vec![],
                route_match: HttpRouteMatch::new(
                    PathMatch::regex(&pattern).unwrap(),
                    headers,
                    vec![],
                    None,
                ),
                order: RouteOrder {
                    created: (i % 4) as u64,
                    namespaced_name: format!("ns/r{}", i % 6),
                    rule: i,
                    index: 0,
                },
                target: i,
            }
        })
        .collect();
    let table = RouteTable::new(candidates.clone());
    for path in ["/r1/items", "/r3/abc", "/r6/x/y", "/zzz", "/r9/items"] {
        for headers in [&with_header, &plain] {
            let request = RequestView {
                host: "a",
                path,
                query: None,
                method: &http::Method::GET,
                headers,
            };
            assert_eq!(
                table.select(&request).map(|c| c.target),
                select(&candidates, &request).map(|c| c.target),
                "{path}"
            );
        }
    }
}

/// Regression: a 60 000-slash path (or a host of 30 000 labels) cost about 0.4 s when every
/// prefix (suffix) was hashed; lookup now hashes only configured lengths, so a hostile request
/// costs about what a benign one of the same length does (measured in the same run).
#[test]
fn hostile_paths_and_hosts_cost_about_what_benign_ones_of_their_length_do() {
    let candidates = vec![
        candidate("ns/a", 0, 0, &[], prefix("/api/v1")),
        candidate("ns/b", 0, 0, &["*.example.com"], prefix("/")),
        candidate("ns/c", 0, 0, &[], exact("/exact")),
        candidate("ns/d", 0, 0, &[], prefix("/")),
    ];
    let table = RouteTable::new(candidates.clone());
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    let slashes = leak("/".repeat(60_000));
    let letters = leak(format!("/{}", "a".repeat(59_999)));
    let labels = leak(format!("{}example.org", "a.".repeat(30_000)));
    let one_label = leak(format!("{}.example.org", "a".repeat(59_999)));
    let headers = HeaderMap::new();
    let view = |host: &'static str, path: &'static str| RequestView {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
    };
    let time = |request: &RequestView<'_>| {
        let started = std::time::Instant::now();
        for _ in 0..20 {
            std::hint::black_box(table.select(request));
        }
        started.elapsed()
    };
    for request in [view("a.test", slashes), view(labels, "/api/v1/x")] {
        assert_eq!(
            table.select(&request).map(|c| c.target.clone()),
            select(&candidates, &request).map(|c| c.target.clone())
        );
    }
    let floor = std::time::Duration::from_micros(200);
    let benign_path = time(&view("a.test", letters)).max(floor);
    let hostile_path = time(&view("a.test", slashes));
    let benign_host = time(&view(one_label, "/api/v1/x")).max(floor);
    let hostile_host = time(&view(labels, "/api/v1/x"));
    // The quadratic lookup was thousands of times slower than the benign request.
    assert!(
        hostile_path < benign_path * 20,
        "path: {hostile_path:?} vs {benign_path:?}"
    );
    assert!(
        hostile_host < benign_host * 20,
        "host: {hostile_host:?} vs {benign_host:?}"
    );
}
