//! Certificate rotation, the sandwich PROXY v2 path and keepalive (hbone spec §1.2, §1.4,
//! §4.1, §5.2; checklist items 13, 17).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use hbone::h2_settings::H2Settings;
use hbone::proxy_protocol::{AcceptorConfig, ProxyHeader, read_proxy_header};
use hbone::server::{
    ConnectDecision, ConnectRequest, HboneServer, HboneServerConfig, ServeConnectionError,
};
use hbone::tls::PemFiles;
use http::HeaderMap;
use support::mesh::{CLIENT, Mesh, SERVER, id, read_all};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const ROTATED: &str = "spiffe://cluster.local/ns/default/sa/server-v2";

fn write_pem(mesh: &Mesh, dir: &std::path::Path, identity: &str) -> PemFiles {
    let issued = mesh.ca.issue(&id(identity)).unwrap();
    let files = PemFiles {
        chain: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        roots: dir.join("ca.pem"),
    };
    std::fs::write(&files.key, &issued.key_pem).unwrap();
    std::fs::write(&files.roots, mesh.ca.root_pem()).unwrap();
    std::fs::write(&files.chain, &issued.certificate_pem).unwrap();
    files
}

#[tokio::test]
async fn pem_files_are_reloaded_when_they_change() {
    let mesh = Mesh::new();
    let dir = support::scratch_dir("reload");
    let files = write_pem(&mesh, &dir, SERVER);
    let mut current = files.clone().watch(Duration::from_millis(20)).unwrap();
    assert_eq!(current.borrow().identity().unwrap(), id(SERVER));

    // A half-written file does not replace the good certificate.
    std::fs::write(&files.chain, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    let unchanged = tokio::time::timeout(Duration::from_millis(200), current.changed()).await;
    assert!(unchanged.is_err(), "a broken file is not published");
    assert_eq!(current.borrow().identity().unwrap(), id(SERVER));

    tokio::time::sleep(Duration::from_millis(20)).await;
    write_pem(&mesh, &dir, ROTATED);
    tokio::time::timeout(Duration::from_secs(2), current.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.borrow_and_update().identity().unwrap(), id(ROTATED));
}

#[tokio::test]
async fn a_server_rotates_its_certificate_for_new_connections() {
    let mesh = Mesh::new();
    let first = Arc::new(mesh.tls.server_config(&mesh.workload(SERVER)).unwrap());
    let (updates, receiver) = tokio::sync::watch::channel(first.clone());
    let service = tower::service_fn(|_: ConnectRequest| async {
        Ok::<_, std::convert::Infallible>(ConnectDecision::serve(|_stream| async {}))
    });
    let server = HboneServer::new(first, service).with_tls_updates(receiver);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));

    assert!(
        mesh.connector()
            .open(&mesh.target(address, "10.0.0.1:80", &[SERVER]))
            .await
            .is_ok()
    );
    updates
        .send(Arc::new(
            mesh.tls.server_config(&mesh.workload(ROTATED)).unwrap(),
        ))
        .unwrap();
    let old = mesh
        .connector()
        .open(&mesh.target(address, "10.0.0.1:80", &[SERVER]))
        .await;
    assert!(
        old.unwrap_err().is_tls(),
        "new connections present the rotated certificate"
    );
    assert!(
        mesh.connector()
            .open(&mesh.target(address, "10.0.0.1:80", &[ROTATED]))
            .await
            .is_ok()
    );
}

/// The sandwich: the server answers 200, then writes PROXY v2 (source = the HBONE peer,
/// destination = the authority, TLV 0xD0 = the client's SPIFFE ID) to the upstream before the
/// first tunnelled byte.
#[tokio::test]
async fn forward_writes_the_sandwich_proxy_header_before_the_payload() {
    let mesh = Mesh::new();
    let sandwiched = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandwiched_address = sandwiched.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (mut tcp, _) = sandwiched.accept().await.unwrap();
        let header = read_proxy_header(&mut tcp, &AcceptorConfig::default())
            .await
            .unwrap();
        let payload = read_all(&mut tcp).await;
        (header, payload)
    });
    let server = mesh
        .server(
            SERVER,
            HboneServerConfig::default(),
            move |request: &ConnectRequest| {
                let hbone::connect_headers::Authority::Socket(destination) = request.authority
                else {
                    panic!("IP authority expected");
                };
                let identity = request.peer_identity.as_ref().map(|id| id.as_str());
                let header = ProxyHeader::sandwich(request.peer_address, destination, identity);
                ConnectDecision::Forward {
                    upstream: sandwiched_address,
                    proxy_header: Some(Box::new(header)),
                    response_headers: HeaderMap::new(),
                    close_when: None,
                }
            },
        )
        .await;
    let mut stream = mesh
        .connector()
        .open(&mesh.target(server.address, "10.10.0.1:80", &[SERVER]))
        .await
        .unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    let (header, payload) = received.await.unwrap();
    assert_eq!(header.peer_identity(), Some(CLIENT));
    assert_eq!(
        header.addresses.destination(),
        Some("10.10.0.1:80".parse().unwrap())
    );
    assert_eq!(
        header.addresses.source().unwrap().ip(),
        std::net::IpAddr::from([127, 0, 0, 1])
    );
    assert_eq!(payload, b"GET / HTTP/1.1\r\n\r\n");
}

/// Checklist 13: a peer that stops answering PINGs is cut off after the timeout.
#[tokio::test]
async fn unanswered_pings_tear_the_connection_down() {
    let mesh = Mesh::new();
    let tls = Arc::new(mesh.tls.server_config(&mesh.workload(SERVER)).unwrap());
    let service = tower::service_fn(|_: ConnectRequest| async {
        Ok::<_, std::convert::Infallible>(ConnectDecision::serve(|_stream| async {}))
    });
    let config = HboneServerConfig {
        h2: H2Settings {
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(200),
            ..H2Settings::server()
        },
        ..HboneServerConfig::default()
    };
    let server = HboneServer::new(tls, service).with_config(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();

    // A client that completes TLS and the HTTP/2 handshake, then never reads again: it cannot
    // answer PINGs.
    let client_config = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
        .unwrap();
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(address).await.unwrap();
        let name =
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([0u8, 0, 0, 0]).into());
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client_config))
            .connect(name, tcp)
            .await
            .unwrap();
        let (_send, connection) = h2::client::handshake(tls).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(connection);
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let (_drain, drain) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let outcome =
        tokio::time::timeout(Duration::from_secs(3), server.serve_connection(tcp, drain)).await;
    assert!(
        matches!(outcome, Ok(Err(ServeConnectionError::KeepaliveTimeout))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "interval + timeout, not the default 30 s"
    );
    client.abort();
}
