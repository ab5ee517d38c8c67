//! BackendTrafficPolicy connection settings through the `gateway` binary:
//! `timeout.tcp.connectTimeout` — a backend whose accept queue is full drops new connection
//! attempts (the kernel ignores their SYNs), so connecting hangs; with the policy the gateway
//! gives up after its 300 ms and answers 503, without it after the forwarder's own 5 s — and
//! `tcpKeepalive` — the gateway's connections to the backend carry keepalive with the policy's
//! idle time, as `ss` reports it; those of a route without the policy do not — and connection
//! reuse: `circuitBreaker.maxRequestsPerConnection`, `timeout.http.connectionIdleTimeout` and
//! `maxConnectionDuration` (a backend numbering its connections shows which request used
//! which), each policy route's connections pooled apart; and `timeout.http.streamIdleTimeout`
//! (a stalled response body is cut), `timeout.http.maxStreamDuration` (a late answer is 504,
//! a body still coming is cut); and `http2`: the flow-control windows the gateway's
//! client announces to an h2c backend, as the independent python `h2` server reads them
//! (which also checks that `:authority` is the client's host, with no Host against it), and
//! its `maxConcurrentStreams` (streams beyond it open another connection); and a
//! TCPRoute's policy: `proxyProtocol` (the relayed stream starts with a PROXY header) and
//! `timeout.tcp.connectTimeout`, and a passed-through TLSRoute's `proxyProtocol`; and `routingType: Service` (requests go to the Service's
//! cluster IP instead of its endpoints); and `connection.socketBufferLimit`, with the
//! ClientTrafficPolicy's, as `ss` reads the sockets' buffers; and
//! `connection.preconnect.perEndpointPercent` (connections opened ahead of need); and
//! `circuitBreaker.perEndpoint.maxConnections` (requests beyond it wait for a connection).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use examples_support::echo::{EchoIdentity, serve_echo};
use gateway_support::*;
use tokio::net::{TcpSocket, TcpStream};

/// A listener on loopback that never accepts, its queue filled: the port of a backend that
/// cannot be connected to (connection attempts hang). The guards keep it so.
async fn full_backend() -> (u16, Vec<TcpStream>, tokio::net::TcpListener) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // The accept queue holds backlog + 1 connections; attempts past it hang.
    for _ in 0..2 {
        queued.push(TcpStream::connect(address).await.unwrap());
    }
    let hung = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(address)).await;
    assert!(hung.is_err(), "the queue is full: connecting hangs");
    (address.port(), queued, listener)
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_timeout_bounds_connecting_to_a_backend() {
    let port = free_port();
    let (backend, _queued, _listener) = full_backend().await;
    let dir = scratch("backend-connect-timeout");
    let config = gateway_yaml(port)
        + &service("stuck", backend)
        + &host_route("quick", "stuck")
        + &host_route("patient", "stuck")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: quick}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: quick}]\n  \
           timeout: {tcp: {connectTimeout: 300ms}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");

    let started = Instant::now();
    let (status, response) = curl(&["-H", "host: quick.example", &url]).await;
    let quick = started.elapsed();
    assert_eq!(status, 503, "{response}");
    assert!(
        quick >= Duration::from_millis(250) && quick < Duration::from_secs(2),
        "{quick:?}"
    );

    let started = Instant::now();
    let (status, response) = curl(&["-H", "host: patient.example", &url]).await;
    let patient = started.elapsed();
    assert_eq!(status, 503, "{response}");
    assert!(
        patient >= Duration::from_secs(4),
        "the forwarder's 5 s: {patient:?}"
    );
}

/// The `ss` lines of established connections to `port`.
async fn connections_to(port: u16) -> String {
    let output = tokio::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .await
        .expect("ss is installed (iproute2)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_connections_carry_the_policy_keepalive() {
    let port = free_port();
    let kept = echo("kept-0").await;
    let plain = echo("plain-0").await;
    let dir = scratch("backend-keepalive");
    let config = gateway_yaml(port)
        + &service("kept", kept)
        + &service("plain", plain)
        + &host_route("kept", "kept")
        + &host_route("plain", "plain")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: kept}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: kept}]\n  \
           tcpKeepalive: {idleTime: 600s, interval: 10s, probes: 3}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for host in ["host: kept.example", "host: plain.example"] {
        let (status, response) = curl(&["-H", host, &url]).await;
        assert_eq!(status, 200, "{response}");
    }

    // The pooled connection to the kept backend: keepalive counting down from 10 minutes.
    let sockets = connections_to(kept).await;
    let armed: Vec<&str> = sockets
        .lines()
        .filter(|line| line.contains("timer:(keepalive"))
        .collect();
    assert_eq!(armed.len(), 1, "{sockets}");
    assert!(
        armed[0].contains("timer:(keepalive,9min") || armed[0].contains("timer:(keepalive,10min"),
        "{sockets}"
    );
    let sockets = connections_to(plain).await;
    assert!(
        sockets.lines().count() >= 2,
        "the pooled connection is open: {sockets}"
    );
    assert!(!sockets.contains("keepalive"), "{sockets}");
}

