//! HBONE client and server over real loopback sockets (hbone spec §1.5–1.10, §2; checklist
//! items 5–16).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hbone::client::{HboneClientError, HboneConnectorConfig};
use hbone::connect_headers::{Authority, TraceParent, X_FORWARDED_NETWORK};
use hbone::h2_settings::H2Settings;
use hbone::server::{ConnectDecision, HboneServerConfig};
use http::StatusCode;
use support::mesh::{CLIENT, Mesh, SERVER, echo_upstream, id, one_shot_upstream, read_all};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn forward_to(
    upstream: SocketAddr,
) -> impl Fn(&hbone::server::ConnectRequest) -> ConnectDecision + Clone {
    move |_| ConnectDecision::forward(upstream)
}

#[tokio::test]
async fn a_tunnel_carries_bytes_and_the_server_sees_identity_and_headers() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh.forwarding_server(upstream).await;
    let mut target = mesh.target(server.address, "10.244.0.42:8080", &[SERVER]);
    target.client = Some("10.0.0.1:40000".parse().unwrap());
    target.forwarded_host = Some("echo.default.svc.cluster.local".into());
    target.baggage = "k8s.namespace.name=default".into();
    let mut stream = mesh.connector().open(&target).await.unwrap();
    stream.write_all(b"hello hbone").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stream).await, b"hello hbone");

    let seen = server.seen.lock().unwrap();
    let (request, status) = &seen[0];
    assert_eq!(*status, StatusCode::OK);
    assert_eq!(
        request.authority,
        "10.244.0.42:8080".parse::<Authority>().unwrap()
    );
    assert_eq!(request.peer_identity, Some(id(CLIENT)));
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        header("forwarded"),
        "for=\"10.0.0.1:40000\";host=echo.default.svc.cluster.local"
    );
    assert_eq!(header("baggage"), "k8s.namespace.name=default");
    assert!(TraceParent::parse(&header("traceparent")).is_some());
    assert!(request.headers.get(X_FORWARDED_NETWORK).is_none());
    let names: Vec<&str> = request.headers.keys().map(|k| k.as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("x-envoy") && !n.starts_with("istio")),
        "{names:?}"
    );
}

/// Checklist 7 and 8: status mapping, and the client treats any non-200 as a failure.
#[tokio::test]
async fn refusals_have_the_documented_statuses() {
    let mesh = Mesh::new();
    let refused_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let server = mesh
        .server(
            SERVER,
            HboneServerConfig::default(),
            move |request| match request.authority.port() {
                401 => ConnectDecision::Reject(StatusCode::UNAUTHORIZED),
                503 => ConnectDecision::Reject(StatusCode::SERVICE_UNAVAILABLE),
                _ => ConnectDecision::forward(refused_port),
            },
        )
        .await;
    let connector = mesh.connector();
    for (authority, expected) in [
        ("10.0.0.1:401", StatusCode::UNAUTHORIZED),
        (
            "svc.ns.svc.cluster.local:503",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        ("10.0.0.1:80", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let target = mesh.target(server.address, authority, &[SERVER]);
        match connector.open(&target).await {
            Err(HboneClientError::Status(status)) => assert_eq!(status, expected, "{authority}"),
            other => panic!("{authority}: {other:?}"),
        }
    }
    let statuses: Vec<u16> = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.as_u16())
        .collect();
    assert_eq!(
        statuses,
        [401, 503, 503],
        "the observer sees every answer, 503 when the upstream refuses"
    );
    assert_eq!(
        connector.dialled_connections(),
        1,
        "refusals do not spoil the pooled connection"
    );
}

/// Checklist 9: arbitrary binary payloads over 16 MiB, in writes over 1 MiB, round-trip intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_binary_payloads_round_trip_unchanged() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh.forwarding_server(upstream).await;
    let stream = mesh.open(server.address).await;
    let payload: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sent = payload.clone();
    let writing = tokio::spawn(async move {
        for chunk in sent.chunks(3 * 1024 * 1024 + 7) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    });
    let received = read_all(&mut reader).await;
    writing.await.unwrap();
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "payload changed in transit");
}

