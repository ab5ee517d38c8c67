//! Sockets: one per address, port and transport, shared by the listeners (of any Gateway)
//! bound there. HTTP sockets serve HTTP/1.1 and h2c; HTTPS sockets terminate TLS (certificate
//! by SNI, ALPN h2 and http/1.1) first; TLS sockets pass connections through by SNI; TCP and
//! UDP sockets forward to their route's backends. Each request goes through
//! [`GatewayRequestPath`] over the socket's current [`ListenerSet`], which a reload swaps
//! without touching connections in flight.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue, Request, Response};
use mesh_policy::istio::{IstioAuthorization, IstioFromListener};
use mesh_policy::security::SecurityPolicyService;
use mesh_policy::traffic::AttachedBackendTraffic;
use mesh_policy::traffic::client_hello::ClientHello;
use mesh_policy::traffic::layer::traffic_of;
use mesh_policy::traffic::tls_fingerprint::TlsFingerprints;
use mesh_policy::traffic::xfcc::ClientCertDetails;
use mesh_policy::traffic::{
    BackendTrafficFromRoute, ClientTrafficFromListener, FaultFromRoute, GlobalRateLimitFromRoute,
    HealthCheckFailing, LateResponseHeaders, OverrideResponses, RequestBufferFromRoute,
};
use routing::compiled::{
    Backend, CompiledGateway, CompiledListener, ListenerProtocol, ListenerRoutes,
};
use routing::router::{
    Dispatch, ListenerSet, MatchedRouteSlot, RuleFilters, SelectRoute, TlsServerName,
};
use rustls::crypto::CryptoProvider;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;
use tower::ServiceExt;
use tower::util::MapResponse;

use hbone::peer::{Peer, PeerTransport};

use super::admission::{Admission, OpenConnection, close_refused};
use super::bandwidth::BandwidthFromRoute;
use super::client_cert::client_cert_details;
use super::compression::CompressFromRoute;
use super::http::serve_http;
use super::proxy::accept_proxy_header;
use super::quic::{bind_quic, quic_accept_loop, quic_server_config};
use super::recording::RecordingStream;
use super::streams::{passthrough, tcp};
use super::tls::{SniConfigs, Terminators, TlsSetupError, server_configs, terminators};
use super::tunnels::wait_for_true;
use super::udp::udp_loop;
use crate::metrics::GatewayMetrics;
use crate::outbound::{Forwarder, ResponseBody, TcpConnect, UnixSockets, full_body};
use crate::respond::{PolicyRefusal, Respond, with_local_reply_body};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What applying a configuration to the sockets left unserved; everything else is served.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Listeners (`gateway/listener`) skipped for sharing a socket with another protocol.
    pub skipped: Vec<String>,
    /// Sockets that could not be served, with their listeners and why.
    pub unavailable: Vec<UnavailableSocket>,
}

/// A socket that could not be bound, or whose certificates could not be loaded.
#[derive(Debug)]
pub struct UnavailableSocket {
    /// The socket.
    pub key: SocketKey,
    /// Its listeners as `(gateway, listener name)`.
    pub listeners: Vec<(routing::model::ObjectKey, String)>,
    /// Why.
    pub reason: String,
}

impl ApplyReport {
    /// Whether every listener is served.
    pub fn complete(&self) -> bool {
        self.skipped.is_empty() && self.unavailable.is_empty()
    }
}

/// Where a socket listens: an address and port, over TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKey {
    /// Address and port.
    pub address: SocketAddr,
    /// UDP (true) or TCP.
    pub udp: bool,
}

/// The listeners of every Gateway grouped by the socket they share. On one socket, the
/// protocol of the first listener wins; listeners of another protocol are returned as skipped
/// (`gateway/listener` names).
pub fn group_listeners(
    gateways: &[CompiledGateway],
) -> (HashMap<SocketKey, Vec<CompiledListener>>, Vec<String>) {
    let mut groups: HashMap<SocketKey, Vec<CompiledListener>> = HashMap::new();
    let mut skipped = Vec::new();
    for gateway in gateways {
        let all_interfaces = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        let addresses: &[IpAddr] = if gateway.addresses.is_empty() {
            &all_interfaces
        } else {
            &gateway.addresses
        };
        for listener in &gateway.listeners {
            for ip in addresses {
                let key = SocketKey {
                    address: SocketAddr::new(*ip, listener.port),
                    udp: listener.protocol == ListenerProtocol::Udp,
                };
                let group = groups.entry(key).or_default();
                match group.first() {
                    Some(first) if first.protocol != listener.protocol => {
                        skipped.push(format!("{}/{}", listener.gateway, listener.name));
                    }
                    _ => group.push(listener.clone()),
                }
            }
        }
    }
    add_http3_groups(&mut groups);
    (groups, skipped)
}

