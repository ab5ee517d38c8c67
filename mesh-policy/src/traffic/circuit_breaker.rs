//! The circuit breaker (policy.md §2.4, BackendTrafficPolicy `circuitBreaker`) of a backend
//! cluster (a route rule):
//!
//! - at most `maxParallelRequests` requests in flight; one more is refused at once — 503 with
//!   `x-envoy-overloaded: true`, never queued (§7 item 7);
//! - of those, at most `maxConnections` talk to the backends at once (each request in flight
//!   holds one upstream connection, as HTTP/1.1 does); the others wait for a place, at most
//!   `maxPendingRequests` of them — one more is refused at once, 503 as well;
//! - at most `maxParallelRetries` retries at once ([`CircuitBreaker::try_retry`]): past it a
//!   retry is not made and the try's own answer stands.
//!
//! Each limit defaults to Envoy's 1024 (3 for retries); 0 refuses everything. A request counts
//! until its response headers arrive.
//!
//! ```
//! use mesh_policy::traffic::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, Limits};
//! let layer = CircuitBreakerLayer::new("backend-a", CircuitBreaker::new(100));
//! let queued = CircuitBreaker::with_limits(Limits { max_connections: 10, max_pending_requests: 0, ..Limits::default() });
//! # let _ = (layer, queued);
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use http::Request;
use routing::router::RouteError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

/// Envoy's default for each limit but retries.
pub const DEFAULT_LIMIT: u32 = 1024;

/// Envoy's default for `maxParallelRetries`.
pub const DEFAULT_RETRY_LIMIT: u32 = 3;

/// The limits of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight (queued or not).
    pub max_parallel_requests: u32,
    /// Requests talking to the backends at once.
    pub max_connections: u32,
    /// Requests waiting for one of those places.
    pub max_pending_requests: u32,
    /// Retries at once.
    pub max_parallel_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parallel_requests: DEFAULT_LIMIT,
            max_connections: DEFAULT_LIMIT,
            max_pending_requests: DEFAULT_LIMIT,
            max_parallel_retries: DEFAULT_RETRY_LIMIT,
        }
    }
}

/// The counts of one cluster and their limits.
#[derive(Debug)]
pub struct CircuitBreaker {
    limits: Limits,
    active: AtomicU32,
    pending: AtomicU32,
    retries: AtomicU32,
    /// The connection places; `None` when the parallel limit already bounds them (no request
    /// can then wait for one).
    connections: Option<Arc<Semaphore>>,
}

/// A request's place in the counts, given back on drop.
#[derive(Debug)]
pub struct InFlight {
    breaker: Arc<CircuitBreaker>,
    _connection: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.breaker.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request admitted but waiting for a connection place, counted as pending until then.
#[derive(Debug)]
pub struct Pending {
    place: InFlight,
}

impl Pending {
    /// Waits for a connection place.
    pub async fn connected(self) -> InFlight {
        let breaker = Arc::clone(&self.place.breaker);
        let permit = match &breaker.connections {
            Some(connections) => Arc::clone(connections).acquire_owned().await.ok(),
            None => None,
        };
        breaker.pending.fetch_sub(1, Ordering::AcqRel);
        let mut place = self.place;
        place._connection = permit;
        place
    }
}

/// How a request is admitted.
#[derive(Debug)]
pub enum Admitted {
    /// With a connection place: go on.
    Now(InFlight),
    /// Without one yet: wait for it.
    Queued(Pending),
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `maxParallelRequests`.
    ParallelRequests,
    /// `maxPendingRequests`.
    PendingRequests,
}

/// One retry's place, given back on drop.
#[derive(Debug)]
pub struct RetryPlace(Arc<CircuitBreaker>);

impl Drop for RetryPlace {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A circuit breaker's retry limit, as the route's retry loop asks for it
/// ([`routing::router::RetryGate`]).
#[derive(Debug)]
pub struct BreakerRetries(pub Arc<CircuitBreaker>);

impl routing::router::RetryBudget for BreakerRetries {
    fn try_retry(&self) -> Option<Box<dyn Send + Sync>> {
        self.0
            .try_retry()
            .map(|place| Box::new(place) as Box<dyn Send + Sync>)
    }
}

/// Adds one to `counter` unless it is at `limit`.
fn increment_below(counter: &AtomicU32, limit: u32) -> bool {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        if current >= limit {
            return false;
        }
        match counter.compare_exchange_weak(
            current,
            current + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return true,
            Err(seen) => current = seen,
        }
    }
}

impl CircuitBreaker {
    /// At most `max_parallel_requests` in flight (the other limits at their defaults).
    pub fn new(max_parallel_requests: u32) -> Self {
        CircuitBreaker::with_limits(Limits {
            max_parallel_requests,
            ..Limits::default()
        })
    }

