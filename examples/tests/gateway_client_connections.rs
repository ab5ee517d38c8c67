//! ClientTrafficPolicy `connection.connectionLimit` and `tcpKeepalive` through the `gateway`
//! binary: over the limit a connection is closed unanswered (after `closeDelay`) until one of
//! the open ones closes; accepted sockets carry TCP keepalive with the policy's idle time, as
//! `ss` reports it; `maxRequestsPerConnection` and `maxConnectionDuration` close connections
//! gracefully, `maxStreamDuration` bounds each request (408, or its body cut). And the HTTP
//! limits: `headers.maxRequestHeaderLimit` (431 over it) and
//! `timeout.http.requestHeadersReceivedTimeout` (a stalled head closes the connection); and the
//! timeouts: `idleTimeout` (an unused connection is closed), `requestReceivedTimeout` (a
//! request whose body stalls is answered 408, one whose answer is late 504) and `streamIdleTimeout` (a response body that
//! stalls is cut); `timeout.tcp.idleTimeout` (a relayed TCP stream ends after that silence);
//! and the `http2` settings announced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use gateway_support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn config(port: u16, echo_port: u16) -> String {
    format!(
        "{}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: echo}}\nspec:\n  \
         parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: limits}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]\n  \
         connection: {{connectionLimit: {{value: 2, closeDelay: 300ms}}, maxAcceptPerSocketEvent: 1}}\n  \
         tcpKeepalive: {{idleTime: 600s, interval: 10s, probes: 3}}\n---\n",
        gateway_yaml(port),
        service("echo", echo_port)
    )
}

/// The test Gateway on `port` whose routes all go to the Service `backend` (one endpoint at
/// `backend_port`), under a Gateway-wide ClientTrafficPolicy with `spec` (YAML lines at two
/// spaces of indentation).
fn gateway_with_client_policy(port: u16, backend: &str, backend_port: u16, spec: &str) -> String {
    format!(
        "{}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {backend}}}\nspec:\n  \
         parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: client}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]\n{spec}---\n",
        gateway_yaml(port),
        service(backend, backend_port)
    )
}

/// A connection that has been answered once and stays open.
async fn served(port: u16) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nhost: any\r\n\r\n")
        .await
        .unwrap();
    let mut status = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut status))
        .await
        .unwrap()
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    stream
}

