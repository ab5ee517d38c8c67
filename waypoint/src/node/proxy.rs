//! The node proxy assembled (a ztunnel in dedicated mode): ztunnel's listeners over the
//! runtime's pieces — outbound capture (15001, `SO_ORIGINAL_DST`) and SOCKS5 (15080) through
//! [`Outbound`] to passthrough, TCP or HBONE; inbound HBONE (15008) through [`Inbound`] and
//! the HBONE server; inbound plaintext (15006); readiness (15021), metrics (15020) and admin
//! (15000, `/config_dump`). The configuration file is watched: a valid change is swapped
//! in, a bad one refused while the old state keeps serving.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hbone::bridge::{bridge, bridge_tunnel};
use hbone::client::{HboneConnector, HboneConnectorConfig, HboneTarget};
use hbone::connect_headers::Authority;
use hbone::identity::SpiffeId;
use hbone::metrics::{Reporter, TcpMetrics, TrafficLabels};
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer, HboneServerConfig};
use hbone::socket::connect_tcp;
use hbone::tls::{HboneTls, TlsConfigError, WorkloadCertificate};
use http::{Method, StatusCode};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};

use super::inbound::{Inbound, InboundConnect};
use super::live::LiveConnections;
use super::outbound::{ILLEGAL_PORTS, Outbound, OutboundRoute};
use super::snapshot::{LoadError, LocalConfigSource, NodeSnapshot, WorkloadSelector};
use crate::admin::{BindError, bind_listener, json, metrics_answer, serve_answers, text};
use crate::config::{LastReloadError, ReloadTicker};
use crate::gateway::GatewayEvents;
use crate::inbound::socks5::accept_socks5;

/// Where each listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddresses {
    /// Outbound capture (15001).
    pub outbound: SocketAddr,
    /// Inbound plaintext capture (15006).
    pub inbound_plaintext: SocketAddr,
    /// Inbound HBONE (15008).
    pub hbone: SocketAddr,
    /// SOCKS5 (15080 on loopback), if enabled.
    pub socks5: Option<SocketAddr>,
    /// Readiness, `/healthz/ready` (15021).
    pub readiness: SocketAddr,
    /// Prometheus, `/metrics` (15020).
    pub metrics: SocketAddr,
    /// Admin, `/config_dump` (15000 on loopback).
    pub admin: SocketAddr,
}

impl NodeAddresses {
    /// ztunnel's ports on `ip` (admin and SOCKS5 on loopback, SOCKS5 on).
    pub fn ztunnel(ip: IpAddr) -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        NodeAddresses {
            outbound: SocketAddr::new(ip, 15001),
            inbound_plaintext: SocketAddr::new(ip, 15006),
            hbone: SocketAddr::new(ip, 15008),
            socks5: Some(SocketAddr::new(loopback, 15080)),
            readiness: SocketAddr::new(ip, 15021),
            metrics: SocketAddr::new(ip, 15020),
            admin: SocketAddr::new(loopback, 15000),
        }
    }
}

/// How to run a node proxy.
pub struct NodeOptions {
    /// The local configuration.
    pub source: LocalConfigSource,
    /// The workload proxied for.
    pub workload: WorkloadSelector,
    /// Its certificate (presented inbound and outbound).
    pub certificate: Arc<WorkloadCertificate>,
    /// TLS settings (crypto provider, versions).
    pub tls: HboneTls,
    /// Listener addresses.
    pub addresses: NodeAddresses,
    /// The proxy's network (`NETWORK`, default `""`).
    pub network: String,
    /// The mark on the proxy's own outbound sockets (ztunnel: 0x539).
    pub mark: Option<u32>,
    /// How often the configuration file is checked.
    pub reload_interval: Duration,
    /// The embedder's registry; `istio_tcp_*` metrics are registered in it.
    pub registry: Registry,
}

