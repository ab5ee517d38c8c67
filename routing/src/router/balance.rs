//! The endpoint-balancing hook: a policy attached to the route (Envoy Gateway's
//! BackendTrafficPolicy `loadBalancer` and `healthCheck`) sets a [`PolicyBalancer`] on the
//! request before [`Dispatch`](super::Dispatch); for every try, `Dispatch` asks it which
//! endpoint of the chosen backend takes the request, hands the choice to the upstream service as
//! a [`SelectedEndpoint`], and reports the try's outcome back (for least-request counts and
//! outlier detection). Without a `PolicyBalancer` the upstream service picks the endpoint itself.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderValue;
use http::{Extensions, HeaderMap, Method, Uri};

use super::error::{RouteError, UpstreamErrorKind};
use crate::backends::{LevelHealth, PriorityChoice, WeightedBackends};
use crate::compiled::{Backend, Endpoint};

/// What a balancer sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (the client's address, the peer's identity).
    pub extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}

/// How one try to an endpoint ended, as outlier detection classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// The endpoint answered with this status.
    Answered(u16),
    /// The try failed locally: the connection was refused or reset, TLS or HTTP failed, or
    /// the try timed out.
    LocalFailure(LocalFailure),
}

/// The kinds of local (origin-side) failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFailure {
    /// Connecting failed (refused, connect timeout, TLS handshake).
    Connect,
    /// The connection was reset or the backend spoke invalid HTTP.
    Reset,
    /// The try's timeout elapsed.
    Timeout,
}

impl TryOutcome {
    /// The outcome of a try that ended with `result`.
    pub fn of<R>(result: &Result<http::Response<R>, RouteError>) -> Option<TryOutcome> {
        match result {
            Ok(response) => Some(TryOutcome::Answered(response.status().as_u16())),
            Err(RouteError::BackendTimeout) => {
                Some(TryOutcome::LocalFailure(LocalFailure::Timeout))
            }
            Err(RouteError::Upstream(error)) => {
                Some(TryOutcome::LocalFailure(match error.kind() {
                    UpstreamErrorKind::Refused | UpstreamErrorKind::Tls => LocalFailure::Connect,
                    UpstreamErrorKind::Timeout => LocalFailure::Timeout,
                    UpstreamErrorKind::Reset | UpstreamErrorKind::Protocol => LocalFailure::Reset,
                    // A local cap is not the endpoint's fault.
                    UpstreamErrorKind::Overloaded => return None,
                }))
            }
            Err(_) => None,
        }
    }
}

/// Told how the tries it placed ended.
pub trait ObserveTries: Send + Sync + fmt::Debug {
    /// The try on `endpoint` (an index into its backend's endpoints) ended: with `outcome`, or
    /// `None` when it was abandoned (the request's timeout, the client went away).
    fn finished(&self, endpoint: usize, outcome: Option<TryOutcome>);

    /// The try on `endpoint` was answered with these headers (read before [`finished`]); an
    /// observer that reads load reports from them may also remove them from the answer.
    ///
    /// [`finished`]: ObserveTries::finished
    fn answered(&self, _endpoint: usize, _headers: &mut http::HeaderMap) {}
}

/// A placed try, reported to its observer exactly once (as abandoned when dropped unreported).
#[derive(Debug)]
pub struct TryTicket {
    observer: Arc<dyn ObserveTries>,
    endpoint: usize,
    reported: bool,
}

impl TryTicket {
    /// A ticket for a try on `endpoint`, reported to `observer`.
    pub fn new(observer: Arc<dyn ObserveTries>, endpoint: usize) -> Self {
        TryTicket {
            observer,
            endpoint,
            reported: false,
        }
    }

    /// Shows the observer the answer's headers (before [`TryTicket::finish`]).
    pub fn read_answer(&self, headers: &mut http::HeaderMap) {
        self.observer.answered(self.endpoint, headers);
    }

    /// Reports how the try ended.
    pub fn finish(mut self, outcome: Option<TryOutcome>) {
        self.reported = true;
        self.observer.finished(self.endpoint, outcome);
    }
}

impl Drop for TryTicket {
    fn drop(&mut self) {
        if !self.reported {
            self.observer.finished(self.endpoint, None);
        }
    }
}

