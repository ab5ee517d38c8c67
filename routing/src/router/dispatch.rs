//! [`Dispatch`]: the one loop of a routed request — per try, the weighted Service is chosen
//! (the only place it is), its backend filters run, and the upstream service is called within
//! `timeouts.backendRequest`; retries follow the rule's `retry` on typed upstream errors,
//! backend timeouts, Services without endpoints and the listed status codes; the whole within
//! `timeouts.request`; mirror copies go out through the bounded mirror sender. A route policy's
//! [`PolicyBalancer`] picks each try's endpoint and hears how the try ended. With
//! [`EnvoyHeaders`], each try carries `x-envoy-expected-rq-timeout-ms` and the backend's
//! answer `x-envoy-upstream-service-time`, as Envoy's router adds them.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use super::apply::{FilterEffects, apply_filters};
use super::balance::{PolicyBalancer, RequestHead, SelectedEndpoint, TryOutcome, choose_backend};
use super::mirror::{MirrorLimits, Mirrors, copy_without_body};
use super::{MatchedRoute, PendingMirrors, RouteError, SelectedBackend, UpstreamError};
use crate::backends::BackendChoice;
use crate::compiled::RetryPolicy;

/// A retry policy from a policy attached to the route (Envoy Gateway's BackendTrafficPolicy
/// `retry`), as a request extension set before [`Dispatch`]: used when the rule has no `retry`
/// of its own, with its per-try timeout when the rule has no `timeouts.backendRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRetry {
    /// The retries.
    pub retry: RetryPolicy,
    /// The limit on each try.
    pub per_try_timeout: Option<Duration>,
}

/// The request's body, kept whole so that a retry can send it again (Envoy retries a
/// request whose body fits its buffer limit), as a request extension set before [`Dispatch`]
/// by a layer that read the body: each try gets a body of its own from it. Without it, only
/// a request without a body is retried.
pub struct ReplayBody<B>(pub Arc<dyn Fn() -> B + Send + Sync>);

impl<B> ReplayBody<B> {
    /// A new body with the kept bytes.
    pub fn body(&self) -> B {
        (self.0)()
    }
}

impl<B> Clone for ReplayBody<B> {
    fn clone(&self) -> Self {
        ReplayBody(Arc::clone(&self.0))
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplayBody")
    }
}

/// Retries of a cluster under way at once, bounded (Envoy's `max_retries` circuit breaker):
/// a request extension set before [`Dispatch`]; a retry refused a place is not made, and the
/// try's own answer stands.
pub trait RetryBudget: Send + Sync + std::fmt::Debug {
    /// A place for one more retry, held until the retry ends; `None` at the limit.
    fn try_retry(&self) -> Option<Box<dyn Send + Sync>>;
}

/// The [`RetryBudget`] of the request's cluster, as a request extension.
#[derive(Debug, Clone)]
pub struct RetryGate(pub Arc<dyn RetryBudget>);

/// Asks [`Dispatch`] for Envoy's router headers (Envoy Gateway's ClientTrafficPolicy
/// `headers.enableEnvoyHeaders`), as a request extension: each try sent upstream carries
/// `x-envoy-expected-rq-timeout-ms` (the per-try timeout, else the request's, when there is
/// one), and the backend's answer `x-envoy-upstream-service-time` (milliseconds from the
/// try's start to the answer's head). Without it neither is added, as Envoy Gateway
/// configures Envoy by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnvoyHeaders {
    /// A request timeout applied outside the route (a policy's), set by the policy's layer.
    pub request_timeout: Option<Duration>,
}

/// The HTTP/1.1 upgrades a route allows (Envoy Gateway's BackendTrafficPolicy
/// `httpUpgrade`), lower case, as a request extension set before [`Dispatch`]. Without it a
/// route allows `websocket` only, as Envoy Gateway configures Envoy; an upgrade the route does
/// not allow is [`RouteError::UpgradeRefused`] (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUpgrades(pub Arc<[String]>);

impl AllowedUpgrades {
    /// Whether `protocol` (an `Upgrade` header's value) may be upgraded to.
    pub fn allows(&self, protocol: &str) -> bool {
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(protocol))
    }
}