/// Why the node proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The initial configuration is invalid.
    #[error("configuration rejected: {0}")]
    Config(#[from] LoadError),
    /// The certificate cannot make a TLS configuration.
    #[error("certificate: {0}")]
    Tls(#[from] TlsConfigError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// What every connection handler shares.
struct Node {
    snapshot: ArcSwap<NodeSnapshot>,
    network: String,
    certificate: Arc<WorkloadCertificate>,
    identity: Option<SpiffeId>,
    connector: HboneConnector,
    mark: Option<u32>,
    metrics: TcpMetrics,
    last_error: LastReloadError,
    live: LiveConnections,
}

/// How long a SOCKS5 client has for its handshake.
const SOCKS5_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to a plain upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the node proxy until `shutdown` resolves.
pub async fn run_node(
    options: NodeOptions,
    events: &dyn GatewayEvents,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let loaded = options.source.stamp();
    let config = options.source.load()?;
    let snapshot = NodeSnapshot::new(config, &options.workload, 1);
    if snapshot.local.is_none() {
        events.log("warning: the proxied workload is not in the configuration (yet)");
    }
    let mut registry = options.registry;
    let metrics = TcpMetrics::register(&mut registry);
    let server_tls = Arc::new(options.tls.server_config(&options.certificate)?);
    let identity = options.certificate.identity().ok();
    let connector = HboneConnector::with_config(
        options.tls.clone(),
        HboneConnectorConfig {
            mark: options.mark,
            ..HboneConnectorConfig::default()
        },
    );
    let node = Arc::new(Node {
        snapshot: ArcSwap::from_pointee(snapshot),
        network: options.network.clone(),
        certificate: Arc::clone(&options.certificate),
        identity: identity.clone(),
        connector,
        mark: options.mark,
        metrics: metrics.clone(),
        last_error: LastReloadError::default(),
        live: LiveConnections::default(),
    });
    let addresses = options.addresses;
    let bind = bind_listener;
    let outbound = bind("outbound", addresses.outbound).await?;
    let plaintext = bind("inbound plaintext", addresses.inbound_plaintext).await?;
    let hbone = bind("inbound HBONE", addresses.hbone).await?;
    let socks5 = match addresses.socks5 {
        Some(address) => Some(bind("SOCKS5", address).await?),
        None => None,
    };
    let readiness = bind("readiness", addresses.readiness).await?;
    let metrics_listener = bind("metrics", addresses.metrics).await?;
    let admin = bind("admin", addresses.admin).await?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(accept_outbound(Arc::clone(&node), outbound));
    tasks.spawn(accept_plaintext(Arc::clone(&node), plaintext));
    if let Some(socks5) = socks5 {
        tasks.spawn(accept_socks5_clients(Arc::clone(&node), socks5));
    }
    let (stop_hbone, hbone_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = HboneServer::new(server_tls, InboundDecider(Arc::clone(&node)))
        .with_config(HboneServerConfig {
            upstream_mark: options.mark,
            ..HboneServerConfig::default()
        })
        .with_metrics(metrics, identity);
    tasks.spawn(async move {
        let _ = server
            .serve(hbone, async {
                let _ = hbone_stopped.await;
            })
            .await;
    });
    let ready_node = Arc::clone(&node);
    tasks.spawn(serve_answers(readiness, move |request| {
        match (
            request.uri().path(),
            ready_node.snapshot.load().local.is_some(),
        ) {
            ("/healthz/ready", true) => text(StatusCode::OK, "ready\n".into()),
            ("/healthz/ready", false) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "local workload unknown\n".into(),
            ),
            _ => text(StatusCode::NOT_FOUND, "try /healthz/ready\n".into()),
        }
    }));
    let registry = Arc::new(registry);
    tasks.spawn(serve_answers(
        metrics_listener,
        move |request| match request.uri().path() {
            "/metrics" | "/stats/prometheus" => metrics_answer(&registry),
            _ => text(StatusCode::NOT_FOUND, "try /metrics\n".into()),
        },
    ));
    let admin_node = Arc::clone(&node);
    tasks.spawn(serve_answers(admin, move |request| {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        match request.uri().path() {
            "/config_dump" => config_dump(&admin_node),
            _ => text(StatusCode::NOT_FOUND, "try /config_dump\n".into()),
        }
    }));
    for (what, address) in [
        ("outbound", Some(addresses.outbound)),
        ("inbound plaintext", Some(addresses.inbound_plaintext)),
        ("inbound HBONE", Some(addresses.hbone)),
        ("SOCKS5", addresses.socks5),
        ("readiness", Some(addresses.readiness)),
        ("metrics", Some(addresses.metrics)),
        ("admin", Some(addresses.admin)),
    ] {
        if let Some(address) = address {
            events.log(&format!("{what} on {address}"));
        }
    }

    tokio::pin!(shutdown);
    let mut ticker = ReloadTicker::new(options.reload_interval, loaded);
    while ticker
        .settled_change(shutdown.as_mut(), || options.source.stamp())
        .await
    {
        reload(&node, &options.source, &options.workload, events);
    }
    let _ = stop_hbone.send(());
    tasks.abort_all();
    Ok(())
}

/// Loads the source again: a valid configuration replaces the state, an invalid one is
/// reported and the old state keeps serving.
fn reload(
    node: &Node,
    source: &LocalConfigSource,
    selector: &WorkloadSelector,
    events: &dyn GatewayEvents,
) {
    let generation = node.snapshot.load().generation + 1;
    match source.load() {
        Ok(config) => {
            let snapshot = NodeSnapshot::new(config, selector, generation);
            let applied = format!(
                "configuration {generation} applied: {} workloads, {} services, {} policies",
                snapshot.config.workloads.len(),
                snapshot.config.services.len(),
                snapshot.config.policies.len()
            );
            // Swapped in before it is announced: whoever reads the line sees the new state.
            let snapshot = Arc::new(snapshot);
            node.snapshot.store(Arc::clone(&snapshot));
            let closed = node.live.recheck(&snapshot);
            events.log(&applied);
            if closed > 0 {
                events.log(&format!(
                    "{closed} open connections are no longer allowed and were closed"
                ));
            }
            node.last_error.record(None);
        }
        Err(error) => {
            events.log(&format!(
                "configuration refused, keeping the current one: {error}"
            ));
            node.last_error.record(Some(error.to_string()));
        }
    }
}

fn config_dump(node: &Node) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let snapshot = node.snapshot.load();
    json(&serde_json::json!({
        "generation": snapshot.generation,
        "localWorkload": snapshot.local.as_deref(),
        "identity": node.identity.as_ref().map(ToString::to_string),
        "lastReloadError": node.last_error.get(),
        "staticConfig": snapshot.config,
    }))
}

/// The original destination of a redirected connection (`SO_ORIGINAL_DST`).
fn original_destination(stream: &TcpStream) -> std::io::Result<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let address = if stream.local_addr()?.is_ipv4() {
        socket.original_dst_v4()?
    } else {
        socket.original_dst_v6()?
    };
    address
        .as_socket()
        .ok_or_else(|| std::io::ErrorKind::InvalidData.into())
}

