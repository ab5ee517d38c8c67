//! CORS as a tower layer: preflights answered without the inner service (200 with the
//! policy's headers, or 403 for an origin not allowed), other responses decorated with
//! `access-control-allow-origin` (and credentials, expose headers) for allowed origins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::cors::CorsPolicy;

/// A layer applying a [`CorsPolicy`].
#[derive(Debug, Clone)]
pub struct CorsLayer {
    policy: Arc<CorsPolicy>,
}

/// The service of [`CorsLayer`].
#[derive(Debug, Clone)]
pub struct CorsService<S> {
    inner: S,
    policy: Arc<CorsPolicy>,
}

impl CorsLayer {
    /// A layer applying `policy`.
    pub fn new(policy: CorsPolicy) -> Self {
        CorsLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The future of [`CorsService`].
#[pin_project::pin_project(project = CorsFutureProjection)]
#[derive(Debug)]
pub enum CorsFuture<F, B> {
    /// A preflight, answered by the policy.
    Preflight(Option<Response<B>>),
    /// The inner service's response, to decorate for `origin`.
    Inner {
        /// The inner future.
        #[pin]
        future: F,
        /// The request's `Origin`, if any.
        origin: Option<HeaderValue>,
        /// The policy.
        policy: Arc<CorsPolicy>,
    },
}

impl<S, B, RB> Service<Request<B>> for CorsService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = CorsFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(answer) = self.policy.preflight(request.method(), request.headers()) {
            let mut response = Response::new(RB::default());
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            return CorsFuture::Preflight(Some(response));
        }
        CorsFuture::Inner {
            origin: request.headers().get(header::ORIGIN).cloned(),
            future: self.inner.call(request),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<F, RB, E> Future for CorsFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CorsFutureProjection::Preflight(answer) => match answer.take() {
                Some(answer) => Poll::Ready(Ok(answer)),
                None => Poll::Pending,
            },
            CorsFutureProjection::Inner {
                future,
                origin,
                policy,
            } => {
                let mut response = ready!(future.poll(cx))?;
                policy.decorate(origin.as_ref(), response.headers_mut());
                Poll::Ready(Ok(response))
            }
        }
    }
}
