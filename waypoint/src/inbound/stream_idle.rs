//! The idle timeout of relayed TCP streams (ClientTrafficPolicy `timeout.tcp.idleTimeout`,
//! Envoy's TCP proxy `idle_timeout`: 1 hour by default): both sides of a relay are watched,
//! and the relay ends once no byte has moved either way for that long.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Envoy's default idle timeout of a TCP proxy.
pub(crate) const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// When bytes last moved through any of the streams watched with it.
#[derive(Debug, Clone)]
pub(crate) struct StreamActivity {
    since: Instant,
    /// Nanoseconds from `since` to the last bytes moved.
    last: Arc<AtomicU64>,
}

impl StreamActivity {
    pub(crate) fn new() -> Self {
        StreamActivity {
            since: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    /// `stream`, its traffic counted as activity.
    pub(crate) fn watch<S>(&self, stream: S) -> Watched<S> {
        Watched {
            inner: stream,
            activity: self.clone(),
        }
    }

    /// Resolves once nothing has moved for `timeout` (never without one).
    pub(crate) async fn idle_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = self.since + Duration::from_nanos(self.last.load(Ordering::Relaxed));
            let due = last + timeout;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A stream whose reads and writes count as activity.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    activity: StreamActivity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_relay_is_idle_only_after_nothing_moved_for_the_timeout() {
        let activity = StreamActivity::new();
        let (a, mut b) = tokio::io::duplex(64);
        let mut watched = activity.watch(a);
        let watcher = activity.clone();
        let idle = tokio::spawn(async move {
            watcher.idle_for(Some(Duration::from_secs(10))).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(8)).await;
        tokio::io::AsyncWriteExt::write_all(&mut watched, b"x")
            .await
            .unwrap();
        let moved = Instant::now();
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut byte)
            .await
            .unwrap();
        let closed = idle.await.unwrap();
        assert!(
            closed - moved >= Duration::from_secs(10),
            "{:?}",
            closed - moved
        );
        assert!(closed - moved < Duration::from_secs(11));
    }
}