async fn accept_loop<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream, peer));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn accept_outbound(node: Arc<Node>, listener: TcpListener) {
    accept_loop(listener, move |stream, _| {
        let node = Arc::clone(&node);
        async move {
            if let Ok(destination) = original_destination(&stream) {
                proxy_outbound(&node, stream, destination).await;
            }
        }
    })
    .await;
}

async fn accept_socks5_clients(node: Arc<Node>, listener: TcpListener) {
    accept_loop(listener, move |mut stream, _| {
        let node = Arc::clone(&node);
        async move {
            let resolve = |name: &str| resolve_host(&node, name);
            if let Ok(destination) = accept_socks5(&mut stream, SOCKS5_TIMEOUT, resolve).await {
                proxy_outbound(&node, stream, destination).await;
            }
        }
    })
    .await;
}

/// A SOCKS5 domain name: an IP literal, or a service host name → its VIP in the proxy's
/// network (IPv4 preferred), as the DNS proxy would answer.
fn resolve_host(node: &Node, name: &str) -> Option<IpAddr> {
    if let Ok(ip) = name.parse() {
        return Some(ip);
    }
    let snapshot = node.snapshot.load();
    let namespace = snapshot.local.as_ref().map_or("", |w| w.namespace.as_str());
    let service = snapshot.state.service_by_hostname(name, namespace)?;
    let vips = || {
        service
            .service
            .vips
            .iter()
            .filter(|v| v.network == node.network)
    };
    vips()
        .find(|v| v.ip.is_ipv4())
        .or_else(|| vips().next())
        .map(|v| v.ip)
}

