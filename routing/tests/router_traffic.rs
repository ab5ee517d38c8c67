//! The Router's traffic behaviour over a scripted backend: retries, timeouts, mirrors, CORS,
//! backend-level filters and weights.
// Test helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use routing::loader::load_str;
use routing::resolve::{ResolveOptions, resolve};
use routing::router::{
    Dispatch, ListenerSet, MirrorLimits, RouteError, Router, RuleFilters, Select, SelectedBackend,
    UpstreamError, UpstreamErrorKind,
};

mod support;
use support::outcome;
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

type Backend = BoxCloneService<Request<String>, Response<String>, UpstreamError>;

/// Calls per Service name, and the requests each saw (`uri` and `x-seen` header).
#[derive(Default)]
struct Script {
    calls: Mutex<HashMap<String, usize>>,
    seen: Mutex<Vec<(String, String, String)>>,
}

/// A Service per behaviour: `ok`, `flaky` (503 twice, then 200), `down` (an upstream failure
/// twice, then 200), `slow` (300 ms twice, then fast), `sleepy` (always 300 ms), `mirror`.
fn scripted(script: Arc<Script>) -> Backend {
    BoxCloneService::new(tower::service_fn(move |request: Request<String>| {
        let script = Arc::clone(&script);
        async move {
            let service = request
                .extensions()
                .get::<SelectedBackend>()
                .unwrap()
                .service
                .name
                .clone();
            let call = {
                let mut calls = script.calls.lock().unwrap();
                let count = calls.entry(service.clone()).or_default();
                *count += 1;
                *count
            };
            let seen = request
                .headers()
                .get("x-seen")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            script
                .seen
                .lock()
                .unwrap()
                .push((service.clone(), request.uri().to_string(), seen));
            let mut response = Response::new(format!("{service} {call}"));
            match service.as_str() {
                "flaky" if call <= 2 => *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                "down" if call <= 2 => {
                    return Err(UpstreamError::new(UpstreamErrorKind::Reset));
                }
                "slow" if call <= 2 => tokio::time::sleep(Duration::from_millis(300)).await,
                "sleepy" => tokio::time::sleep(Duration::from_millis(300)).await,
                _ => {}
            }
            Ok::<_, UpstreamError>(response)
        }
    }))
}

const SERVICES: [&str; 7] = ["ok", "flaky", "down", "slow", "sleepy", "mirror", "other"];

fn build(rules: &str) -> (Router<Backend>, Arc<Script>) {
    let (listeners, script) = listeners(rules);
    (
        Router::new(listeners, scripted(Arc::clone(&script))),
        script,
    )
}

/// The listener set of one HTTP listener with the route `rules`, and a fresh script.
fn listeners(rules: &str) -> (Arc<ListenerSet>, Arc<Script>) {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
         spec: {gatewayClassName: t, listeners: [{name: http, port: 80, protocol: HTTP}]}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
         spec:\n  parentRefs: [{name: gw}]\n  rules:\n",
    );
    yaml.push_str(rules);
    for (index, name) in SERVICES.iter().enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             endpoints: [{{addresses: [10.0.0.{index}]}}]\nports: [{{name: '', port: 80}}]\n"
        ));
    }
    let loaded = load_str("t.yaml", &yaml).unwrap();
    let resolution = resolve(&loaded.config, &ResolveOptions::default());
    let route = resolution
        .statuses
        .iter()
        .find(|s| s.kind == "HTTPRoute")
        .unwrap();
    assert_eq!(
        route.condition("Accepted").unwrap().reason,
        "Accepted",
        "{route:?}"
    );
    let script = Arc::new(Script::default());
    let listeners = Arc::new(ListenerSet::new(resolution.gateways[0].listeners.clone()));
    (listeners, script)
}

async fn send(router: &mut Router<Backend>, request: Request<String>) -> Response<String> {
    router.ready().await.unwrap().call(request).await.unwrap()
}

async fn try_send(
    router: &mut Router<Backend>,
    request: Request<String>,
) -> Result<Response<String>, RouteError> {
    router.ready().await.unwrap().call(request).await
}

