//! [`RuleFilters`]: runs the matched rule's filters (Gateway API spec §1.4) as one layer, in
//! list order: request header edits and URL rewrites before the inner service, response header
//! edits and CORS headers after it; a redirect or a CORS preflight answers without it; sampled
//! mirrors are handed to [`Dispatch`](super::Dispatch) as [`PendingMirrors`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower::{Layer, Service};

use super::apply::{FilterEffects, apply_filters};
use super::{MatchedRoute, RouteError};
use crate::compiled::Backend;

/// Backends that get a copy of the request (the rule's sampled mirrors), as a request
/// extension for [`Dispatch`](super::Dispatch).
#[derive(Debug, Clone, Default)]
pub struct PendingMirrors(pub Vec<Arc<Backend>>);

/// A layer running the filters of the request's [`MatchedRoute`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleFiltersLayer;

/// The service of [`RuleFiltersLayer`]; `Misassembled` when no route was selected before it.
#[derive(Debug, Clone)]
pub struct RuleFilters<S> {
    inner: S,
}

impl<S> Layer<S> for RuleFiltersLayer {
    type Service = RuleFilters<S>;

    fn layer(&self, inner: S) -> RuleFilters<S> {
        RuleFilters { inner }
    }
}

impl<S> RuleFilters<S> {
    /// Runs filters, then calls `inner`.
    pub fn new(inner: S) -> Self {
        RuleFilters { inner }
    }
}

/// The future of [`RuleFilters`].
#[pin_project::pin_project(project = RuleFiltersProjection)]
#[derive(Debug)]
pub enum RuleFiltersFuture<F, RB> {
    /// Answered by a filter (or refused) without the inner service.
    Early(Option<Result<Response<RB>, RouteError>>),
    /// Waiting for the inner service; its response gets the recorded edits.
    Inner {
        /// The inner future.
        #[pin]
        future: F,
        /// Response edits and CORS headers to apply.
        effects: Option<Box<FilterEffectsOnResponse>>,
    },
}

/// Response edits recorded by the filters (opaque).
#[derive(Debug)]
pub struct FilterEffectsOnResponse(FilterEffects);

impl<S, B, RB> Service<Request<B>> for RuleFilters<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<RouteError>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = RuleFiltersFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(matched) = request.extensions().get::<MatchedRoute>().cloned() else {
            return RuleFiltersFuture::Early(Some(Err(RouteError::Misassembled("rule filters"))));
        };
        let mut effects = FilterEffects::default();
        match apply_filters(&matched.rule.filters, &matched, &mut request, &mut effects) {
            Err(error) => return RuleFiltersFuture::Early(Some(Err(error))),
            Ok(Some(answer)) => return RuleFiltersFuture::Early(Some(Ok(answer))),
            Ok(None) => {}
        }
        if !effects.mirrors.is_empty() {
            let mirrors = std::mem::take(&mut effects.mirrors);
            request.extensions_mut().insert(PendingMirrors(mirrors));
        }
        let effects =
            (!effects.response_untouched()).then(|| Box::new(FilterEffectsOnResponse(effects)));
        RuleFiltersFuture::Inner {
            future: self.inner.call(request),
            effects,
        }
    }
}

impl<F, RB, E> Future for RuleFiltersFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<RouteError>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RuleFiltersProjection::Early(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            RuleFiltersProjection::Inner { future, effects } => {
                let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                if let Some(effects) = effects.take() {
                    effects.0.decorate(response.headers_mut());
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}
