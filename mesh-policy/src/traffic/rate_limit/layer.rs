//! [`LocalRateLimitLayer`]: a route's local rate limit as a tower layer. A refused request
//! ends as [`RouteError::RateLimited`] (429 with the headers); an allowed one gets the
//! `x-ratelimit-*` headers on its response.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mesh_policy::traffic::rate_limit::{LocalRateLimit, LocalRateLimitLayer, RateLimitRule};
//! let rule = RateLimitRule {
//!     selectors: vec![], requests: 10, unit: Duration::from_secs(1), cost: 1,
//!     shadow: false, shared: false, headers: true,
//! };
//! let epoch = mesh_policy::traffic::rate_limit::clock::Epoch::now();
//! let limit = LocalRateLimit::new(&[rule], &epoch, &mut |_, r| {
//!     Arc::new(mesh_policy::traffic::rate_limit::local::RuleBuckets::new(r.clone()))
//! }).unwrap();
//! let layer = LocalRateLimitLayer::new("ten per second", limit);
//! # let _ = layer;
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use routing::router::RouteError;
use tower::{Layer, Service};

use super::bucket::BucketCheck;
use super::local::LocalRateLimit;
use crate::traffic::facts::with_facts;
use crate::traffic::future::AddHeaders;

/// `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (whole seconds, up).
pub fn rate_limit_headers(check: &BucketCheck) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    let reset = check.reset_nanos.div_ceil(1_000_000_000);
    headers.insert(LIMIT, HeaderValue::from(check.limit));
    headers.insert(REMAINING, HeaderValue::from(check.remaining));
    headers.insert(RESET, HeaderValue::from(reset));
    headers
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Applies one local rate limit to every request.
#[derive(Debug, Clone)]
pub struct LocalRateLimitLayer {
    name: Arc<str>,
    limit: Arc<LocalRateLimit>,
}

impl LocalRateLimitLayer {
    /// Applies `limit`; refusals name `name`.
    pub fn new(name: impl Into<Arc<str>>, limit: LocalRateLimit) -> Self {
        LocalRateLimitLayer {
            name: name.into(),
            limit: Arc::new(limit),
        }
    }
}

impl<S> Layer<S> for LocalRateLimitLayer {
    type Service = LocalRateLimitService<S>;

    fn layer(&self, inner: S) -> LocalRateLimitService<S> {
        LocalRateLimitService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`LocalRateLimitLayer`].
#[derive(Debug, Clone)]
pub struct LocalRateLimitService<S> {
    layer: LocalRateLimitLayer,
    inner: S,
}

/// Checks `request` against `limit`: the headers to add to the response, or the refusal.
pub fn limit_request<B>(
    limit: &LocalRateLimit,
    name: &str,
    request: &Request<B>,
) -> Result<Option<HeaderMap>, RouteError> {
    let outcome = with_facts(request, |facts| limit.check_request(facts));
    let headers = outcome.report.as_ref().map(rate_limit_headers);
    if outcome.allowed {
        Ok(headers)
    } else {
        Err(RouteError::RateLimited {
            policy: name.to_owned(),
            headers: headers.unwrap_or_default(),
        })
    }
}

impl<S, B, RB> Service<Request<B>> for LocalRateLimitService<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = AddHeaders<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match limit_request(&self.layer.limit, &self.layer.name, &request) {
            Ok(headers) => AddHeaders::Inner {
                inner: self.inner.call(request),
                headers,
            },
            Err(refusal) => AddHeaders::Early(Some(Err(refusal))),
        }
    }
}
