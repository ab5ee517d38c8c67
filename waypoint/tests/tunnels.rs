//! The runtime's HBONE and PROXY pieces over real sockets and real mTLS: HTTP served inside
//! HBONE tunnels with the tunnel's peer in each request, the forwarder reaching endpoints
//! through HBONE tunnels (and refusing a peer with the wrong identity), and HTTP after a
//! PROXY v2 header carrying Istio's peer identity TLV.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hbone::client::{HboneConnector, HboneTarget};
use hbone::dev_ca::DevCa;
use hbone::identity::SpiffeId;
use hbone::peer::Peer;
use hbone::proxy_protocol::{AcceptorConfig, ProxyHeader, write_proxy_header};
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer};
use hbone::tls::{HboneTls, WorkloadCertificate};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use routing::compiled::{Backend, BackendProtocol, Endpoint};
use routing::model::ObjectKey;
use routing::router::{SelectedBackend, UpstreamErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use waypoint::inbound::{HttpInTunnels, HttpLimits, serve_proxied_http};
use waypoint::outbound::{Forwarder, ForwarderLimits, HboneConnect, ResponseBody};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Mesh {
    ca: DevCa,
    tls: HboneTls,
}

impl Mesh {
    fn new() -> Self {
        Mesh {
            ca: DevCa::new("cluster.local").unwrap(),
            tls: HboneTls::new(ring()),
        }
    }

    fn workload(&self, identity: &str) -> WorkloadCertificate {
        self.ca.issue(&id(identity)).unwrap().workload
    }

    /// An HBONE server on loopback deciding each CONNECT with `service`.
    async fn serve<S>(&self, service: S) -> SocketAddr
    where
        S: tower::Service<ConnectRequest, Response = ConnectDecision, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let config = self.tls.server_config(&self.workload(SERVER)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = HboneServer::new(Arc::new(config), service);
        tokio::spawn(server.serve(listener, std::future::pending()));
        address
    }
}

/// Answers every request with what its `Peer` says.
fn describe_peer() -> impl tower::Service<
    Request<ResponseBody>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<ResponseBody>| async move {
        let text = match request.extensions().get::<Peer>() {
            Some(peer) => format!(
                "{:?} from {} to {:?} as {:?}",
                peer.transport,
                peer.address,
                peer.destination,
                peer.identity.as_ref().map(ToString::to_string)
            ),
            None => "no peer".to_owned(),
        };
        let body = Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed();
        Ok::<_, Infallible>(Response::new(body))
    })
}

/// Sends one HTTP/1.1 request with `connection: close` on `io` and returns the response.
async fn get_over<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: IO) -> String {
    io.write_all(b"GET /who HTTP/1.1\r\nhost: svc.example\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), io.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test]
async fn http_inside_hbone_tunnels_carries_the_tunnels_peer() {
    let mesh = Mesh::new();
    let server = mesh.serve(HttpInTunnels::new(describe_peer())).await;
    let connector = HboneConnector::new(mesh.tls.clone());
    let mut target = HboneTarget::new(
        server,
        "10.0.0.5:8080".parse().unwrap(),
        vec![id(SERVER)],
        Arc::new(mesh.workload(CLIENT)),
    )
    .unwrap();
    target.client = Some("10.1.2.3:4444".parse().unwrap());
    let stream = connector.open(&target).await.unwrap();
    let answer = get_over(stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&format!(
            "Hbone from 10.1.2.3:4444 to Some(10.0.0.5:8080) as Some(\"{CLIENT}\")"
        )),
        "{answer}"
    );
}

/// A plain HTTP/1.1 backend answering `backend says hi` on kept-alive connections.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\nbackend says hi";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

fn selected(endpoint: SocketAddr) -> SelectedBackend {
    SelectedBackend(Arc::new(Backend {
        service: ObjectKey::new("default", "svc"),
        port: 80,
        endpoints: vec![Endpoint {
            address: endpoint,
            pod: None,
            zone: None,
        }]
        .into(),
        protocol: BackendProtocol::Http1,
        tls: None,
        filters: Vec::new(),
        policy: Default::default(),
        cluster_address: None,
        names: None,
    }))
}

fn request_to(endpoint: SocketAddr) -> Request<ResponseBody> {
    let mut request = Request::get("http://svc.example/hello")
        .body(ResponseBody::default())
        .unwrap();
    request.extensions_mut().insert(selected(endpoint));
    request
}

#[tokio::test]
async fn the_forwarder_reaches_endpoints_through_hbone_tunnels_to_the_expected_identity() {
    let mesh = Mesh::new();
    let backend = backend().await;
    // The endpoint's "node proxy": forwards each tunnel to its authority.
    let tunnels = tower::service_fn(|request: ConnectRequest| async move {
        let hbone::connect_headers::Authority::Socket(target) = request.authority else {
            return Ok::<_, Infallible>(ConnectDecision::Reject(StatusCode::BAD_REQUEST));
        };
        Ok(ConnectDecision::forward(target))
    });
    let hbone_port = mesh.serve(tunnels).await.port();
    let certificate = Arc::new(mesh.workload(CLIENT));
    let forwarder_expecting = |identity: &'static str| {
        let connect = HboneConnect::new(
            HboneConnector::new(mesh.tls.clone()),
            Arc::clone(&certificate),
            move |_: SocketAddr| Some(vec![id(identity)]),
        )
        .unwrap()
        .with_port(hbone_port);
        Forwarder::with_connector(connect, ring(), ForwarderLimits::default())
    };

    let forwarder = forwarder_expecting(SERVER);
    for _ in 0..3 {
        let response = forwarder
            .clone()
            .oneshot(request_to(backend))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"backend says hi");
    }
    assert_eq!(
        forwarder.open_connections(backend),
        1,
        "the tunnelled HTTP/1.1 connection is pooled and reused"
    );

    let impostor = forwarder_expecting("spiffe://cluster.local/ns/default/sa/someone-else");
    let error = impostor.oneshot(request_to(backend)).await.unwrap_err();
    assert_eq!(error.kind(), UpstreamErrorKind::Tls, "{error}");
}

#[tokio::test]
async fn http_after_a_proxy_header_carries_its_source_and_identity() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(serve_proxied_http(
                stream,
                peer,
                describe_peer(),
                AcceptorConfig::default(),
                HttpLimits::default(),
                None,
            ));
        }
    });

    let mut sandwiched = TcpStream::connect(address).await.unwrap();
    let header = ProxyHeader::sandwich(
        "10.1.2.3:4444".parse().unwrap(),
        "10.0.0.5:8080".parse().unwrap(),
        Some(CLIENT),
    );
    write_proxy_header(&mut sandwiched, &header).await.unwrap();
    let answer = get_over(sandwiched).await;
    assert!(
        answer.ends_with(&format!(
            "Proxy from 10.1.2.3:4444 to Some(10.0.0.5:8080) as Some(\"{CLIENT}\")"
        )),
        "{answer}"
    );

    // No header: the connection is closed (or reset, the request unread) without an answer.
    let mut plain = TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"GET /who HTTP/1.1\r\nhost: svc.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .unwrap();
    match read {
        Ok(_) => assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer)),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
}