/// How a route takes HTTP CONNECT (Envoy Gateway's BackendTrafficPolicy `httpUpgrade` of type
/// `CONNECT`), as a request extension set before [`Dispatch`]: terminated by the proxy, which
/// relays the tunnel's bytes to the backend, or passed on to the backend. Without it a
/// CONNECT is [`RouteError::UpgradeRefused`] (403), as Envoy refuses CONNECT by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectTunnels {
    /// The proxy answers the CONNECT itself and relays the payload as raw TCP.
    pub terminate: bool,
}

/// The protocol an HTTP/1.x request asks to upgrade to (`Connection: upgrade` with an
/// `Upgrade` header).
fn upgrade_asked<B>(request: &Request<B>) -> Option<&str> {
    if request.version() > http::Version::HTTP_11 {
        return None;
    }
    let headers = request.headers();
    let connection_upgrade = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let protocol = headers.get(http::header::UPGRADE)?;
    Some(protocol.to_str().unwrap_or("(not text)").trim())
}

/// `x-envoy-expected-rq-timeout-ms`.
const EXPECTED_TIMEOUT: http::HeaderName =
    http::HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
/// `x-envoy-upstream-service-time`.
const UPSTREAM_SERVICE_TIME: http::HeaderName =
    http::HeaderName::from_static("x-envoy-upstream-service-time");

/// What [`Dispatch`] forwards through: a cloneable service answering requests with responses
/// or typed [`UpstreamError`]s (implemented for every such service).
pub trait UpstreamService<B, RB>:
    Service<Request<B>, Response = Response<RB>, Error = UpstreamError, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B, RB> UpstreamService<B, RB> for S where
    S: Service<Request<B>, Response = Response<RB>, Error = UpstreamError, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// A layer dispatching routed requests to an upstream service.
#[derive(Debug, Clone, Default)]
pub struct DispatchLayer {
    limits: MirrorLimits,
}

/// The service of [`DispatchLayer`]: reads the [`MatchedRoute`], sets a [`SelectedBackend`]
/// per try and calls the upstream service (`Error = UpstreamError`). Always ready: each try
/// drives its own clone of the upstream service to readiness.
#[derive(Debug, Clone)]
pub struct Dispatch<S> {
    upstream: S,
    mirrors: Arc<Mirrors>,
}

impl DispatchLayer {
    /// A layer with these mirror limits.
    pub fn new(limits: MirrorLimits) -> Self {
        DispatchLayer { limits }
    }
}

impl<S> Layer<S> for DispatchLayer {
    type Service = Dispatch<S>;

    fn layer(&self, upstream: S) -> Dispatch<S> {
        Dispatch::with_limits(upstream, self.limits)
    }
}

impl<S> Dispatch<S> {
    /// Dispatches to `upstream` with the default mirror limits.
    pub fn new(upstream: S) -> Self {
        Dispatch::with_limits(upstream, MirrorLimits::default())
    }

    /// Dispatches to `upstream` with `limits` on mirroring.
    pub fn with_limits(upstream: S, limits: MirrorLimits) -> Self {
        Dispatch {
            upstream,
            mirrors: Arc::new(Mirrors::new(limits)),
        }
    }

    /// Mirror copies in flight now.
    pub fn mirrors_in_flight(&self) -> usize {
        self.mirrors.in_flight()
    }

    /// Mirror copies dropped because the cap was reached.
    pub fn mirrors_dropped(&self) -> usize {
        self.mirrors.dropped()
    }
}

/// The boxed future of [`Dispatch`].
pub type DispatchFuture<R> = Pin<Box<dyn Future<Output = Result<R, RouteError>> + Send>>;

