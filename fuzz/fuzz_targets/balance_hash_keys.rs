//! Fuzzes the consistent-hash keys of the load balancer on raw request input: the first byte
//! chooses the key (cookie, query parameters, headers); the rest is split into a `Cookie`
//! header value and a request target. Properties: no panic; hashing is deterministic; a
//! cookie found is a value the header carries; a generated `Set-Cookie` names the configured
//! cookie and is a valid header; the balancer always picks one of the endpoints, the same one
//! for the same key.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::header::{COOKIE, HeaderName};
use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::balance::hash_key::{HashKey, SessionCookie, cookie_value};
use mesh_policy::traffic::balance::{Balancer, LoadBalancing};
use routing::compiled::{Backend, BackendProtocol, Endpoint};
use routing::router::{BalanceEndpoints, RequestHead};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (cookie, target) = rest.split_at(split);
    let target = String::from_utf8_lossy(target.get(1..).unwrap_or_default()).into_owned();
    let mut builder = Request::builder();
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        builder = builder
            .header(COOKIE, value.clone())
            .header("x-user", value);
    }
    let uri = format!("/{}", target.trim_start_matches('/'));
    let Ok(request) = builder.uri(uri.as_str()).body(()) else {
        return;
    };
    let key = match mode % 3 {
        0 => HashKey::Cookie(SessionCookie {
            name: "session".into(),
            ttl: Some(Duration::from_secs(60)),
            attributes: vec![("SameSite".into(), "Lax".into())],
        }),
        1 => HashKey::QueryParams(vec!["user".into(), "cart".into()]),
        _ => HashKey::Headers(vec![HeaderName::from_static("x-user")]),
    };
    let head = RequestHead::of(&request);
    let first = key.hash(&head);
    assert_eq!(first, key.hash(&head), "hashing is deterministic");
    if let Some(found) = cookie_value(request.headers(), "session") {
        let written = String::from_utf8_lossy(cookie);
        assert!(written.contains(found), "{found:?} is not in {written:?}");
    }
    if let Some(set) = &first.set_cookie {
        assert!(set.to_str().unwrap().starts_with("session=\""));
    }
    let backend = Backend {
        service: routing::model::ObjectKey::new("ns", "svc"),
        port: 80,
        endpoints: (0..7u8)
            .map(|i| Endpoint {
                address: ([10, 0, 0, i], 80).into(),
                pod: None,
                zone: None,
            })
            .collect::<Vec<_>>()
            .into(),
        protocol: BackendProtocol::Http1,
        tls: None,
        filters: Vec::new(),
        policy: Default::default(),
        cluster_address: None,
        names: None,
    };
    let balancer = Balancer::new(
        LoadBalancing::ConsistentHash {
            key,
            table_size: 251,
        },
        [&backend],
    );
    let pick = balancer.pick(&backend, &head).unwrap();
    assert!(pick.endpoint < 7);
    // A request with its key always lands on the same endpoint (one without is spread).
    if first.hash.is_some() {
        assert_eq!(
            balancer.pick(&backend, &head).unwrap().endpoint,
            pick.endpoint
        );
    }
});
