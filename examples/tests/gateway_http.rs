//! End-to-end tests of the `gateway` binary over plain HTTP: routing, filters, error codes,
//! h2c and gRPC, WebSocket, hostile requests. YAML on disk, echo backends, curl as the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use gateway_support::upgrade::*;
use gateway_support::*;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn routes_curl_requests_to_echo_backends_as_the_yaml_says() {
    let port = free_port();
    let (v1, v2) = (echo("v1-0").await, echo("v2-0").await);
    let dir = scratch("routes");
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Header-Set, value: new}], add: [{name: x-added, value: two}], remove: [x-drop]}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: Exact, value: /broken}}]
    backendRefs: [{name: does-not-exist, port: 80}]
  - matches: [{path: {type: Exact, value: /nobody}}]
    backendRefs: [{name: no-endpoints, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip/}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, statusCode: 308}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foo-only}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: no-endpoints}
spec: {ports: [{port: 80}]}
"#;
    let yaml = format!(
        "{}{}{}{routes}",
        gateway_yaml(port),
        service("v1", v1),
        service("v2", v2)
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let (status, response) = curl(&[
        "-H",
        "x-header-set: old",
        "-H",
        "x-added: one",
        "-H",
        "x-drop: yes",
        "-H",
        "x-empty;",
        "-H",
        "Host: shop.example.com:1234",
        &url("/app/items?b=2&a=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["pod"], "v1-0");
    assert_eq!(
        seen["path"], "/app/items?b=2&a=1",
        "path and query forwarded as sent"
    );
    assert_eq!(
        seen["host"], "shop.example.com:1234",
        "Host forwarded with its port"
    );
    assert_eq!(seen["headers"]["x-header-set"], serde_json::json!(["new"]));
    assert_eq!(seen["headers"]["x-added"], serde_json::json!(["one,two"]));
    assert_eq!(
        seen["headers"]["x-empty"],
        serde_json::json!([""]),
        "empty headers forwarded"
    );
    assert!(seen["headers"].get("x-drop").is_none());
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    assert_eq!(
        seen["headers"]["x-forwarded-proto"],
        serde_json::json!(["http"])
    );

    assert_eq!(
        curl(&[&url("/application")]).await.0,
        404,
        "prefixes match whole segments"
    );
    assert_eq!(curl(&[&url("/broken")]).await.0, 500, "missing Service");
    assert_eq!(
        curl(&[&url("/nobody")]).await.0,
        503,
        "Service without endpoints"
    );

    let (_, response) = curl(&[&url("/strip/three?x=y")]).await;
    let seen = echoed(&response);
    assert_eq!(
        (seen["path"].as_str(), seen["host"].as_str()),
        (Some("/three?x=y"), Some("rewritten.example"))
    );
    assert_eq!(seen["pod"], "v2-0");

    let (status, response) = curl(&["-H", "Host: shop.example.com", &url("/moved/here")]).await;
    assert_eq!(status, 308);
    assert!(
        response
            .to_ascii_lowercase()
            .contains("location: https://shop.example.com:8443/moved/here\r\n"),
        "{response}"
    );

    let (status, response) = curl(&["-H", "Host: foo.example.com", &url("/app/x")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        echoed(&response)["pod"],
        "v2-0",
        "the foo listener has only its own route"
    );

    let (status, response) = curl(&["--http2-prior-knowledge", &url("/app/h2c")]).await;
    assert_eq!(
        status, 200,
        "h2c prior knowledge on a plain HTTP listener: {response}"
    );
    assert!(response.starts_with("HTTP/2 200"), "{response}");
    assert_eq!(echoed(&response)["host"], format!("127.0.0.1:{port}"));

    let (_, status_json) = curl(&[&gateway.admin_url("/status")]).await;
    let status_json = echoed(&status_json);
    let main = status_json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"]["name"] == "main")
        .unwrap();
    let conditions = &main["parents"][0]["conditions"];
    assert_eq!(conditions[0]["reason"], "Accepted");
    assert_eq!(conditions[1]["reason"], "BackendNotFound");
    let (_, metrics) = curl(&[&gateway.admin_url("/metrics")]).await;
    assert!(
        metrics.contains("gateway_http_requests_total{code=\"503\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_routes_and_h2c_services_reach_the_backend_over_http2() {
    let port = free_port();
    let (v1, v2) = (echo("grpc-0").await, echo("h2c-0").await);
    let dir = scratch("grpc");
    let yaml = format!(
        "{}{}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [grpc.test]\n  rules:\n  \
         - matches: [{{method: {{service: echo.Echo, method: Say}}}}]\n    backendRefs: [{{name: grpc, port: 80}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: h}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [h2c.test]\n  rules:\n  \
         - matches: [{{path: {{value: /h2c}}}}]\n    backendRefs: [{{name: h2c, port: 80}}]\n",
        gateway_yaml(port),
        service("grpc", v1),
        service("h2c", v2).replace(
            "ports: [{name: http, port: 80}]",
            "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]"
        ),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let grpc = [
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        "host: grpc.test",
    ];

    let (status, response) = curl(&[&grpc[..], &[url("/echo.Echo/Say").as_str()]].concat()).await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(
        (seen["pod"].as_str(), seen["proto"].as_str()),
        (Some("grpc-0"), Some("HTTP/2.0"))
    );
    let (status, response) = curl(&[&grpc[..], &[url("/echo.Echo/Other").as_str()]].concat()).await;
    assert_eq!(status, 200);
    assert!(
        response.contains("grpc-status: 12"),
        "UNIMPLEMENTED for no route: {response}"
    );

    // An HTTPRoute and a GRPCRoute share the listener only with distinct hostnames (the
    // newer of two intersecting ones is refused).
    let (_, response) = curl(&["-H", "host: h2c.test:8080", &url("/h2c")]).await;
    let seen = echoed(&response);
    assert_eq!(
        (seen["pod"].as_str(), seen["proto"].as_str()),
        (Some("h2c-0"), Some("HTTP/2.0")),
        "appProtocol kubernetes.io/h2c"
    );
    assert_eq!(seen["host"], "h2c.test:8080");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_the_documented_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("hostile");
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {value: /app}}]\n    backendRefs: [{name: v1, port: 80}]\n";
    std::fs::write(
        dir.join("config.yaml"),
        format!("{}{}{route}", gateway_yaml(port), service("v1", v1)),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let huge = format!("x-huge: {}", "a".repeat(100 * 1024));
    assert_eq!(
        curl(&["-H", &huge, &url("/app")]).await.0,
        431,
        "headers over 64 KiB"
    );
    // Paths are normalised before routing (Envoy Gateway's default): what is routed on is
    // what is forwarded, so dot segments cannot reach past the route's prefix.
    let (status, response) = curl(&["--path-as-is", &url("/app/../../etc/passwd")]).await;
    assert_eq!(status, 404, "normalised to /etc/passwd: {response}");
    let (status, response) = curl(&["--path-as-is", &url("/../app//x/./y")]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["path"], "/app/x/y");

    // A client that never finishes its headers is disconnected after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"GET /app HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buffer))
        .await
        .expect("closed before 20 s");
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(n) if n == 0 || buffer[..n].starts_with(b"HTTP/1.1 408")),
        "{read:?}"
    );
    assert!(elapsed >= Duration::from_secs(8), "{elapsed:?}");
    assert_eq!(curl(&[&url("/app")]).await.0, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_pass_through_to_ws_services() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let backend = upgrade_echo().await;
    let dir = scratch("websocket");
    let ws_service = service("ws", backend).replace(
        "ports: [{name: http, port: 80}]",
        "ports: [{name: http, port: 80, appProtocol: kubernetes.io/ws}]",
    );
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: ws, port: 80}]\n";
    std::fs::write(
        dir.join("config.yaml"),
        format!("{}{ws_service}{route}", gateway_yaml(port)),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let (head, mut client) = ask_upgrade(port, "chat.test", "websocket").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    client.write_all(b"frames both ways").await.unwrap();
    let mut echoed_back = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed_back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed_back, b"frames both ways");
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_other_than_websocket_need_the_policy_and_h2c_offers_are_ignored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let backend = upgrade_echo().await;
    let echo_port = echo("echo-0").await;
    let dir = scratch("upgrades");
    let routes = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: plain}\n\
        spec:\n  parentRefs: [{name: gw}]\n  hostnames: [plain.test]\n  rules: [{backendRefs: [{name: up, port: 80}]}]\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: spdy}\n\
        spec:\n  parentRefs: [{name: gw}]\n  hostnames: [spdy.test]\n  rules: [{backendRefs: [{name: up, port: 80}]}]\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: echo}\n\
        spec:\n  parentRefs: [{name: gw}]\n  hostnames: [echo.test]\n  rules: [{backendRefs: [{name: echo, port: 80}]}]\n---\n\
        apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: spdy}\nspec:\n  \
        targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: spdy}]\n  \
        httpUpgrade: [{type: websocket}, {type: SPDY/3.1}]\n---\n";
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "{}{}{}{routes}",
            gateway_yaml(port),
            service("up", backend),
            service("echo", echo_port)
        ),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // Without a policy: WebSocket only; another upgrade is 403 without a body, as Envoy.
    let (head, _) = ask_upgrade(port, "plain.test", "websocket").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let (head, _) = ask_upgrade(port, "plain.test", "spdy/3.1").await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("content-length: 0"), "{head}");
    // With `httpUpgrade`, the listed upgrades (any case) pass and carry bytes both ways.
    let (head, mut client) = ask_upgrade(port, "spdy.test", "spdy/3.1").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    client.write_all(b"spdy frames").await.unwrap();
    let mut back = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"spdy frames");
    let (head, _) = ask_upgrade(port, "spdy.test", "websocket").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let (head, _) = ask_upgrade(port, "spdy.test", "tls/1.3").await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    // An h2c offer (curl --http2 on http://) is served over HTTP/1.1 without the offer.
    let (status, response) = curl(&[
        "--http2",
        "-H",
        "host: echo.test",
        &format!("http://127.0.0.1:{port}/"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let headers = &echoed(&response)["headers"];
    assert!(headers.get("upgrade").is_none(), "{response}");
    assert!(headers.get("http2-settings").is_none(), "{response}");
}

/// Sends `CONNECT authority` to the gateway at `port`; returns the answer's head (lower case)
/// and the connection.
async fn ask_connect(port: u16, authority: &str) -> (String, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut pending = Vec::new();
    let head = tokio::time::timeout(
        Duration::from_secs(5),
        next_request_head(&mut stream, &mut pending),
    )
    .await
    .unwrap()
    .unwrap_or_default();
    assert!(
        pending.is_empty(),
        "nothing follows the head before the client speaks"
    );
    (head.to_ascii_lowercase(), stream)
}

/// A backend that accepts one CONNECT per connection (answering 200 and naming the target it
/// was asked for in a header), then sends back what it reads, upper-cased.
async fn connect_accepting_backend() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let Some(head) = next_request_head(&mut stream, &mut pending).await else {
                    return;
                };
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                if !head.starts_with("CONNECT ") {
                    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                    return;
                }
                let answer = format!("HTTP/1.1 200 OK\r\nx-tunnel-target: {target}\r\n\r\n");
                let early = pending.to_ascii_uppercase();
                if stream.write_all(answer.as_bytes()).await.is_err()
                    || stream.write_all(&early).await.is_err()
                {
                    return;
                }
                let mut buffer = [0u8; 1024];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        return;
                    }
                    let upper = buffer[..read].to_ascii_uppercase();
                    if stream.write_all(&upper).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_tunnels_are_refused_terminated_or_passed_on_as_the_policy_says() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let tunneller = connect_accepting_backend().await;
    let dir = scratch("connect");
    let route = |name: &str, service: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [{name}.test]\n  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]\n---\n"
        )
    };
    let policy = |name: &str, upgrade: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
             httpUpgrade: [{upgrade}]\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service("echo", echo_port)
        + &service("tunneller", tunneller)
        + &route("plain", "echo")
        + &route("terminated", "echo")
        + &route("passed", "tunneller")
        + &policy("terminated", "{type: CONNECT, connect: {terminate: true}}")
        + &policy("passed", "{type: CONNECT}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // Without a policy, CONNECT is refused (403), as Envoy refuses it by default.
    let (head, _) = ask_connect(port, "plain.test:80").await;
    assert!(head.starts_with("http/1.1 403"), "{head}");

    // Terminated: the gateway answers 200 and the tunnel's bytes reach the echo backend,
    // here an HTTP request of the client's own.
    let (head, mut tunnel) = ask_connect(port, "terminated.test:80").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    tunnel
        .write_all(b"GET /inside HTTP/1.1\r\nHost: inside.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("/inside") && answer.contains("echo-0"),
        "{answer}"
    );

    // Passed on: the backend gets the CONNECT (with its target), answers 200, and the
    // tunnels are spliced.
    let (head, mut tunnel) = ask_connect(port, "passed.test:80").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-tunnel-target: passed.test:80"), "{head}");
    tunnel.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"PING");
}