impl<S, B, RB> Service<Request<B>> for Dispatch<S>
where
    S: UpstreamService<B, RB> + Service<Request<B>, Response = Response<RB>>,
    B: http_body::Body + Default + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = DispatchFuture<Response<RB>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(matched) = request.extensions().get::<MatchedRoute>().cloned() else {
            return Box::pin(std::future::ready(Err(RouteError::Misassembled(
                "dispatch",
            ))));
        };
        if request.method() == http::Method::CONNECT
            && request.extensions().get::<ConnectTunnels>().is_none()
        {
            return Box::pin(std::future::ready(Err(RouteError::UpgradeRefused {
                protocol: "CONNECT".to_owned(),
            })));
        }
        if let Some(protocol) = upgrade_asked(&request) {
            let allowed = match request.extensions().get::<AllowedUpgrades>() {
                Some(allowed) => allowed.allows(protocol),
                None => protocol.eq_ignore_ascii_case("websocket"),
            };
            if !allowed {
                let protocol = protocol.to_owned();
                return Box::pin(std::future::ready(Err(RouteError::UpgradeRefused {
                    protocol,
                })));
            }
        }
        if let Some(PendingMirrors(targets)) = request.extensions_mut().remove::<PendingMirrors>() {
            for backend in targets {
                self.mirrors.send(self.upstream.clone(), &request, backend);
            }
        }
        let attempt = Attempt {
            upstream: self.upstream.clone(),
            mirrors: Arc::clone(&self.mirrors),
            matched,
        };
        Box::pin(attempt.run(request))
    }
}

/// What every try of one request shares.
struct Attempt<S> {
    upstream: S,
    mirrors: Arc<Mirrors>,
    matched: MatchedRoute,
}

impl<S> Attempt<S> {
    /// The tries within `timeouts.request`.
    async fn run<B, RB>(self, request: Request<B>) -> Result<Response<RB>, RouteError>
    where
        S: UpstreamService<B, RB>,
        B: http_body::Body + Default + Send + 'static,
        RB: Default + Send + 'static,
    {
        match self.matched.rule.timeouts.request {
            None => self.tries(request).await,
            Some(limit) => tokio::time::timeout(limit, self.tries(request))
                .await
                .unwrap_or(Err(RouteError::RequestTimeout)),
        }
    }

    /// Retries send copies (a request with a body only when a [`ReplayBody`] keeps it); the
    /// last try sends the request itself.
    async fn tries<B, RB>(self, request: Request<B>) -> Result<Response<RB>, RouteError>
    where
        S: UpstreamService<B, RB>,
        B: http_body::Body + Default + Send + 'static,
        RB: Default + Send + 'static,
    {
        let from_policy = request.extensions().get::<PolicyRetry>();
        let per_try = self
            .matched
            .rule
            .timeouts
            .backend_request
            .or(from_policy.and_then(|p| p.per_try_timeout));
        let retry = self
            .matched
            .rule
            .retry
            .clone()
            .or_else(|| from_policy.map(|p| p.retry.clone()));
        // A body is sent again only when a layer kept it (looked up only for a retried rule).
        let replay = retry
            .as_ref()
            .and_then(|_| request.extensions().get::<ReplayBody<B>>().cloned());
        let retry = retry.filter(|_| replay.is_some() || request.body().is_end_stream());
        let gate = request.extensions().get::<RetryGate>().cloned();
        // Envoy's router headers, when asked for: `Some(expected timeout, if any)`.
        let envoy = request
            .extensions()
            .get::<EnvoyHeaders>()
            .map(|asked| per_try.or(self.matched.rule.timeouts.request.or(asked.request_timeout)));
        // The place of the retry under way, held through its try.
        let mut retry_place = None;
        let mut levels = LevelsTried::new(retry.as_ref().and_then(|r| r.attempts_per_priority));
        if let Some(retry) = retry {
            for _ in 0..retry.attempts {
                let mut copy = copy_without_body(&request);
                if let Some(replay) = &replay {
                    *copy.body_mut() = replay.body();
                }
                let outcome = self.one_try(copy, per_try, envoy, &mut levels).await;
                retry_place = None;
                if !retriable(&outcome, &retry) {
                    return outcome;
                }
                if let Some(RetryGate(budget)) = &gate {
                    match budget.try_retry() {
                        Some(place) => retry_place = Some(place),
                        None => return outcome,
                    }
                }
                if retry.backoff > Duration::ZERO {
                    tokio::time::sleep(retry.backoff).await;
                }
            }
        }
        let outcome = self.one_try(request, per_try, envoy, &mut levels).await;
        drop(retry_place);
        outcome
    }