/// A keep-alive HTTP/1.1 backend that numbers its connections and answers each request with
/// `x-connection: N`; `/slow` after 2 s; `/stall` with 2 of 10 body bytes, then nothing.
async fn numbering_backend() -> u16 {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut accepted = 0u32;
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted += 1;
            let number = accepted;
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while let Some(head) = next_request_head(&mut stream, &mut pending).await {
                    if head.starts_with("GET /slow") {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    if head.starts_with("GET /brief") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    if head.starts_with("GET /stall") {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                            .await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nx-connection: {number}\r\ncontent-length: 2\r\n\r\nok"
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_connections_are_reused_within_the_policy_limits() {
    let port = free_port();
    let backend = numbering_backend().await;
    let dir = scratch("backend-connection-reuse");
    let policy = |name: &str, spec: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  {spec}\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service("numbered", backend)
        + &host_route("plain", "numbered")
        + &host_route("budget", "numbered")
        + &host_route("idle", "numbered")
        + &host_route("aged", "numbered")
        + &policy("budget", "circuitBreaker: {maxRequestsPerConnection: 2}")
        + &policy(
            "idle",
            "timeout: {http: {connectionIdleTimeout: 400ms, streamIdleTimeout: 300ms}}",
        )
        + &policy("aged", "timeout: {http: {maxConnectionDuration: 700ms}}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let connection = |host: &'static str| {
        let url = url.clone();
        async move {
            let (status, response) = curl(&["-H", &format!("host: {host}.example"), &url]).await;
            assert_eq!(status, 200, "{response}");
            header(&response, "x-connection").unwrap().to_owned()
        }
    };

    // maxRequestsPerConnection 2: each connection carries two requests, then closes.
    let mut budget = Vec::new();
    for _ in 0..6 {
        budget.push(connection("budget").await);
    }
    assert!(
        budget[0] == budget[1] && budget[2] == budget[3] && budget[4] == budget[5],
        "{budget:?}"
    );
    assert!(
        budget[1] != budget[2] && budget[3] != budget[4] && budget[1] != budget[4],
        "{budget:?}"
    );

    // Without a policy: one connection, still reused after 900 ms unused (and apart from the
    // policy routes' connections).
    let plain = connection("plain").await;
    assert!(!budget.contains(&plain), "{budget:?} {plain}");
    assert_eq!(connection("plain").await, plain);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(connection("plain").await, plain);

    // connectionIdleTimeout 400 ms: reused at once, replaced after 900 ms unused.
    let idle = connection("idle").await;
    assert_eq!(connection("idle").await, idle);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = connection("idle").await;
    assert_ne!(after, idle);

    // maxConnectionDuration 700 ms: a connection used every 150 ms is replaced once old.
    let started = Instant::now();
    let mut aged = Vec::new();
    while started.elapsed() < Duration::from_millis(1600) {
        aged.push((started.elapsed(), connection("aged").await));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let first = &aged[0].1;
    assert!(aged.iter().any(|(_, c)| c != first), "{aged:?}");
    for (at, c) in &aged {
        if c == first {
            assert!(*at < Duration::from_millis(900), "{aged:?}");
        }
    }

    // streamIdleTimeout 300 ms: a response body that stalls is cut.
    let started = Instant::now();
    let (_, response) = curl(&["-H", "host: idle.example", &format!("{url}stall")]).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?} {response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_backends_get_the_policy_windows() {
    let port = free_port();
    let (_server, backend) = h2_settings_server().await;
    let dir = scratch("backend-http2");
    let config = gateway_yaml(port)
        + &h2c_service("h2", backend)
        + &host_route("tuned", "h2")
        + &host_route("plain", "h2")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: tuned}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tuned}]\n  \
           http2: {initialStreamWindowSize: 256Ki, initialConnectionWindowSize: 512Ki}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let announced = |host: &'static str| {
        let url = url.clone();
        async move {
            let (status, response) = curl(&["-H", host, &url]).await;
            assert_eq!(status, 200, "{response}");
            echoed(&response)
        }
    };

    // The python h2 server saw the policy's windows from the gateway's client…
    let tuned = announced("host: tuned.example").await;
    assert_eq!(tuned["initial_window_size"], 256 * 1024, "{tuned}");
    assert_eq!(tuned["connection_window"], 512 * 1024, "{tuned}");
    // The client's authority travels as `:authority`, as Envoy sends it (and no Host that
    // disagrees, which the python server would refuse).
    assert_eq!(tuned["authority"], "tuned.example", "{tuned}");
    // …and hyper's own on the other route's connection.
    let plain = announced("host: plain.example").await;
    assert_ne!(plain["initial_window_size"], 256 * 1024, "{plain}");
    assert_ne!(plain["connection_window"], 512 * 1024, "{plain}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_backend_response_ends_its_connection_unless_the_policy_says_stream() {
    let port = free_port();
    let (_strict_server, strict) = h2_settings_server().await;
    let (_lenient_server, lenient) = h2_settings_server().await;
    let dir = scratch("backend-h2-invalid");
    let config = gateway_yaml(port)
        + &h2c_service("strict", strict)
        + &h2c_service("lenient", lenient)
        + &host_route("strict", "strict")
        + &host_route("lenient", "lenient")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: lenient}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: lenient}]\n  \
           http2: {onInvalidMessage: TerminateStream}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    // What each of the backend's connections received, once `settled` says so (or after 3 s).
    let connections = |host: &'static str, settled: fn(&serde_json::Value) -> bool| {
        let url = format!("{url}connections");
        async move {
            let started = Instant::now();
            loop {
                let (status, response) = curl(&["-H", host, &url]).await;
                assert_eq!(status, 200, "{response}");
                let seen = echoed(&response);
                if settled(&seen) || started.elapsed() > Duration::from_secs(3) {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let reset_and = |connection: &serde_json::Value, goaway: serde_json::Value, closed: bool| {
        connection["resets"] == serde_json::json!(["PROTOCOL_ERROR"])
            && connection["goaway"] == goaway
            && connection["closed"] == closed
    };

    // Envoy's default, TerminateConnection: the gateway resets the stream, sends a GOAWAY
    // with PROTOCOL_ERROR and closes the connection; the client gets an error answer.
    let (status, response) =
        curl(&["-H", "host: strict.example", &format!("{url}malformed")]).await;
    assert!(status >= 500, "{status} {response}");
    let seen = connections("host: strict.example", |seen| {
        seen.as_array().unwrap().iter().any(|c| c["closed"] == true)
    })
    .await;
    assert!(
        seen.as_array()
            .unwrap()
            .iter()
            .any(|c| reset_and(c, "PROTOCOL_ERROR".into(), true)),
        "{seen}"
    );

    // TerminateStream: only the stream is reset; the connection stays open and carries the
    // next request.
    let (status, response) =
        curl(&["-H", "host: lenient.example", &format!("{url}malformed")]).await;
    assert!(status >= 500, "{status} {response}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = connections("host: lenient.example", |_| true).await;
    let connections = seen.as_array().unwrap();
    assert_eq!(connections.len(), 1, "{seen}");
    assert!(
        reset_and(&connections[0], serde_json::Value::Null, false),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_stream_duration_bounds_the_answer_and_its_body() {
    let port = free_port();
    let backend = numbering_backend().await;
    let dir = scratch("backend-stream-duration");
    let config = gateway_yaml(port)
        + &service("numbered", backend)
        + &host_route("bounded", "numbered")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: bounded}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: bounded}]\n  \
           timeout: {http: {maxStreamDuration: 600ms}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let timed = |path: &'static str| {
        let url = format!("{url}{path}");
        async move {
            let started = Instant::now();
            let (status, response) = curl(&["-H", "host: bounded.example", &url]).await;
            (status, response, started.elapsed())
        }
    };

    // Quick exchanges pass.
    let (status, _, _) = timed("quick").await;
    assert_eq!(status, 200);
    // An answer later than the limit: 504 at the limit.
    let (status, response, waited) = timed("slow").await;
    assert_eq!(status, 504, "{response}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_millis(1800),
        "{waited:?}"
    );
    // A body still coming at the limit is cut there.
    let (status, response, waited) = timed("stall").await;
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("ab"), "{response}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// A TCP backend that answers every connection with `got: ` and the first line it read (its
/// bytes as they came).
async fn first_line_backend() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stream);
                let mut line = b"got: ".to_vec();
                if reader.read_until(b'\n', &mut line).await.is_ok() {
                    let _ = reader.get_mut().write_all(&line).await;
                    // Close gracefully: a socket closed with unread bytes sends a reset, which
                    // can reach the gateway before it has relayed the answer.
                    let _ = reader.get_mut().shutdown().await;
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest).await;
                }
            });
        }
    });
    port
}

