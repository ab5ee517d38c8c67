//! The OIDC flow driven through its sans-IO steps, with the provider's answers written here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};
use routing::loader::load_str;
use routing::model::ObjectKey;

use super::*;
use crate::security::percent::query_param;

const SECRETS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: client, namespace: shop}
stringData: {client-secret: "s3cret:&"}
"#;

#[derive(Debug)]
struct NoExchanges;

impl IdentityProviderClient for NoExchanges {
    fn send(&self, _: ProviderRequest) -> ProviderFuture {
        Box::pin(async { Err("no provider here".to_owned()) })
    }
}

fn oidc(extra: &str) -> Oidc {
    let yaml = format!(
        "provider:\n  issuer: https://idp.example/\n  authorizationEndpoint: https://idp.example/auth\n  tokenEndpoint: https://idp.example/token\n  endSessionEndpoint: https://idp.example/session/end\nclientID: web\nclientSecret: {{name: client}}\nforwardAccessToken: true\n{extra}"
    );
    compile_with(&yaml, Arc::new(NoExchanges))
}

fn compile_with(yaml: &str, client: Arc<dyn IdentityProviderClient>) -> Oidc {
    let spec: model::OidcSpec = serde_yaml_ng::from_str(yaml).unwrap();
    let loaded = load_str("secrets.yaml", SECRETS).unwrap();
    let runtime = OidcRuntime {
        client,
        secret: SessionSecret::new(b"a secret of at least 16 bytes").unwrap(),
    };
    let read = |reference: &routing::model::SecretObjectReference, key: &str| {
        loaded
            .config
            .secrets
            .iter()
            .find(|s| s.metadata.name == reference.name)
            .and_then(|s| s.value(key))
            .ok_or_else(|| format!("no {key}"))
    };
    Oidc::compile(
        &spec,
        &ObjectKey::new("shop", "login"),
        &loaded.config,
        Some(&runtime),
        &read,
    )
    .unwrap()
}

fn endpoints(oidc: &Oidc) -> Arc<Endpoints> {
    oidc.endpoints().unwrap()
}

fn headers(host: &str, cookies: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
    if !cookies.is_empty() {
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookies.join("; ")).unwrap(),
        );
    }
    headers
}

fn judge(oidc: &Oidc, uri: &str, headers: &HeaderMap, now: u64) -> OidcStep {
    let uri: Uri = uri.parse().unwrap();
    let request = OidcRequest {
        uri: &uri,
        headers,
        scheme: "https",
        now,
        has_bearer: false,
    };
    oidc.judge(&request, Some(&endpoints(oidc)))
}

/// The `name=value` part of every `Set-Cookie`.
fn set_cookies<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Vec<String> {
    values
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

fn id_token(claims: serde_json::Value) -> String {
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.signature",
        part(&serde_json::json!({"alg": "RS256"})),
        part(&claims)
    )
}

fn token_answer(body: serde_json::Value) -> Result<ProviderResponse, String> {
    Ok(ProviderResponse {
        status: StatusCode::OK,
        body: body.to_string().into(),
    })
}

