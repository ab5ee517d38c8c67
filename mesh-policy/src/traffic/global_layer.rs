//! [`GlobalRateLimitFromRoute`]: the matched rule's global rate limit (BackendTrafficPolicy
//! `rateLimit.global`) on a gateway's request path, after the local limit (Envoy's filter
//! order). The request's counters are charged in the shared backend before it goes on; over a
//! limit it is answered 429 (`GloballyRateLimited`); when the backend fails, it passes (fail
//! open, Envoy Gateway's default) or is answered 500 (fail closed). Passing answers carry the
//! draft-03 `x-ratelimit-*` headers; response costs are charged once the response arrives.
//! Requests of routes without a global limit cost one slot lookup.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use routing::router::RouteError;
use tower::Service;

use super::facts::with_facts;
use super::layer::{RateLimitHeadersOff, later_route_traffic};

/// Applies the matched rule's global rate limit.
#[derive(Debug, Clone)]
pub struct GlobalRateLimitFromRoute<S> {
    inner: S,
}

impl<S> GlobalRateLimitFromRoute<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        GlobalRateLimitFromRoute { inner }
    }
}

/// The future of [`GlobalRateLimitFromRoute`]: the inner future, or the counted path boxed.
#[pin_project::pin_project(project = GlobalFutureProjection)]
pub enum GlobalRateLimitFuture<F, R> {
    /// No global limit applies.
    Inner(#[pin] F),
    /// Counting, then the inner service.
    Counted(Pin<Box<dyn Future<Output = Result<R, RouteError>> + Send>>),
}

impl<F, R> Future for GlobalRateLimitFuture<F, R>
where
    F: Future<Output = Result<R, RouteError>>,
{
    type Output = Result<R, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GlobalFutureProjection::Inner(future) => future.poll(cx),
            GlobalFutureProjection::Counted(future) => future.as_mut().poll(cx),
        }
    }
}

fn since_unix_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl<S, B, RB> Service<Request<B>> for GlobalRateLimitFromRoute<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = GlobalRateLimitFuture<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(traffic) = later_route_traffic(&request) else {
            return GlobalRateLimitFuture::Inner(self.inner.call(request));
        };
        let Some(global) = traffic.global.clone() else {
            return GlobalRateLimitFuture::Inner(self.inner.call(request));
        };
        let charged = with_facts(&request, |facts| {
            global.limit.hits(facts, since_unix_epoch())
        });
        if charged.hits.is_empty() {
            return GlobalRateLimitFuture::Inner(self.inner.call(request));
        }
        let policy = traffic.name.to_string();
        let quiet = request.extensions().get::<RateLimitHeadersOff>().is_some();
        // The ready service goes with the request; a fresh clone stays for the next one.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        GlobalRateLimitFuture::Counted(Box::pin(async move {
            let headers = match global.counters.add(charged.hits.clone()).await {
                Ok(counts) => {
                    let verdict = global.limit.decide(&charged, &counts);
                    let headers = if quiet {
                        http::HeaderMap::new()
                    } else {
                        verdict.headers
                    };
                    if !verdict.allowed {
                        return Err(RouteError::GloballyRateLimited {
                            policy,
                            headers: Box::new(headers),
                        });
                    }
                    headers
                }
                Err(_) if global.counters.fail_closed() => {
                    return Err(RouteError::RateLimitBackendFailed { policy });
                }
                Err(_) => http::HeaderMap::new(),
            };
            poll_fn(|cx| ready.poll_ready(cx)).await?;
            let mut response = ready.call(request).await?;
            response.headers_mut().extend(headers);
            let later = global.limit.response_hits(&charged);
            if !later.is_empty() {
                // Charged in the background: the response does not wait for it.
                let counters = std::sync::Arc::clone(&global.counters);
                tokio::spawn(async move {
                    let _ = counters.add(later).await;
                });
            }
            Ok(response)
        }))
    }
}