/// The UDP socket of each HTTPS port where a listener's ClientTrafficPolicy enables HTTP/3,
/// with all the port's HTTPS listeners (so that a ClientHello naming one without HTTP/3 is
/// refused rather than served by another's settings) — unless a UDP listener holds that
/// port, which then keeps it (the HTTPS listeners are still served over TCP).
fn add_http3_groups(groups: &mut HashMap<SocketKey, Vec<CompiledListener>>) {
    let http3: Vec<(SocketKey, Vec<CompiledListener>)> = groups
        .iter()
        .filter(|(key, listeners)| {
            !key.udp
                && listeners.iter().any(|listener| {
                    listener.protocol == ListenerProtocol::Https && serves_http3(listener)
                })
        })
        .map(|(key, listeners)| {
            let key = SocketKey {
                address: key.address,
                udp: true,
            };
            (key, listeners.clone())
        })
        .collect();
    for (key, listeners) in http3 {
        groups.entry(key).or_insert(listeners);
    }
}

/// Whether the listener's ClientTrafficPolicy enables HTTP/3.
fn serves_http3(listener: &CompiledListener) -> bool {
    listener
        .policy
        .get::<mesh_policy::traffic::AttachedClientTraffic>()
        .is_some_and(|attached| attached.0.http3)
}

/// What one socket serves now.
pub(super) struct SocketState {
    protocol: ListenerProtocol,
    listeners: Arc<ListenerSet>,
    /// The HTTPS listeners' TLS configurations, chosen by SNI.
    pub(super) tls: Option<Arc<SniConfigs>>,
    /// HTTP/3 sockets: the QUIC configuration over `tls`.
    quic: Option<quinn::ServerConfig>,
    /// Acceptors of the TLS listeners in Terminate mode.
    terminators: Arc<Terminators>,
    /// The request path over `listeners`, built once per configuration (a request clones it).
    router: AnsweredRequestPath,
    /// How connections are admitted (the listeners' ClientTrafficPolicies).
    pub(super) admission: Admission,
    /// Whether a rule of the listeners is counted under a `routeStatName`.
    route_stats: bool,
}

/// The bound sockets.
pub struct Sockets {
    bound: HashMap<SocketKey, BoundSocket>,
    forwarder: Forwarder,
    metrics: Arc<GatewayMetrics>,
    crypto: Arc<CryptoProvider>,
    /// Flips to true to ask every connection to finish gracefully.
    draining: watch::Sender<bool>,
    /// True once the gateway fails its health checks ahead of draining.
    failing: Arc<AtomicBool>,
    denial_log: Option<DenialLog>,
}

/// Told one line per request a policy refused: method, host, path, status, the response
/// flag and the policy and rule that decided.
#[derive(Clone)]
pub struct DenialLog(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for DenialLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DenialLog")
    }
}

struct BoundSocket {
    state: Arc<ArcSwap<SocketState>>,
    accept_loop: JoinHandle<()>,
    /// An HTTP/3 socket's QUIC endpoint (its configuration replaced on reload).
    quic: Option<quinn::Endpoint>,
}

impl Sockets {
    /// No sockets yet; HTTPS listeners use `crypto`.
    pub fn new(metrics: Arc<GatewayMetrics>, crypto: Arc<CryptoProvider>) -> Self {
        Sockets::with_unix_sockets(metrics, crypto, UnixSockets::default())
    }

    /// [`Sockets::new`], the forwarder opening the Unix sockets `unix` knows for their
    /// stand-in addresses (Envoy Gateway `Backend` `unix` endpoints; the caller keeps `unix`
    /// in step with the configuration it applies).
    pub fn with_unix_sockets(
        metrics: Arc<GatewayMetrics>,
        crypto: Arc<CryptoProvider>,
        unix: UnixSockets,
    ) -> Self {
        let limits = crate::outbound::ForwarderLimits::default();
        let connector = TcpConnect::new(limits.pool.connect_timeout).with_unix_sockets(unix);
        Sockets {
            bound: HashMap::new(),
            forwarder: Forwarder::with_connector(connector, Arc::clone(&crypto), limits),
            metrics,
            crypto,
            draining: watch::channel(false).0,
            failing: Arc::new(AtomicBool::new(false)),
            denial_log: None,
        }
    }

