//! [`DeadlineBody`]: a body cut at a deadline — a stream's maximum duration (Envoy's
//! `max_stream_duration`, on the listener or the route).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body_error::BodyError;
use super::forward::ResponseBody;

/// A body that fails once `deadline` has passed, if it has not ended by then.
#[pin_project::pin_project]
pub struct DeadlineBody {
    #[pin]
    inner: ResponseBody,
    #[pin]
    deadline: Sleep,
}

impl DeadlineBody {
    /// `inner`, cut at `deadline`.
    pub fn new(inner: ResponseBody, deadline: Instant) -> Self {
        DeadlineBody {
            inner,
            deadline: tokio::time::sleep_until(deadline),
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the stream's maximum duration",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
