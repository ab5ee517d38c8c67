//! ClientTrafficPolicy `headers` through the `gateway` binary: Envoy Gateway's default request
//! id (a fresh UUIDv4 replacing the client's), `requestID: PreserveOrGenerate`,
//! `earlyRequestHeaders` edits made before routing (a route matching a header the policy sets
//! is selected; `removeOnMatch` by prefix and regular expression), `disableRateLimitHeaders`,
//! `lateResponseHeaders` (on every answer; `removeOnMatch` by suffix), and
//! `http1.http10` (HTTP/1.0 refused with 426 by default, as Envoy does) and
//! `http1.preserveHeaderCase` (header names keep their case both ways) and
//! `http1.enableTrailers` (HTTP/1 trailers proxied both ways; dropped by default, as Envoy
//! does) and `enableEnvoyHeaders` (Envoy's router headers, off by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

fn config(default_port: u16, tuned_port: u16, echo_port: u16, prod_port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: plain}}\nspec:\n  \
         gatewayClassName: test\n  listeners: [{{name: http, port: {default_port}, protocol: HTTP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: tuned}}\nspec:\n  \
         gatewayClassName: test\n  listeners: [{{name: http, port: {tuned_port}, protocol: HTTP}}]\n---\n\
         {}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: echo}}\nspec:\n  \
         parentRefs: [{{name: plain}}, {{name: tuned}}]\n  rules:\n  \
         - backendRefs: [{{name: echo, port: 80}}]\n  \
         - matches: [{{headers: [{{name: x-env, value: prod}}]}}]\n    backendRefs: [{{name: prod, port: 80}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: tuned}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: tuned}}]\n  headers:\n    \
         requestID: PreserveOrGenerate\n    disableRateLimitHeaders: true\n    earlyRequestHeaders:\n      \
         set: [{{name: X-Env, value: prod}}]\n      add: [{{name: x-tag, value: edge}}]\n      \
         addIfAbsent: [{{name: x-tenant, value: default}}]\n      remove: [x-debug]\n      \
         removeOnMatch: [{{type: Prefix, value: X-Internal-}}, {{type: RegularExpression, value: 'x-trace-[0-9]+'}}]\n    \
         lateResponseHeaders: {{set: [{{name: x-served-by, value: tuned}}], remove: [x-echo-note], \
         removeOnMatch: [{{type: Suffix, value: -Type}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: limited}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: echo}}]\n  \
         rateLimit: {{local: {{rules: [{{limit: {{requests: 100, unit: Hour}}}}]}}}}\n---\n",
        service("echo", echo_port),
        service("prod", prod_port),
    )
}