/// A Gateway `name` with one TCP listener on `port`, and a TCPRoute `name` from it to the
/// Service `service`.
fn tcp_gateway(name: &str, port: u16, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: tcp, port: {port}, protocol: TCP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: {name}}}\n\
         spec: {{parentRefs: [{{name: {name}}}], rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_routes_take_their_policy_connection_settings() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (proxied, plain, stuck) = (free_port(), free_port(), free_port());
    let lines = first_line_backend().await;
    let (full, _queued, _listener) = full_backend().await;
    let dir = scratch("backend-tcp-route");
    let policy = |name: &str, spec: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: TCPRoute, name: {name}}}]\n  {spec}\n---\n"
        )
    };
    let config = tcp_gateway("proxied", proxied, "lines")
        + &tcp_gateway("plain", plain, "lines")
        + &tcp_gateway("stuck", stuck, "full")
        + &service("lines", lines)
        + &service("full", full)
        + &policy("proxied", "proxyProtocol: {version: V1}")
        + &policy("stuck", "timeout: {tcp: {connectTimeout: 300ms}}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");
    let first_line = |port: u16| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let local = stream.local_addr().unwrap();
        stream.write_all(b"hello\n").await.unwrap();
        let mut answer = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
        (answer, local)
    };

    // proxyProtocol V1: the backend's first line is the PROXY header naming the client and
    // the listener's address.
    let (answer, client) = first_line(proxied).await;
    assert_eq!(
        answer,
        format!(
            "got: PROXY TCP4 127.0.0.1 127.0.0.1 {} {proxied}\r\n",
            client.port()
        )
    );
    // Without the policy, the client's own bytes come first.
    let (answer, _) = first_line(plain).await;
    assert_eq!(answer, "got: hello\n");

    // connectTimeout: a backend that cannot be connected to gives up after 300 ms (the relay's
    // own limit is 10 s): the client's connection is closed.
    let started = Instant::now();
    let (answer, _) = first_line(stuck).await;
    let waited = started.elapsed();
    assert_eq!(answer, "");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_routing_sends_requests_to_the_cluster_ip() {
    let port = free_port();
    let pod = echo("pod-0").await;
    // The Service's cluster IP, where a kube-proxy would answer: here another echo.
    let cluster = tokio::net::TcpListener::bind("127.0.0.21:0").await.unwrap();
    let service_port = cluster.local_addr().unwrap().port();
    tokio::spawn(serve_echo(
        cluster,
        EchoIdentity {
            namespace: "default".into(),
            pod: "cluster-ip".into(),
        },
    ));
    let dir = scratch("backend-service-routing");
    let route = |name: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
             rules: [{{backendRefs: [{{name: svc, port: {service_port}}}]}}]\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc}}\nspec:\n  clusterIP: 127.0.0.21\n  \
             ports: [{{name: http, port: {service_port}}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: svc-1, labels: {{kubernetes.io/service-name: svc}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: http, port: {pod}}}]\n---\n"
        )
        + &route("endpoints")
        + &route("service")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: service}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: service}]\n  \
           routingType: Service\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let answered_by = |host: &'static str| {
        let url = url.clone();
        async move {
            let (status, response) = curl(&["-H", host, &url]).await;
            assert_eq!(status, 200, "{response}");
            echoed(&response)["pod"].as_str().unwrap().to_owned()
        }
    };
    for _ in 0..3 {
        assert_eq!(answered_by("host: service.example").await, "cluster-ip");
        assert_eq!(answered_by("host: endpoints.example").await, "pod-0");
    }
}

