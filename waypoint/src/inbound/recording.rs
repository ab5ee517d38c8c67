//! [`RecordingStream`]: a stream that keeps a copy of the first bytes read from it — the TLS
//! ClientHello a listener's JA3/JA4 fingerprints are computed from, exactly as the client sent
//! it — until asked for them. Bounded by one TLS record; writes pass through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use mesh_policy::traffic::client_hello::MAX_CLIENT_HELLO_BYTES;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with the first [`MAX_CLIENT_HELLO_BYTES`] read kept while recording.
#[derive(Debug)]
pub(crate) struct RecordingStream<S> {
    inner: S,
    recorded: Option<Vec<u8>>,
}

impl<S> RecordingStream<S> {
    /// Over `inner`; records only when `record` is true.
    pub(crate) fn new(inner: S, record: bool) -> Self {
        RecordingStream {
            inner,
            recorded: record.then(Vec::new),
        }
    }

    /// The bytes read so far (`None` when not recording); recording stops.
    pub(crate) fn take_recorded(&mut self) -> Option<Vec<u8>> {
        self.recorded.take()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(recorded) = &mut this.recorded {
            let fresh = &buf.filled()[before..];
            let room = MAX_CLIENT_HELLO_BYTES.saturating_sub(recorded.len());
            recorded.extend_from_slice(&fresh[..fresh.len().min(room)]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordingStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn keeps_what_was_read_until_taken_and_no_more_than_a_record() {
        let (mut near, far) = tokio::io::duplex(1 << 16);
        let mut stream = RecordingStream::new(far, true);
        near.write_all(b"hello").await.unwrap();
        let mut five = [0; 5];
        stream.read_exact(&mut five).await.unwrap();
        near.write_all(&vec![7; MAX_CLIENT_HELLO_BYTES])
            .await
            .unwrap();
        drop(near);
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        let recorded = stream.take_recorded().unwrap();
        assert_eq!(recorded.len(), MAX_CLIENT_HELLO_BYTES);
        assert_eq!(&recorded[..5], b"hello");
        assert_eq!(stream.take_recorded(), None, "recording stopped");
        let mut quiet = RecordingStream::new(tokio::io::empty(), false);
        assert_eq!(quiet.take_recorded(), None);
    }
}