/// Checklist 10: half-close in both directions, each independent of the other.
#[tokio::test]
async fn half_close_propagates_each_way_independently() {
    let mesh = Mesh::new();
    // Upstream: reads to EOF, then answers (so it only answers after the client's FIN).
    let (upstream, _) = one_shot_upstream(|mut tcp| async move {
        let request = read_all(&mut tcp).await;
        tcp.write_all(&[b"after your FIN: ", &request[..]].concat())
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
    })
    .await;
    let server = mesh.forwarding_server(upstream).await;
    let mut stream = mesh.open(server.address).await;
    stream.write_all(b"question").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stream).await, b"after your FIN: question");

    // The reverse: the upstream closes its side first, the client keeps sending.
    let (upstream, upstream_task) = one_shot_upstream(|mut tcp| async move {
        tcp.write_all(b"bye").await.unwrap();
        tcp.shutdown().await.unwrap();
        read_all(&mut tcp).await
    })
    .await;
    let server = mesh.forwarding_server(upstream).await;
    let mut stream = mesh.open(server.address).await;
    assert_eq!(
        read_all(&mut stream).await,
        b"bye",
        "END_STREAM reads as EOF"
    );
    stream.write_all(b"still talking").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(upstream_task.await.unwrap(), b"still talking");
}

/// Checklist 11: a stream dropped by the server (RST_STREAM CANCEL) and a TCP reset on the
/// upstream both read as EOF on the client — the crate's documented choice, matching what a
/// ztunnel peer observes.
#[tokio::test]
async fn resets_read_as_eof() {
    let mesh = Mesh::new();
    let server = mesh
        .server(SERVER, HboneServerConfig::default(), |_| {
            ConnectDecision::serve(|stream| async move { drop(stream) })
        })
        .await;
    let mut stream = mesh.open(server.address).await;
    let mut buf = [0u8; 16];
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);

    let (upstream, _) = one_shot_upstream(|tcp| async move {
        // Reset once the tunnel is up (an immediate reset would fail the server's connect).
        tokio::time::sleep(Duration::from_millis(100)).await;
        tcp.set_zero_linger().unwrap();
        drop(tcp); // RST
    })
    .await;
    let server = mesh.forwarding_server(upstream).await;
    let mut stream = mesh.open(server.address).await;
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(read.unwrap(), 0);
}

/// Checklist 14: pool keys, sharing and dial coalescing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_shares_connections_per_key_and_coalesces_dials() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh.forwarding_server(upstream).await;
    let connector = mesh.connector();
    let base = mesh.target(server.address, "10.0.0.1:80", &[SERVER]);

    // 20 concurrent first requests: one dial.
    let opens = (0..20).map(|_| {
        let connector = connector.clone();
        let target = base.clone();
        tokio::spawn(async move { connector.open(&target).await.unwrap() })
    });
    let streams = futures_join(opens).await;
    assert_eq!(connector.dialled_connections(), 1);
    drop(streams);

    // Same key again: still one connection. A different expected-SAN list, client IP or next
    // hop: a new connection each.
    connector.open(&base).await.unwrap();
    assert_eq!(connector.dialled_connections(), 1);
    let mut service_addressed = base.clone();
    service_addressed
        .expected_identities
        .push(id("spiffe://cluster.local/ns/default/sa/svc"));
    connector.open(&service_addressed).await.unwrap();
    assert_eq!(connector.dialled_connections(), 2);
    let mut other_client = base.clone();
    other_client.client = Some("10.9.9.9:1234".parse().unwrap());
    connector.open(&other_client).await.unwrap();
    assert_eq!(connector.dialled_connections(), 3);
    let second_server = mesh.forwarding_server(upstream).await;
    let mut other_hop = base.clone();
    other_hop.next_hop = second_server.address;
    connector.open(&other_hop).await.unwrap();
    assert_eq!(connector.dialled_connections(), 4);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// Checklist 14: the connection handed out for its max-th concurrent stream leaves the pool;
