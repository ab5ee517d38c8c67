//! A byte stream over one HTTP/2 stream: the tunnelled TCP bytes of an HBONE CONNECT.
//!
//! Semantics (hbone spec §1.8): DATA payloads are the raw bytes; received capacity is released
//! as soon as bytes are handed to the reader; END_STREAM reads as EOF; `shutdown` sends
//! END_STREAM (TCP FIN ↔ END_STREAM, each direction independent); a received RST_STREAM with
//! NO_ERROR or CANCEL reads as EOF, any other reason as an error; writing to a reset stream is
//! a broken pipe. Dropping an open stream makes h2 send RST_STREAM(CANCEL).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An `AsyncRead + AsyncWrite` over an HTTP/2 stream.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet read.
    pending: Bytes,
    /// Kept alive as long as the stream (e.g. the pool's count of active streams, or the inner
    /// connection of a double-HBONE tunnel).
    _guard: Option<Box<dyn Send + Sync>>,
    end_stream_sent: bool,
    response_headers: http::HeaderMap,
}

impl std::fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Stream")
            .field("pending", &self.pending.len())
            .field("end_stream_sent", &self.end_stream_sent)
            .finish()
    }
}

impl H2Stream {
    /// A stream over the two halves of an HTTP/2 stream.
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            pending: Bytes::new(),
            _guard: None,
            end_stream_sent: false,
            response_headers: http::HeaderMap::new(),
        }
    }

    /// Keeps the headers of the CONNECT response (e.g. the destination's `baggage`).
    pub fn with_response_headers(mut self, headers: http::HeaderMap) -> Self {
        self.response_headers = headers;
        self
    }

    /// The headers of the CONNECT response (empty on the server side).
    pub fn response_headers(&self) -> &http::HeaderMap {
        &self.response_headers
    }

    /// Keeps `guard` alive as long as this stream.
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }
}

/// The receiving half of an [`H2Stream`], for zero-copy splicing.
pub(crate) struct RecvHalf<'a> {
    recv: &'a mut RecvStream,
    pending: &'a mut Bytes,
}

/// The sending half of an [`H2Stream`], for zero-copy splicing.
pub(crate) struct SendHalf<'a> {
    send: &'a mut SendStream<Bytes>,
    end_stream_sent: &'a mut bool,
}

impl H2Stream {
    /// The two halves, usable concurrently.
    pub(crate) fn halves(&mut self) -> (SendHalf<'_>, RecvHalf<'_>) {
        (
            SendHalf {
                send: &mut self.send,
                end_stream_sent: &mut self.end_stream_sent,
            },
            RecvHalf {
                recv: &mut self.recv,
                pending: &mut self.pending,
            },
        )
    }
}

impl RecvHalf<'_> {
    /// The next received bytes, without copying; `None` at EOF.
    pub(crate) async fn chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| poll_chunk(self.recv, self.pending, cx)).await
    }
}

impl SendHalf<'_> {
    /// Sends `data` without copying, in pieces as flow-control capacity allows.
    pub(crate) async fn send(&mut self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            let wanted = data.len();
            let granted =
                std::future::poll_fn(|cx| poll_send_capacity(self.send, wanted, cx)).await?;
            let piece = data.split_to(granted.min(wanted));
            self.send.send_data(piece, false).map_err(write_error)?;
        }
        Ok(())
    }

    /// Sends END_STREAM (once).
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        send_end_stream(self.send, self.end_stream_sent)
    }
}

/// The next non-empty chunk of received bytes: what is `pending`, else the next DATA frame,
/// whose flow-control capacity is released at once (the bytes leave h2's accounting as soon as
/// we hold them). `None` at EOF: END_STREAM, or a reset with NO_ERROR or CANCEL.
fn poll_chunk(
    recv: &mut RecvStream,
    pending: &mut Bytes,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Option<Bytes>>> {
    if !pending.is_empty() {
        return Poll::Ready(Ok(Some(std::mem::take(pending))));
    }
    loop {
        match ready!(recv.poll_data(cx)) {
            None => return Poll::Ready(Ok(None)),
            Some(Ok(data)) => {
                let _ = recv.flow_control().release_capacity(data.len());
                if !data.is_empty() {
                    return Poll::Ready(Ok(Some(data)));
                }
            }
            Some(Err(error)) if is_clean_reset(error.reason()) => return Poll::Ready(Ok(None)),
            Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
        }
    }
}

/// Reserves `wanted` bytes of send capacity and waits until some is granted; returns how much.
/// Writing to a reset or closed stream is a broken pipe.
fn poll_send_capacity(
    send: &mut SendStream<Bytes>,
    wanted: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    send.reserve_capacity(wanted);
    loop {
        let capacity = send.capacity();
        if capacity > 0 {
            return Poll::Ready(Ok(capacity));
        }
        match ready!(send.poll_capacity(cx)) {
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Poll::Ready(Err(write_error(error))),
            None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
}

/// Sends END_STREAM unless it was sent already.
fn send_end_stream(send: &mut SendStream<Bytes>, end_stream_sent: &mut bool) -> io::Result<()> {
    if !*end_stream_sent {
        *end_stream_sent = true;
        send.send_data(Bytes::new(), true).map_err(write_error)?;
    }
    Ok(())
}

fn is_clean_reset(reason: Option<Reason>) -> bool {
    matches!(reason, Some(Reason::NO_ERROR) | Some(Reason::CANCEL))
}

fn write_error(error: h2::Error) -> io::Error {
    if error.is_reset() || error.is_go_away() {
        io::Error::new(io::ErrorKind::BrokenPipe, error)
    } else {
        io::Error::other(error)
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match ready!(poll_chunk(&mut this.recv, &mut this.pending, cx))? {
                Some(chunk) => this.pending = chunk,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let granted = ready!(poll_send_capacity(&mut this.send, buf.len(), cx))?;
        let n = granted.min(buf.len());
        this.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(write_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 frames are flushed by the connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Poll::Ready(send_end_stream(&mut this.send, &mut this.end_stream_sent))
    }
}
