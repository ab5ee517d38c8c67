//! Envoy Gateway's ClientTrafficPolicy and BackendTrafficPolicy through the `gateway` binary,
//! driven with curl and wrk: client IP detection feeding an authorization rule (spoofed
//! X-Forwarded-For entries beyond the trusted hops gain nothing), path normalisation and
//! escaped slashes, underscore headers, the listener's health check; local rate limits with
//! Envoy's headers, distinct buckets and fixed windows counted under load; fault injection
//! (abort, delay, percentage); the circuit breaker's fail-fast 503; the request timeout; and
//! the policies' status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use gateway_support::*;
use tokio::net::TcpListener;

/// A backend answering 200 after `delay`.
async fn slow_backend(delay: Duration) -> u16 {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"slow\n")),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

type Answer = http::Response<http_body_util::Full<bytes::Bytes>>;

/// A backend answering its `n`-th request (from 0) with `answer(n, failures, body)`, the
/// request's body read whole; and its request count.
async fn counting_backend(
    answer: fn(u32, u32, &[u8]) -> Answer,
    failures: u32,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let body = request.into_body().collect().await?.to_bytes();
                            Ok::<_, hyper::Error>(answer(n, failures, &body))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

/// A backend answering its first `failures` requests as a gRPC server in trouble (200 with a
/// trailers-only `grpc-status: 14`), then `grpc-status: 0`; and its request count.
async fn grpc_unavailable_backend(
    failures: u32,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    counting_backend(
        |n, failures, _| {
            http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", if n < failures { "14" } else { "0" })
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap()
        },
        failures,
    )
    .await
}

/// A backend answering 503 to its first `failures` requests, then 200; and its request count.
async fn failing_backend(failures: u32) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    counting_backend(
        |n, failures, _| {
            let mut response = http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"answer\n"),
            ));
            if n < failures {
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            response
        },
        failures,
    )
    .await
}

fn route(name: &str, host: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{host}]\n  \
         rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]\n---\n"
    )
}