    /// Starts failing health checks ahead of draining, as Envoy does once its health check
    /// fails: listeners' ClientTrafficPolicy `healthCheck.path` answers 503 and every HTTP/1
    /// response closes its connection, while the sockets keep accepting (so that load
    /// balancers notice before the gateway stops).
    pub fn fail_health_checks(&self) {
        self.failing.store(true, Ordering::Release);
    }

    /// Reports every request a policy refuses to `log` (sockets bound from now on).
    pub fn log_denials(&mut self, log: DenialLog) {
        self.denial_log = Some(log);
    }

    /// Serves `gateways`: loads certificates and binds new addresses, swaps the state of kept
    /// sockets, and stops accepting on removed ones (their connections finish). A socket that
    /// cannot be bound or whose certificates do not load is reported and left out; the rest
    /// is served.
    pub async fn apply(&mut self, gateways: &[CompiledGateway]) -> ApplyReport {
        let (groups, skipped) = group_listeners(gateways);
        let mut report = ApplyReport {
            skipped,
            unavailable: Vec::new(),
        };
        let mut states = HashMap::new();
        let mut new_sockets = HashMap::new();
        for (key, listeners) in groups {
            let Some(protocol) = listeners.first().map(|l| l.protocol) else {
                continue;
            };
            let names = listeners
                .iter()
                .map(|l| (l.gateway.clone(), l.name.clone()))
                .collect();
            let listeners = Arc::new(ListenerSet::new(listeners));
            let prepared = server_configs(listeners.listeners(), &self.crypto)
                .and_then(|tls| Ok((tls, terminators(listeners.listeners(), &self.crypto)?)))
                .map_err(|error: TlsSetupError| error.to_string())
                .and_then(|(tls, terminators)| {
                    let quic = match (key.udp, protocol, &tls) {
                        (true, ListenerProtocol::Https, Some(tls)) => {
                            let streams = Admission::of(&listeners).http.h2_max_concurrent_streams;
                            Some(quic_server_config(tls, streams).map_err(|e| e.to_string())?)
                        }
                        _ => None,
                    };
                    if self.bound.contains_key(&key) {
                        return Ok((tls, terminators, quic, None));
                    }
                    let socket = bind(key, quic.as_ref())
                        .map_err(|e| format!("cannot bind {}: {e}", key.address))?;
                    Ok((tls, terminators, quic, Some(socket)))
                });
            match prepared {
                Ok((tls, terminators, quic, socket)) => {
                    if let Some(socket) = socket {
                        new_sockets.insert(key, socket);
                    }
                    let tls = tls.map(Arc::new);
                    let router = answered_request_path(&listeners, self.forwarder.clone());
                    let admission = Admission::of(&listeners);
                    let route_stats = counts_routes(&listeners);
                    states.insert(
                        key,
                        SocketState {
                            protocol,
                            listeners,
                            tls,
                            quic,
                            terminators: Arc::new(terminators),
                            router,
                            admission,
                            route_stats,
                        },
                    );
                }
                Err(reason) => report.unavailable.push(UnavailableSocket {
                    key,
                    listeners: names,
                    reason,
                }),
            }
        }
        self.bound.retain(|address, socket| {
            let keep = states.contains_key(address);
            if !keep {
                socket.stop_accepting();
            }
            keep
        });
        for (address, state) in states {
            if let Some(socket) = self.bound.get(&address) {
                if let (Some(endpoint), Some(config)) = (&socket.quic, &state.quic) {
                    endpoint.set_server_config(Some(config.clone()));
                }
                socket.state.store(Arc::new(state));
            } else if let Some(socket) = new_sockets.remove(&address) {
                let state = Arc::new(ArcSwap::from_pointee(state));
                let context = ConnectionContext {
                    state: Arc::clone(&state),
                    forwarder: self.forwarder.clone(),
                    metrics: Arc::clone(&self.metrics),
                    draining: self.draining.subscribe(),
                    failing: Arc::clone(&self.failing),
                    denial_log: self.denial_log.clone(),
                    open: Arc::new(AtomicU64::new(0)),
                    held: Arc::new(AtomicU64::new(0)),
                };
                let (accept_loop, quic) = match socket {
                    Bound::Tcp(tcp) => (tokio::spawn(accept_loop(tcp, context)), None),
                    Bound::Udp(udp) => (
                        tokio::spawn(udp_socket_loop(
                            udp,
                            Arc::clone(&state),
                            self.forwarder.clone(),
                        )),
                        None,
                    ),
                    Bound::Quic(endpoint) => (
                        tokio::spawn(quic_accept_loop(endpoint.clone(), context)),
                        Some(endpoint),
                    ),
                };
                self.bound.insert(
                    address,
                    BoundSocket {
                        state,
                        accept_loop,
                        quic,
                    },
                );
            }
        }
        self.forwarder.retain_endpoints(&live_endpoints(gateways));
        report
    }

