//! ClientTrafficPolicy `http3` through the `gateway` binary, driven by aioquic (Python) over
//! real QUIC: three HTTPS listeners share one port — `fast` and `mtls` enable HTTP/3 (`mtls`
//! also requires client certificates), `slow` does not. Over TCP (curl) the first two
//! advertise `alt-svc: h3=":PORT"; ma=86400`; over QUIC each is served with its own TLS
//! settings, chosen by SNI, through the same request path (routes, echo backend, a body
//! echoed back byte for byte); `slow` is refused rather than served with another listener's
//! settings; and a reload that removes the setting stops the QUIC socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::path::{Path, PathBuf};

use gateway_support::tls::*;
use gateway_support::*;
use http_body_util::BodyExt;
use serde_json::Value;

/// Runs the aioquic client against `port` with the server name `sni` and `requests`
/// (`[{"method", "path", "body_bytes"}]`), presenting `cert` if given.
async fn h3(port: u16, sni: &str, requests: &str, cert: Option<(&Path, &Path)>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/h3_client.py");
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(script)
        .arg(port.to_string())
        .arg(sni)
        .arg(requests);
    if let Some((cert, key)) = cert {
        command.arg(cert).arg(key);
    }
    let output = command
        .output()
        .await
        .expect("python3 with aioquic (scripts/install-test-deps)");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"))
}

/// The body the client sends for `n` bytes: `i % 251` for each byte `i`.
fn sent_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An HTTP/1.1 backend answering each request with its body, as received, and the request's
/// `transfer-encoding` (if any) in `x-request-transfer-encoding`.
async fn body_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: http::Request<hyper::body::Incoming>| async move {
                        let encoding = request
                            .headers()
                            .get(http::header::TRANSFER_ENCODING)
                            .cloned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let mut answer = http::Response::new(http_body_util::Full::new(body));
                        if let Some(encoding) = encoding {
                            answer
                                .headers_mut()
                                .insert("x-request-transfer-encoding", encoding);
                        }
                        Ok::<_, hyper::Error>(answer)
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    port
}

/// An HTTP/1.1 backend answering `200 late` after `delay`; `arrived` is told of each request
/// as it comes in.
async fn slow_backend(delay: std::time::Duration) -> (u16, std::sync::Arc<tokio::sync::Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = std::sync::Arc::clone(&arrived);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let told = std::sync::Arc::clone(&told);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: http::Request<_>| {
                    told.notify_one();
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"late"),
                        )))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (port, arrived)
}

/// In `dir/clients`: a client CA with alice's certificate and key (returned: CA, certificate,
/// key), and the gateway's certificate for the three listeners' names beside them.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let alice = openssl_client_ca_and_leaf(&clients, "alice");
    openssl_certificate(
        &clients,
        "gw",
        &["fast.example", "slow.example", "mtls.example"],
        false,
    );
    alice
}

fn listener(name: &str, port: u16) -> String {
    format!(
        "  - {{name: {name}, port: {port}, hostname: {name}.example, protocol: HTTPS, \
         tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n"
    )
}

fn client_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: {name}}}]\n{spec}---\n"
    )
}

/// The Service `flaky`: one endpoint answers (the echo backend on `live`), the other
/// (`dead`) refuses connections; the route `/flaky` to it retries connect failures.
fn flaky(live: u16, dead: u16) -> String {
    let slice = |n: u16, port: u16| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: flaky-{n}, labels: {{kubernetes.io/service-name: flaky}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [127.0.0.{n}]}}]\n\
             ports: [{{name: http, port: {port}}}]\n---\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: flaky}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         {}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: flaky}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{path: {{type: PathPrefix, value: /flaky}}}}]\n    backendRefs: [{{name: flaky, port: 80}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: retries}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: flaky}}]\n  \
         retry: {{numRetries: 3, retryOn: {{triggers: [connect-failure]}}}}\n---\n",
        slice(1, live),
        slice(2, dead),
    )
}

