//! The HTTP request path as layers, each doing one thing (spec §1.1, §1.4–1.6):
//!
//! 1. [`SelectRoute`] (by listener and host, SNI-checked) or [`SelectMeshRoute`] (GAMMA, by
//!    destination Service) chooses the rule and puts a [`MatchedRoute`] — with its stable
//!    [`RouteIdentity`] — into the request. It only selects.
//! 2. [`RuleFilters`] runs the rule's filters in list order: header edits and rewrites, a
//!    redirect or CORS preflight as the answer, response edits after the backend, sampled
//!    mirrors handed on as [`PendingMirrors`].
//! 3. [`Dispatch`] is the one loop: per try it chooses the weighted Service (the only place
//!    that does), runs the backend's filters, sets [`SelectedBackend`] and calls the upstream
//!    service within `timeouts.backendRequest`; retries follow typed [`UpstreamError`]s,
//!    backend timeouts and the rule's status codes; the whole within `timeouts.request`;
//!    mirrors go out with a cap and a timeout.
//! 4. The upstream service (the embedder's; `waypoint`'s forwarder) picks the endpoint and
//!    answers failures as typed [`UpstreamError`]s.
//!
//! Failures are [`RouteError`]s, never status codes; the embedder turns them into HTTP or
//! gRPC answers in one place (`waypoint::respond`): no route 404, misdirected 421, invalid
//! filter or backend 500, no endpoints and upstream failures 503, timeouts 504.
//!
//! [`Router`] and [`MeshRouter`] are the three layers assembled.

mod answer_seam;
mod apply;
mod balance;
mod dispatch;
mod error;
mod future;
mod listener_set;
mod matched;
mod mesh;
mod mirror;
mod rule_filters;
mod select;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;

pub use answer_seam::{LocalAnswer, MatchedRouteSlot};
pub use balance::{
    BalanceEndpoints, EndpointPick, LocalFailure, ObserveTries, PolicyBalancer, RequestHead,
    SelectedEndpoint, TryOutcome, TryTicket, choose_backend,
};
pub use dispatch::{
    AllowedUpgrades, ConnectTunnels, Dispatch, DispatchFuture, DispatchLayer, EnvoyHeaders,
    PolicyRetry, ReplayBody, RetryBudget, RetryGate, UpstreamService,
};
pub use error::{BoxError, RelayedAnswer, RouteError, UpstreamError, UpstreamErrorKind};
pub use future::EarlyOrInner;
pub use listener_set::ListenerSet;
pub use matched::{MatchedRoute, RouteIdentity};
pub use mesh::{MeshDestination, SelectMeshRoute, SelectMeshRouteLayer, select_mesh};
pub use mirror::MirrorLimits;
pub use rule_filters::{
    FilterEffectsOnResponse, PendingMirrors, RuleFilters, RuleFiltersFuture, RuleFiltersLayer,
};
pub use select::{
    RouteSelector, Select, SelectLayer, SelectRoute, SelectRouteLayer, reselect, select,
};

use crate::compiled::{Backend, MeshRoutes};

/// The TLS server name the connection was accepted with (HTTPS listeners set it on every
/// request, for the misdirected-request check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerName(pub String);

/// The backend [`Dispatch`] chose for one try (a Service port with ready endpoints, never
/// empty), as a request extension for the upstream service. Cloning it is one reference count.
#[derive(Debug, Clone)]
pub struct SelectedBackend(pub Arc<Backend>);

impl std::ops::Deref for SelectedBackend {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.0
    }
}

/// Asks the upstream service to speak the client's protocol to the backend (HTTP/2 for an
/// HTTP/2 request, HTTP/1.1 otherwise) instead of the backend's `appProtocol` (Envoy Gateway's
/// BackendTrafficPolicy `useClientProtocol`), as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseClientProtocol;

/// Asks the upstream service to send HTTP/2 backends the `:scheme` of its own connection to
/// them (`https` over TLS, `http` otherwise) instead of the client's (Envoy Gateway's
/// ClientTrafficPolicy `scheme: MatchBackend`), as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchBackendScheme;