    /// With `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        CircuitBreaker {
            limits,
            active: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            connections: (limits.max_connections < limits.max_parallel_requests)
                .then(|| Arc::new(Semaphore::new(limits.max_connections as usize))),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Requests in flight now (queued or not).
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Requests waiting for a connection place now.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Acquire)
    }

    /// A place for one more request with a connection place, unless a limit is reached
    /// (no queueing).
    pub fn try_enter(self: &Arc<Self>) -> Option<InFlight> {
        match self.admit() {
            Ok(Admitted::Now(place)) => Some(place),
            _ => None,
        }
    }

    /// Admits one more request: at once, queued for a connection place, or refused.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, Overflow> {
        if !increment_below(&self.active, self.limits.max_parallel_requests) {
            return Err(Overflow::ParallelRequests);
        }
        let mut place = InFlight {
            breaker: Arc::clone(self),
            _connection: None,
        };
        let Some(connections) = &self.connections else {
            return Ok(Admitted::Now(place));
        };
        if let Ok(permit) = Arc::clone(connections).try_acquire_owned() {
            place._connection = Some(permit);
            return Ok(Admitted::Now(place));
        }
        if !increment_below(&self.pending, self.limits.max_pending_requests) {
            return Err(Overflow::PendingRequests);
        }
        Ok(Admitted::Queued(Pending { place }))
    }

    /// A place for one more retry, unless `maxParallelRetries` are under way.
    pub fn try_retry(self: &Arc<Self>) -> Option<RetryPlace> {
        increment_below(&self.retries, self.limits.max_parallel_retries)
            .then(|| RetryPlace(Arc::clone(self)))
    }

    /// The refusal for an overflowing request.
    pub fn refusal(policy: &str) -> RouteError {
        CircuitBreaker::overflow(policy, Overflow::ParallelRequests)
    }

    /// The refusal for a request over `limit`.
    pub fn overflow(policy: &str, limit: Overflow) -> RouteError {
        let field = match limit {
            Overflow::ParallelRequests => "maxParallelRequests",
            Overflow::PendingRequests => "maxPendingRequests",
        };
        RouteError::Overloaded {
            policy: format!("{policy} circuitBreaker {field}"),
        }
    }
}

/// Limits the requests in flight through it.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    name: Arc<str>,
    breaker: Arc<CircuitBreaker>,
}

impl CircuitBreakerLayer {
    /// Limits with `breaker`; refusals name `name`.
    pub fn new(name: impl Into<Arc<str>>, breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            name: name.into(),
            breaker: Arc::new(breaker),
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> CircuitBreakerService<S> {
        CircuitBreakerService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    layer: CircuitBreakerLayer,
    inner: S,
}

/// The inner future, holding the request's place until it completes.
#[pin_project::pin_project(project = HoldingProjection)]
pub enum Holding<F, R> {
    /// Refused.
    Refused(Option<RouteError>),
    /// In flight.
    Inner {
        /// The inner future.
        #[pin]
        inner: F,
        /// The place, released when the future completes or is dropped.
        place: Option<InFlight>,
    },
    /// Waiting for a connection place, then in flight.
    Queued(super::future::BoxedRouteFuture<R>),
}

impl<F, R> Future for Holding<F, R>
where
    F: Future<Output = Result<R, RouteError>>,
{
    type Output = Result<R, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HoldingProjection::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or(RouteError::Misassembled("a finished future")))),
            HoldingProjection::Inner { inner, place } => {
                let outcome = std::task::ready!(inner.poll(cx));
                place.take();
                Poll::Ready(outcome)
            }
            HoldingProjection::Queued(queued) => queued.as_mut().poll(cx),
        }
    }
}

impl<S, B> Service<Request<B>> for CircuitBreakerService<S>
where
    S: Service<Request<B>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = RouteError;
    type Future = Holding<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.layer.breaker.admit() {
            Ok(Admitted::Now(place)) => Holding::Inner {
                inner: self.inner.call(request),
                place: Some(place),
            },
            Ok(Admitted::Queued(pending)) => {
                let mut ready = super::future::take_ready(&mut self.inner);
                Holding::Queued(Box::pin(async move {
                    let _place = pending.connected().await;
                    std::future::poll_fn(|cx| ready.poll_ready(cx)).await?;
                    ready.call(request).await
                }))
            }
            Err(limit) => Holding::Refused(Some(CircuitBreaker::overflow(&self.layer.name, limit))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_limited_and_given_back() {
        let breaker = Arc::new(CircuitBreaker::new(2));
        let first = breaker.try_enter().unwrap();
        let _second = breaker.try_enter().unwrap();
        assert!(breaker.try_enter().is_none());
        drop(first);
        assert_eq!(breaker.active(), 1);
        assert!(breaker.try_enter().is_some());
        assert!(Arc::new(CircuitBreaker::new(0)).try_enter().is_none());
    }

    #[tokio::test]
    async fn requests_past_the_connections_wait_up_to_the_pending_limit() {
        let breaker = Arc::new(CircuitBreaker::with_limits(Limits {
            max_parallel_requests: 10,
            max_connections: 1,
            max_pending_requests: 1,
            max_parallel_retries: 1,
        }));
        let Ok(Admitted::Now(first)) = breaker.admit() else {
            panic!("a connection place is free");
        };
        let Ok(Admitted::Queued(second)) = breaker.admit() else {
            panic!("queued behind the first");
        };
        assert_eq!(breaker.admit().unwrap_err(), Overflow::PendingRequests);
        assert_eq!((breaker.active(), breaker.pending()), (2, 1));
        let waiting = tokio::spawn(second.connected());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!((breaker.active(), breaker.pending()), (1, 0));
        drop(second);
        assert_eq!(breaker.active(), 0);
        let retry = breaker.try_retry().unwrap();
        assert!(breaker.try_retry().is_none());
        drop(retry);
        assert!(breaker.try_retry().is_some());
    }

    #[tokio::test]
    async fn overflow_is_refused_at_once_not_queued() {
        use tower::ServiceExt;
        let (release, released) = tokio::sync::watch::channel(false);
        let slow = tower::service_fn(move |_: Request<()>| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok::<_, RouteError>("done")
            }
        });
        let service = CircuitBreakerLayer::new("p", CircuitBreaker::new(1)).layer(slow);
        let held = tokio::spawn(service.clone().oneshot(Request::new(())));
        tokio::task::yield_now().await;
        while service.layer.breaker.active() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = service.clone().oneshot(Request::new(())).await;
        assert!(matches!(refused, Err(RouteError::Overloaded { .. })));
        release.send(true).unwrap();
        assert_eq!(held.await.unwrap().unwrap(), "done");
        assert_eq!(service.layer.breaker.active(), 0);
    }
}