/// Carries one outbound connection of the proxied workload to `destination`.
async fn proxy_outbound(node: &Node, mut client: TcpStream, destination: SocketAddr) {
    let snapshot = node.snapshot.load_full();
    let Some(local) = snapshot.local.as_deref() else {
        return;
    };
    let outbound = Outbound {
        state: &snapshot.state,
        source: local,
        network: &node.network,
        illegal_ports: &ILLEGAL_PORTS,
    };
    let mut choose = |total: u64| rand::random::<u64>() % total.max(1);
    let Ok(route) = outbound.resolve(destination, &mut choose) else {
        return;
    };
    match route {
        OutboundRoute::Passthrough(address) | OutboundRoute::Tcp(address) => {
            let connect = connect_tcp(address, node.mark);
            if let Ok(Ok(mut upstream)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                let _ = bridge(&mut client, &mut upstream).await;
            }
        }
        OutboundRoute::Hbone(route) => {
            let expected: Vec<SpiffeId> = route
                .expected_identities
                .iter()
                .filter_map(|id| id.parse().ok())
                .collect();
            let labels =
                TrafficLabels::new(Reporter::source, node.identity.as_ref(), expected.first());
            let Ok(target) = HboneTarget::new(
                route.next_hop,
                Authority::Socket(route.authority),
                expected,
                Arc::clone(&node.certificate),
            ) else {
                return;
            };
            match node.connector.open(&target).await {
                Ok(mut tunnel) => {
                    node.metrics.opened(&labels);
                    let (received, sent) = bridge_tunnel(&mut tunnel, &mut client)
                        .await
                        .unwrap_or_default();
                    node.metrics.closed(&labels, received, sent);
                }
                Err(_) => node.metrics.failed(&labels),
            }
        }
    }
}

async fn accept_plaintext(node: Arc<Node>, listener: TcpListener) {
    accept_loop(listener, move |mut client, peer| {
        let node = Arc::clone(&node);
        async move {
            let Ok(destination) = original_destination(&client) else {
                return;
            };
            let snapshot = node.snapshot.load_full();
            let Some(local) = snapshot.local.as_deref() else {
                return;
            };
            let inbound = Inbound {
                state: &snapshot.state,
                local,
                network: &node.network,
                illegal_ports: &ILLEGAL_PORTS,
                localhost_app_tunnel: true,
            };
            let Ok(upstream) = inbound.plaintext(peer, destination) else {
                return; // denied: closed
            };
            let live = node.live.track(peer.ip(), destination, None);
            let connect = connect_tcp(upstream, node.mark);
            if let Ok(Ok(mut upstream)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                tokio::select! {
                    _ = bridge(&mut client, &mut upstream) => {}
                    () = live.closed() => {}
                }
            }
        }
    })
    .await;
}

/// Decides each inbound CONNECT with [`Inbound::hbone`].
#[derive(Clone)]
struct InboundDecider(Arc<Node>);

impl tower::Service<ConnectRequest> for InboundDecider {
    type Response = ConnectDecision;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<ConnectDecision, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        let node = &self.0;
        let snapshot = node.snapshot.load_full();
        let decision = match snapshot.local.as_deref() {
            None => ConnectDecision::Reject(StatusCode::SERVICE_UNAVAILABLE),
            Some(local) => {
                let inbound = Inbound {
                    state: &snapshot.state,
                    local,
                    network: &node.network,
                    illegal_ports: &ILLEGAL_PORTS,
                    localhost_app_tunnel: true,
                };
                let connect = InboundConnect {
                    authority: &request.authority,
                    dialled: request.local_address,
                    peer: request.peer_address,
                    identity: request.peer_identity.as_ref(),
                };
                match inbound.hbone(&connect) {
                    Ok(route) => {
                        let live = node.live.track(
                            request.peer_address.ip(),
                            SocketAddr::new(request.local_address.ip(), route.upstream.port()),
                            request.peer_identity.clone(),
                        );
                        ConnectDecision::Forward {
                            upstream: route.upstream,
                            proxy_header: route.proxy_header.map(Box::new),
                            response_headers: http::HeaderMap::new(),
                            close_when: Some(Box::pin(live.closed())),
                        }
                    }
                    Err(error) => ConnectDecision::Reject(error.status()),
                }
            }
        };
        Box::pin(async move { Ok(decision) })
    }
}
