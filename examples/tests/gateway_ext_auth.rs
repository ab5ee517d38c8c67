//! SecurityPolicy `extAuth` through the `gateway` binary against independent authorizers in
//! Python — an HTTP one (http.server) and a gRPC one (grpcio serving Envoy's published
//! `envoy.service.auth.v3.Authorization`) — with curl as the client: what the authorizer is
//! sent, allowed requests edited as it says, its denials relayed, the body cap, timeouts,
//! broken answers, `statusOnError` and `failOpen`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::path::Path;

use gateway_support::*;
use tokio::process::{Child, Command};

/// Starts `ext_authz.py MODE LOG`; the child and its port.
async fn authorizer(mode: &str, log: &Path) -> (Child, u16) {
    let mut command = Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/ext_authz.py"
        ))
        .args([mode, log.to_str().unwrap()]);
    let (child, line) = spawn_peer(command, "python3 with grpcio and xds-protos").await;
    let port = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    (child, port)
}

/// The checks an authorizer logged, oldest first.
fn checks(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn route_and_policy(name: &str, ext_auth: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [{name}.example]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: {name}}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]
  extAuth:
{ext_auth}
---
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ext_auth_over_http_and_grpc_decides_through_the_gateway() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("ext-auth");
    let (http_log, grpc_log) = (dir.join("http.log"), dir.join("grpc.log"));
    let (_http_authorizer, http_port) = authorizer("http", &http_log).await;
    let (_grpc_authorizer, grpc_port) = authorizer("grpc", &grpc_log).await;
    let nobody = free_port();
    let yaml = [
        gateway_yaml(port),
        service("echo", backend),
        service("authz-http", http_port),
        service("authz-grpc", grpc_port),
        service("authz-down", nobody),
        route_and_policy(
            "viahttp",
            "    http:\n      backendRefs: [{name: authz-http, port: 80}]\n      path: /check\n      headersToBackend: [x-current-user]\n    headersToExtAuth: [x-extra]\n    bodyToExtAuth: {maxRequestBytes: 16}\n    timeout: 1s",
        ),
        route_and_policy(
            "viagrpc",
            "    grpc:\n      backendRefs: [{name: authz-grpc, port: 80}]\n    timeout: 1s\n    statusOnError: 503\n    contextExtensions: [{name: tenant, type: Value, value: blue}]",
        ),
        route_and_policy(
            "failopen",
            "    grpc: {backendRefs: [{name: authz-down, port: 80}]}\n    failOpen: true",
        ),
        route_and_policy(
            "failclosed",
            "    http: {backendRefs: [{name: authz-down, port: 80}]}",
        ),
    ]
    .concat();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gateway = start_gateway_logging(&[&dir], &["--log-denials"], Some(logged.clone())).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let host = |name: &str| format!("host: {name}.example");
    let allow = "authorization: Bearer allow";

    // HTTP authorizer: a denial is relayed whole.
    let (status, response) = curl(&["-H", &host("viahttp"), &url("/a?q=1")]).await;
    assert_eq!(status, 403, "{response}");
    assert_eq!(
        header(&response, "x-reason"),
        Some("no-token"),
        "{response}"
    );
    assert!(response.ends_with("denied by python"), "{response}");
    // Allowed: the request goes on with headersToBackend only.
    let (status, response) = curl(&[
        "-H",
        allow,
        "-H",
        "x-extra: shown",
        "-H",
        "x-hidden: kept-back",
        "-H",
        &host("viahttp"),
        "--data",
        "small body",
        &url("/a/b?q=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["headers"]["x-current-user"][0], "alice", "{seen}");
    assert!(seen["headers"].get("x-other").is_none(), "{seen}");
    assert_eq!(seen["headers"]["content-length"][0], "10", "{seen}");
    let sent = checks(&http_log).pop().unwrap();
    assert_eq!(sent["method"], "POST", "{sent}");
    assert_eq!(sent["path"], "/check/a/b?q=1", "{sent}");
    assert_eq!(sent["headers"]["authorization"], "Bearer allow", "{sent}");
    assert_eq!(sent["headers"]["x-extra"], "shown", "{sent}");
    assert_eq!(sent["headers"]["host"], "viahttp.example", "{sent}");
    assert!(sent["headers"].get("x-hidden").is_none(), "{sent}");
    assert_eq!(sent["headers"]["content-length"], "10", "{sent}");
    assert_eq!(sent["body"], "small body", "{sent}");
    // A body over maxRequestBytes: 413, the authorizer not asked.
    let asked = checks(&http_log).len();
    let (status, _) = curl(&[
        "-H",
        allow,
        "-H",
        &host("viahttp"),
        "--data",
        "a body longer than sixteen bytes",
        &url("/"),
    ])
    .await;
    assert_eq!(status, 413);
    assert_eq!(checks(&http_log).len(), asked);
    // Slower than the timeout, or not HTTP: the default statusOnError, 403.
    let started = std::time::Instant::now();
    let (status, _) = curl(&["-H", allow, "-H", &host("viahttp"), &url("/slow")]).await;
    assert_eq!(status, 403);
    assert!(started.elapsed() < std::time::Duration::from_millis(2900));
    let (status, _) = curl(&["-H", allow, "-H", &host("viahttp"), &url("/broken")]).await;
    assert_eq!(status, 403);

    // gRPC authorizer: allowed with its header edits; what it was told.
    let (status, response) = curl(&[
        "-H",
        allow,
        "-H",
        "x-remove-me: gone",
        "-H",
        "x-appended: one",
        "-H",
        &host("viagrpc"),
        &url("/g?x=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["headers"]["x-current-user"][0], "alice", "{seen}");
    assert_eq!(
        seen["headers"]["x-appended"],
        serde_json::json!(["one", "two"]),
        "{seen}"
    );
    assert!(seen["headers"].get("x-remove-me").is_none(), "{seen}");
    let sent = checks(&grpc_log).pop().unwrap();
    assert_eq!(sent["method"], "GET", "{sent}");
    assert_eq!(sent["path"], "/g?x=1", "{sent}");
    assert_eq!(sent["host"], "viagrpc.example", "{sent}");
    assert_eq!(sent["scheme"], "http", "{sent}");
    assert_eq!(sent["protocol"], "HTTP/1.1", "{sent}");
    assert_eq!(sent["source"], "127.0.0.1", "{sent}");
    assert_eq!(sent["headers"][":path"], "/g?x=1", "{sent}");
    assert_eq!(
        sent["headers"]["x-remove-me"], "gone",
        "all headers by default: {sent}"
    );
    assert_eq!(sent["context_extensions"]["tenant"], "blue", "{sent}");
    // Denied: the denied_response's status, headers and body.
    let (status, response) = curl(&["-H", &host("viagrpc"), &url("/g")]).await;
    assert_eq!(status, 401, "{response}");
    assert_eq!(
        header(&response, "x-reason"),
        Some("grpc-denied"),
        "{response}"
    );
    assert!(response.ends_with("denied by grpc"), "{response}");
    // A gRPC failure and a timeout: statusOnError.
    let (status, _) = curl(&["-H", allow, "-H", &host("viagrpc"), &url("/broken")]).await;
    assert_eq!(status, 503);
    let (status, _) = curl(&["-H", allow, "-H", &host("viagrpc"), &url("/slow")]).await;
    assert_eq!(status, 503);

    // An authorizer that cannot be reached: through with failOpen, else 403.
    let (status, response) = curl(&["-H", &host("failopen"), &url("/")]).await;
    assert_eq!(status, 200, "{response}");
    let (status, _) = curl(&["-H", &host("failclosed"), &url("/")]).await;
    assert_eq!(status, 403);

    // --log-denials: one line per refusal, naming the request and what decided.
    let denial = |needle: &str| {
        logged
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.starts_with("gateway: denied: ") && line.contains(needle))
    };
    for needle in [
        "GET viahttp.example/a → 403 ext_authz_denied: SecurityPolicy default/viahttp extAuth: the authorizer answered 403",
        "POST viahttp.example/ → 413 body_too_large: SecurityPolicy default/viahttp extAuth.bodyToExtAuth",
        "GET viagrpc.example/broken → 503 ext_authz_error: SecurityPolicy default/viagrpc extAuth: authorizer failed: grpc-status 14",
        "GET failclosed.example/ → 403 ext_authz_error",
    ] {
        assert!(denial(needle), "{needle} in {:#?}", logged.lock().unwrap());
    }
    assert!(!denial("failopen.example"), "a failOpen pass is no denial");

    // Each refusal named in the metrics by its flag.
    let (_, metrics) = curl(&[&gateway.admin_url("/metrics")]).await;
    for flag in ["ext_authz_denied", "ext_authz_error", "body_too_large"] {
        assert!(
            metrics.contains(&format!("flag=\"{flag}\"")),
            "{flag} in {metrics}"
        );
    }
}

/// `extAuth.recomputeRoute`: the authorizer's `x-current-user` header is added and the route
/// is selected again on it.
#[tokio::test(flavor = "multi_thread")]
async fn recompute_route_follows_the_authorizers_headers() {
    let port = free_port();
    let (general, alice) = (echo("general-0").await, echo("alice-0").await);
    let dir = scratch("ext-auth-recompute");
    let (_authorizer, authorizer_port) = authorizer("http", &dir.join("http.log")).await;
    let yaml = format!(
        r#"{gateway}{general}{alice}{authz}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: users}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [users.example]
  rules:
  - matches: [{{headers: [{{name: x-current-user, value: alice}}]}}]
    backendRefs: [{{name: alice, port: 80}}]
  - backendRefs: [{{name: general, port: 80}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: users}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: users}}]
  extAuth:
    http:
      backendRefs: [{{name: authz-http, port: 80}}]
      headersToBackend: [x-current-user]
    recomputeRoute: true
---
"#,
        gateway = gateway_yaml(port),
        general = service("general", general),
        alice = service("alice", alice),
        authz = service("authz-http", authorizer_port),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (status, response) = curl(&[
        "-H",
        "host: users.example",
        "-H",
        "authorization: Bearer allow",
        &format!("http://127.0.0.1:{port}/me"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["pod"], "alice-0", "{seen}");
    assert_eq!(seen["headers"]["x-current-user"][0], "alice", "{seen}");
}
