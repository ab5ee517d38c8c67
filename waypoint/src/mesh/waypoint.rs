//! The mesh waypoint assembled: HBONE from ztunnels (the tunnel's `:authority` is a Service
//! VIP:port; a workload address passes through at L4) and/or PROXY v2 from a co-located
//! ztunnel (the sandwich: the destination and the client identity in the header); HTTP
//! sniffed and routed by GAMMA rules through `Respond` → `MeshRouter` → the `Forwarder`
//! (HBONE to each endpoint's `:15008` expecting its Pod's identity; plain TCP in the sandwich,
//! where the co-located ztunnel captures it); anything else forwarded at L4.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hbone::bridge::bridge;
use hbone::client::HboneConnector;
use hbone::connect_headers::Authority;
use hbone::peer::Peer;
use hbone::proxy_protocol::{AcceptorConfig, read_proxy_header};
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer};
use hbone::tls::{HboneTls, TlsConfigError, WorkloadCertificate};
use http::{Method, Request, Response, StatusCode};
use mesh_policy::traffic::response_override::has_overrides;
use mesh_policy::traffic::{
    BackendTrafficFromRoute, FaultFromRoute, OverrideResponses, RequestBufferFromRoute,
};
use prometheus_client::registry::Registry;
use routing::backends::BackendChoice;
use routing::loader::LoadError;
use routing::model::ObjectKey;
use routing::resolve::ResolveOptions;
use routing::router::{Dispatch, MeshDestination, RuleFilters, Select};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower::util::MapResponse;

use super::identities::{EndpointIdentityMap, expected_identities};
use super::metrics::{ByteCount, ConnectionSeries, CountedBody, RequestMetrics};
use super::sniff::sniff;
use crate::admin::{BindError, bind_listener, json, metrics_answer, serve_answers, text};
use crate::config::{
    ConfigSource, LastReloadError, NameChanges, NameResolver, ReloadTicker, Snapshot,
};
use crate::gateway::GatewayEvents;
use crate::inbound::prefixed::PrefixedStream;
use crate::inbound::{BandwidthFromRoute, CompressFromRoute, HttpLimits, serve_with_peer};
use crate::outbound::{
    Connect, EndpointProber, Forwarder, ForwarderLimits, HboneConnect, ResponseBody, TcpConnect,
};
use crate::respond::{PolicyRefusal, Respond, is_grpc, with_local_reply_body};
use hbone::metrics::{Reporter, TrafficLabels};
use http_body_util::BodyExt;
use mesh_policy::istio::{
    ApplicableAuthentication, ApplicablePolicies, Attributes, AuthorizationPolicy,
    CustomAuthorization, IstioAuthorization, WaypointPolicies, authorize,
};
use std::time::Instant;

/// How to run a mesh waypoint.
pub struct MeshWaypointOptions {
    /// Kubernetes YAML: Services, EndpointSlices, Pods, Namespaces, HTTPRoutes and GRPCRoutes
    /// with Service parents.
    pub source: ConfigSource,
    /// The waypoint's certificate (presented to ztunnels and to endpoints).
    pub certificate: Arc<WorkloadCertificate>,
    /// TLS settings.
    pub tls: HboneTls,
    /// The HBONE listener (15008), if any.
    pub hbone_listen: Option<SocketAddr>,
    /// The PROXY v2 listener of the sandwich (15088), if any.
    pub proxy_listen: Option<SocketAddr>,
    /// The admin endpoint (`/ready`, `/status`, `/config_dump`, `/metrics`).
    pub admin: SocketAddr,
    /// The trust domain of endpoint identities (`cluster.local`).
    pub trust_domain: String,
    /// The waypoint's own Gateway (`namespace/name`): AuthorizationPolicies whose
    /// `targetRefs` name it apply to all its traffic.
    pub gateway: ObjectKey,
    /// How often the configuration files are checked.
    pub reload_interval: Duration,
    /// The crypto provider for backend TLS.
    pub crypto: Arc<rustls::crypto::CryptoProvider>,
    /// The embedder's registry (served on `/metrics`).
    pub registry: Registry,
    /// Told one line per request a policy refuses (source principal, method, host, path,
    /// status, response flag, the deciding policy); `None`: not reported.
    pub denial_log: Option<crate::inbound::DenialLog>,
    /// The zone the waypoint runs in (its node's `topology.kubernetes.io/zone`), which a
    /// BackendTrafficPolicy's `zoneAware.preferLocal` prefers; `None`: no zone is preferred.
    pub zone: Option<String>,
}