async fn try_get(router: &mut Router<Backend>, path: &str) -> Result<Response<String>, RouteError> {
    let request = Request::get(path)
        .header("host", "a.test")
        .body(String::new())
        .unwrap();
    try_send(router, request).await
}

async fn get(router: &mut Router<Backend>, path: &str) -> Response<String> {
    send(
        router,
        Request::get(path)
            .header("host", "a.test")
            .body(String::new())
            .unwrap(),
    )
    .await
}

fn calls(script: &Script, service: &str) -> usize {
    script
        .calls
        .lock()
        .unwrap()
        .get(service)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn attempts_count_retries_after_the_first_try() {
    let (mut router, script) = build(
        "  - matches: [{path: {value: /two}}]\n    retry: {codes: [503], attempts: 2}\n    backendRefs: [{name: flaky, port: 80}]\n",
    );
    let response = get(&mut router, "/two").await;
    assert_eq!(
        (response.status(), response.body().as_str()),
        (StatusCode::OK, "flaky 3")
    );

    let (mut router, script_one) = build(
        "  - retry: {codes: [503], attempts: 1}\n    backendRefs: [{name: flaky, port: 80}]\n",
    );
    assert_eq!(
        get(&mut router, "/").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(calls(&script_one, "flaky"), 2);
    drop(script);
}

#[tokio::test]
async fn unlisted_codes_pass_through_and_upstream_failures_are_retried_without_codes() {
    let (mut router, script) = build(
        "  - matches: [{path: {value: /flaky}}]\n    retry: {codes: [500], attempts: 3}\n    backendRefs: [{name: flaky, port: 80}]\n\
         \x20 - matches: [{path: {value: /down}}]\n    retry: {attempts: 3}\n    backendRefs: [{name: down, port: 80}]\n",
    );
    assert_eq!(
        get(&mut router, "/flaky").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        calls(&script, "flaky"),
        1,
        "503 is not listed: returned as is"
    );
    let response = get(&mut router, "/down").await;
    assert_eq!(
        (response.status(), response.body().as_str()),
        (StatusCode::OK, "down 3")
    );
}

#[tokio::test]
async fn backend_request_timeouts_are_retried_and_the_request_timeout_is_504() {
    let (mut router, _) = build(
        "  - matches: [{path: {value: /retried}}]\n    timeouts: {request: 2s, backendRequest: 100ms}\n    retry: {attempts: 2}\n    backendRefs: [{name: slow, port: 80}]\n",
    );
    let response = get(&mut router, "/retried").await;
    assert_eq!(
        (response.status(), response.body().as_str()),
        (StatusCode::OK, "slow 3")
    );

    let (mut router, _) = build(
        "  - matches: [{path: {value: /once}}]\n    timeouts: {backendRequest: 100ms}\n    retry: {attempts: 1}\n    backendRefs: [{name: sleepy, port: 80}]\n\
         \x20 - matches: [{path: {value: /whole}}]\n    timeouts: {request: 100ms}\n    backendRefs: [{name: sleepy, port: 80}]\n\
         \x20 - matches: [{path: {value: /unlimited}}]\n    timeouts: {request: 0s}\n    backendRefs: [{name: sleepy, port: 80}]\n",
    );
    assert_eq!(
        outcome(&try_get(&mut router, "/once").await),
        "BackendTimeout"
    );
    assert_eq!(
        outcome(&try_get(&mut router, "/whole").await),
        "RequestTimeout"
    );
    assert_eq!(
        get(&mut router, "/unlimited").await.status(),
        StatusCode::OK,
        "0s disables the timeout"
    );
}

#[tokio::test]
async fn mirrors_get_the_same_uri_with_earlier_edits_and_their_answer_is_ignored() {
    let (mut router, script) = build(
        "  - filters:\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-seen, value: edited}]}}\n    \
         - {type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}}}\n    \
         - {type: RequestMirror, requestMirror: {backendRef: {name: other, port: 80}, percent: 0}}\n    \
         backendRefs: [{name: ok, port: 80}]\n",
    );
    let response = get(&mut router, "/m/x?y=1").await;
    assert_eq!(response.body(), "ok 1");
    for _ in 0..100 {
        if calls(&script, "mirror") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = script.seen.lock().unwrap().clone();
    let mirrored = seen
        .iter()
        .find(|(service, ..)| service == "mirror")
        .expect("the mirror was called");
    assert_eq!(
        (mirrored.1.as_str(), mirrored.2.as_str()),
        ("/m/x?y=1", "edited")
    );
    assert_eq!(calls(&script, "other"), 0, "percent 0 mirrors nothing");
}

#[tokio::test]
async fn cors_preflights_are_answered_by_the_router_and_responses_decorated() {
    let (mut router, script) = build(
        "  - filters:\n    - type: CORS\n      cors: {allowOrigins: ['https://*.example.com'], allowMethods: [GET, PUT], exposeHeaders: [x-total]}\n    \
         backendRefs: [{name: ok, port: 80}]\n",
    );
    let preflight = Request::options("/")
        .header("host", "a.test")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .body(String::new())
        .unwrap();
    let response = send(&mut router, preflight).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-methods"],
        "GET, PUT"
    );
    assert_eq!(
        response.headers()["access-control-max-age"],
        "5",
        "the CRD default"
    );
    assert!(response.body().is_empty());
    assert_eq!(
        calls(&script, "ok"),
        0,
        "the backend is not called for a preflight"
    );
    let actual = Request::get("/")
        .header("host", "a.test")
        .header("origin", "https://app.example.com")
        .body(String::new())
        .unwrap();
    let response = send(&mut router, actual).await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        response.headers()["access-control-expose-headers"],
        "x-total"
    );
}

#[tokio::test]
async fn backend_filters_apply_only_to_the_backend_that_served() {
    let (mut router, _) = build(
        "  - backendRefs:\n    \
         - {name: ok, port: 80, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-backend, value: ok}]}}]}\n    \
         - {name: other, port: 80, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-backend, value: other}]}}]}\n",
    );
    for _ in 0..40 {
        let response = get(&mut router, "/").await;
        let served = response.body().split(' ').next().unwrap().to_owned();
        assert_eq!(response.headers()["x-backend"], served.as_str());
    }
}

#[tokio::test]
async fn weights_split_traffic_proportionally_and_weight_zero_gets_none() {
    let (mut router, script) = build(
        "  - backendRefs: [{name: ok, port: 80, weight: 3}, {name: other, port: 80, weight: 1}, {name: mirror, port: 80, weight: 0}]\n",
    );
    let total = 4000;
    for _ in 0..total {
        get(&mut router, "/").await;
    }
    let ok = calls(&script, "ok") as f64 / total as f64;
    // 3/4 expected; 6 standard deviations of a binomial(4000, 0.75) is about 0.041.
    assert!((ok - 0.75).abs() < 0.041, "share of ok: {ok}");
    assert_eq!(calls(&script, "mirror"), 0);
}

#[tokio::test]
async fn mirrors_are_capped_in_flight_and_abandoned_after_their_timeout() {
    let (listeners, script) = listeners(
        "  - filters:\n    - {type: RequestMirror, requestMirror: {backendRef: {name: sleepy, port: 80}}}\n    \
         backendRefs: [{name: ok, port: 80}]\n",
    );
    let limits = MirrorLimits {
        max_in_flight: 2,
        timeout: Duration::from_millis(100),
    };
    let dispatch = Dispatch::with_limits(scripted(Arc::clone(&script)), limits);
    let mut stack = Select::new(listeners, RuleFilters::new(dispatch.clone()));
    for _ in 0..5 {
        let request = Request::get("/")
            .header("host", "a.test")
            .body(String::new())
            .unwrap();
        let response = stack.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the request itself is served"
        );
    }
    assert_eq!(
        dispatch.mirrors_in_flight(),
        2,
        "at most two copies at once"
    );
    assert_eq!(dispatch.mirrors_dropped(), 3, "the others are dropped");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        dispatch.mirrors_in_flight(),
        0,
        "a copy the mirror does not answer within its timeout is abandoned (sleepy takes 300 ms)"
    );
    assert_eq!(calls(&script, "sleepy"), 2);
}