/// A balancer's choice for one try.
#[derive(Debug)]
pub struct EndpointPick {
    /// The endpoint, an index into the backend's endpoints.
    pub endpoint: usize,
    /// A `Set-Cookie` value to add to the response (a generated session cookie).
    pub set_cookie: Option<HeaderValue>,
    /// Where the try's outcome goes, when the balancer wants it.
    pub ticket: Option<TryTicket>,
    /// The endpoint the next try will likely take (Envoy's predictive preconnect): the
    /// forwarder may open a connection to it ahead of need.
    pub predicted: Option<usize>,
}

/// Picks endpoints for the tries of routed requests.
pub trait BalanceEndpoints: Send + Sync + fmt::Debug {
    /// The value with which [`Dispatch`](super::Dispatch) chooses among the rule's weighted
    /// backends, instead of a random one (a consistent hash keeps a client on one backend).
    fn backend_seed(&self, _request: &RequestHead<'_>) -> Option<u64> {
        None
    }

    /// The endpoint of `backend` that takes the try, or `None` when none may (every endpoint
    /// unhealthy or ejected, outside panic mode): the try is then answered 503.
    fn pick(&self, backend: &Backend, request: &RequestHead<'_>) -> Option<EndpointPick>;

    /// How many of `backend`'s endpoints are healthy now, which splits a rule's traffic
    /// between its primary and fallback backends; `None` when this balancer does not judge
    /// health (every endpoint counts as healthy).
    fn endpoint_health(&self, _backend: &Backend) -> Option<LevelHealth> {
        None
    }

    /// The healthy percentage under which a priority level is in panic (Envoy's 50 %).
    fn panic_threshold(&self) -> u32 {
        50
    }

    /// As [`pick`](Self::pick), for a backend of a priority level whose panic the caller
    /// decided when the rule has fallback backends (`Some`: in panic every endpoint may take
    /// the try, else only healthy ones); `None`: the backend judges, as `pick` does.
    fn pick_in_level(
        &self,
        backend: &Backend,
        request: &RequestHead<'_>,
        _panic: Option<bool>,
    ) -> Option<EndpointPick> {
        self.pick(backend, request)
    }
}

/// Chooses a backend of `backends` by `random`: among the primary and fallback levels as their
/// health splits the traffic (each backend's health from `balancer`, else all its endpoints
/// healthy) and a retry's exclusions (`excluded`: primary, fallback) allow, then by weight.
pub fn choose_backend<'a>(
    backends: &'a WeightedBackends<Arc<Backend>>,
    balancer: Option<&dyn BalanceEndpoints>,
    random: u64,
    excluded: [bool; 2],
) -> PriorityChoice<'a, Arc<Backend>> {
    // The threshold is asked for only when there are levels to choose between.
    let panic_threshold = match backends.has_fallback() {
        true => balancer.map_or(50, |balancer| balancer.panic_threshold()),
        false => 50,
    };
    backends.choose_by_priority(random, panic_threshold, excluded, |backend| {
        let endpoints = backend.endpoints.len() as u64;
        balancer
            .and_then(|balancer| balancer.endpoint_health(backend))
            .unwrap_or(LevelHealth {
                endpoints,
                healthy: endpoints,
            })
    })
}

/// The balancer of the route's policy, as a request extension set before
/// [`Dispatch`](super::Dispatch).
#[derive(Debug, Clone)]
pub struct PolicyBalancer(pub Arc<dyn BalanceEndpoints>);

/// The endpoint chosen for one try by a [`PolicyBalancer`], as a request extension for the
/// upstream service (beside [`SelectedBackend`](super::SelectedBackend)).
#[derive(Debug, Clone)]
pub struct SelectedEndpoint {
    /// The backend's endpoints the index points into.
    pub endpoints: Arc<[Endpoint]>,
    /// The chosen endpoint's index.
    pub index: usize,
    /// The endpoint the next try will likely take, when the balancer predicts one.
    pub predicted: Option<usize>,
}

impl SelectedEndpoint {
    /// The chosen endpoint, when it belongs to `backend` (a stale choice copied onto a mirror
    /// or retry of another backend is ignored).
    pub fn of<'a>(&self, backend: &'a Backend) -> Option<&'a Endpoint> {
        Arc::ptr_eq(&self.endpoints, &backend.endpoints)
            .then(|| backend.endpoints.get(self.index))
            .flatten()
    }

    /// The predicted next endpoint, when it belongs to `backend`.
    pub fn predicted_of<'a>(&self, backend: &'a Backend) -> Option<&'a Endpoint> {
        Arc::ptr_eq(&self.endpoints, &backend.endpoints)
            .then(|| backend.endpoints.get(self.predicted?))
            .flatten()
    }
}