    /// The bound sockets.
    pub fn addresses(&self) -> Vec<SocketKey> {
        self.bound.keys().copied().collect()
    }

    /// Stops accepting and asks every connection to finish its requests and close.
    pub fn drain(&mut self) {
        for (_, socket) in self.bound.drain() {
            socket.stop_accepting();
        }
        let _ = self.draining.send(true);
    }
}

impl BoundSocket {
    /// Stops accepting connections; those open finish.
    fn stop_accepting(&self) {
        self.accept_loop.abort();
        if let Some(endpoint) = &self.quic {
            // New QUIC connections are refused from now on.
            endpoint.set_server_config(None);
        }
    }
}

/// A freshly bound socket.
enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
    Quic(quinn::Endpoint),
}

/// A listening socket with SO_REUSEADDR, so that a restarted gateway can bind at once; with
/// `quic`, a UDP socket serving HTTP/3.
fn bind(key: SocketKey, quic: Option<&quinn::ServerConfig>) -> io::Result<Bound> {
    if let Some(config) = quic {
        return bind_quic(key.address, config.clone()).map(Bound::Quic);
    }
    if key.udp {
        let socket = std::net::UdpSocket::bind(key.address)?;
        socket.set_nonblocking(true)?;
        return Ok(Bound::Udp(UdpSocket::from_std(socket)?));
    }
    let socket = match key.address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    // Lets a Gateway bound to a specific address share a port with one bound to all
    // interfaces (the kernel prefers the specific one).
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(key.address)?;
    Ok(Bound::Tcp(socket.listen(1024)?))
}

/// Serves a UDP socket with the listener set current at each new session.
async fn udp_socket_loop(
    socket: UdpSocket,
    state: Arc<ArcSwap<SocketState>>,
    forwarder: Forwarder,
) {
    let current = move || Arc::clone(&state.load().listeners);
    udp_loop(socket, current, forwarder.endpoints()).await;
}

/// Everything a connection needs.
#[derive(Clone)]
pub(super) struct ConnectionContext {
    pub(super) state: Arc<ArcSwap<SocketState>>,
    forwarder: Forwarder,
    pub(super) metrics: Arc<GatewayMetrics>,
    pub(super) draining: watch::Receiver<bool>,
    /// True while the gateway fails its health checks ahead of draining.
    failing: Arc<AtomicBool>,
    denial_log: Option<DenialLog>,
    /// Connections open on this socket (across reloads).
    pub(super) open: Arc<AtomicU64>,
    /// Refused connections waiting out their close delay.
    held: Arc<AtomicU64>,
}