/// An h2c backend answering each request 400 ms late with the number of the connection it
/// came on (1, 2…).
async fn slow_h2c_backend() -> u16 {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut number = 0u32;
        while let Ok((stream, _)) = listener.accept().await {
            number += 1;
            let connection = number;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(format!("{connection}"))),
                    ))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_max_concurrent_streams_opens_more_backend_connections() {
    let port = free_port();
    let backend = slow_h2c_backend().await;
    let dir = scratch("backend-h2-streams");
    let config = gateway_yaml(port)
        + &service("slow", backend).replace(
            "ports: [{name: http, port: 80}]",
            "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]",
        )
        + &host_route("limited", "slow")
        + &host_route("shared", "slow")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: limited}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]\n  \
           http2: {maxConcurrentStreams: 2}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    // Four requests at once; the connection numbers they were answered on.
    let four_at_once = |host: &'static str| {
        let url = url.clone();
        async move {
            let args = ["-H", host, url.as_str()];
            let answers = tokio::join!(curl(&args), curl(&args), curl(&args), curl(&args));
            let mut connections: Vec<String> = [answers.0, answers.1, answers.2, answers.3]
                .into_iter()
                .map(|(status, response)| {
                    assert_eq!(status, 200, "{response}");
                    response.split("\r\n\r\n").nth(1).unwrap().to_owned()
                })
                .collect();
            connections.sort();
            connections.dedup();
            connections
        }
    };
    // Without the policy all four streams share one connection; with a limit of two, two
    // connections carry them.
    assert_eq!(four_at_once("host: shared.example").await.len(), 1);
    assert_eq!(four_at_once("host: limited.example").await.len(), 2);
}

