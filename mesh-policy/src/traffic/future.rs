//! The traffic layers' futures: [`AddHeaders`] (the inner future, with headers added to its
//! response: the local rate limit's `x-ratelimit-*`) and [`InnerOrBoxed`] (straight on, or the
//! layer's work boxed), with [`take_ready`] for the boxed path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response};
use routing::router::RouteError;

/// Either an early answer, or the inner future whose response gets `headers`.
#[pin_project::pin_project(project = AddHeadersProjection)]
#[derive(Debug)]
pub enum AddHeaders<F, RB> {
    /// Answered before the inner service.
    Early(Option<Result<Response<RB>, RouteError>>),
    /// The inner service's answer, decorated.
    Inner {
        /// The inner future.
        #[pin]
        inner: F,
        /// Added to the response (appended).
        headers: Option<HeaderMap>,
    },
}

impl<F, RB> Future for AddHeaders<F, RB>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AddHeadersProjection::Early(answer) => Poll::Ready(
                answer
                    .take()
                    .unwrap_or(Err(RouteError::Misassembled("a finished future"))),
            ),
            AddHeadersProjection::Inner { inner, headers } => {
                let mut response = ready!(inner.poll(cx))?;
                if let Some(headers) = headers.take() {
                    for (name, value) in &headers {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// The boxed future of a layer's slow path.
pub type BoxedRouteFuture<R> = Pin<Box<dyn Future<Output = Result<R, RouteError>> + Send>>;

/// The future of a layer that passes most requests straight on and boxes the few it has work
/// for (a global rate limit to count, a body to buffer, an answer to compress).
#[pin_project::pin_project(project = InnerOrBoxedProjection)]
pub enum InnerOrBoxed<F, R> {
    /// Passed straight on: the inner service's future.
    Inner(#[pin] F),
    /// The layer's work, then the inner service.
    Boxed(BoxedRouteFuture<R>),
}

impl<F, R> Future for InnerOrBoxed<F, R>
where
    F: Future<Output = Result<R, RouteError>>,
{
    type Output = Result<R, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InnerOrBoxedProjection::Inner(future) => future.poll(cx),
            InnerOrBoxedProjection::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// The service that was just made ready, to move into a boxed future; a fresh clone takes its
/// place for the next request (tower's "clone and swap").
pub fn take_ready<S: Clone>(service: &mut S) -> S {
    let fresh = service.clone();
    std::mem::replace(service, fresh)
}