async fn accept_loop(tcp: TcpListener, context: ConnectionContext) {
    let mut batch = super::admission::AcceptBatch::default();
    loop {
        let Ok((stream, peer)) = tcp.accept().await else {
            // Out of file descriptors and similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let admission = context.state.load().admission;
        // Over the listener's limit: held for the close delay, then closed unanswered.
        if let Some(delay) = admission.refusal(&context.open) {
            close_refused(stream, delay, &context.held);
            continue;
        }
        admission.prepare(&stream);
        let counted = OpenConnection::count(&context.open);
        let limit = admission.accepts_in_a_row;
        let context = context.clone();
        tokio::spawn(async move {
            let _counted = counted;
            handle_connection(stream, peer, context).await;
        });
        // At most `maxAcceptPerSocketEvent` connections in a row before other work runs.
        if batch.took_one(limit) {
            tokio::task::yield_now().await;
        }
    }
}

async fn handle_connection(mut stream: TcpStream, peer: SocketAddr, context: ConnectionContext) {
    context.metrics.connection_opened();
    let state = context.state.load_full();
    // The PROXY header's source is the client from here on; its TLVs (an Istio identity) are
    // not trusted at a gateway.
    let mut proxied = None;
    if let Some(mode) = state.admission.proxy_protocol {
        match accept_proxy_header(&mut stream, mode).await {
            Ok(header) => proxied = header.and_then(|h| h.addresses.source()),
            Err(_) => {
                context.metrics.connection_closed();
                return;
            }
        }
    }
    let client = proxied.unwrap_or(peer);
    match (state.protocol, state.tls.clone()) {
        (ListenerProtocol::Tls, _) => {
            let endpoints = context.forwarder.endpoints();
            let connector = context.forwarder.connector();
            let terminators = &state.terminators;
            let listeners = Arc::clone(&state.listeners);
            let idle = state.admission.tcp_idle_timeout;
            let peer = Peer::tcp(client, stream.local_addr().ok());
            passthrough(
                stream,
                peer,
                listeners,
                endpoints,
                connector,
                terminators,
                idle,
            )
            .await;
        }
        (ListenerProtocol::Tcp, _) => {
            let endpoints = context.forwarder.endpoints();
            let connector = context.forwarder.connector();
            let idle = state.admission.tcp_idle_timeout;
            let local = stream.local_addr().ok();
            tcp(
                stream,
                Peer::tcp(client, local),
                Arc::clone(&state.listeners),
                endpoints,
                connector,
                idle,
            )
            .await;
        }
        (_, None) => {
            let peer = Peer::tcp(client, stream.local_addr().ok());
            serve_http_routed(stream, peer, TlsFacts::default(), &context).await;
        }
        (_, Some(configs)) => {
            let mut peer = Peer::tcp(client, stream.local_addr().ok());
            peer.transport = PeerTransport::Tls;
            // The ClientHello is kept only when a policy fingerprints it.
            let kinds = state.admission.fingerprints;
            let stream = RecordingStream::new(stream, kinds.any());
            if let Ok(Ok((mut tls, uri_san))) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &configs)).await
            {
                let fingerprints = tls
                    .get_mut()
                    .0
                    .take_recorded()
                    .and_then(|hello| ClientHello::parse(&hello).ok())
                    .map(|hello| Arc::new(TlsFingerprints::of(&hello, kinds)));
                let connection = tls.get_ref().1;
                let server_name = connection.server_name().map(str::to_owned);
                // Described once per connection, for X-Forwarded-Client-Cert.
                let client_cert = state
                    .admission
                    .client_certificates
                    .then(|| connection.peer_certificates())
                    .flatten()
                    .and_then(|chain| client_cert_details(chain, uri_san))
                    .map(Arc::new);
                let facts = TlsFacts {
                    server_name,
                    client_cert,
                    fingerprints,
                };
                serve_http_routed(tls, peer, facts, &context).await;
            }
        }
    }
    context.metrics.connection_closed();
}

/// What a TLS connection's handshake tells each of its requests.
#[derive(Default)]
pub(super) struct TlsFacts {
    /// The SNI the client sent.
    pub(super) server_name: Option<String>,
    /// The client certificate, described for X-Forwarded-Client-Cert.
    pub(super) client_cert: Option<Arc<ClientCertDetails>>,
    /// JA3/JA4 of the ClientHello, when a policy asks for them.
    pub(super) fingerprints: Option<Arc<TlsFingerprints>>,
}

/// Completes a TLS handshake with the configuration of the listener the ClientHello's SNI
/// names; returns the stream and the URI SAN of the certificate presented.
async fn handshake(
    stream: RecordingStream<TcpStream>,
    configs: &SniConfigs,
) -> io::Result<(
    tokio_rustls::server::TlsStream<RecordingStream<TcpStream>>,
    Option<String>,
)> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let listener = configs
        .choose(start.client_hello().server_name())
        .ok_or_else(|| io::Error::other("no certificate for this server name"))?
        .clone();
    let stream = start.into_stream(listener.config).await?;
    Ok((stream, listener.uri_san))
}