/// the next request dials a new one.
#[tokio::test]
async fn a_full_connection_leaves_the_pool() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh.forwarding_server(upstream).await;
    let config = HboneConnectorConfig {
        h2: H2Settings {
            max_concurrent_streams: 2,
            ..H2Settings::client()
        },
        ..HboneConnectorConfig::default()
    };
    let connector = mesh.connector_with(config);
    let target = mesh.target(server.address, "10.0.0.1:80", &[SERVER]);
    let first = connector.open(&target).await.unwrap();
    assert_eq!(connector.pooled_connections(), 1);
    let second = connector.open(&target).await.unwrap();
    assert_eq!(
        (
            connector.dialled_connections(),
            connector.pooled_connections()
        ),
        (1, 0)
    );
    let third = connector.open(&target).await.unwrap();
    assert_eq!(connector.dialled_connections(), 2);
    drop((first, second, third));
}

/// Checklist 14: a connection not checked out for the idle timeout is released.
#[tokio::test]
async fn idle_connections_are_released() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh.forwarding_server(upstream).await;
    let config = HboneConnectorConfig {
        idle_timeout: Duration::from_millis(100),
        ..HboneConnectorConfig::default()
    };
    let connector = mesh.connector_with(config);
    let target = mesh.target(server.address, "10.0.0.1:80", &[SERVER]);
    drop(connector.open(&target).await.unwrap());
    assert_eq!(connector.pooled_connections(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(connector.pooled_connections(), 0);
    drop(connector.open(&target).await.unwrap());
    assert_eq!(connector.dialled_connections(), 2);
}

/// Checklist 13 and 14: a draining server sends GOAWAY; streams in flight finish, the pool
/// stops using the connection, and the server stops within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_sends_goaway_and_lets_streams_finish() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let config = HboneServerConfig {
        drain_deadline: Duration::from_millis(500),
        ..HboneServerConfig::default()
    };
    let mut server = mesh.server(SERVER, config, forward_to(upstream)).await;
    let connector = mesh.connector();
    let target = mesh.target(server.address, "10.0.0.1:80", &[SERVER]);
    let mut in_flight = connector.open(&target).await.unwrap();
    server.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    in_flight.write_all(b"still served").await.unwrap();
    in_flight.shutdown().await.unwrap();
    assert_eq!(read_all(&mut in_flight).await, b"still served");
    let stopped = tokio::time::timeout(Duration::from_secs(3), &mut server.task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(
        connector.open(&target).await.is_err(),
        "the listener is gone"
    );
    assert_eq!(
        connector.pooled_connections(),
        0,
        "the GOAWAY'd connection is not reused"
    );
}

