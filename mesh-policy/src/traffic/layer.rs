//! The traffic policies on a gateway's request path, read from the policy slots:
//!
//! - [`ClientTrafficFromListener`], before route selection: the ClientTrafficPolicy of the
//!   listener the request belongs to (by TLS server name, else `Host`) — or, without one,
//!   Envoy Gateway's defaults — detects the client's address, normalises the path and
//!   headers, and answers the listener's health-check path (a request with two `Host`
//!   headers is refused first, 400);
//! - [`FaultFromRoute`], right after route selection (before authentication, as Envoy's
//!   filter order has it): the matched rule's fault injection;
//! - [`BackendTrafficFromRoute`], after authorization and before the rule's filters: the
//!   rule's local rate limit (429), circuit breaker (503) and request timeout (504).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use routing::http_route::RequestView;
use routing::router::{ListenerSet, MatchedRoute, RouteError, TlsServerName};

use super::circuit_breaker::Admitted;
use tower::Service;

use super::attach::{AttachedBackendTraffic, AttachedClientTraffic};
use super::compile::{CompiledClientTraffic, RouteTraffic};
use super::facts::with_facts;
use super::fault::{Dice, FaultPlan};
use super::header_format::FormatFacts;
use super::headers::apply_request_id;
use super::normalize::{NormalizeOutcome, redirect};
use super::tls_fingerprint::TlsFingerprints;
use super::xfcc::ClientCertDetails;

/// Applies each request's listener's ClientTrafficPolicy (or the defaults), then calls the
/// inner service (route selection).
#[derive(Debug, Clone)]
pub struct ClientTrafficFromListener<S> {
    listeners: Arc<ListenerSet>,
    defaults: Arc<CompiledClientTraffic>,
    /// Draws request ids.
    dice: Arc<Dice>,
    inner: S,
}

impl<S> ClientTrafficFromListener<S> {
    /// Over the listeners of one socket.
    pub fn new(listeners: Arc<ListenerSet>, inner: S) -> Self {
        ClientTrafficFromListener {
            listeners,
            defaults: Arc::new(CompiledClientTraffic {
                policy: routing::model::ObjectKey::new("", "defaults"),
                detection: Default::default(),
                normalization: Default::default(),
                health_check_path: None,
                proxy_protocol: None,
                request_id: Default::default(),
                early_request_headers: Default::default(),
                rate_limit_headers: true,
                tcp_keepalive: None,
                connection_limit: None,
                max_request_header_bytes: None,
                request_headers_timeout: None,
                request_received_timeout: None,
                idle_timeout: None,
                stream_idle_timeout: None,
                tcp_idle_timeout: None,
                max_connection_duration: None,
                max_requests_per_connection: None,
                max_stream_duration: None,
                tls: None,
                xfcc: Default::default(),
                http2: Default::default(),
                late_response_headers: Default::default(),
                http10: None,
                preserve_header_case: false,
                enable_trailers: false,
                envoy_headers: false,
                socket_buffer: None,
                match_backend_scheme: false,
                buffer_limit: super::compile::DEFAULT_BUFFER_LIMIT,
                max_accept_per_socket_event: None,
                http3: false,
            }),
            dice: Arc::new(Dice::from_clock()),
            inner,
        }
    }
}

/// The listener `request` belongs to: by TLS server name, else `Host`.
pub fn request_listener<'a, B>(
    listeners: &'a ListenerSet,
    request: &Request<B>,
) -> Option<&'a Arc<routing::compiled::CompiledListener>> {
    let host = match request.extensions().get::<TlsServerName>() {
        Some(TlsServerName(sni)) => sni.as_str(),
        None => RequestView::of(request).host_without_port(),
    };
    listeners.for_host(host)
}

/// The ClientTrafficPolicy of the listener `request` belongs to.
pub fn client_policy<'a, B>(
    listeners: &'a ListenerSet,
    request: &Request<B>,
) -> Option<&'a Arc<CompiledClientTraffic>> {
    request_listener(listeners, request)
        .and_then(|l| l.policy.get::<AttachedClientTraffic>())
        .map(|attached| &attached.0)
}