const CLIENT_POLICIES: &str = r#"
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: edge}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  clientIPDetection: {xForwardedFor: {numTrustedHops: 2}}
  headers: {withUnderscoresAction: DropHeader}
  healthCheck: {path: /healthz}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: partners-only}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: partners}]
  authorization:
    defaultAction: Deny
    rules: [{action: Allow, principal: {clientCIDRs: [198.51.100.0/24]}}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn client_traffic_policy_detects_the_client_and_normalises_requests() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("client-traffic");
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "{}{}{}{}{CLIENT_POLICIES}",
            gateway_yaml(port),
            service("echo", backend),
            route("partners", "partners.example", "echo"),
            route("open", "open.example", "echo"),
        ),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let host = |name: &str| format!("host: {name}");

    // Two trusted hops: the client is the second address from the right.
    let (status, response) = curl(&[
        "-H",
        &host("partners.example"),
        "-H",
        "x-forwarded-for: 198.51.100.7, 10.0.0.2",
        &url("/"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        echoed(&response)["headers"]["x-forwarded-for"][0],
        "198.51.100.7, 10.0.0.2, 127.0.0.1",
        "the peer is appended"
    );
    // A client writing an allowed address itself gains nothing: it is beyond the trusted hops.
    let (status, response) = curl(&[
        "-H",
        &host("partners.example"),
        "-H",
        "x-forwarded-for: 198.51.100.7, 203.0.113.5, 10.0.0.2",
        &url("/"),
    ])
    .await;
    assert_eq!(status, 403, "{response}");
    let (status, _) = curl(&["-H", &host("partners.example"), &url("/")]).await;
    assert_eq!(
        status, 403,
        "too few entries: the peer 127.0.0.1 is the client"
    );

    // Paths are normalised before routing and forwarded normalised.
    let (status, response) = curl(&[
        "--path-as-is",
        "-H",
        &host("open.example"),
        &url("/a/%2e%2e//b/./c%7e?q=/../x"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["path"], "/b/c~?q=/../x");
    let (status, response) = curl(&["-H", &host("open.example"), &url("/a%2Fb")]).await;
    assert_eq!(
        status, 307,
        "escaped slashes are redirected by default: {response}"
    );
    assert_eq!(header(&response, "location"), Some("/a/b"));
    let (status, _) = curl(&["-H", &host("open.example"), &url("/a%00b")]).await;
    assert_eq!(status, 400);

    // Headers with underscores are dropped before anything sees them.
    let (_, response) = curl(&[
        "-H",
        &host("open.example"),
        "-H",
        "x_user: mallory",
        &url("/"),
    ])
    .await;
    assert!(
        echoed(&response)["headers"].get("x_user").is_none(),
        "{response}"
    );

    // The listener answers its health check itself, whatever the host.
    let (status, response) = curl(&["-H", &host("nowhere.example"), &url("/healthz")]).await;
    assert_eq!(status, 200, "{response}");
    assert!(!response.contains("\"pod\""), "not forwarded: {response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_traffic_defaults_refuse_underscore_headers_without_a_policy() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("client-defaults");
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "{}{}{}",
            gateway_yaml(port),
            service("echo", backend),
            route("open", "open.example", "echo"),
        ),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let (status, _) = curl(&["-H", "host: open.example", "-H", "x_user: a", &url]).await;
    assert_eq!(status, 400, "Envoy Gateway's default: RejectRequest");
    let (status, response) = curl(&["-H", "host: open.example", &url]).await;
    assert_eq!(status, 200);
    assert_eq!(
        echoed(&response)["headers"]["x-forwarded-for"][0],
        "127.0.0.1"
    );

    // Two Host headers: 400 (RFC 9112 §3.2), whichever comes first.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: open.example\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

const BACKEND_POLICIES: &str = r#"
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: limited}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  rateLimit:
    local:
      rules:
      - limit: {requests: 3, unit: Minute}
      - clientSelectors: [{headers: [{name: x-user, type: Distinct}]}]
        limit: {requests: 2, unit: Minute}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: busy}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: busy}]
  rateLimit:
    local:
      rules: [{limit: {requests: 50, unit: Second}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: teapot}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: teapot}]
  faultInjection:
    delay: {fixedDelay: 300ms}
    abort: {httpStatus: 418}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: flaky}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: flaky}]
  faultInjection: {abort: {httpStatus: 503, percentage: 50}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: narrow}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: narrow}]
  circuitBreaker: {maxParallelRequests: 1}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: queued}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: queued}]
  circuitBreaker: {maxConnections: 1, maxPendingRequests: 1}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: no-retries}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: no-retries}]
  retry:
    numRetries: 2
    retryOn: {triggers: [retriable-status-codes], httpStatusCodes: [503]}
  circuitBreaker: {maxParallelRetries: 0}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: grpc-retried}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: grpc-retried}]
  retry:
    numRetries: 3
    retryOn: {triggers: [unavailable]}
    perRetry: {backOff: {baseInterval: 10ms}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: impatient}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: impatient}]
  timeout: {http: {requestTimeout: 200ms}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: persistent}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: retried}]
  retry:
    numRetries: 2
    retryOn: {triggers: [retriable-status-codes], httpStatusCodes: [503]}
    perRetry: {backOff: {baseInterval: 10ms}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: not-enforced}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  telemetry: {tracing: {customTags: {}}}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn backend_traffic_policy_limits_faults_and_breaks_circuits() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let slow = slow_backend(Duration::from_millis(800)).await;
    let (failing, failing_seen) = failing_backend(2).await;
    let (unretried, unretried_seen) = failing_backend(2).await;
    let (budgeted, budgeted_seen) = failing_backend(2).await;
    let (grpc, grpc_seen) = grpc_unavailable_backend(2).await;
    let dir = scratch("backend-traffic");
    let mut config = format!(
        "{}{}{}",
        gateway_yaml(port),
        service("echo", backend),
        service("slow", slow)
    );
    config.push_str(&service("failing", failing));
    config.push_str(&service("unretried", unretried));
    config.push_str(&service("budgeted", budgeted));
    config.push_str(&service("grpc", grpc));
    for (name, backend) in [
        ("limited", "echo"),
        ("busy", "echo"),
        ("teapot", "echo"),
        ("flaky", "echo"),
        ("narrow", "slow"),
        ("queued", "slow"),
        ("impatient", "slow"),
        ("no-retries", "budgeted"),
        ("grpc-retried", "grpc"),
        ("retried", "failing"),
        ("plain", "unretried"),
    ] {
        config.push_str(&route(name, &format!("{name}.example"), backend));
    }
    config.push_str(BACKEND_POLICIES);
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let on = |name: &str| format!("host: {name}.example");

    // The default bucket: 3 a minute, with Envoy's headers.
    for remaining in ["2", "1", "0"] {
        let (status, response) = curl(&["-H", &on("limited"), &url]).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(header(&response, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining));
    }
    let (status, response) = curl(&["-H", &on("limited"), &url]).await;
    assert_eq!(status, 429, "{response}");
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some("0"));
    let reset: u64 = header(&response, "x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&reset), "{reset}");
    assert!(response.ends_with("local_rate_limited"), "{response}");
    // Each distinct x-user has its own bucket, and does not take from the default one.
    for user in ["alice", "bob"] {
        let user_header = format!("x-user: {user}");
        let statuses: Vec<u16> =
            futures_statuses(&["-H", &on("limited"), "-H", &user_header, &url], 3).await;
        assert_eq!(statuses, [200, 200, 429], "{user}");
    }

    // 50 a second, fixed windows: over ~3 s of load, 3 to 5 windows' worth get through.
    let output = tokio::process::Command::new("wrk")
        // `Host` capitalised: wrk adds its own unless it sees exactly that name.
        .args(["-t1", "-c4", "-d3s", "-H", "Host: busy.example", &url])
        .output()
        .await
        .expect("wrk is installed (scripts/install-test-deps)");
    let report = String::from_utf8_lossy(&output.stdout);
    let total = wrk_number(&report, " requests in ");
    let refused = wrk_number(&report, "Non-2xx or 3xx responses: ");
    let allowed = total - refused;
    // (A run a little over 3 s can touch a fifth window.)
    assert!(
        (150..=250).contains(&allowed),
        "{allowed} allowed of {total}:\n{report}"
    );
    assert!(refused > 0, "{report}");

    // Fault injection: the delay, then the abort.
    let started = Instant::now();
    let (status, response) = curl(&["-H", &on("teapot"), &url]).await;
    assert_eq!(status, 418, "{response}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(response.ends_with("fault filter abort"), "{response}");
    let mut aborted = 0;
    for _ in 0..200 {
        if curl(&["-H", &on("flaky"), &url]).await.0 == 503 {
            aborted += 1;
        }
    }
    assert!(
        (60..=140).contains(&aborted),
        "{aborted} of 200 aborted at 50 %"
    );

    // The circuit breaker fails fast: one request in flight, the others refused at once.
    let answers = concurrent_answers(&on("narrow"), &url, 4).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let overflow: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, r)| r)
        .collect();
    assert_eq!((ok, overflow.len()), (1, 3), "{answers:?}");
    assert!(
        overflow
            .iter()
            .all(|r| header(r, "x-envoy-overloaded") == Some("true"))
    );

    // One connection and one pending place: the first request goes, the second waits for
    // it and is answered too, the others are refused at once.
    let answers = concurrent_answers(&on("queued"), &url, 4).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let overflow = answers.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!((ok, overflow), (2, 2), "{answers:?}");

    // gRPC triggers: two trailers-only UNAVAILABLE answers retried, the third try's OK sent.
    let (status, response) = curl(&["-H", &on("grpc-retried"), &url]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(header(&response, "grpc-status"), Some("0"), "{response}");
    assert_eq!(grpc_seen.load(std::sync::atomic::Ordering::SeqCst), 3);

    // No retry places: the first 503 stands, and the backend saw one request.
    let (status, _) = curl(&["-H", &on("no-retries"), &url]).await;
    assert_eq!(status, 503);
    assert_eq!(budgeted_seen.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Retries: two 503s, then the answer — the client sees one 200; without the policy, 503.
    let (status, response) = curl(&["-H", &on("retried"), &url]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(failing_seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    let (status, _) = curl(&["-H", &on("plain"), &url]).await;
    assert_eq!(status, 503);
    assert_eq!(unretried_seen.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The request timeout answers 504.
    let (status, _) = curl(&["-H", &on("impatient"), &url]).await;
    assert_eq!(status, 504);

    // Status: accepted policies, and the one asking for what is not enforced yet.
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    let status = echoed(&status);
    let condition = |name: &str| {
        let policy = status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "BackendTrafficPolicy" && r["object"]["name"] == name)
            .unwrap_or_else(|| panic!("BackendTrafficPolicy {name} in {status}"))
            .clone();
        let first = &policy["ancestors"][0];
        (
            first["parentRef"].as_str().unwrap().to_owned(),
            first["conditions"][0]["reason"]
                .as_str()
                .unwrap()
                .to_owned(),
            first["conditions"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    assert_eq!(condition("limited").1, "Accepted");
    assert_eq!(condition("limited").0, "default/gw/http");
    let (_, reason, message) = condition("not-enforced");
    assert_eq!(reason, "Invalid");
    assert!(message.contains("spec.telemetry"), "{message}");
}

/// The answers of `count` curls to `host`, started 50 ms apart.
async fn concurrent_answers(host: &str, url: &str, count: usize) -> Vec<(u16, String)> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (host, url) = (host.to_owned(), url.to_owned());
        calls.spawn(async move { curl(&["-H", &host, &url]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    while let Some(answer) = calls.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}

/// The statuses of `count` sequential curls.
async fn futures_statuses(args: &[&str], count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(curl(args).await.0);
    }
    statuses
}

/// The number after `label` in a wrk report.
fn wrk_number(report: &str, label: &str) -> u64 {
    let Some(at) = report.find(label) else {
        return 0;
    };
    if label.starts_with(' ') {
        // "  1234 requests in 3.00s": the number is before the label.
        let before = &report[..at];
        return before
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    report[at + label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A backend answering every other request 503 (its first, third, …) and the others 200 with
/// the length and byte sum of the body it read; and its request count.
async fn every_other_fails() -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    counting_backend(
        |n, _, body| {
            let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
            let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                format!("{} {sum}", body.len()),
            )));
            if n.is_multiple_of(2) {
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            response
        },
        0,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_within_the_buffer_limit_are_retried() {
    use std::sync::atomic::Ordering;
    let (port, roomy_port) = (free_port(), free_port());
    let dir = scratch("retry-bodies");
    let mut backends = Vec::new();
    let mut config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: http, port: {port}, protocol: HTTP}}\n  \
         - {{name: roomy, port: {roomy_port}, protocol: HTTP}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: roomy}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: roomy}}]\n  \
         connection: {{bufferLimit: 64Ki}}\n---\n"
    );
    let names = ["small", "large", "chunked", "roomy", "unretried"];
    for name in names {
        let (backend, seen) = every_other_fails().await;
        backends.push(seen);
        config += &service(name, backend);
        config += &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: gw}}]\n  hostnames: [{name}.example]\n  \
             rules: [{{backendRefs: [{{name: {name}, port: 80}}]}}]\n---\n"
        );
        if name != "unretried" {
            config += &format!(
                "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
                 targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
                 retry: {{numRetries: 1, retryOn: {{triggers: [retriable-status-codes], httpStatusCodes: [503]}}}}\n---\n"
            );
        }
    }
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let body = |size: usize| {
        let path = dir.join(format!("body-{size}"));
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
        (path.display().to_string(), format!("{size} {sum}"))
    };
    let (one_kib, one_kib_echo) = body(1024);
    let (forty_kib, forty_kib_echo) = body(40 * 1024);
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let post = |port: u16, host: &'static str, file: String, extra: &'static [&'static str]| async move {
        let host = format!("host: {host}.example");
        let data = format!("@{file}");
        let url = format!("http://127.0.0.1:{port}/");
        let mut args = vec!["-H", host.as_str(), "--data-binary", data.as_str()];
        args.extend_from_slice(extra);
        args.push(&url);
        let (status, response) = curl(&args).await;
        let body = response
            .split("\r\n\r\n")
            .last()
            .unwrap_or_default()
            .to_owned();
        (status, body)
    };

    // A 1 KiB body (within the default 32 KiB): the 503 is retried with the same body.
    let (status, echoed) = post(port, "small", one_kib.clone(), &[]).await;
    assert_eq!((status, echoed.as_str()), (200, one_kib_echo.as_str()));
    assert_eq!(backends[0].load(Ordering::SeqCst), 2);
    // 40 KiB is over the default limit: streamed once, the 503 stands.
    let (status, _) = post(port, "large", forty_kib.clone(), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(backends[1].load(Ordering::SeqCst), 1);
    // A body of unknown length streams too, and is not retried.
    let chunked: &'static [&'static str] = &["-H", "transfer-encoding: chunked"];
    let (status, _) = post(port, "chunked", one_kib.clone(), chunked).await;
    assert_eq!(status, 503);
    assert_eq!(backends[2].load(Ordering::SeqCst), 1);
    // The listener whose ClientTrafficPolicy raises bufferLimit to 64 KiB retries 40 KiB.
    let (status, echoed) = post(roomy_port, "roomy", forty_kib, &[]).await;
    assert_eq!((status, echoed.as_str()), (200, forty_kib_echo.as_str()));
    assert_eq!(backends[3].load(Ordering::SeqCst), 2);
    // A route without retries sends the body once, as before.
    let (status, _) = post(port, "unretried", one_kib, &[]).await;
    assert_eq!(status, 503);
    assert_eq!(backends[4].load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_control_sheds_requests_while_the_backend_fails() {
    use std::sync::atomic::Ordering;
    let port = free_port();
    let (failing, failing_seen) = failing_backend(u32::MAX).await;
    let (unguarded, unguarded_seen) = failing_backend(u32::MAX).await;
    let dir = scratch("admission-control");
    let config = gateway_yaml(port)
        + &service("failing", failing)
        + &service("unguarded", unguarded)
        + &route("guarded", "guarded.example", "failing")
        + &route("unguarded", "unguarded.example", "unguarded")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: guarded}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: guarded}]\n  \
           admissionControl: {samplingWindow: 10s, maxRejectionPercent: 80}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let statuses = |host: &'static str| {
        let url = url.clone();
        async move {
            let mut command = tokio::process::Command::new("curl");
            command.args(["-s", "-w", "%{http_code}\n", "-H"]);
            command.arg(format!("host: {host}"));
            for _ in 0..300 {
                command.args(["-o", "/dev/null"]).arg(&url);
            }
            let output = command.output().await.unwrap();
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| line.parse::<u16>().unwrap())
                .collect::<Vec<_>>()
        }
    };

    // Every answer fails: after the first, admission control refuses up to 80 % of the
    // requests itself (503 without reaching the backend).
    let answered = statuses("guarded.example").await;
    assert_eq!(answered.len(), 300);
    assert!(answered.iter().all(|&status| status == 503));
    let reached = failing_seen.load(Ordering::SeqCst) as usize;
    assert!(
        (30..=110).contains(&reached),
        "{reached} of 300 reached the backend (about 20 % expected)"
    );
    // Without the policy every request reaches the backend.
    let answered = statuses("unguarded.example").await;
    assert!(answered.iter().all(|&status| status == 503));
    assert_eq!(unguarded_seen.load(Ordering::SeqCst), 300);
    // The refusals are counted on /metrics with their own flag.
    let (_, metrics) = curl(&[&gateway.admin_url("/metrics")]).await;
    assert!(metrics.contains("admission_control"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn route_stat_names_count_each_answer_of_their_routes() {
    let port = free_port();
    let (echo_port, flaky) = (echo("echo-0").await, failing_backend(2).await.0);
    let dir = scratch("route-stat-name");
    let telemetry = |name: &str, route: &str, telemetry: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {route}}}]\n  \
             telemetry: {telemetry}\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service("echo", echo_port)
        + &service("flaky", flaky)
        + &route("shop", "shop.example", "echo")
        + &route("checkout", "checkout.example", "flaky")
        + &route("plain", "plain.example", "echo")
        + &route("traced", "traced.example", "echo")
        + &route("odd", "odd.example", "echo")
        + &telemetry(
            "shop-stats",
            "shop",
            "{metrics: {routeStatName: '%ROUTE_KIND%/%ROUTE_NAMESPACE%/%ROUTE_NAME%'}}",
        )
        + &telemetry(
            "checkout-stats",
            "checkout",
            "{metrics: {routeStatName: pay}}",
        )
        + &telemetry("traced", "traced", "{tracing: {samplingRate: 10}}")
        + &telemetry(
            "odd",
            "odd",
            "{metrics: {routeStatName: '%UPSTREAM_HOST%'}}",
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let get = |host: &'static str| {
        let url = format!("http://127.0.0.1:{port}/");
        async move { curl(&["-H", &format!("host: {host}"), &url]).await.0 }
    };
    for _ in 0..3 {
        assert_eq!(get("shop.example").await, 200);
        assert_eq!(get("plain.example").await, 200);
    }
    // The flaky backend fails twice (503), then answers.
    let checkout = [
        get("checkout.example").await,
        get("checkout.example").await,
        get("checkout.example").await,
    ];
    assert_eq!(checkout, [503, 503, 200]);

    let (_, metrics) = curl(&[&gateway.admin_url("/metrics")]).await;
    let series = |line: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        series(r#"gateway_route_requests_total{route="httproute/default/shop",code="200"}"#),
        "3"
    );
    assert_eq!(
        series(r#"gateway_route_requests_total{route="pay",code="503"}"#),
        "2"
    );
    assert_eq!(
        series(r#"gateway_route_requests_total{route="pay",code="200"}"#),
        "1"
    );
    assert_eq!(
        series(r#"gateway_route_request_duration_seconds_count{route="pay"}"#),
        "3"
    );
    // Rules without a name are not counted apart.
    let mut named: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(r#"gateway_route_requests_total{route=""#))
        .filter_map(|l| l.split('"').next())
        .collect();
    named.sort_unstable();
    named.dedup();
    assert_eq!(named, ["httproute/default/shop", "pay"], "{metrics}");
    // Tracing needs a provider this data plane lacks; unknown operators are refused.
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(status.contains("spec.telemetry.tracing"), "{status}");
    assert!(status.contains("%UPSTREAM_HOST%"), "{status}");
}