/// How the upstream service opens, keeps and reuses connections for this request (Envoy
/// Gateway's BackendTrafficPolicy `timeout.tcp.connectTimeout`, `tcpKeepalive`,
/// `proxyProtocol`, `timeout.http.connectionIdleTimeout`, `maxConnectionDuration`,
/// `streamIdleTimeout`, `maxStreamDuration`, `http2` and
/// `circuitBreaker.maxRequestsPerConnection`), as one request
/// extension, present only when a policy asks for one of them. Connections opened for
/// different settings are pooled apart, as Envoy keeps one pool per cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UpstreamConnection {
    /// The connect timeout; a connection not open in time is a typed `Timeout` upstream
    /// error (503).
    pub connect_timeout: Option<std::time::Duration>,
    /// TCP keepalive on the sockets.
    pub keepalive: Option<UpstreamTcpKeepalive>,
    /// A connection of the request's own, opened with a PROXY header.
    pub proxy_protocol: Option<UpstreamProxyProtocol>,
    /// How long a pooled connection may stay unused before it is closed.
    pub idle_timeout: Option<std::time::Duration>,
    /// How long a connection may live: past it, it takes no new request and closes.
    pub max_lifetime: Option<std::time::Duration>,
    /// How many requests a connection may carry before it closes.
    pub max_requests: Option<u32>,
    /// How long the response's body may go without a frame before it is cut.
    pub stream_idle_timeout: Option<std::time::Duration>,
    /// The flow-control windows announced on HTTP/2 connections to the backends.
    pub http2: Option<UpstreamHttp2>,
    /// How long the exchange may take in all: the response body is cut past it (the
    /// policy layer answers 504 if the response has not started by then).
    pub max_stream_duration: Option<std::time::Duration>,
    /// `SO_RCVBUF` and `SO_SNDBUF` on the sockets, in bytes (the kernel doubles them).
    pub socket_buffer: Option<u32>,
    /// Connections kept open to an endpoint, in percent of those busy (100–300): the extra
    /// ones are opened ahead of need.
    pub preconnect_percent: Option<u32>,
    /// The most connections to one endpoint; beyond it requests wait for one.
    pub max_connections_per_endpoint: Option<u32>,
}

/// The flow-control windows the upstream service announces on the HTTP/2 connections it
/// opens for a request (Envoy Gateway's BackendTrafficPolicy `http2`); `None`: hyper's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UpstreamHttp2 {
    /// `SETTINGS_INITIAL_WINDOW_SIZE`.
    pub initial_stream_window: Option<u32>,
    /// The connection window, opened by a `WINDOW_UPDATE` on stream 0.
    pub initial_connection_window: Option<u32>,
    /// The most streams one connection carries at once: more open another connection.
    pub max_concurrent_streams: Option<u32>,
    /// A malformed response resets only its stream (`onInvalidMessage: TerminateStream`);
    /// by default (false) it ends the whole connection, as in Envoy.
    pub stream_error_on_invalid_message: bool,
}

/// TCP keepalive on the connections the upstream service opens for a request (Envoy
/// Gateway's BackendTrafficPolicy `tcpKeepalive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamTcpKeepalive {
    /// Unanswered probes before the connection is dropped.
    pub probes: u32,
    /// Idle time before the first probe.
    pub idle: std::time::Duration,
    /// Time between probes.
    pub interval: std::time::Duration,
}

/// The PROXY protocol header the upstream service sends first on a connection of the
/// request's own, naming the client and the address it connected to (Envoy Gateway's
/// BackendTrafficPolicy `proxyProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamProxyProtocol {
    /// The text form.
    V1,
    /// The binary form.
    V2,
}

/// Gateway routing assembled: [`SelectRoute`] → [`RuleFilters`] → [`Dispatch`] → `upstream`.
#[derive(Debug, Clone)]
pub struct Router<S> {
    stack: SelectRoute<RuleFilters<Dispatch<S>>>,
}

impl<S> Router<S> {
    /// Routes among `listeners` (one socket's), forwarding through `upstream`.
    pub fn new(listeners: Arc<ListenerSet>, upstream: S) -> Self {
        Router {
            stack: Select::new(listeners, RuleFilters::new(Dispatch::new(upstream))),
        }
    }
}

/// Mesh routing assembled: [`SelectMeshRoute`] → [`RuleFilters`] → [`Dispatch`] → `upstream`.
#[derive(Debug, Clone)]
pub struct MeshRouter<S> {
    stack: SelectMeshRoute<RuleFilters<Dispatch<S>>>,
}

impl<S> MeshRouter<S> {
    /// Routes by destination among `routes`, forwarding through `upstream`.
    pub fn new(routes: Arc<MeshRoutes>, upstream: S) -> Self {
        MeshRouter {
            stack: Select::new(routes, RuleFilters::new(Dispatch::new(upstream))),
        }
    }
}

macro_rules! delegate_service {
    ($router:ident, $select:ident) => {
        impl<S, B, RB> tower::Service<Request<B>> for $router<S>
        where
            S: UpstreamService<B, RB> + tower::Service<Request<B>, Response = http::Response<RB>>,
            B: http_body::Body + Default + Send + 'static,
            RB: Default + Send + 'static,
        {
            type Response = http::Response<RB>;
            type Error = RouteError;
            type Future = EarlyOrInner<
                RuleFiltersFuture<DispatchFuture<http::Response<RB>>, RB>,
                http::Response<RB>,
                RouteError,
            >;

            fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
                tower::Service::<Request<B>>::poll_ready(&mut self.stack, cx)
            }

            fn call(&mut self, request: Request<B>) -> Self::Future {
                self.stack.call(request)
            }
        }
    };
}

delegate_service!(Router, SelectRoute);
delegate_service!(MeshRouter, SelectMeshRoute);
