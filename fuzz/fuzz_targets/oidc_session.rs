//! Fuzzes OIDC's reading of a request: the input is a request target and a `Cookie` header
//! (session cookies, the login's nonce and sealed PKCE verifier) — the callback's query and
//! state included when the target is the callback path. Judging never panics, and without the
//! policy's key no input yields a session (forwarded) or a code exchange (a callback
//! accepted): forged, tampered and moved cookies and states are all refused.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, LazyLock};

use http::header::{COOKIE, HOST, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_policy::security::oidc::{
    IdentityProviderClient, Oidc, OidcRequest, OidcRuntime, OidcStep, ProviderFuture,
    ProviderRequest, SessionSecret, model::OidcSpec,
};
use routing::model::{Config, ObjectKey};

#[derive(Debug)]
struct NoExchanges;

impl IdentityProviderClient for NoExchanges {
    fn send(&self, _: ProviderRequest) -> ProviderFuture {
        Box::pin(async { Err("none".to_owned()) })
    }
}

static OIDC: LazyLock<Oidc> = LazyLock::new(|| {
    let spec: OidcSpec = serde_yaml_ng::from_str(
        "provider: {issuer: https://idp.example, authorizationEndpoint: https://idp.example/a, tokenEndpoint: https://idp.example/t}\n\
         clientID: web\nclientSecret: {name: s}\ncookieSuffix: x\nforwardAccessToken: true\n",
    )
    .unwrap();
    let runtime = OidcRuntime {
        client: Arc::new(NoExchanges),
        secret: SessionSecret::random().unwrap(),
    };
    Oidc::compile(
        &spec,
        &ObjectKey::new("shop", "login"),
        &Config::default(),
        Some(&runtime),
        &|_, _| Ok(b"secret".to_vec()),
    )
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (target, cookie) = data.split_at(split);
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_static("app.example"));
    if let Ok(value) = HeaderValue::from_bytes(cookie.get(1..).unwrap_or_default()) {
        headers.insert(COOKIE, value);
    }
    let request = OidcRequest {
        uri: &uri,
        headers: &headers,
        scheme: "https",
        now: 1_000_000,
        has_bearer: false,
    };
    let endpoints = OIDC.endpoints();
    match OIDC.judge(&request, endpoints.as_deref()) {
        OidcStep::Forward(_) => panic!("a session without the key: {uri} {headers:?}"),
        OidcStep::ExchangeCode(_) => panic!("a callback without the key: {uri} {headers:?}"),
        OidcStep::Refresh(_) => panic!("a sealed refresh token without the key: {headers:?}"),
        OidcStep::Answer(_) | OidcStep::Refuse(_) | OidcStep::Discover => {}
    }
});
