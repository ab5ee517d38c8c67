//! The future shared by the selection layers: an early answer, or the inner service's future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Either a result known before calling the inner service, or the inner service's future.
#[pin_project::pin_project(project = EarlyOrInnerProjection)]
#[derive(Debug)]
pub enum EarlyOrInner<F, T, E> {
    /// Answered without the inner service (taken once).
    Early(Option<Result<T, E>>),
    /// The inner service's future.
    Inner(#[pin] F),
}

impl<F, T, E, IE> Future for EarlyOrInner<F, T, E>
where
    F: Future<Output = Result<T, IE>>,
    IE: Into<E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EarlyOrInnerProjection::Early(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            EarlyOrInnerProjection::Inner(future) => future.poll(cx).map_err(Into::into),
        }
    }
}
