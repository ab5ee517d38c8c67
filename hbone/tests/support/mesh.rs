//! A small in-process mesh for HBONE tests: a dev CA, TLS builders, servers and upstreams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;

use hbone::client::{HboneConnector, HboneConnectorConfig, HboneTarget};
use hbone::connect_headers::Authority;
use hbone::dev_ca::DevCa;
use hbone::h2_stream::H2Stream;
use hbone::identity::SpiffeId;
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer, HboneServerConfig};
use hbone::tls::{HboneTls, WorkloadCertificate};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
pub const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

pub fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

pub struct Mesh {
    pub ca: DevCa,
    pub tls: HboneTls,
}

/// What a test server saw: each CONNECT with the status it answered.
pub type Seen = Arc<Mutex<Vec<(ConnectRequest, StatusCode)>>>;

pub struct RunningServer {
    pub address: SocketAddr,
    pub seen: Seen,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Starts the graceful drain.
    pub fn shutdown(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

impl Mesh {
    pub fn new() -> Self {
        Mesh {
            ca: DevCa::new("cluster.local").unwrap(),
            tls: HboneTls::new(Arc::new(rustls::crypto::ring::default_provider())),
        }
    }

    pub fn workload(&self, identity: &str) -> Arc<WorkloadCertificate> {
        Arc::new(self.ca.issue(&id(identity)).unwrap().workload)
    }

    pub fn connector(&self) -> HboneConnector {
        HboneConnector::new(self.tls.clone())
    }

    pub fn connector_with(&self, config: HboneConnectorConfig) -> HboneConnector {
        HboneConnector::with_config(self.tls.clone(), config)
    }

    pub fn target(&self, next_hop: SocketAddr, authority: &str, expected: &[&str]) -> HboneTarget {
        HboneTarget::new(
            next_hop,
            authority.parse::<Authority>().unwrap(),
            expected.iter().map(|e| id(e)).collect(),
            self.workload(CLIENT),
        )
        .unwrap()
    }

    /// An HBONE server for `SERVER` that forwards every CONNECT to `upstream`.
    pub async fn forwarding_server(&self, upstream: SocketAddr) -> RunningServer {
        self.server(SERVER, HboneServerConfig::default(), move |_| {
            ConnectDecision::forward(upstream)
        })
        .await
    }

    /// A tunnel from `CLIENT` through a fresh connector to the server at `address`, which must
    /// present `SERVER`, with authority `10.0.0.1:80`.
    pub async fn open(&self, address: SocketAddr) -> H2Stream {
        self.connector()
            .open(&self.target(address, "10.0.0.1:80", &[SERVER]))
            .await
            .unwrap()
    }

    /// An HBONE server for `identity` whose decisions come from `decide`.
    pub async fn server<F>(
        &self,
        identity: &str,
        config: HboneServerConfig,
        decide: F,
    ) -> RunningServer
    where
        F: Fn(&ConnectRequest) -> ConnectDecision + Clone + Send + Sync + 'static,
    {
        let tls = Arc::new(self.tls.server_config(&self.workload(identity)).unwrap());
        let seen: Seen = Arc::default();
        let recorder = seen.clone();
        let service = tower::service_fn(move |request: ConnectRequest| {
            let decide = decide.clone();
            async move { Ok::<_, std::convert::Infallible>(decide(&request)) }
        });
        let server = HboneServer::new(tls, service)
            .with_config(config)
            .with_observer(move |request, status| {
                recorder.lock().unwrap().push((request.clone(), status))
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = oneshot::channel();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = receiver.await;
        }));
        RunningServer {
            address,
            seen,
            shutdown: Some(sender),
            task,
        }
    }
}

/// A TCP upstream that hands its first connection to `handle`; returns its address and the
/// handler's task.
pub async fn one_shot_upstream<F, Fut, T>(handle: F) -> (SocketAddr, tokio::task::JoinHandle<T>)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        handle(tcp).await
    });
    (address, task)
}

/// A TCP upstream that echoes everything back and half-closes after the client's EOF.
pub async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    address
}

/// Reads everything until EOF.
pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}