/// The first bytes a TLS client sends: a ClientHello naming `server_name`.
fn client_hello(server_name: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).unwrap();
    hello
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_routes_take_their_policy_connection_settings() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let lines = first_line_backend().await;
    let dir = scratch("backend-tls-route");
    let route = |name: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: {name}}}\n\
             spec: {{parentRefs: [{{name: gw}}], hostnames: [{name}.example.com], \
             rules: [{{backendRefs: [{{name: lines, port: 80}}]}}]}}\n---\n"
        )
    };
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: tls, port: {port}, protocol: TLS, tls: {{mode: Passthrough}}}}]\n---\n"
    ) + &route("proxied")
        + &route("plain")
        + &service("lines", lines)
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: proxied}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: TLSRoute, name: proxied}]\n  \
           proxyProtocol: {version: V1}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");
    let first_line = |name: &'static str| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let local = stream.local_addr().unwrap();
        stream.write_all(&client_hello(name)).await.unwrap();
        stream.write_all(b"\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        (answer, local)
    };
    // The policy's route: the passed-through stream starts with the PROXY header, then the
    // client's ClientHello; the other route's starts with the ClientHello itself.
    let (answer, client) = first_line("proxied.example.com").await;
    let expected = format!(
        "got: PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n",
        client.port()
    );
    assert_eq!(String::from_utf8_lossy(&answer), expected);
    let (answer, _) = first_line("plain.example.com").await;
    assert!(answer.starts_with(b"got: \x16\x03"), "{answer:?}");
}