fn is_uuid_v4(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
        && bytes[14] == b'4'
        && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_and_early_headers_are_set_before_routing() {
    let (default_port, tuned_port) = (free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let prod_port = echo("prod-0").await;
    let dir = scratch("client-headers");
    std::fs::write(
        dir.join("config.yaml"),
        config(default_port, tuned_port, echo_port, prod_port),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let plain = format!("http://127.0.0.1:{default_port}/");
    let tuned = format!("http://127.0.0.1:{tuned_port}/");

    // Envoy Gateway's default: a new id on every request, the client's replaced.
    let (status, response) = curl(&["-H", "x-request-id: client-chosen", &plain]).await;
    assert_eq!(status, 200, "{response}");
    let first = echoed(&response)["headers"]["x-request-id"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_uuid_v4(&first), "{first}");
    let (_, response) = curl(&[&plain]).await;
    let second = echoed(&response)["headers"]["x-request-id"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_uuid_v4(&second) && second != first, "{second}");
    assert_eq!(header(&response, "x-ratelimit-limit"), Some("100"));

    // PreserveOrGenerate keeps the client's id and makes one when missing.
    let (_, response) = curl(&["-H", "x-request-id: client-chosen", &tuned]).await;
    let echoed_headers = &echoed(&response)["headers"];
    assert_eq!(echoed_headers["x-request-id"][0], "client-chosen");
    let (_, response) = curl(&[&tuned]).await;
    assert!(is_uuid_v4(
        echoed(&response)["headers"]["x-request-id"][0]
            .as_str()
            .unwrap()
    ));

    // The early edits happen before routing: `x-env: prod` selects the second rule (the
    // prod Service), the client's `x-debug` is gone, `x-tag` appended, `x-tenant` kept;
    // removeOnMatch takes the headers whose names match (`x-internal-*`, `x-trace-<digits>`).
    let (status, response) = curl(&[
        "-H",
        "x-debug: 1",
        "-H",
        "x-tag: client",
        "-H",
        "x-tenant: acme",
        "-H",
        "x-internal-user: root",
        "-H",
        "X-Internal-Role: admin",
        "-H",
        "x-trace-12: a",
        "-H",
        "x-trace-id: kept",
        &tuned,
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let body = echoed(&response);
    assert_eq!(body["pod"], "prod-0", "{response}");
    let headers = &body["headers"];
    assert_eq!(headers["x-env"][0], "prod");
    assert!(headers.get("x-debug").is_none(), "{response}");
    for removed in ["x-internal-user", "x-internal-role", "x-trace-12"] {
        assert!(headers.get(removed).is_none(), "{removed}: {response}");
    }
    assert_eq!(headers["x-trace-id"][0], "kept");
    // lateResponseHeaders removeOnMatch (`*-type`) took the backend's content-type.
    assert_eq!(header(&response, "content-type"), None, "{response}");
    assert_eq!(headers["x-tag"], serde_json::json!(["client", "edge"]));
    assert_eq!(headers["x-tenant"][0], "acme");
    let (_, response) = curl(&[&tuned]).await;
    assert_eq!(echoed(&response)["headers"]["x-tenant"][0], "default");
    // The plain listener routes the same request to the first rule, its header untouched.
    let (_, response) = curl(&["-H", "x-env: dev", "-H", "x-internal-user: root", &plain]).await;
    assert_eq!(echoed(&response)["headers"]["x-env"][0], "dev");
    assert_eq!(echoed(&response)["headers"]["x-internal-user"][0], "root");
    assert!(header(&response, "content-type").is_some(), "{response}");
    assert_eq!(echoed(&response)["pod"], "echo-0");

    // disableRateLimitHeaders: the limit still counts, its headers are not sent.
    let (status, response) = curl(&[&tuned]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&response, "x-ratelimit-limit"), None, "{response}");

    // lateResponseHeaders: on the backend's answers and on the gateway's own (a 400 for a
    // request with two Host headers), not on the other listener's.
    assert_eq!(
        header(&response, "x-served-by"),
        Some("tuned"),
        "{response}"
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tuned_port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(header(&answer, "x-served-by"), Some("tuned"), "{answer}");
    let (_, response) = curl(&[&plain]).await;
    assert_eq!(header(&response, "x-served-by"), None, "{response}");
}

/// A Gateway `name` with one HTTP listener on `port` (`listener`: more of its fields) and an
/// HTTPRoute from it to port 80 of the Service `service`.
fn gateway_to(name: &str, port: u16, listener: &str, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: http, port: {port}, protocol: HTTP{listener}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: {name}}}]\n  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]\n---\n"
    )
}

/// A ClientTrafficPolicy on the Gateway `name` with `spec` (flow-style fields).
fn client_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: {name}}}]\n  {spec}\n---\n"
    )
}