/// What becomes of an HTTP/1.0 request on a listener, as Envoy has it: refused with 426
/// unless the listener's policy accepts HTTP/1.0 (`http1.http10`); one without `Host` is
/// given the listener's hostname (`useDefaultHost`), or refused with 400.
fn admit_http10<B, RB: Default>(
    listeners: &ListenerSet,
    defaults: &CompiledClientTraffic,
    request: &mut Request<B>,
) -> Result<(), Result<Response<RB>, RouteError>> {
    // Without Host, the socket's only listener is the one (else the one without hostname).
    let listener = request_listener(listeners, request).or_else(|| {
        let all = listeners.listeners();
        (all.len() == 1).then(|| &all[0])
    });
    let policy = listener
        .and_then(|l| l.policy.get::<AttachedClientTraffic>())
        .map_or(defaults, |attached| &attached.0);
    let Some(http10) = policy.http10 else {
        let mut refused = Response::new(RB::default());
        *refused.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return Err(Ok(refused));
    };
    if request.headers().contains_key(http::header::HOST) {
        return Ok(());
    }
    let default_host = listener
        .and_then(|l| l.hostname.as_deref())
        .filter(|host| http10.use_default_host && !host.starts_with('*'))
        .and_then(|host| http::HeaderValue::from_str(host).ok());
    match default_host {
        Some(host) => {
            request.headers_mut().insert(http::header::HOST, host);
            Ok(())
        }
        None => Err(Err(RouteError::BadRequest {
            policy: format!("{} http1.http10", PolicyName(&policy.policy)),
            reason: "an HTTP/1.0 request without Host".to_owned(),
        })),
    }
}

/// Marks a request whose answers carry no `x-ratelimit-*` headers (the listener's
/// ClientTrafficPolicy `disableRateLimitHeaders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeadersOff;

/// Marks a request that arrives while the gateway fails its health checks ahead of draining
/// (the runtime inserts it): the listener's health-check path answers 503 instead of 200, as
/// Envoy's health check filter does once its health check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheckFailing;

/// Applies `policy` to `request`: an early answer (the health check, a redirect), a refusal,
/// or nothing (go on). New request ids are drawn from `dice`.
pub fn apply_client_policy<B, RB: Default>(
    policy: &CompiledClientTraffic,
    request: &mut Request<B>,
    dice: &Dice,
) -> Result<Option<Response<RB>>, RouteError> {
    let name = PolicyName(&policy.policy);
    if !policy.early_request_headers.is_empty() {
        let fingerprints = request.extensions().get::<Arc<TlsFingerprints>>().cloned();
        let facts = FormatFacts {
            fingerprints: fingerprints.as_deref(),
        };
        policy
            .early_request_headers
            .apply(request.headers_mut(), &facts);
    }
    let client_cert = request
        .extensions()
        .get::<Arc<ClientCertDetails>>()
        .cloned();
    policy
        .xfcc
        .apply(request.headers_mut(), client_cert.as_deref());
    apply_request_id(policy.request_id, request.headers_mut(), dice);
    if !policy.rate_limit_headers {
        request.extensions_mut().insert(RateLimitHeadersOff);
    }
    if policy.match_backend_scheme {
        request
            .extensions_mut()
            .insert(routing::router::MatchBackendScheme);
    }
    policy
        .detection
        .apply(request)
        .map_err(|error| RouteError::Denied(format!("{name} clientIPDetection: {error}")))?;
    if let NormalizeOutcome::Redirect(location) = policy.normalization.apply(request, &name)? {
        return Ok(Some(redirect(location)));
    }
    if policy
        .health_check_path
        .as_deref()
        .is_some_and(|path| path == request.uri().path())
    {
        let mut answer = Response::new(RB::default());
        *answer.status_mut() = match request.extensions().get::<HealthCheckFailing>() {
            Some(_) => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::OK,
        };
        return Ok(Some(answer));
    }
    Ok(None)
}