/// Why the waypoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshWaypointError {
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

/// `client METHOD host/path` of a refused request (the client's identity, else its address),
/// for the denial log.
fn describe_denied_request<B>(request: &Request<B>) -> String {
    let principal = request
        .extensions()
        .get::<Peer>()
        .map_or_else(String::new, |peer| {
            peer.identity
                .as_ref()
                .map_or_else(|| peer.address.ip().to_string(), ToString::to_string)
        });
    let host = request
        .headers()
        .get(http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    format!(
        "{principal} {} {host}{}",
        request.method(),
        request.uri().path()
    )
    .escape_debug()
    .to_string()
}

/// The configuration being served.
struct MeshState {
    snapshot: ArcSwap<Snapshot>,
    routes: ArcSwap<routing::compiled::MeshRoutes>,
    policies: ArcSwap<WaypointPolicies>,
    /// `jwksUri` handles of RequestAuthentications (refreshed while the waypoint runs) and
    /// the client of CUSTOM policies' authorizers.
    security: mesh_policy::security::SecurityRuntime,
    gateway: ObjectKey,
    metrics: RequestMetrics,
    denial_log: Option<crate::inbound::DenialLog>,
    identities: Arc<ArcSwap<EndpointIdentityMap>>,
    trust_domain: String,
    last_error: LastReloadError,
}

/// One way out (HBONE or plain TCP) and the state it routes with.
struct Lane<C> {
    state: Arc<MeshState>,
    forwarder: Forwarder<C>,
}

impl<C> Clone for Lane<C> {
    fn clone(&self) -> Self {
        Lane {
            state: Arc::clone(&self.state),
            forwarder: self.forwarder.clone(),
        }
    }
}

/// Runs the waypoint until `shutdown` resolves.
pub async fn run_mesh_waypoint(
    options: MeshWaypointOptions,
    events: &dyn GatewayEvents,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MeshWaypointError> {
    // The identities expected of each endpoint, filled once the configuration is read (the
    // HBONE connector and the health checks' prober need them first).
    let identities = Arc::new(ArcSwap::from_pointee(EndpointIdentityMap::default()));
    let hbone_connect = match options.hbone_listen {
        Some(_) => Some(HboneConnect::new(
            HboneConnector::new(options.tls.clone()),
            Arc::clone(&options.certificate),
            expected_identities(Arc::clone(&identities)),
        )?),
        None => None,
    };
    // BackendTrafficPolicies on the mesh's routes fill their rule slots; active health checks
    // probe through HBONE, as requests are forwarded (over TCP for a sandwiched waypoint).
    let prober: Arc<dyn mesh_policy::traffic::balance::ProbeEndpoints> = match &hbone_connect {
        Some(connect) => Arc::new(EndpointProber::new(connect.clone())),
        None => Arc::new(EndpointProber::new(TcpConnect::default())),
    };
    let resolve_options = ResolveOptions {
        policies: Some(Arc::new(
            mesh_policy::traffic::TrafficPolicies::with_runtime(
                mesh_policy::traffic::compile::TrafficRuntime {
                    prober: Some(prober),
                    counters: None,
                    endpoint_ages: Default::default(),
                    verdicts: Default::default(),
                    ejections: Default::default(),
                    local_zone: options.zone.as_deref().map(Arc::from),
                },
            ),
        )),
        ..ResolveOptions::default()
    };
    let loaded = options.source.fingerprint();
    let resolver = NameResolver::system();
    let snapshot = options
        .source
        .load_resolving_names(&resolve_options, 1, &resolver)
        .await?;
    let jwks = Arc::new(mesh_policy::security::jwt::JwksRegistry::default());
    let security = mesh_policy::security::SecurityRuntime {
        remote_jwks: Some(Arc::clone(&jwks)),
        authorizer: Some(Arc::new(crate::gateway::PooledAuthorizers::default())),
        // OIDC is for browsers at a gateway; the mesh's policies are Istio's.
        oidc: None,
    };
    let policies = WaypointPolicies::build_with(&snapshot.config, &options.gateway, &security)?;
    let mut registry = options.registry;
    let metrics = RequestMetrics::register(&mut registry);
    identities.store(Arc::new(EndpointIdentityMap::build(
        &snapshot.config,
        &options.trust_domain,
    )));
    let state = Arc::new(MeshState {
        routes: ArcSwap::from_pointee(snapshot.resolution.mesh.clone()),
        policies: ArcSwap::from_pointee(policies),
        security,
        gateway: options.gateway.clone(),
        denial_log: options.denial_log.clone(),
        metrics,
        snapshot: ArcSwap::from_pointee(snapshot),
        identities: Arc::clone(&identities),
        trust_domain: options.trust_domain.clone(),
        last_error: LastReloadError::default(),
    });
    let bind = bind_listener;
    let mut tasks = tokio::task::JoinSet::new();
    let jwks_state = Arc::clone(&state);
    tasks.spawn(crate::gateway::remote_jwks::refresh_forever(
        jwks,
        move || jwks_state.snapshot.load_full(),
        Arc::clone(&options.crypto),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let (Some(address), Some(connect)) = (options.hbone_listen, hbone_connect) {
        let listener = bind("HBONE", address).await?;
        let lane = Lane {
            state: Arc::clone(&state),
            forwarder: Forwarder::with_connector(
                connect,
                Arc::clone(&options.crypto),
                ForwarderLimits::default(),
            ),
        };
        let server_tls = Arc::new(options.tls.server_config(&options.certificate)?);
        let server = HboneServer::new(server_tls, TunnelDecider(lane));
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
        });
        events.log(&format!("HBONE on {address}"));
    }
    if let Some(address) = options.proxy_listen {
        let listener = bind("PROXY", address).await?;
        let lane = Lane {
            state: Arc::clone(&state),
            forwarder: Forwarder::with_connector(
                TcpConnect::default(),
                Arc::clone(&options.crypto),
                ForwarderLimits::default(),
            ),
        };
        tasks.spawn(accept_sandwiched(listener, lane));
        events.log(&format!("PROXY (sandwich) on {address}"));
    }
    let admin = bind("admin", options.admin).await?;
    let registry = Arc::new(registry);
    let admin_state = Arc::clone(&state);
    tasks.spawn(serve_answers(admin, move |request| {
        admin_answer(&admin_state, &registry, request)
    }));
    events.log(&format!("admin on {}", options.admin));

    // Envoy Gateway Backend host names are resolved again on their schedules (TTLs,
    // BackendTrafficPolicy `dns`); new answers reload.
    let name_changes = NameChanges::default();
    let names_state = Arc::clone(&state);
    tasks.spawn(name_changes.clone().watch(resolver.clone(), move || {
        names_state.snapshot.load().served_names()
    }));
    tokio::pin!(shutdown);
    let mut ticker = ReloadTicker::new(options.reload_interval, (loaded, 0));
    while ticker
        .settled_change(shutdown.as_mut(), || {
            (options.source.fingerprint(), name_changes.count())
        })
        .await
    {
        reload(&state, &options.source, &resolve_options, &resolver, events).await;
    }
    let _ = stop.send(true);
    tasks.abort_all();
    Ok(())
}

async fn reload(
    state: &MeshState,
    source: &ConfigSource,
    options: &ResolveOptions,
    resolver: &NameResolver,
    events: &dyn GatewayEvents,
) {
    let generation = state.snapshot.load().generation + 1;
    let loaded = source
        .load_resolving_names(options, generation, resolver)
        .await;
    let loaded = loaded.and_then(|snapshot| {
        let policies =
            WaypointPolicies::build_with(&snapshot.config, &state.gateway, &state.security)?;
        Ok((snapshot, policies))
    });
    match loaded {
        Ok((snapshot, policies)) => {
            state.policies.store(Arc::new(policies));
            state.identities.store(Arc::new(EndpointIdentityMap::build(
                &snapshot.config,
                &state.trust_domain,
            )));
            state
                .routes
                .store(Arc::new(snapshot.resolution.mesh.clone()));
            let applied = format!(
                "configuration {generation} applied: {} services",
                snapshot.resolution.mesh.len()
            );
            // Swapped in before it is announced: whoever reads the line sees the new state.
            state.snapshot.store(Arc::new(snapshot));
            events.log(&applied);
            state.last_error.record(None);
        }
        Err(error) => {
            events.log(&format!(
                "configuration refused, keeping the current one: {error}"
            ));
            state.last_error.record(Some(error.to_string()));
        }
    }
}

fn admin_answer(
    state: &MeshState,
    registry: &Registry,
    request: &Request<hyper::body::Incoming>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let snapshot = state.snapshot.load();
    match request.uri().path() {
        "/ready" => text(StatusCode::OK, "ready\n".into()),
        "/status" => json(&serde_json::json!({
            "generation": snapshot.generation,
            "lastReloadError": state.last_error.get(),
            "warnings": snapshot.warnings,
            "resources": snapshot.resolution.statuses,
        })),
        "/config_dump" => crate::admin::config_dump(snapshot.generation, &snapshot.config),
        "/metrics" => metrics_answer(registry),
        _ => text(
            StatusCode::NOT_FOUND,
            "try /ready, /status, /config_dump, /metrics\n".into(),
        ),
    }
}

/// Answers each CONNECT: a socket authority is served (HTTP or L4), a host name refused.
struct TunnelDecider<C>(Lane<C>);

impl<C> Clone for TunnelDecider<C> {
    fn clone(&self) -> Self {
        TunnelDecider(self.0.clone())
    }
}

impl<C: Connect> tower::Service<ConnectRequest> for TunnelDecider<C> {
    type Response = ConnectDecision;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<ConnectDecision, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        let decision = match request.authority {
            Authority::Socket(destination) => {
                let lane = self.0.clone();
                let peer = Peer::from_connect(&request);
                ConnectDecision::serve(move |stream| serve_stream(stream, peer, destination, lane))
            }
            Authority::Host { .. } => ConnectDecision::Reject(StatusCode::BAD_REQUEST),
        };
        Box::pin(async move { Ok(decision) })
    }
}

async fn accept_sandwiched<C: Connect>(listener: TcpListener, lane: Lane<C>) {
    loop {
        let Ok((mut stream, connection_peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // The header's identity is believed only from the co-located ztunnel: a peer on
        // loopback or at the waypoint's own address. Anyone else is closed unread.
        let local = stream.local_addr().map(|a| a.ip());
        if !local.is_ok_and(|local| trusted_proxy_source(connection_peer.ip(), local)) {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let lane = lane.clone();
        tokio::spawn(async move {
            let Ok(header) = read_proxy_header(&mut stream, &AcceptorConfig::default()).await
            else {
                return; // no or bad header: closed
            };
            let peer = Peer::from_proxy_header(&header, connection_peer);
            if let Some(destination) = peer.destination {
                serve_stream(stream, peer, destination, lane).await;
            }
        });
    }
}

/// Whether a PROXY sender at `peer` may speak for its clients: the co-located ztunnel
/// connects from loopback (its application tunnel) or from the pod's own address.
fn trusted_proxy_source(peer: std::net::IpAddr, local: std::net::IpAddr) -> bool {
    peer.is_loopback() || peer == local
}

/// Serves one stream for `destination`: HTTP to a Service VIP through the mesh routes,
/// anything else at L4.
async fn serve_stream<IO, C>(mut io: IO, peer: Peer, destination: SocketAddr, lane: Lane<C>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Connect,
{
    let routes = lane.state.routes.load_full();
    let service: Option<ObjectKey> = routes
        .by_address(destination)
        .map(|(service, _)| service.service.clone());
    let overrides = routes
        .by_address(destination)
        .is_some_and(|(_, port)| port.rules().any(|rule| has_overrides(rule)));
    let waypoint_policies = lane.state.policies.load_full();
    let policies = match &service {
        Some(service) => Arc::clone(waypoint_policies.for_service(service)),
        None => Arc::clone(waypoint_policies.for_service(&lane.state.gateway)),
    };
    let (kind, prefix) = sniff(&mut io).await;
    let io = PrefixedStream::new(prefix, io);
    if !kind.is_http() && !l4_allowed(&policies, &peer) {
        return; // refused at L4: closed
    }
    match service {
        Some(service) if kind.is_http() => {
            let mesh_destination = MeshDestination {
                service,
                port: destination.port(),
                source_namespace: peer.identity.as_ref().map(|id| id.namespace().to_owned()),
            };
            let applicable = ApplicablePolicies(policies);
            let custom = CustomAuthorization(Arc::clone(waypoint_policies.custom_authorizers()));
            let authentication = waypoint_policies
                .authentication_for_service(&mesh_destination.service)
                .cloned()
                .map(ApplicableAuthentication);
            let series = Arc::new(ConnectionSeries::new(
                lane.state.metrics.clone(),
                connection_labels(&peer, &mesh_destination.service),
            ));
            // Istio's policies, route selection, the rule's BackendTrafficPolicy (faults, then
            // rate limit, circuit breaker, request timeout, request buffer, compression), its
            // filters, dispatch.
            let respond = Respond::new(IstioAuthorization::new(Select::new(
                routes,
                FaultFromRoute::new(BackendTrafficFromRoute::new(RequestBufferFromRoute::new(
                    BandwidthFromRoute::new(CompressFromRoute::new(RuleFilters::new(
                        Dispatch::new(lane.forwarder.clone()),
                    ))),
                ))),
            )));
            // Local-reply bodies written, then the rule's responseOverride (when a rule of
            // this port has one).
            let with_bodies: fn(Response<ResponseBody>) -> Response<ResponseBody> =
                with_local_reply_body;
            let mut router = OverrideResponses::new(
                MapResponse::new(respond, with_bodies),
                crate::outbound::full_body,
            );
            if !overrides {
                router = router.disabled();
            }
            let http = tower::service_fn(move |request: Request<ResponseBody>| {
                let started = Instant::now();
                let received = ByteCount::default();
                let grpc = is_grpc(request.headers());
                // A request without a body (most GETs) needs no counting wrapper.
                let mut request = if http_body::Body::is_end_stream(request.body()) {
                    request
                } else {
                    request.map(|body| {
                        CountedBody::new(body, received.clone(), None::<fn(u64)>).boxed()
                    })
                };
                request.extensions_mut().insert(mesh_destination.clone());
                request.extensions_mut().insert(applicable.clone());
                request.extensions_mut().insert(custom.clone());
                if let Some(authentication) = &authentication {
                    request.extensions_mut().insert(authentication.clone());
                }
                // What a denial line names, taken before the request moves (only when asked).
                let denial_log = lane.state.denial_log.clone();
                let described = denial_log
                    .as_ref()
                    .map(|_| describe_denied_request(&request));
                let answered = router.clone().oneshot(request);
                let series = Arc::clone(&series);
                async move {
                    let response = answered.await?;
                    if let (Some(log), Some(described), Some(refusal)) = (
                        &denial_log,
                        &described,
                        response.extensions().get::<PolicyRefusal>(),
                    ) {
                        (log.0)(&format!(
                            "denied: {described} → {} {refusal}",
                            response.status().as_u16(),
                        ));
                    }
                    let grpc_status = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok());
                    let series = series.series(response.status().as_u16(), grpc_status, grpc);
                    let record = move |sent: u64| series.record(started, received.get(), sent);
                    Ok(response.map(|body| {
                        CountedBody::new(body, ByteCount::default(), Some(record)).boxed()
                    }))
                }
            });
            serve_with_peer(io, http, peer, HttpLimits::default(), None).await;
        }
        Some(_) => forward_l4(io, &lane, &routes, destination).await,
        None => {
            // A workload address: passed through to it.
            if let Ok(mut upstream) = lane.forwarder.connector().connect(destination).await {
                let mut io = io;
                let _ = bridge(&mut io, &mut upstream).await;
            }
        }
    }
}

/// The Istio labels of one connection's requests to `service`: the peer as source, the
/// Service as destination (its workload is chosen per request, so it is `unknown`).
fn connection_labels(peer: &Peer, service: &ObjectKey) -> TrafficLabels {
    let mut labels = TrafficLabels::new(Reporter::waypoint, peer.identity.as_ref(), None);
    labels.destination_service =
        format!("{}.{}.svc.cluster.local", service.name, service.namespace);
    labels.destination_service_name.clone_from(&service.name);
    labels
        .destination_service_namespace
        .clone_from(&service.namespace);
    labels
        .destination_workload_namespace
        .clone_from(&service.namespace);
    "http".clone_into(&mut labels.request_protocol);
    labels.response_flags = "-".to_owned();
    labels.connection_security_policy = if peer.identity.is_some() {
        "mutual_tls".to_owned()
    } else {
        "none".to_owned()
    };
    labels
}

/// Whether a non-HTTP stream passes the policies (HTTP-only fields: matching for DENY, not
/// for ALLOW).
fn l4_allowed(policies: &[Arc<AuthorizationPolicy>], peer: &Peer) -> bool {
    let identity = peer.identity.as_ref();
    let attributes = Attributes {
        principal: identity.map(|id| id.as_str().trim_start_matches("spiffe://")),
        namespace: identity.map(|id| id.namespace()),
        service_account: identity.map(|id| id.service_account()),
        source_ip: Some(peer.address.ip()),
        destination: peer.destination,
        ..Attributes::default()
    };
    authorize(policies.iter().map(|p| p.as_ref()), &attributes).is_ok()
}

/// Opaque bytes to a Service: a backend of the port's own rule, one of its endpoints.
async fn forward_l4<IO, C>(
    mut io: IO,
    lane: &Lane<C>,
    routes: &routing::compiled::MeshRoutes,
    destination: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    C: Connect,
{
    let Some((_, port)) = routes.by_address(destination) else {
        return;
    };
    let BackendChoice::Forward(backend) = port.default_rule.backends.choose(rand::random()) else {
        return;
    };
    for endpoint in lane.forwarder.endpoints().in_turn(backend) {
        if let Ok(mut upstream) = lane.forwarder.connector().connect(endpoint.address).await {
            let _ = bridge(&mut io, &mut upstream).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_are_believed_only_from_the_colocated_ztunnel() {
        let pod = "10.244.0.12".parse().unwrap();
        assert!(trusted_proxy_source("127.0.0.1".parse().unwrap(), pod));
        assert!(trusted_proxy_source("::1".parse().unwrap(), pod));
        assert!(trusted_proxy_source(pod, pod));
        assert!(!trusted_proxy_source("10.244.0.99".parse().unwrap(), pod));
    }
}