/// Sends `request` raw on a new connection to `port`; everything answered until the
/// connection closes (at most 5 s).
async fn raw_answer(port: u16, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn http10_is_refused_unless_the_policy_accepts_it() {
    let (legacy, plain) = (free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-http10");
    let config = gateway_to("legacy", legacy, ", hostname: legacy.example", "echo")
        + &gateway_to("plain", plain, ", hostname: plain.example", "echo")
        + &service("echo", echo_port)
        + &client_policy("legacy", "http1: {http10: {useDefaultHost: true}}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let raw = |port: u16, request: &'static [u8]| raw_answer(port, request);

    // Envoy's default: HTTP/1.0 is refused with 426; HTTP/1.1 is served.
    let (status, response) = curl(&[
        "--http1.0",
        "-H",
        "host: plain.example",
        &format!("http://127.0.0.1:{plain}/"),
    ])
    .await;
    assert_eq!(status, 426, "{response}");
    let (status, _) = curl(&[
        "-H",
        "host: plain.example",
        &format!("http://127.0.0.1:{plain}/"),
    ])
    .await;
    assert_eq!(status, 200);

    // Accepted, and a request without Host is given the listener's hostname.
    let answer = raw(legacy, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echoed["host"], "legacy.example", "{answer}");
}

/// A backend that answers each request with its raw head as the body, and a header whose
/// name is in mixed case; one request per connection.
async fn raw_head_backend() -> u16 {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(head) = next_request_head(&mut stream, &mut Vec::new()).await else {
                    return;
                };
                let head = format!("{head}\r\n\r\n").into_bytes();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nReSpOnSeHeAdEr: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    head.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(&head).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn header_case_is_kept_both_ways_only_where_the_policy_asks() {
    let (kept, plain) = (free_port(), free_port());
    let backend = raw_head_backend().await;
    let dir = scratch("client-header-case");
    let config = gateway_to("kept", kept, "", "raw")
        + &gateway_to("plain", plain, "", "raw")
        + &service("raw", backend)
        + &client_policy("kept", "http1: {preserveHeaderCase: true}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let exchange = |port: u16| {
        raw_answer(
            port,
            b"GET /preserve HTTP/1.1\r\nHost: any\r\nSpEcIaL: Header\r\nConnection: close\r\n\r\n",
        )
    };

    // EG's PreserveCase expectation: the backend sees the client's case, the client the
    // backend's.
    let answer = exchange(kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nSpEcIaL: Header\r\n"), "{answer}");
    assert!(answer.contains("\r\nReSpOnSeHeAdEr: yes\r\n"), "{answer}");
    // Without the policy, names travel in lower case, as HTTP/2 has them.
    let answer = exchange(plain).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nspecial: Header\r\n"), "{answer}");
    assert!(answer.contains("\r\nresponseheader: yes\r\n"), "{answer}");
}

/// A backend that reads one chunked request whole and answers with its raw bytes as a
/// chunked body that ends with the trailer `x-backend-trailer: t`.
async fn trailing_backend() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                let complete = |seen: &[u8]| {
                    let text = String::from_utf8_lossy(seen);
                    text.split_once("\r\n\r\n").is_some_and(|(_, body)| {
                        (body.starts_with("0\r\n") || body.contains("\r\n0\r\n"))
                            && body.ends_with("\r\n\r\n")
                    })
                };
                while !complete(&seen) {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-backend-trailer\r\nconnection: close\r\n\r\n";
                let chunk = format!("{:x}\r\n", seen.len());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(chunk.as_bytes()).await;
                let _ = stream.write_all(&seen).await;
                let _ = stream
                    .write_all(b"\r\n0\r\nx-backend-trailer: t\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_trailers_pass_only_where_the_policy_enables_them() {
    let (trailing, plain) = (free_port(), free_port());
    let backend = trailing_backend().await;
    let dir = scratch("client-trailers");
    let config = gateway_to("trailing", trailing, "", "raw")
        + &gateway_to("plain", plain, "", "raw")
        + &service("raw", backend)
        + &client_policy("trailing", "http1: {enableTrailers: true}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let exchange = |port: u16| async move {
        raw_answer(
            port,
            b"POST /upload HTTP/1.1\r\nHost: any\r\nTE: trailers\r\nTrailer: x-client-trailer\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5\r\nhello\r\n0\r\nx-client-trailer: c\r\n\r\n",
        )
        .await
        .to_ascii_lowercase()
    };

    // Enabled: the client's trailer reaches the backend, the backend's the client.
    let answer = exchange(trailing).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("hello"), "{answer}");
    assert!(answer.contains("x-client-trailer: c"), "{answer}");
    assert!(answer.contains("\r\nx-backend-trailer: t\r\n"), "{answer}");
    // Envoy's default: HTTP/1 trailers are dropped both ways; the body still passes.
    let answer = exchange(plain).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("hello"), "{answer}");
    assert!(!answer.contains("x-client-trailer: c"), "{answer}");
    assert!(!answer.contains("x-backend-trailer: t"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_router_headers_are_added_only_where_the_policy_enables_them() {
    let (envoy, quiet) = (free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-envoy-headers");
    let config = gateway_to("envoy", envoy, "", "echo")
        + &gateway_to("quiet", quiet, "", "echo")
        + &service("echo", echo_port)
        + &client_policy("envoy", "headers: {enableEnvoyHeaders: true}")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: timed}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: envoy}]\n  \
           timeout: {http: {requestTimeout: 4s}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // Enabled: the backend hears the request timeout it has, the client how long the backend
    // took (the echo answers 150 ms late).
    let url = format!("http://127.0.0.1:{envoy}/");
    let (status, response) = curl(&["-H", "x-echo-delay-ms: 150", &url]).await;
    assert_eq!(status, 200, "{response}");
    let echoed_headers = &echoed(&response)["headers"];
    assert_eq!(
        echoed_headers["x-envoy-expected-rq-timeout-ms"],
        serde_json::json!(["4000"]),
        "{response}"
    );
    let took: u64 = header(&response, "x-envoy-upstream-service-time")
        .unwrap_or_else(|| panic!("no service time: {response}"))
        .parse()
        .unwrap();
    assert!((150..4000).contains(&took), "{took} ms: {response}");
    // Envoy Gateway's default: neither header.
    let url = format!("http://127.0.0.1:{quiet}/");
    let (status, response) = curl(&[&url]).await;
    assert_eq!(status, 200, "{response}");
    assert!(
        echoed(&response)["headers"]
            .get("x-envoy-expected-rq-timeout-ms")
            .is_none(),
        "{response}"
    );
    assert_eq!(
        header(&response, "x-envoy-upstream-service-time"),
        None,
        "{response}"
    );
}