impl<S, B, RB> Service<Request<B>> for ClientTrafficFromListener<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = routing::router::EarlyOrInner<S::Future, Response<RB>, RouteError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // RFC 9112 §3.2: a request with more than one Host is answered 400 (a proxy and its
        // backend could each route on another one).
        let mut hosts = request.headers().get_all(http::header::HOST).iter();
        if hosts.next().is_some() && hosts.next().is_some() {
            return routing::router::EarlyOrInner::Early(Some(Err(RouteError::BadRequest {
                policy: "HTTP/1.1".to_owned(),
                reason: "more than one Host header".to_owned(),
            })));
        }
        if request.version() == http::Version::HTTP_10
            && let Err(answer) = admit_http10(&self.listeners, &self.defaults, &mut request)
        {
            return routing::router::EarlyOrInner::Early(Some(answer));
        }
        let policy = client_policy(&self.listeners, &request).unwrap_or(&self.defaults);
        match apply_client_policy(policy, &mut request, &self.dice) {
            Ok(None) => routing::router::EarlyOrInner::Inner(self.inner.call(request)),
            Ok(Some(answer)) => routing::router::EarlyOrInner::Early(Some(Ok(answer))),
            Err(refusal) => routing::router::EarlyOrInner::Early(Some(Err(refusal))),
        }
    }
}

/// `ClientTrafficPolicy namespace/name`, written only into a refusal.
struct PolicyName<'a>(&'a routing::model::ObjectKey);

impl std::fmt::Display for PolicyName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientTrafficPolicy {}", self.0)
    }
}

/// The BackendTrafficPolicy state of the request's matched rule on its listener.
pub fn route_traffic<B>(request: &Request<B>) -> Option<&RouteTraffic> {
    traffic_of(request.extensions().get::<MatchedRoute>()?)
}

/// The BackendTrafficPolicy state of `matched`'s rule on its listener.
pub fn traffic_of(matched: &MatchedRoute) -> Option<&RouteTraffic> {
    let attached = matched.rule.policy.get::<AttachedBackendTraffic>()?;
    let listener = matched
        .listener
        .as_ref()
        .map(|l| (&l.gateway, l.name.as_str()));
    attached.for_listener(listener)
}

/// Marks a request whose rule's BackendTrafficPolicy has work for the layers after
/// [`BackendTrafficFromRoute`] (a global limit, a request buffer, a bandwidth limit,
/// compression); without it
/// they pass the request on after one extension lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaterTrafficWork;

/// The matched rule's BackendTrafficPolicy state, when [`BackendTrafficFromRoute`] marked the
/// request with [`LaterTrafficWork`].
pub fn later_route_traffic<B>(request: &Request<B>) -> Option<&RouteTraffic> {
    request.extensions().get::<LaterTrafficWork>()?;
    route_traffic(request)
}

/// Injects the matched rule's faults.
#[derive(Debug, Clone)]
pub struct FaultFromRoute<S> {
    inner: S,
}

impl<S> FaultFromRoute<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        FaultFromRoute { inner }
    }
}

/// The inner future, or a fault's delay (and abort) first.
pub type FaultFuture<F, R> =
    futures_either::Either<F, Pin<Box<dyn Future<Output = Result<R, RouteError>> + Send>>>;

mod futures_either {
    //! A two-way future.
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// One future or the other.
    #[pin_project::pin_project(project = EitherProjection)]
    #[derive(Debug)]
    pub enum Either<A, B> {
        /// The first.
        Left(#[pin] A),
        /// The second.
        Right(#[pin] B),
    }

    impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
        type Output = A::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
            match self.project() {
                EitherProjection::Left(a) => a.poll(cx),
                EitherProjection::Right(b) => b.poll(cx),
            }
        }
    }
}

impl<S, B, R> Service<Request<B>> for FaultFromRoute<S>
where
    S: Service<Request<B>, Response = R, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = RouteError;
    type Future = FaultFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let plan = route_traffic(&request).and_then(|traffic| {
            let fault = traffic.policy.fault.as_ref()?;
            let plan = fault.plan(&traffic.dice);
            (plan != FaultPlan::default()).then(|| (plan, Arc::clone(&traffic.name)))
        });
        match plan {
            None => futures_either::Either::Left(self.inner.call(request)),
            Some((plan, name)) => {
                // The ready service goes with the request; a clone stays for the next one.
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                futures_either::Either::Right(Box::pin(super::fault::inject(
                    plan, name, ready, request,
                )))
            }
        }
    }
}

/// Applies the matched rule's local rate limit, circuit breaker and request timeout.
#[derive(Debug, Clone)]
pub struct BackendTrafficFromRoute<S> {
    inner: S,
}