/// The gateway's request path: the listener's ClientTrafficPolicy (client address, path and
/// header normalisation, health check), route selection, the rule's fault injection, the
/// Istio policies targeting the listener's Gateway, the SecurityPolicy covering the matched
/// rule or listener, the rule's BackendTrafficPolicy (local rate limit, circuit breaker,
/// request timeout, then the global rate limit, the request buffer, the bandwidth limit and
/// compression), the
/// rule's filters, then dispatch to the forwarder (whose endpoint the policy's balancer picks).
pub type GatewayRequestPath = ClientTrafficFromListener<
    SelectRoute<
        FaultFromRoute<
            IstioFromListener<
                IstioAuthorization<
                    SecurityPolicyService<
                        BackendTrafficFromRoute<
                            GlobalRateLimitFromRoute<
                                RequestBufferFromRoute<
                                    BandwidthFromRoute<
                                        CompressFromRoute<RuleFilters<Dispatch<Forwarder>>>,
                                    >,
                                >,
                            >,
                        >,
                    >,
                >,
            >,
        >,
    >,
>;

/// [`GatewayRequestPath`] over `listeners`, forwarding through `forwarder`.
pub fn gateway_request_path(
    listeners: Arc<ListenerSet>,
    forwarder: Forwarder,
) -> GatewayRequestPath {
    ClientTrafficFromListener::new(
        Arc::clone(&listeners),
        SelectRoute::new(
            listeners,
            FaultFromRoute::new(IstioFromListener::new(IstioAuthorization::new(
                SecurityPolicyService::new(BackendTrafficFromRoute::new(
                    GlobalRateLimitFromRoute::new(RequestBufferFromRoute::new(
                        BandwidthFromRoute::new(CompressFromRoute::new(RuleFilters::new(
                            Dispatch::new(forwarder),
                        ))),
                    )),
                )),
            ))),
        ),
    )
}

/// [`GatewayRequestPath`] with its errors answered ([`Respond`], local-reply bodies written),
/// the answers overridden by the matched rule's BackendTrafficPolicy `responseOverride`, and
/// the listener's ClientTrafficPolicy `lateResponseHeaders` edits made last.
pub type AnsweredRequestPath = LateResponseHeaders<
    OverrideResponses<
        MapResponse<
            Respond<GatewayRequestPath>,
            fn(Response<ResponseBody>) -> Response<ResponseBody>,
        >,
        ResponseBody,
    >,
>;

/// [`AnsweredRequestPath`] over `listeners`, forwarding through `forwarder`.
pub fn answered_request_path(
    listeners: &Arc<ListenerSet>,
    forwarder: Forwarder,
) -> AnsweredRequestPath {
    let respond = Respond::new(gateway_request_path(Arc::clone(listeners), forwarder));
    let with_bodies: fn(Response<ResponseBody>) -> Response<ResponseBody> = with_local_reply_body;
    let overridden = OverrideResponses::for_listeners(
        listeners,
        MapResponse::new(respond, with_bodies),
        full_body,
    );
    LateResponseHeaders::new(listeners, overridden)
}

/// Serves HTTP/1.1 or HTTP/2 (prior knowledge or ALPN) on one connection until it closes or
/// the gateway drains, each request through [`routed_service`].
async fn serve_http_routed<IO>(io: IO, peer: Peer, tls: TlsFacts, context: &ConnectionContext)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let https = tls.server_name.is_some() || context.state.load().tls.is_some();
    let service = routed_service(peer, tls, https, context);
    let mut draining = context.draining.clone();
    let drain = async move { wait_for_true(&mut draining).await };
    let limits = context.state.load().admission.http;
    serve_http(io, service, limits, drain).await;
}

/// What serves each request of one connection: the request tagged (SNI, [`Peer`], client
/// certificate, fingerprints, `x-forwarded-proto`) and routed through `Respond` →
/// [`GatewayRequestPath`] over the socket's current listeners → the forwarder; the answer
/// counted, and logged when a policy refused it.
pub(super) fn routed_service(
    peer: Peer,
    tls: TlsFacts,
    https: bool,
    context: &ConnectionContext,
) -> impl tower::Service<
    Request<ResponseBody>,
    Response = Response<ResponseBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<ResponseBody>, std::convert::Infallible>>
             + Send
             + 'static,
