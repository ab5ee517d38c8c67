//! [`GlobalRateLimitFromRoute`]: the matched rule's global rate limit (BackendTrafficPolicy
//! `rateLimit.global`) on a gateway's request path, after the local limit (Envoy's filter
//! order). The request's counters are charged in the shared backend before it goes on; over a
//! limit it is answered 429 (`GloballyRateLimited`); when the backend fails, it passes (fail
//! open, Envoy Gateway's default) or is answered 500 (fail closed). Passing answers carry the
//! draft-03 `x-ratelimit-*` headers; response costs are charged once the response arrives.
//! Requests of routes without a global limit cost one slot lookup.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use routing::router::RouteError;
use tower::Service;

use super::facts::with_facts;
use super::future::{InnerOrBoxed, take_ready};
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
    type Future = InnerOrBoxed<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(traffic) = later_route_traffic(&request) else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let Some(global) = traffic.global.clone() else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let mut charged = with_facts(&request, |facts| {
            global.limit.hits(facts, since_unix_epoch())
        });
        if charged.hits.is_empty() {
            return InnerOrBoxed::Inner(self.inner.call(request));
        }
        let policy = traffic.name.to_string();
        let quiet = request.extensions().get::<RateLimitHeadersOff>().is_some();
        let mut ready = take_ready(&mut self.inner);
        InnerOrBoxed::Boxed(Box::pin(async move {
            // What the response will cost is taken now; the counters' keys then move to the
            // backend (the verdict reads only the rules and windows).
            let later = global.limit.response_hits(&charged);
            let hits = std::mem::take(&mut charged.hits);
            let headers = match global.counters.add(hits).await {
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
