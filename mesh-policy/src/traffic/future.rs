//! [`AddHeaders`]: the inner service's future, with headers added to its response (the local
//! rate limit's `x-ratelimit-*`).

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