> + Clone
+ Send
+ 'static {
    let TlsFacts {
        server_name,
        client_cert,
        fingerprints,
    } = tls;
    let proto = if https {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    };
    let service_context = context.clone();
    tower::service_fn(move |mut request: Request<ResponseBody>| {
        request.extensions_mut().insert(peer.clone());
        if let Some(name) = &server_name {
            request.extensions_mut().insert(TlsServerName(name.clone()));
        }
        if let Some(details) = &client_cert {
            request.extensions_mut().insert(Arc::clone(details));
        }
        if let Some(prints) = &fingerprints {
            request.extensions_mut().insert(Arc::clone(prints));
        }
        // X-Forwarded-For is extended by client IP detection (ClientTrafficPolicy).
        request
            .headers_mut()
            .insert(X_FORWARDED_PROTO, proto.clone());
        // Ahead of draining: the health check fails and HTTP/1 connections close after
        // their answer.
        let closing = service_context.failing.load(Ordering::Acquire);
        let http1 = request.version() < http::Version::HTTP_2;
        if closing {
            request.extensions_mut().insert(HealthCheckFailing);
        }
        let state = service_context.state.load();
        let router = state.router.clone();
        // Rules with a `routeStatName` are counted: selection reports the rule in a slot.
        let route_slot = state.route_stats.then(|| {
            (
                MatchedRouteSlot::of(&mut request),
                tokio::time::Instant::now(),
            )
        });
        drop(state);
        let metrics = Arc::clone(&service_context.metrics);
        let denial_log = service_context.denial_log.clone();
        // What the denial line names, taken before the request moves (only when asked for).
        let described = denial_log.as_ref().map(|_| describe_request(&request));
        async move {
            // Local replies (401, 403) carry Envoy's text, as the mesh waypoint's do, unless
            // a response override replaced them.
            let mut response = router.oneshot(request).await;
            if let (true, true, Ok(response)) = (closing, http1, &mut response) {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Ok(response) = &response {
                metrics.request_served(response.status().as_u16());
                if let Some((slot, started)) = route_slot
                    && let Some(matched) = slot.get()
                    && let Some(name) = traffic_of(&matched).and_then(|t| t.stat_name.as_deref())
                {
                    metrics.route_answered(name, response.status().as_u16(), started.elapsed());
                }
                if let Some(refusal) = response.extensions().get::<PolicyRefusal>() {
                    metrics.policy_refused(refusal);
                    if let (Some(log), Some(described)) = (&denial_log, &described) {
                        (log.0)(&format!(
                            "denied: {described} → {} {refusal}",
                            response.status().as_u16(),
                        ));
                    }
                }
            }
            response
        }
    })
}

/// Whether a rule of `listeners` has a BackendTrafficPolicy `telemetry.metrics.routeStatName`.
fn counts_routes(listeners: &ListenerSet) -> bool {
    listeners
        .listeners()
        .iter()
        .any(|listener| match &listener.routes {
            ListenerRoutes::Http(table) => table.targets().any(|rule| {
                rule.policy
                    .get::<AttachedBackendTraffic>()
                    .is_some_and(|attached| {
                        attached.0.iter().any(|s| s.traffic.stat_name.is_some())
                    })
            }),
            _ => false,
        })
}

/// `METHOD host/path` of a request, for the denial log (non-printable bytes escaped), then the
/// TLS client's `ja3=`/`ja4=` fingerprints when its listener's policy computes them.
fn describe_request<B>(request: &Request<B>) -> String {
    let host = request
        .headers()
        .get(http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(ToString::to_string))
        .unwrap_or_default();
    let mut described = format!("{} {host}{}", request.method(), request.uri().path())
        .escape_debug()
        .to_string();
    // The TLS client's fingerprints, when the listener's policy computes them.
    if let Some(prints) = request.extensions().get::<Arc<TlsFingerprints>>() {
        for (name, value) in [("ja3", &prints.ja3), ("ja4", &prints.ja4)] {
            if let Some(value) = value {
                described.push_str(&format!(" {name}={value}"));
            }
        }
    }
    described
}

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Every endpoint a backend of `gateways` can forward to.
fn live_endpoints(gateways: &[CompiledGateway]) -> HashSet<SocketAddr> {
    let mut live = HashSet::new();
    let mut add = |backend: &Backend| live.extend(backend.endpoints.iter().map(|e| e.address));
    for listener in gateways.iter().flat_map(|g| &g.listeners) {
        match &listener.routes {
            ListenerRoutes::Http(table) => {
                for rule in table.targets() {
                    rule.backends.ready().for_each(|b| add(b));
                }
            }
            ListenerRoutes::Tls(routes) => {
                for (_, backends) in routes.iter() {
                    backends.ready().for_each(|b| add(b));
                }
            }
            ListenerRoutes::Stream(Some(backends)) => backends.ready().for_each(|b| add(b)),
            ListenerRoutes::Stream(None) => {}
        }
    }
    live
}