/// The `ss` lines (with socket memory) of established TCP sockets matching `filter` (an `ss`
/// filter such as `sport = :8080`).
async fn socket_memory(filter: &str) -> String {
    let mut args = vec!["-tmn", "state", "established"];
    args.extend(filter.split(' '));
    let output = tokio::process::Command::new("ss")
        .args(&args)
        .output()
        .await
        .expect("ss is installed (iproute2)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_buffer_limits_size_client_and_backend_sockets() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let small = echo("small-0").await;
    let dir = scratch("backend-socket-buffers");
    let config = gateway_yaml(port)
        + &service("small", small)
        + &host_route("small", "small")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: small}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: small}]\n  \
           connection: {socketBufferLimit: 48Ki}\n---\n\
           apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {name: gw}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n  \
           connection: {socketBufferLimit: 32Ki}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    // One request on a connection kept open, so that both of the gateway's sockets exist.
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: small.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    // Linux doubles what is set: 32 KiB → 65 536 on the accepted socket, 48 KiB → 98 304 on
    // the one to the backend.
    let accepted = socket_memory(&format!("sport = :{port}")).await;
    assert!(
        accepted.contains("rb65536") && accepted.contains("tb65536"),
        "{accepted}"
    );
    let upstream = socket_memory(&format!("dport = :{small}")).await;
    assert!(
        upstream.contains("rb98304") && upstream.contains("tb98304"),
        "{upstream}"
    );
    // The backend's own accepted socket keeps the kernel's defaults.
    let backend_side = socket_memory(&format!("sport = :{small}")).await;
    assert!(!backend_side.contains("rb98304"), "{backend_side}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preconnect_opens_connections_ahead_of_need() {
    let port = free_port();
    let warm = echo("warm-0").await;
    let cold = echo("cold-0").await;
    let dir = scratch("backend-preconnect");
    let config = gateway_yaml(port)
        + &service("warm", warm)
        + &service("cold", cold)
        + &host_route("warm", "warm")
        + &host_route("cold", "cold")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: warm}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: warm}]\n  \
           connection: {preconnect: {perEndpointPercent: 300}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    // The gateway's established connections to `backend` (ss prints a header line first).
    let open_to = |backend: u16| async move { connections_to(backend).await.lines().count() - 1 };
    for host in ["host: warm.example", "host: cold.example"] {
        let (status, response) = curl(&["-H", host, &url]).await;
        assert_eq!(status, 200, "{response}");
    }
    // One request in flight at 300 %: three connections, two of them opened ahead.
    wait_until("three connections to the warm backend", || async {
        open_to(warm).await == 3
    })
    .await;
    assert_eq!(open_to(cold).await, 1);
    // The next requests use them: no more are opened for one request at a time.
    for _ in 0..3 {
        let (status, _) = curl(&["-H", "host: warm.example", &url]).await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(open_to(warm).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_endpoint_max_connections_makes_requests_wait_for_a_connection() {
    let port = free_port();
    let capped = numbering_backend().await;
    let open = numbering_backend().await;
    let dir = scratch("backend-per-endpoint");
    let config = gateway_yaml(port)
        + &service("capped", capped)
        + &service("open", open)
        + &host_route("capped", "capped")
        + &host_route("open", "open")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: capped}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: capped}]\n  \
           circuitBreaker: {perEndpoint: {maxConnections: 1}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/brief");
    // Three requests at once, each answered 300 ms late: the connections they were answered
    // on, and how long all three took.
    let three_at_once = |host: &'static str| {
        let url = url.clone();
        async move {
            let args = ["-H", host, url.as_str()];
            let started = Instant::now();
            let answers = tokio::join!(curl(&args), curl(&args), curl(&args));
            let took = started.elapsed();
            let mut connections: Vec<String> = [answers.0, answers.1, answers.2]
                .into_iter()
                .map(|(status, response)| {
                    assert_eq!(status, 200, "{response}");
                    header(&response, "x-connection").unwrap().to_owned()
                })
                .collect();
            connections.sort();
            connections.dedup();
            (connections, took)
        }
    };
    // One connection at most: the three wait their turn on it (not refused, as Envoy's
    // pending requests).
    let (connections, took) = three_at_once("host: capped.example").await;
    assert_eq!(connections, vec!["1".to_owned()]);
    assert!(took >= Duration::from_millis(850), "{took:?}");
    let (connections, _) = three_at_once("host: open.example").await;
    assert!(connections.len() >= 2, "{connections:?}");
}

/// The Service `name` with one endpoint on 127.0.0.1 per port of `ports`, each in a slice of
/// its own.
fn service_over_ports(name: &str, ports: &[u16]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n"
    );
    for (index, port) in ports.iter().enumerate() {
        yaml += &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-{index}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: http, port: {port}}}]\n---\n"
        );
    }
    yaml
}

#[tokio::test(flavor = "multi_thread")]
async fn predictive_preconnect_opens_a_connection_to_the_next_endpoint() {
    let port = free_port();
    let (first, second) = (echo("first").await, echo("second").await);
    let (third, fourth) = (echo("third").await, echo("fourth").await);
    let dir = scratch("backend-predictive");
    let policy = |name: &str, connection: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
             loadBalancer: {{type: RoundRobin}}\n{connection}---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service_over_ports("predicted", &[first, second])
        + &service_over_ports("unpredicted", &[third, fourth])
        + &host_route("predicted", "predicted")
        + &host_route("unpredicted", "unpredicted")
        + &policy(
            "predicted",
            "  connection: {preconnect: {predictivePercent: 200}}\n",
        )
        + &policy("unpredicted", "");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let open_to = |backend: u16| async move { connections_to(backend).await.lines().count() - 1 };
    for host in ["host: predicted.example", "host: unpredicted.example"] {
        let (status, response) = curl(&["-H", host, &url]).await;
        assert_eq!(status, 200, "{response}");
    }
    // At 200 %, the request to one endpoint also opens a connection to the one round robin
    // takes next; without it only the endpoint asked has one.
    wait_until("a connection to each predicted endpoint", || async {
        open_to(first).await == 1 && open_to(second).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(open_to(third).await + open_to(fourth).await, 1);
    // The next request takes the connection opened ahead: still one to each.
    let (status, _) = curl(&["-H", "host: predicted.example", &url]).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((open_to(first).await, open_to(second).await), (1, 1));
}