/// The gateway's configuration: the three listeners on `port`, routes to the echo backend,
/// to the body echo (`/upload`) and to `flaky` (`/flaky`); with `http3`, the `fast` and
/// `mtls` policies enable it.
fn config(port: u16, echo_port: u16, sink_port: u16, client_ca: &Path, http3: bool) -> String {
    let server = (
        std::fs::read_to_string(client_ca.with_file_name("gw-cert.pem")).unwrap(),
        std::fs::read_to_string(client_ca.with_file_name("gw-key.pem")).unwrap(),
    );
    let listeners: String = ["fast", "slow", "mtls"]
        .iter()
        .map(|name| listener(name, port))
        .collect();
    let enable = if http3 { "  http3: {}\n" } else { "" };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n{listeners}---\n\
         {}{}{}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{path: {{type: PathPrefix, value: /upload}}}}]\n    backendRefs: [{{name: sink, port: 80}}]\n  \
         - backendRefs: [{{name: echo, port: 80}}]\n---\n{}{}{}",
        tls_secret("gw-cert", &server),
        ca_config_map("client-ca", client_ca),
        service("echo", echo_port),
        service("sink", sink_port),
        client_policy("fast", enable),
        client_policy(
            "mtls",
            &format!(
                "{enable}  tls:\n    clientValidation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: client-ca}}]}}\n"
            ),
        ),
        flaky(echo_port, free_port()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn http3_serves_the_listeners_that_enable_it_with_their_own_tls() {
    let dir = scratch("http3");
    let (client_ca, client_cert, client_key) = certificates(&dir);
    let (echo_port, sink_port) = (echo("echo-0").await, body_echo().await);
    let port = free_port();
    let path = dir.join("config.yaml");
    std::fs::write(&path, config(port, echo_port, sink_port, &client_ca, true)).unwrap();
    let gateway = start_gateway(&[&path]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    // Over TCP, the listeners that serve HTTP/3 advertise it on their port.
    let advertised = format!("h3=\":{port}\"; ma=86400");
    let tcp = |name: &str| {
        let resolve = format!("{name}.example:{port}:127.0.0.1");
        let url = format!("https://{name}.example:{port}/get");
        async move { curl(&["-k", "--resolve", &resolve, &url]).await }
    };
    let (code, response) = tcp("fast").await;
    assert_eq!(code, 200, "{response}");
    assert_eq!(header(&response, "alt-svc"), Some(advertised.as_str()));
    let (code, response) = tcp("slow").await;
    assert_eq!(code, 200, "{response}");
    assert_eq!(header(&response, "alt-svc"), None, "{response}");

    // Over QUIC: ALPN h3, five requests at once on one connection, each routed and answered,
    // and a 300 000-byte body carried both ways byte for byte.
    let requests = r#"[{"method": "GET", "path": "/get?n=0"}, {"method": "GET", "path": "/get?n=1"},
        {"method": "GET", "path": "/get?n=2"}, {"method": "GET", "path": "/get?n=3"},
        {"method": "POST", "path": "/upload", "body_bytes": 300000}]"#;
    let answer = h3(port, "fast.example", requests, None).await;
    assert_eq!(answer["connected"], true, "{answer}");
    assert_eq!(answer["alpn"], "h3", "{answer}");
    let responses = answer["responses"].as_array().unwrap();
    for (n, response) in responses[..4].iter().enumerate() {
        assert_eq!(response["status"], 200, "{response}");
        assert_eq!(response["headers"]["alt-svc"][0], advertised.as_str());
        let echoed: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["path"], format!("/get?n={n}"), "{echoed}");
        assert_eq!(echoed["host"], format!("fast.example:{port}"), "{echoed}");
        assert_eq!(echoed["headers"]["x-forwarded-proto"][0], "https");
        // A request that ended with its headers reaches the HTTP/1.1 backend without a body.
        assert!(
            echoed["headers"].get("transfer-encoding").is_none(),
            "{echoed}"
        );
        assert!(
            echoed["headers"].get("content-length").is_none(),
            "{echoed}"
        );
    }
    let upload = &responses[4];
    assert_eq!(upload["status"], 200, "{upload}");
    assert_eq!(upload["body_bytes"], 300_000);
    assert_eq!(upload["body_sha256"], sha256_hex(&sent_body(300_000)));
    assert!(
        upload["headers"]
            .get("x-request-transfer-encoding")
            .is_none(),
        "the client's content-length is kept: {upload}"
    );

    // A request that ended with its headers can be retried: every try the dead endpoint
    // refuses goes to the live one.
    let gets: Vec<String> = (0..6)
        .map(|n| format!(r#"{{"method": "GET", "path": "/flaky/{n}"}}"#))
        .collect();
    let answer = h3(port, "fast.example", &format!("[{}]", gets.join(",")), None).await;
    for response in answer["responses"].as_array().unwrap() {
        assert_eq!(response["status"], 200, "{answer}");
    }

    // The listener without HTTP/3 is refused, not served with another listener's settings.
    let one = r#"[{"method": "GET", "path": "/get"}]"#;
    let refused = h3(port, "slow.example", one, None).await;
    assert_eq!(refused["connected"], false, "{refused}");

    // mTLS holds over QUIC: no certificate, no answer; alice's certificate, served.
    let anonymous = h3(port, "mtls.example", one, None).await;
    assert_eq!(anonymous["connected"], false, "{anonymous}");
    let alice = h3(
        port,
        "mtls.example",
        one,
        Some((client_cert.as_path(), client_key.as_path())),
    )
    .await;
    assert_eq!(alice["connected"], true, "{alice}");
    assert_eq!(alice["responses"][0]["status"], 200, "{alice}");

    // A reload without `http3`: no QUIC socket and no advertisement any more.
    std::fs::write(&path, config(port, echo_port, sink_port, &client_ca, false)).unwrap();
    wait_until("the advertisement goes", || async {
        header(&tcp("fast").await.1, "alt-svc").is_none()
    })
    .await;
    let after = h3(port, "fast.example", one, None).await;
    assert_eq!(after["connected"], false, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_answers_the_http3_requests_in_flight() {
    let dir = scratch("http3-drain");
    let (client_ca, _, _) = certificates(&dir);
    // Every route of this configuration answers after 1.5 s.
    let (late, arrived) = slow_backend(std::time::Duration::from_millis(1500)).await;
    let port = free_port();
    let path = dir.join("config.yaml");
    std::fs::write(&path, config(port, late, late, &client_ca, true)).unwrap();
    let mut gateway = start_gateway(&[&path]).await;
    gateway.wait_ready().await;
    let in_flight = tokio::spawn(async move {
        h3(
            port,
            "fast.example",
            r#"[{"method": "GET", "path": "/late"}]"#,
            None,
        )
        .await
    });
    // Once the request waits at the backend: SIGTERM — GOAWAY, the answer, then the exit.
    tokio::time::timeout(std::time::Duration::from_secs(10), arrived.notified())
        .await
        .expect("the request reaches the backend");
    let elapsed = gateway.terminate().await;
    let answer = in_flight.await.unwrap();
    assert_eq!(answer["connected"], true, "{answer}");
    assert_eq!(answer["responses"][0]["status"], 200, "{answer}");
    assert_eq!(answer["responses"][0]["body"], "late", "{answer}");
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "the gateway exits once the answer is sent: {elapsed:?}"
    );
}