/// Checklist 15: a dial that times out says so, with ztunnel's NetworkPolicy hint.
#[tokio::test]
async fn dial_timeout_is_reported_distinctly() {
    let mesh = Mesh::new();
    // A listener whose accept queue is full drops further SYNs, so connects hang.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let config = HboneConnectorConfig {
        connect_timeout: Duration::from_millis(300),
        ..HboneConnectorConfig::default()
    };
    let error = mesh
        .connector_with(config)
        .open(&mesh.target(address, "10.0.0.1:80", &[SERVER]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HboneClientError::ConnectTimeout { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("maybe a NetworkPolicy is blocking HBONE port 15008")
    );
}

/// Checklist 16: double HBONE. The outer tunnel reaches a gateway with a host-name authority;
/// the gateway forwards the bytes opaquely to the destination's HBONE port; the inner TLS is
/// verified against the final service's identity and the inner CONNECT carries
/// x-forwarded-network; the inner connection is not pooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_hbone_through_a_gateway() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/eastwest";
    const SERVICE: &str = "spiffe://cluster.local/ns/remote/sa/remote";
    let destination = mesh
        .server(SERVICE, HboneServerConfig::default(), forward_to(upstream))
        .await;
    let gateway = mesh
        .server(
            GATEWAY,
            HboneServerConfig::default(),
            forward_to(destination.address),
        )
        .await;
    let connector = mesh.connector();
    let outer = mesh.target(
        gateway.address,
        "remote.remote.svc.cluster.local:8080",
        &[GATEWAY],
    );
    let mut inner = mesh.target(
        destination.address,
        "remote.remote.svc.cluster.local:8080",
        &[SERVICE],
    );
    inner
        .extra_headers
        .insert(X_FORWARDED_NETWORK, "network-a".parse().unwrap());
    let mut stream = connector.open_double(&outer, &inner).await.unwrap();
    stream.write_all(b"across networks").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stream).await, b"across networks");

    {
        let gateway_seen = gateway.seen.lock().unwrap();
        assert_eq!(
            gateway_seen[0].0.authority.to_string(),
            "remote.remote.svc.cluster.local:8080"
        );
        assert!(gateway_seen[0].0.headers.get(X_FORWARDED_NETWORK).is_none());
        let destination_seen = destination.seen.lock().unwrap();
        assert_eq!(
            destination_seen[0].0.peer_identity,
            Some(id(CLIENT)),
            "inner TLS identity is the real client"
        );
        assert_eq!(
            destination_seen[0]
                .0
                .headers
                .get(X_FORWARDED_NETWORK)
                .unwrap(),
            "network-a"
        );
        assert_eq!(
            connector.dialled_connections(),
            1,
            "only the outer connection is pooled"
        );
    }

    // The inner handshake checks the final service's identity, not the gateway's.
    let wrong_inner = mesh.target(
        destination.address,
        "remote.remote.svc.cluster.local:8080",
        &[GATEWAY],
    );
    let error = connector
        .open_double(&outer, &wrong_inner)
        .await
        .unwrap_err();
    assert!(error.is_tls(), "{error}");
}

/// Checklist 7: a raw HTTP/2 client (our TLS, no HBONE client) gets 400 for a method other than
/// CONNECT and for an authority without a port; the request never reaches the service.
#[tokio::test]
async fn malformed_requests_get_400() {
    let mesh = Mesh::new();
    let server = mesh
        .server(SERVER, HboneServerConfig::default(), |_| {
            panic!("not called")
        })
        .await;
    let config = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([0u8, 0, 0, 0]).into());
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let requests = [
        http::Request::builder()
            .method("GET")
            .uri("https://10.0.0.1:80/")
            .body(())
            .unwrap(),
        http::Request::builder()
            .method("CONNECT")
            .uri("no-port-here")
            .body(())
            .unwrap(),
        http::Request::builder()
            .method("CONNECT")
            .uri("bad_host!:80")
            .body(())
            .unwrap(),
    ];
    for request in requests {
        let description = format!("{} {}", request.method(), request.uri());
        let mut ready = send.clone().ready().await.unwrap();
        let (response, _body) = ready.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{description}");
    }
    assert!(
        server.seen.lock().unwrap().is_empty(),
        "refused before the service"
    );
}

/// Checklist 8: a 200 may carry the destination's `baggage`; the client exposes it.
#[tokio::test]
async fn response_baggage_reaches_the_client() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let server = mesh
        .server(SERVER, HboneServerConfig::default(), move |_| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "baggage",
                "k8s.namespace.name=remote,service.name=echo"
                    .parse()
                    .unwrap(),
            );
            ConnectDecision::Forward {
                upstream,
                proxy_header: None,
                response_headers: headers,
                close_when: None,
            }
        })
        .await;
    let stream = mesh.open(server.address).await;
    assert_eq!(
        stream.response_headers().get("baggage").unwrap(),
        "k8s.namespace.name=remote,service.name=echo"
    );
}