/// Logs in through the redirect and the callback; the session's cookies.
fn log_in(oidc: &Oidc, now: u64) -> Vec<String> {
    let OidcStep::Answer(redirect) = judge(oidc, "/app?x=1", &headers("app.example", &[]), now)
    else {
        panic!("no redirect");
    };
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location: Uri = redirect.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(location.path(), "/auth");
    let query = location.query().unwrap();
    assert_eq!(query_param(query, "client_id").as_deref(), Some("web"));
    assert_eq!(query_param(query, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(query, "redirect_uri").as_deref(),
        Some("https://app.example/oauth2/callback")
    );
    assert_eq!(
        query_param(query, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(query, "scope").unwrap().starts_with("openid"));
    let nonce = query_param(query, "nonce").unwrap();
    let state = query_param(query, "state").unwrap();
    let login_cookies = set_cookies(redirect.headers.get_all(header::SET_COOKIE).iter());
    assert_eq!(login_cookies.len(), 2, "{login_cookies:?}");
    let callback = format!(
        "/oauth2/callback?code=abc&state={}",
        crate::security::percent::percent_encode(&state)
    );
    let OidcStep::ExchangeCode(exchange) = judge(
        oidc,
        &callback,
        &headers("app.example", &login_cookies),
        now,
    ) else {
        panic!("no code exchange");
    };
    let form = std::str::from_utf8(&exchange.request.body).unwrap();
    assert_eq!(query_param(form, "code").as_deref(), Some("abc"));
    assert_eq!(
        query_param(form, "grant_type").as_deref(),
        Some("authorization_code")
    );
    let verifier = query_param(form, "code_verifier").unwrap();
    let challenge = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    assert_eq!(query_param(query, "code_challenge"), Some(challenge));
    assert_eq!(
        exchange.request.headers[header::AUTHORIZATION],
        // "web:" and the form-encoded secret.
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("web:s3cret%3A%26")
        )
    );
    let done = oidc
        .finish_login(
            &exchange,
            token_answer(serde_json::json!({
                "access_token": "access-1",
                "refresh_token": "refresh-1",
                "expires_in": 60,
                "id_token": id_token(serde_json::json!({
                    "iss": "https://idp.example", "aud": "web", "nonce": nonce, "sub": "alice"
                })),
            })),
            now,
        )
        .unwrap();
    assert_eq!(
        done.headers[header::LOCATION],
        "https://app.example/app?x=1"
    );
    let cookies = set_cookies(done.headers.get_all(header::SET_COOKIE).iter());
    cookies
        .into_iter()
        .filter(|c| !c.ends_with("=deleted"))
        .collect()
}

#[test]
fn a_login_yields_a_session_forwarded_with_its_access_token_and_without_its_cookies() {
    let oidc = oidc("");
    let session = log_in(&oidc, 1000);
    assert_eq!(session.len(), 5, "{session:?}");
    // Sealed: the token is not readable in its cookie.
    assert!(!session.iter().any(|c| c.contains("access-1")));
    let mut cookies = session.clone();
    cookies.push("theme=dark".to_owned());
    let mut request = headers("app.example", &cookies);
    let OidcStep::Forward(edits) = judge(&oidc, "/app", &request, 1010) else {
        panic!("the session was not accepted");
    };
    oidc.apply_forward(&edits, &mut request);
    assert_eq!(request[header::AUTHORIZATION], "Bearer access-1");
    assert_eq!(request[header::COOKIE], "theme=dark");
}

#[test]
fn tampered_moved_or_expired_sessions_are_not_sessions() {
    let oidc = oidc("refreshToken: false");
    let session = log_in(&oidc, 1000);
    // Another host.
    let step = judge(&oidc, "/app", &headers("evil.example", &session), 1010);
    assert!(matches!(step, OidcStep::Answer(_)), "{step:?}");
    // A later expiry written by the client.
    let stretched: Vec<String> = session
        .iter()
        .map(|c| {
            if c.starts_with("OauthExpires") {
                c.replace("1060", "9999")
            } else {
                c.clone()
            }
        })
        .collect();
    let step = judge(&oidc, "/app", &headers("app.example", &stretched), 1010);
    assert!(matches!(step, OidcStep::Answer(_)), "{step:?}");
    // Expired, with refreshing off: a new login.
    let step = judge(&oidc, "/app", &headers("app.example", &session), 1060);
    assert!(matches!(step, OidcStep::Answer(_)), "{step:?}");
}

#[test]
fn an_expired_session_is_refreshed_and_the_new_cookies_go_on_the_response() {
    let oidc = oidc("");
    let session = log_in(&oidc, 1000);
    let OidcStep::Refresh(exchange) = judge(&oidc, "/app", &headers("app.example", &session), 2000)
    else {
        panic!("no refresh");
    };
    let form = std::str::from_utf8(&exchange.request.body).unwrap();
    assert_eq!(
        query_param(form, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(
        query_param(form, "refresh_token").as_deref(),
        Some("refresh-1")
    );
    let edits = oidc
        .finish_refresh(
            &exchange,
            token_answer(serde_json::json!({"access_token": "access-2", "expires_in": 60})),
            2000,
        )
        .unwrap();
    assert_eq!(edits.set[0].1, "Bearer access-2");
    let renewed = set_cookies(edits.set_cookies.iter());
    let renewed: Vec<String> = renewed
        .into_iter()
        .filter(|c| !c.ends_with("=deleted"))
        .collect();
    // The refresh token is kept when the provider sends no new one.
    let OidcStep::Forward(_) = judge(&oidc, "/app", &headers("app.example", &renewed), 2010) else {
        panic!("the refreshed session was not accepted: {renewed:?}");
    };
    assert!(
        oidc.finish_refresh(
            &exchange,
            Ok(ProviderResponse {
                status: StatusCode::BAD_REQUEST,
                body: r#"{"error":"invalid_grant"}"#.into()
            }),
            2000
        )
        .is_err()
    );
}

/// A login's first redirect: its nonce, its state (percent-encoded) and its cookies.
fn start_login(oidc: &Oidc) -> (String, String, Vec<String>) {
    let OidcStep::Answer(redirect) = judge(oidc, "/", &headers("app.example", &[]), 5) else {
        panic!("no redirect")
    };
    let location = redirect.headers[header::LOCATION].to_str().unwrap();
    let query = location.split_once('?').unwrap().1;
    let nonce = query_param(query, "nonce").unwrap();
    let state = crate::security::percent::percent_encode(&query_param(query, "state").unwrap());
    let cookies = set_cookies(redirect.headers.get_all(header::SET_COOKIE).iter());
    (nonce, state, cookies)
}

#[test]
fn callbacks_that_are_not_this_browsers_login_are_refused() {
    let oidc = oidc("");
    let (_, state, login_cookies) = start_login(&oidc);
    let callback = |query: &str, cookies: &[String]| {
        judge(
            &oidc,
            &format!("/oauth2/callback?{query}"),
            &headers("app.example", cookies),
            5,
        )
    };
    let refused = |step: OidcStep, failure: OidcFailure| {
        assert!(
            matches!(step, OidcStep::Refuse(f) if f == failure),
            "{step:?}"
        );
    };
    // Without the browser's nonce cookie (a login started elsewhere).
    refused(
        callback(&format!("code=a&state={state}"), &[]),
        OidcFailure::BadState,
    );
    // A forged state.
    refused(
        callback("code=a&state=eyJ1cmwiOiJ4In0.AAAA", &login_cookies),
        OidcFailure::BadState,
    );
    refused(
        callback(&format!("state={state}"), &login_cookies),
        OidcFailure::BadState,
    );
    refused(
        callback("error=access_denied", &login_cookies),
        OidcFailure::ProviderRefused,
    );
    // The verifier cookie missing.
    refused(
        callback(&format!("code=a&state={state}"), &login_cookies[..1]),
        OidcFailure::MissingVerifier,
    );
}

#[test]
fn id_tokens_of_another_login_client_or_issuer_are_refused() {
    let oidc = oidc("");
    let (nonce, state, cookies) = start_login(&oidc);
    let OidcStep::ExchangeCode(exchange) = judge(
        &oidc,
        &format!("/oauth2/callback?code=a&state={state}"),
        &headers("app.example", &cookies),
        5,
    ) else {
        panic!()
    };
    for claims in [
        serde_json::json!({"iss": "https://idp.example", "aud": "web", "nonce": "other"}),
        serde_json::json!({"iss": "https://idp.example", "aud": "mobile", "nonce": nonce}),
        serde_json::json!({"iss": "https://evil.example", "aud": ["web"], "nonce": nonce}),
    ] {
        let answer = token_answer(serde_json::json!({
            "access_token": "a", "expires_in": 5, "id_token": id_token(claims)
        }));
        assert_eq!(
            oidc.finish_login(&exchange, answer, 5).unwrap_err(),
            OidcFailure::IdTokenMismatch
        );
    }
    let no_lifetime = token_answer(serde_json::json!({"access_token": "a"}));
    assert_eq!(
        oidc.finish_login(&exchange, no_lifetime, 5).unwrap_err(),
        OidcFailure::NoLifetime
    );
    let garbage = Ok(ProviderResponse {
        status: StatusCode::OK,
        body: "<html>".into(),
    });
    assert_eq!(
        oidc.finish_login(&exchange, garbage, 5).unwrap_err(),
        OidcFailure::BadTokenAnswer
    );
}

#[test]
fn logout_clears_every_cookie_and_ends_the_providers_session() {
    let oidc = oidc("");
    let session = log_in(&oidc, 1000);
    let OidcStep::Answer(answer) = judge(&oidc, "/logout", &headers("app.example", &session), 1001)
    else {
        panic!()
    };
    let location = answer.headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with("https://idp.example/session/end?client_id=web&id_token_hint="));
    let cleared = set_cookies(answer.headers.get_all(header::SET_COOKIE).iter());
    assert_eq!(cleared.len(), 7);
    assert!(cleared.iter().all(|c| c.ends_with("=deleted")));
}

#[test]
fn deny_redirect_and_bearer_pass_through() {
    let oidc = oidc(
        "denyRedirect:\n  headers:\n  - {name: x-requested-with, value: XMLHttpRequest}\npassThroughAuthHeader: true\n",
    );
    let mut xhr = headers("app.example", &[]);
    xhr.insert(
        "x-requested-with",
        HeaderValue::from_static("XMLHttpRequest"),
    );
    let step = judge(&oidc, "/api", &xhr, 5);
    assert!(
        matches!(step, OidcStep::Refuse(OidcFailure::DenyRedirect)),
        "{step:?}"
    );
    let uri: Uri = "/api".parse().unwrap();
    let request = OidcRequest {
        uri: &uri,
        headers: &headers("app.example", &[]),
        scheme: "https",
        now: 5,
        has_bearer: true,
    };
    assert!(matches!(oidc.judge(&request, None), OidcStep::Forward(_)));
    // Without configured endpoints, discovery comes first.
    let request = OidcRequest {
        has_bearer: false,
        ..request
    };
    let discovered = self::oidc("").judge(&request, None);
    assert!(matches!(discovered, OidcStep::Discover), "{discovered:?}");
}

#[test]
fn discovery_documents_of_another_issuer_are_refused() {
    let configured = (None, None, None);
    let document = br#"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/a","token_endpoint":"https://idp.example/t"}"#;
    let endpoints = Discovery::parse(document, "https://idp.example/", &configured).unwrap();
    assert_eq!(endpoints.token, "https://idp.example/t");
    assert_eq!(endpoints.end_session, None);
    assert!(Discovery::parse(document, "https://other.example", &configured).is_err());
    assert!(Discovery::parse(b"[]", "https://idp.example", &configured).is_err());
}

#[test]
fn unreadable_policies_say_why() {
    let read = |_: &routing::model::SecretObjectReference, _: &str| -> Result<Vec<u8>, String> {
        Err("Secret shop/client not found".to_owned())
    };
    let loaded = load_str("empty.yaml", "").unwrap();
    let runtime = OidcRuntime {
        client: Arc::new(NoExchanges),
        secret: SessionSecret::random().unwrap(),
    };
    let compile = |yaml: &str| {
        let spec: model::OidcSpec = serde_yaml_ng::from_str(yaml).unwrap();
        Oidc::compile(
            &spec,
            &ObjectKey::new("shop", "p"),
            &loaded.config,
            Some(&runtime),
            &read,
        )
        .unwrap_err()
    };
    let base = "provider: {issuer: https://idp.example}\nclientSecret: {name: client}\n";
    assert!(compile(&format!("{base}clientID: a\n")).contains("not found"));
    assert!(compile(base).contains("exactly one of clientID"));
    let spec: model::OidcSpec = serde_yaml_ng::from_str(&format!("{base}clientID: a\n")).unwrap();
    let no_runtime = Oidc::compile(
        &spec,
        &ObjectKey::new("shop", "p"),
        &loaded.config,
        None,
        &read,
    );
    assert!(
        no_runtime
            .unwrap_err()
            .contains("cannot talk to OpenID providers")
    );
    assert!(serde_yaml_ng::from_str::<model::OidcSpec>(&format!("{base}clientId: a\n")).is_err());
}

/// A provider that never answers.
#[derive(Debug)]
struct Hangs;

impl IdentityProviderClient for Hangs {
    fn send(&self, _: ProviderRequest) -> ProviderFuture {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn one_discovery_at_a_time_whatever_the_requests_waiting() {
    use std::future::Future;
    let oidc = compile_with(
        "provider: {issuer: https://idp.example}\nclientID: web\nclientSecret: {name: client}\n",
        Arc::new(Hangs),
    );
    let request = || {
        http::Request::get("/app")
            .header(header::HOST, "app.example")
            .body(())
            .unwrap()
    };
    let poll_once = |future: &mut std::pin::Pin<Box<dyn Future<Output = _> + '_>>| {
        let waker = std::task::Waker::noop();
        future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
    };
    let (mut first_request, mut second_request, mut third_request) =
        (request(), request(), request());
    let mut first: std::pin::Pin<Box<dyn Future<Output = _>>> =
        Box::pin(authenticate(&oidc, &mut first_request, "https", false));
    assert!(poll_once(&mut first).is_pending(), "the discovery waits");
    // Meanwhile another request does not start a second discovery.
    let mut second: std::pin::Pin<Box<dyn Future<Output = _>>> =
        Box::pin(authenticate(&oidc, &mut second_request, "https", false));
    assert!(matches!(
        poll_once(&mut second),
        std::task::Poll::Ready(Err(OidcFailure::NoEndpoints))
    ));
    // Once the first is gone (cancelled), the next request may discover again.
    drop(first);
    let mut third: std::pin::Pin<Box<dyn Future<Output = _>>> =
        Box::pin(authenticate(&oidc, &mut third_request, "https", false));
    assert!(poll_once(&mut third).is_pending());
}