impl<S> BackendTrafficFromRoute<S> {
    /// Wraps `inner` (the rule's filters and dispatch).
    pub fn new(inner: S) -> Self {
        BackendTrafficFromRoute { inner }
    }
}

/// The inner future within the rule's request timeout, holding the request's place in the
/// circuit breaker; the rate limiter's headers go onto the response.
#[pin_project::pin_project(project = BackendTrafficProjection)]
pub enum BackendTrafficFuture<F, RB> {
    /// Refused before the inner service.
    Refused(Option<RouteError>),
    /// Waiting for a place in the circuit breaker's connections, then in flight.
    Queued(super::future::BoxedRouteFuture<Response<RB>>),
    /// In flight.
    Inner {
        /// The inner future.
        #[pin]
        inner: F,
        /// The request timeout.
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        /// The place in the circuit breaker, given back when the future ends.
        place: Option<super::circuit_breaker::InFlight>,
        /// What the rate-limit headers report.
        report: Option<super::rate_limit::bucket::BucketCheck>,
        /// The admission control that counts how the request ends.
        admission: Option<Arc<super::admission::AdmissionController>>,
        /// The response body type.
        body: std::marker::PhantomData<fn() -> RB>,
    },
}

impl<F, RB> Future for BackendTrafficFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            BackendTrafficProjection::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or(RouteError::Misassembled("a finished future")))),
            BackendTrafficProjection::Queued(queued) => queued.as_mut().poll(cx),
            BackendTrafficProjection::Inner {
                inner,
                deadline,
                place,
                report,
                admission,
                ..
            } => {
                let outcome = match inner.poll(cx) {
                    Poll::Ready(outcome) => outcome,
                    Poll::Pending => match deadline.as_pin_mut().map(|d| d.poll(cx)) {
                        Some(Poll::Ready(())) => Err(RouteError::RequestTimeout),
                        _ => return Poll::Pending,
                    },
                };
                place.take();
                if let Some(control) = admission.take() {
                    control.record_outcome(&outcome);
                }
                let mut response = outcome?;
                if let Some(check) = report.take() {
                    let headers = super::rate_limit::rate_limit_headers(&check);
                    for (name, value) in headers {
                        if let Some(name) = name {
                            response.headers_mut().append(name, value);
                        }
                    }
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

impl<S, B, RB> Service<Request<B>> for BackendTrafficFromRoute<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = BackendTrafficFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(traffic) = route_traffic(&request) else {
            return BackendTrafficFuture::Inner {
                inner: self.inner.call(request),
                deadline: None,
                place: None,
                report: None,
                admission: None,
                body: std::marker::PhantomData,
            };
        };
        let quiet = request.extensions().get::<RateLimitHeadersOff>().is_some();
        let report = match &traffic.rate_limit {
            Some(limit) => {
                let outcome = with_facts(&request, |facts| limit.check_request(facts));
                if !outcome.allowed {
                    let headers = outcome
                        .report
                        .as_ref()
                        .filter(|_| !quiet)
                        .map(super::rate_limit::rate_limit_headers)
                        .unwrap_or_default();
                    return BackendTrafficFuture::Refused(Some(RouteError::RateLimited {
                        policy: traffic.name.to_string(),
                        headers,
                    }));
                }
                outcome.report.filter(|_| !quiet)
            }
            None => None,
        };
        // Admission control: refused at random while the rule's success rate is low; what
        // goes on is counted when it ends.
        let admission = match &traffic.admission {
            Some(control) if !control.admit() => {
                return BackendTrafficFuture::Refused(Some(RouteError::AdmissionRefused {
                    policy: format!("{} admissionControl", traffic.name),
                }));
            }
            Some(control) => Some(Arc::clone(control)),
            None => None,
        };
        let admitted = match &traffic.breaker {
            Some(breaker) => match breaker.admit() {
                Ok(admitted) => Some(admitted),
                Err(limit) => {
                    let refusal =
                        super::circuit_breaker::CircuitBreaker::overflow(&traffic.name, limit);
                    return BackendTrafficFuture::Refused(Some(refusal));
                }
            },
            None => None,
        };
        // The route's own `timeouts.request` is kept when it has one.
        let timeout = traffic.policy.request_timeout.flatten().filter(|_| {
            request
                .extensions()
                .get::<MatchedRoute>()
                .is_none_or(|m| m.rule.timeouts.request.is_none())
        });
        // Retries run in the route's one retry loop (which prefers the route's own `retry`),
        // which asks the rule's balancer for each try's endpoint.
        let retry = traffic.policy.retry.clone();
        let balancer = traffic.balancer.clone();
        let client_protocol = traffic.policy.use_client_protocol;
        let upgrades = traffic.policy.upgrades.clone();
        let upstream = traffic.policy.upstream_connection();
        // `maxStreamDuration` bounds the wait for the answer too (504, as Envoy answers a
        // request received whole), whatever the request timeout.
        let timeout = match (timeout, traffic.policy.upstream.max_stream_duration) {
            (Some(timeout), Some(limit)) => Some(timeout.min(limit)),
            (timeout, limit) => timeout.or(limit),
        };
        let later = traffic.global.is_some()
            || traffic.policy.request_buffer.is_some()
            || traffic.policy.compression.is_some()
            || traffic.bandwidth.is_some();
        // The retry loop asks the gate only when the rule retries.
        let retry_gate = traffic
            .retry_gate
            .as_ref()
            .filter(|_| {
                retry.is_some()
                    || request
                        .extensions()
                        .get::<MatchedRoute>()
                        .is_some_and(|m| m.rule.retry.is_some())
            })
            .cloned();
        if let Some(retry) = retry {
            request.extensions_mut().insert(retry);
        }
        if let (Some(timeout), Some(envoy)) = (
            timeout,
            request
                .extensions_mut()
                .get_mut::<routing::router::EnvoyHeaders>(),
        ) {
            envoy.request_timeout = Some(timeout);
        }
        if let Some(gate) = retry_gate {
            request.extensions_mut().insert(gate);
        }
        if let Some(balancer) = balancer {
            request.extensions_mut().insert(balancer);
        }
        if later {
            request.extensions_mut().insert(LaterTrafficWork);
        }
        if client_protocol {
            request
                .extensions_mut()
                .insert(routing::router::UseClientProtocol);
        }
        if let Some(upgrades) = upgrades {
            if let Some(connect) = upgrades.connect {
                request.extensions_mut().insert(connect);
            }
            request.extensions_mut().insert(upgrades.allowed);
        }
        if let Some(upstream) = upstream {
            request.extensions_mut().insert(upstream);
        }
        let deadline = timeout.map(tokio::time::sleep);
        let place = match admitted {
            None => None,
            Some(Admitted::Now(place)) => Some(place),
            Some(Admitted::Queued(pending)) => {
                // Waits for a connection place (within the request timeout), then goes on.
                let mut ready = super::future::take_ready(&mut self.inner);
                return BackendTrafficFuture::Queued(Box::pin(async move {
                    let Some(deadline) = deadline else {
                        let place = pending.connected().await;
                        return call_holding(&mut ready, request, place, report, admission).await;
                    };
                    tokio::pin!(deadline);
                    tokio::select! {
                        place = pending.connected() => {
                            tokio::select! {
                                outcome = call_holding(&mut ready, request, place, report, admission) => outcome,
                                () = &mut deadline => Err(RouteError::RequestTimeout),
                            }
                        }
                        () = &mut deadline => Err(RouteError::RequestTimeout),
                    }
                }));
            }
        };
        BackendTrafficFuture::Inner {
            inner: self.inner.call(request),
            deadline,
            place,
            report,
            admission,
            body: std::marker::PhantomData,
        }
    }
}

/// Calls `service` once it is ready, holding `place` until the response, with the rate
/// limiter's `report` on it; admission control counts how it ends.
async fn call_holding<S, B, RB>(
    service: &mut S,
    request: Request<B>,
    place: super::circuit_breaker::InFlight,
    report: Option<super::rate_limit::bucket::BucketCheck>,
    admission: Option<Arc<super::admission::AdmissionController>>,
) -> Result<Response<RB>, RouteError>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    BackendTrafficFuture::Inner {
        inner: service.call(request),
        deadline: None,
        place: Some(place),
        report,
        admission,
        body: std::marker::PhantomData,
    }
    .await
}
