//! The circuit breaker (policy.md §2.4, BackendTrafficPolicy `circuitBreaker`): at most
//! `maxParallelRequests` requests of a backend cluster (a route rule) in flight; one more is
//! refused at once — 503 with `x-envoy-overloaded: true`, never queued (§7 item 7). A limit of
//! 0 refuses everything. A request counts until its response headers arrive.
//!
//! ```
//! use mesh_policy::traffic::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
//! let layer = CircuitBreakerLayer::new("backend-a", CircuitBreaker::new(100));
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use http::Request;
use routing::router::RouteError;
use tower::{Layer, Service};

/// Envoy's default for each limit.
pub const DEFAULT_LIMIT: u32 = 1024;

/// The in-flight count of one cluster and its limit.
#[derive(Debug)]
pub struct CircuitBreaker {
    max_parallel_requests: u32,
    active: AtomicU32,
}

/// A request's place in the count, given back on drop.
#[derive(Debug)]
pub struct InFlight(Arc<CircuitBreaker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CircuitBreaker {
    /// At most `max_parallel_requests` in flight.
    pub fn new(max_parallel_requests: u32) -> Self {
        CircuitBreaker {
            max_parallel_requests,
            active: AtomicU32::new(0),
        }
    }

    /// Requests in flight now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// A place for one more request, unless the limit is reached.
    pub fn try_enter(self: &Arc<Self>) -> Option<InFlight> {
        let mut current = self.active.load(Ordering::Acquire);
        loop {
            if current >= self.max_parallel_requests {
                return None;
            }
            match self.active.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(InFlight(Arc::clone(self))),
                Err(seen) => current = seen,
            }
        }
    }

    /// The refusal for an overflowing request.
    pub fn refusal(policy: &str) -> RouteError {
        RouteError::Overloaded {
            policy: format!("{policy} circuitBreaker maxParallelRequests"),
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
#[derive(Debug)]
pub enum Holding<F> {
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
}

impl<F, R> Future for Holding<F>
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
        }
    }
}

impl<S, B> Service<Request<B>> for CircuitBreakerService<S>
where
    S: Service<Request<B>, Error = RouteError>,
{
    type Response = S::Response;
    type Error = RouteError;
    type Future = Holding<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.layer.breaker.try_enter() {
            Some(place) => Holding::Inner {
                inner: self.inner.call(request),
                place: Some(place),
            },
            None => Holding::Refused(Some(CircuitBreaker::refusal(&self.layer.name))),
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
