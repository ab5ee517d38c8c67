//! [`IdleTimeoutBody`]: a response body that fails when the backend sends nothing for too long,
//! so that a backend stalling mid-body cannot hold a request (and its connection) forever,
//! even on a route without timeouts (Envoy's `stream_idle_timeout`, 5 minutes by default).
//!
//! The timer costs nothing while frames are ready when asked for (the common case of a small
//! or fast response): it is armed the first time the body has to wait, and moved only when it
//! fires after progress was made.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body_error::BodyError;

/// The body went quiet for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the backend sent nothing for {0:?} in the middle of the response body")]
pub struct BodyIdleTimeout(pub Duration);

/// A body whose every frame must arrive within `timeout` of the previous one.
#[pin_project::pin_project]
#[derive(Debug)]
pub struct IdleTimeoutBody<B> {
    #[pin]
    inner: B,
    /// Armed when the body first has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// When the last frame arrived, once the timer is armed.
    last_frame: Option<Instant>,
    timeout: Duration,
}

impl<B> IdleTimeoutBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            timer: None,
            last_frame: None,
            timeout,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes, Error = BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if this.timer.is_some() {
                *this.last_frame = Some(Instant::now());
            }
            return Poll::Ready(frame);
        }
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Fired: idle for the whole timeout, unless a frame came since it was set.
            match this.last_frame.take() {
                Some(last) if last + timeout > Instant::now() => {
                    timer.as_mut().reset(last + timeout);
                }
                _ => return Poll::Ready(Some(Err(BodyError::new(BodyIdleTimeout(timeout))))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A body that sends one frame, then nothing, forever.
    struct Stalls(bool);

    impl Body for Stalls {
        type Data = Bytes;
        type Error = BodyError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_mid_way_fails_after_the_idle_timeout() {
        let timeout = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let error = IdleTimeoutBody::new(Stalls(false), timeout)
            .collect()
            .await
            .unwrap_err();
        assert!(error.to_string().contains("sent nothing"), "{error}");
        assert!(started.elapsed() >= timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_body_that_keeps_sending_is_untouched() {
        let body =
            http_body_util::Full::new(Bytes::from_static(b"all")).map_err(|never| match never {});
        let collected = IdleTimeoutBody::new(body, Duration::from_millis(50))
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.to_bytes(), "all");
    }

    /// A body that sends `left` frames, one every `every`.
    struct Trickle {
        every: Duration,
        next: Pin<Box<Sleep>>,
        left: usize,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = BodyError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            if self.next.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.left -= 1;
            let every = self.every;
            self.next.as_mut().reset(Instant::now() + every);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test]
    async fn a_slow_body_that_keeps_making_progress_is_not_cut() {
        let every = Duration::from_millis(30);
        let body = Trickle {
            every,
            next: Box::pin(tokio::time::sleep(every)),
            left: 8,
        };
        let collected = IdleTimeoutBody::new(body, Duration::from_millis(80))
            .collect()
            .await
            .unwrap();
        assert_eq!(
            collected.to_bytes().len(),
            8,
            "240 ms in all, never 80 ms idle"
        );
    }
}