/// Whether a new connection is closed without an answer, and how long that took.
async fn refused(port: u16) -> (bool, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nhost: any\r\nconnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    (answer.is_empty(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_are_closed_and_sockets_keep_alive() {
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-connections");
    std::fs::write(dir.join("config.yaml"), config(port, echo_port)).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let first = served(port).await;
    let second = served(port).await;
    let (closed, took) = refused(port).await;
    assert!(closed, "a third connection is refused");
    assert!(
        took >= Duration::from_millis(300),
        "after the close delay: {took:?}"
    );

    // The accepted sockets have keepalive armed with the policy's idle time.
    let output = tokio::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .await
        .expect("ss is installed (iproute2)");
    let sockets = String::from_utf8_lossy(&output.stdout);
    let armed: Vec<&str> = sockets
        .lines()
        .filter(|line| line.contains("timer:(keepalive"))
        .collect();
    assert_eq!(armed.len(), 2, "{sockets}");
    for line in armed {
        // `timer:(keepalive,9min59sec,0)`: counting down from 10 minutes.
        assert!(
            line.contains("timer:(keepalive,9min") || line.contains("timer:(keepalive,10min"),
            "{line}"
        );
    }

    // One closes: a new connection is served again.
    drop(first);
    let url = format!("http://127.0.0.1:{port}/");
    wait_until("a slot frees", || {
        let url = url.clone();
        async move { curl(&[&url]).await.0 == 200 }
    })
    .await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_heads_are_limited_in_size_and_time() {
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-heads");
    let config = gateway_with_client_policy(
        port,
        "echo",
        echo_port,
        "  headers: {maxRequestHeaderLimit: 2}\n  timeout: {http: {requestHeadersReceivedTimeout: 500ms}}\n",
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");

    let (status, response) = curl(&["-H", &format!("x-small: {}", "s".repeat(512)), &url]).await;
    assert_eq!(status, 200, "{response}");
    let (status, response) = curl(&["-H", &format!("x-large: {}", "l".repeat(4096)), &url]).await;
    assert_eq!(status, 431, "{response}");

    // Half a head, then nothing: closed after the policy's half second, not the default 10 s.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: any\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// Sends `request` raw on a new connection to `port`: the answer's status line and how long
/// it took to come.
async fn status_line_of(port: u16, request: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    tokio::time::timeout(Duration::from_secs(8), reader.read_line(&mut status))
        .await
        .unwrap()
        .unwrap();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_and_slow_requests_get_408() {
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-timeouts");
    let config = gateway_with_client_policy(
        port,
        "echo",
        echo_port,
        "  timeout: {http: {idleTimeout: 700ms, requestReceivedTimeout: 600ms}}\n",
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // Answered once, then idle: closed after the policy's 700 ms.
    let mut stream = served(port).await;
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut rest)).await;
    let waited = idle_from.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );

    // A body that never arrives whole: 408 after 600 ms.
    let (status, waited) = status_line_of(
        port,
        b"POST /upload HTTP/1.1\r\nhost: any\r\ncontent-length: 10\r\n\r\nabc",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status:?}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    // A whole request whose answer is slower than the timeout: 504, as Envoy answers once the
    // request has arrived (EG's ClientTimeout expectation), after the same 600 ms.
    let (status, waited) = status_line_of(
        port,
        b"GET /slow HTTP/1.1\r\nhost: any\r\nx-echo-delay-ms: 3000\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 504"), "{status:?}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );

    // A whole request is answered as usual, on a connection used again before it idles.
    let mut stream = served(port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nhost: any\r\n\r\n")
        .await
        .unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        if line.starts_with("HTTP/1.1") {
            break;
        }
    }
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
}

/// The HTTP/2 settings the gateway at `port` announces, as read by python `h2`.
fn announced_h2_settings(port: u16) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/h2_settings.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .output()
        .expect("python3 with h2 (scripts/install-test-deps)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What python h2 saw of a malformed request and the request after it on one connection to
/// `port` (`interop/h2_invalid_message.py`).
fn invalid_message_outcome(port: u16, host: &str) -> serde_json::Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/h2_invalid_message.py"
    );
    let output = std::process::Command::new("python3")
        .args([script, &port.to_string(), host])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_settings_are_announced_as_the_policy_says() {
    let (tuned, plain) = (free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-http2");
    let gateway = |name: &str, port: u16| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
             gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
             listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n"
        )
    };
    let config = format!(
        "{}{}{}\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: h2}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: tuned}}]\n  \
         http2: {{initialStreamWindowSize: 128Ki, initialConnectionWindowSize: 2Mi, maxConcurrentStreams: 7, \
         onInvalidMessage: TerminateStream}}\n---\n",
        gateway("tuned", tuned),
        gateway("plain", plain),
        service("echo", echo_port)
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let announced = announced_h2_settings(tuned);
    assert_eq!(announced["max_concurrent_streams"], 7, "{announced}");
    assert_eq!(announced["initial_window_size"], 131_072, "{announced}");
    assert_eq!(
        announced["connection_window"],
        2 * 1024 * 1024,
        "{announced}"
    );
    let defaults = announced_h2_settings(plain);
    assert_ne!(defaults["max_concurrent_streams"], 7, "{defaults}");

    // onInvalidMessage: TerminateStream — a malformed request (a connection-specific header)
    // has its stream reset, and the next request on the connection is answered (404: no
    // route), as python h2 sees it.
    let seen = invalid_message_outcome(tuned, "tuned.example");
    assert_eq!(seen["malformed"], "reset", "{seen}");
    assert_eq!(seen["next"], 404, "{seen}");
    assert_eq!(seen["goaway"], false, "{seen}");

    // Without the field, TerminateConnection (Envoy Gateway's default): the stream is reset,
    // a GOAWAY with PROTOCOL_ERROR follows, and the connection is closed.
    let seen = invalid_message_outcome(plain, "plain.example");
    assert_eq!(seen["malformed"], "reset", "{seen}");
    assert_eq!(seen["goaway"], "PROTOCOL_ERROR", "{seen}");
    assert_eq!(seen["next"], "closed", "{seen}");
}

/// A backend that sends its answer's head and 3 of its 10 body bytes, then nothing for 3 s.
async fn stalling_backend() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                    .await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = stream.write_all(b"defghij").await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_response_body_is_cut_after_the_stream_idle_timeout() {
    let port = free_port();
    let backend = stalling_backend().await;
    let dir = scratch("client-stream-idle");
    let config = gateway_with_client_policy(
        port,
        "stalling",
        backend,
        "  timeout: {http: {streamIdleTimeout: 500ms}}\n",
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let started = Instant::now();
    let (status, response) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{response}");
    assert!(
        response.ends_with("\r\n\r\nabc"),
        "only what came before the stall: {response:?}"
    );
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(2500),
        "cut after the policy's 500 ms, not the backend's 3 s: {waited:?}"
    );
}

/// Reads one HTTP/1.1 answer (head and `content-length` body) from `stream`; returns its head.
async fn read_answer(stream: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "closed before an answer: {head}");
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_close_after_their_requests_or_their_lifetime() {
    let (budget, aging) = (free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-connection-lifetime");
    let gateway = |name: &str, port: u16, limit: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
             gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
             listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: {name}}}]\n  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n---\n\
             apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: {name}}}]\n  \
             connection: {{connectionLimit: {limit}}}\n---\n"
        )
    };
    let config = gateway("budget", budget, "{maxRequestsPerConnection: 2}")
        + &gateway("aging", aging, "{maxConnectionDuration: 800ms}")
        + &service("echo", echo_port);
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    // Two requests answered on one connection, then it is closed.
    let stream = TcpStream::connect(("127.0.0.1", budget)).await.unwrap();
    let mut stream = BufReader::new(stream);
    for _ in 0..2 {
        stream
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nhost: any\r\n\r\n")
            .await
            .unwrap();
        let head = read_answer(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));

    // A connection used once, then kept: closed when its 800 ms are up.
    let started = Instant::now();
    let mut stream = served(aging).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut rest)).await;
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(700) && lived < Duration::from_secs(4),
        "{lived:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_bounded_by_their_maximum_duration() {
    let port = free_port();
    let backend = stalling_backend().await;
    let echo_port = echo("echo-0").await;
    let dir = scratch("client-stream-duration");
    let config = gateway_with_client_policy(
        port,
        "stalling",
        backend,
        "  connection: {connectionLimit: {maxStreamDuration: 600ms}}\n",
    ) + &service("echo", echo_port)
        + &host_route("upload", "echo");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // Answered at once, then the body stalls: cut when the stream's 600 ms are up.
    let started = Instant::now();
    let (status, response) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("\r\n\r\nabc"), "{response:?}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );

    // A request whose body never arrives (to a backend that answers once it has it): 408
    // when the 600 ms are up.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: upload.example\r\ncontent-length: 10\r\n\r\nab")
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    tokio::time::timeout(Duration::from_secs(8), reader.read_line(&mut status))
        .await
        .unwrap()
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A TCP backend that echoes what it reads.
async fn tcp_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn relayed_tcp_streams_end_after_the_tcp_idle_timeout() {
    let port = free_port();
    let backend = tcp_echo().await;
    let dir = scratch("client-tcp-idle");
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: tcp}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: tcp, port: {port}, protocol: TCP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: t}}\n\
         spec: {{parentRefs: [{{name: tcp}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: tcp}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: tcp}}]\n  \
         timeout: {{tcp: {{idleTimeout: 700ms}}}}\n---\n{}",
        service("echo", backend)
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Traffic keeps the relay open past the timeout...
    for _ in 0..3 {
        stream.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&echoed, b"ping");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // ...and 700 ms of silence ends it.
    let quiet = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut rest)).await;
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?} of silence"
    );
}