    /// One try: a Service chosen by weight, its filters, the call within `per_try` (the
    /// rule's `timeouts.backendRequest`, else a policy's per-try timeout), the backend's
    /// response edits; with `envoy` (`Some(expected timeout)`), Envoy's router headers.
    fn one_try<B, RB>(
        &self,
        mut request: Request<B>,
        per_try: Option<Duration>,
        envoy: Option<Option<Duration>>,
        levels: &mut LevelsTried,
    ) -> impl Future<Output = Result<Response<RB>, RouteError>> + Send + 'static
    where
        S: UpstreamService<B, RB>,
        B: http_body::Body + Default + Send + 'static,
        RB: Default + Send + 'static,
    {
        let rule = Arc::clone(&self.matched.rule);
        let mut effects = FilterEffects::default();
        let balancer = request.extensions().get::<PolicyBalancer>().cloned();
        // A consistent hash seeds the choice only when there is one to make (the balancer
        // hashes the request again for the endpoint).
        let seed = balancer
            .as_ref()
            .filter(|_| rule.backends.len() > 1)
            .and_then(|b| b.0.backend_seed(&RequestHead::of(&request)))
            .unwrap_or_else(rand::random);
        let chosen = choose_backend(
            &rule.backends,
            balancer.as_ref().map(|b| &*b.0),
            seed,
            levels.excluded_now(),
        );
        levels.tried(&chosen);
        let panic = chosen.panic;
        let chosen = match chosen.choice {
            BackendChoice::Forward(backend) => Ok(Arc::clone(backend)),
            BackendChoice::NoEndpoints => Err(RouteError::NoEndpoints),
            BackendChoice::Invalid => Err(RouteError::InvalidBackend),
        };
        let early = chosen.and_then(|backend| {
            if !backend.filters.is_empty() {
                let answer =
                    apply_filters(&backend.filters, &self.matched, &mut request, &mut effects)?;
                for target in std::mem::take(&mut effects.mirrors) {
                    self.mirrors.send(self.upstream.clone(), &request, target);
                }
                if let Some(answer) = answer {
                    return Ok(Err(answer));
                }
            }
            Ok(Ok(backend))
        });
        // The policy's balancer picks the endpoint now, while the request is at hand.
        let pick = match (&early, &balancer) {
            (Ok(Ok(backend)), Some(balancer)) => {
                match balancer
                    .0
                    .pick_in_level(backend, &RequestHead::of(&request), panic)
                {
                    Some(pick) => {
                        request.extensions_mut().insert(SelectedEndpoint {
                            endpoints: Arc::clone(&backend.endpoints),
                            index: pick.endpoint,
                            predicted: pick.predicted,
                        });
                        Ok(Some(pick))
                    }
                    None => Err(RouteError::NoEndpoints),
                }
            }
            _ => Ok(None),
        };
        let mut upstream = self.upstream.clone();
        async move {
            let backend = match early? {
                Ok(backend) => backend,
                Err(answer) => return Ok(answer),
            };
            request.extensions_mut().insert(SelectedBackend(backend));
            let (ticket, set_cookie) = match pick? {
                Some(pick) => (pick.ticket, pick.set_cookie),
                None => (None, None),
            };
            if let Some(Some(expected)) = envoy {
                request.headers_mut().insert(
                    EXPECTED_TIMEOUT,
                    http::HeaderValue::from(expected.as_millis() as u64),
                );
            }
            let started = envoy.map(|_| std::time::Instant::now());
            let outcome = async {
                poll_fn(|cx| upstream.poll_ready(cx)).await?;
                let call = upstream.call(request);
                match per_try {
                    None => Ok(call.await?),
                    Some(limit) => tokio::time::timeout(limit, call)
                        .await
                        .map_err(|_elapsed| RouteError::BackendTimeout)?
                        .map_err(RouteError::from),
                }
            }
            .await;
            let mut outcome = outcome;
            if let Some(ticket) = ticket {
                if let Ok(response) = &mut outcome {
                    ticket.read_answer(response.headers_mut());
                }
                ticket.finish(TryOutcome::of(&outcome));
            }
            let mut response = outcome?;
            if let Some(started) = started {
                let took = started.elapsed().as_millis() as u64;
                response
                    .headers_mut()
                    .insert(UPSTREAM_SERVICE_TIME, http::HeaderValue::from(took));
            }
            effects.decorate(response.headers_mut());
            if let Some(cookie) = set_cookie {
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
    }
}

/// The priority levels (primary, fallback backends) a request's tries went to, for Envoy's
/// previous-priorities retry selector (`numAttemptsPerPriority`): after every `per_level`
/// tries, the levels tried so far are left out of the next tries while another has health.
#[derive(Debug, Default)]
struct LevelsTried {
    per_level: Option<u32>,
    tries: u32,
    tried: [bool; 2],
    excluded: [bool; 2],
}

impl LevelsTried {
    fn new(per_level: Option<u32>) -> Self {
        LevelsTried {
            per_level,
            ..LevelsTried::default()
        }
    }

    /// The levels the next try leaves out.
    fn excluded_now(&mut self) -> [bool; 2] {
        if let Some(every) = self.per_level
            && self.tries >= every
            && self.tries.is_multiple_of(every)
        {
            self.excluded = [
                self.excluded[0] || self.tried[0],
                self.excluded[1] || self.tried[1],
            ];
        }
        self.excluded
    }

    /// Notes the level a try went to (forgetting the levels tried when the exclusion had to
    /// be ignored).
    fn tried<B>(&mut self, choice: &crate::backends::PriorityChoice<'_, B>) {
        if self.per_level.is_none() || choice.panic.is_none() {
            return;
        }
        if choice.exclusion_ignored {
            *self = LevelsTried::new(self.per_level);
        }
        self.tries += 1;
        self.tried[usize::from(choice.fallback)] = true;
    }
}

/// Whether a try's outcome may be retried under `retry`.
fn retriable<RB>(outcome: &Result<Response<RB>, RouteError>, retry: &RetryPolicy) -> bool {
    match outcome {
        Ok(response) => {
            retry.codes.contains(&response.status().as_u16())
                || (!retry.grpc_statuses.is_empty()
                    && response
                        .headers()
                        .get("grpc-status")
                        .and_then(|value| value.to_str().ok()?.parse::<u8>().ok())
                        .is_some_and(|status| retry.grpc_statuses.contains(&status)))
        }
        Err(RouteError::Upstream(error)) => error.is_retriable(),
        Err(RouteError::BackendTimeout | RouteError::NoEndpoints) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{BackendChoice, PriorityChoice};

    fn went(fallback: bool, exclusion_ignored: bool) -> PriorityChoice<'static, ()> {
        PriorityChoice {
            choice: BackendChoice::Forward(&()),
            panic: Some(false),
            fallback,
            exclusion_ignored,
        }
    }

    #[test]
    fn levels_tried_are_left_out_after_every_n_tries() {
        // One try per level: the retry leaves the primary level out, the next both (which the
        // choice ignores, starting over).
        let mut levels = LevelsTried::new(Some(1));
        assert_eq!(levels.excluded_now(), [false, false]);
        levels.tried(&went(false, false));
        assert_eq!(levels.excluded_now(), [true, false]);
        levels.tried(&went(true, false));
        assert_eq!(levels.excluded_now(), [true, true]);
        levels.tried(&went(false, true));
        assert_eq!(levels.tries, 1);
        assert_eq!(levels.excluded_now(), [true, false]);
        // Two tries per level: the second try stays, the third moves.
        let mut levels = LevelsTried::new(Some(2));
        levels.tried(&went(false, false));
        assert_eq!(levels.excluded_now(), [false, false]);
        levels.tried(&went(false, false));
        assert_eq!(levels.excluded_now(), [true, false]);
        // Without the setting, or without fallback backends, nothing is left out.
        let mut levels = LevelsTried::new(None);
        levels.tried(&went(false, false));
        assert_eq!(levels.excluded_now(), [false, false]);
        let mut levels = LevelsTried::new(Some(1));
        levels.tried(&PriorityChoice {
            panic: None,
            ..went(false, false)
        });
        assert_eq!(levels.excluded_now(), [false, false]);
    }
}
