//! ClientTrafficPolicy `http2.onInvalidMessage: TerminateConnection` (Envoy's default): a
//! malformed HTTP/2 request ends its whole connection, not only its stream.
//!
//! The h2 server answers a malformed request (RFC 9113 §8.1.1: a connection-specific header,
//! a bad pseudo-header, a body longer than its `content-length`…) by resetting its stream with
//! `PROTOCOL_ERROR`, and offers no hook to do otherwise. [`TerminateOnInvalid`] wraps the
//! connection's byte stream and follows the frames the server writes: once such a reset has
//! been written, it writes a `GOAWAY` with `PROTOCOL_ERROR` naming the highest stream the
//! server spoke on, shuts the connection and reads end, so the server stops. An HTTP/1
//! connection (its first bytes written are `HTTP/`) passes through untouched.
//!
//! The h2 client resets a stream whose response is malformed the same way: wrapped with
//! [`TerminateOnInvalid::client`], an upstream connection ends likewise (BackendTrafficPolicy
//! `http2.onInvalidMessage`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Frame type `RST_STREAM` (RFC 9113 §6.4).
const RST_STREAM: u8 = 0x3;
/// Frame type `GOAWAY` (RFC 9113 §6.8).
const GOAWAY: u8 = 0x7;
/// Error code `PROTOCOL_ERROR` (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;
/// The length of a frame header.
const FRAME_HEADER: usize = 9;
/// The length of the client preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4).
const CLIENT_PREFACE: usize = 24;
/// The length of a `GOAWAY` frame without debug data.
const GOAWAY_FRAME: usize = FRAME_HEADER + 8;

/// A server connection's byte stream that ends the connection after the server resets a
/// stream for a malformed request.
#[pin_project::pin_project]
pub(crate) struct TerminateOnInvalid<IO> {
    #[pin]
    inner: IO,
    state: State,
}

/// What the wrapper knows of its connection.
enum State {
    /// Nothing written yet.
    Undecided,
    /// HTTP/1, or not enabled: bytes pass through.
    Http1,
    /// HTTP/2: written frames are followed.
    Http2(FrameScanner),
    /// A malformed request was reset: the `GOAWAY` is written (`written` bytes so far), then
    /// the connection is shut.
    Terminating {
        goaway: [u8; GOAWAY_FRAME],
        written: usize,
    },
    /// Shut: reads end, writes fail.
    Terminated,
}

impl<IO> TerminateOnInvalid<IO> {
    /// Wraps a client connection's byte stream (it starts with the client preface, then
    /// frames); when not `enabled`, bytes pass through.
    pub(crate) fn client(inner: IO, enabled: bool) -> Self {
        TerminateOnInvalid {
            inner,
            state: match enabled {
                true => State::Http2(FrameScanner {
                    skip: CLIENT_PREFACE,
                    ..FrameScanner::default()
                }),
                false => State::Http1,
            },
        }
    }

    /// Wraps a server connection's byte stream; when not `enabled`, bytes pass through.
    pub(crate) fn new(inner: IO, enabled: bool) -> Self {
        TerminateOnInvalid {
            inner,
            state: match enabled {
                true => State::Undecided,
                false => State::Http1,
            },
        }
    }
}

/// Follows a stream of HTTP/2 frames, a few bytes at a time.
#[derive(Debug, Clone, Copy, Default)]
struct FrameScanner {
    /// Bytes to pass before the first frame (the client preface).
    skip: usize,
    /// The current frame's header, `header_filled` bytes of it.
    header: [u8; FRAME_HEADER],
    header_filled: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// For a 4-byte `RST_STREAM` payload: its error code so far.
    reset_code: u32,
    /// The highest stream any frame was on.
    highest_stream: u32,
}

impl FrameScanner {
    /// Follows `bytes`; returns how many were taken, which is fewer than all only when a
    /// `RST_STREAM` with `PROTOCOL_ERROR` ended after that many.
    fn scan(&mut self, bytes: &[u8]) -> (usize, bool) {
        let mut taken = self.skip.min(bytes.len());
        self.skip -= taken;
        while taken < bytes.len() {
            let rest = &bytes[taken..];
            if self.header_filled < FRAME_HEADER {
                let wanted = (FRAME_HEADER - self.header_filled).min(rest.len());
                self.header[self.header_filled..self.header_filled + wanted]
                    .copy_from_slice(&rest[..wanted]);
                self.header_filled += wanted;
                taken += wanted;
                if self.header_filled == FRAME_HEADER {
                    self.payload_left = self.length();
                    self.reset_code = 0;
                    self.highest_stream = self.highest_stream.max(self.stream());
                    if self.payload_left == 0 {
                        self.header_filled = 0;
                    }
                }
                continue;
            }
            let wanted = self.payload_left.min(rest.len());
            if self.is_reset() {
                for byte in &rest[..wanted] {
                    self.reset_code = (self.reset_code << 8) | u32::from(*byte);
                }
            }
            self.payload_left -= wanted;
            taken += wanted;
            if self.payload_left == 0 {
                self.header_filled = 0;
                if self.is_reset() && self.reset_code == PROTOCOL_ERROR {
                    return (taken, true);
                }
            }
        }
        (taken, false)
    }

    fn length(&self) -> usize {
        (usize::from(self.header[0]) << 16)
            | (usize::from(self.header[1]) << 8)
            | usize::from(self.header[2])
    }

    fn stream(&self) -> u32 {
        u32::from_be_bytes([
            self.header[5] & 0x7f,
            self.header[6],
            self.header[7],
            self.header[8],
        ])
    }

    fn is_reset(&self) -> bool {
        self.header[3] == RST_STREAM && self.length() == 4
    }

    /// The `GOAWAY` that ends the connection.
    fn goaway(&self) -> [u8; GOAWAY_FRAME] {
        let mut frame = [0u8; GOAWAY_FRAME];
        frame[2] = 8;
        frame[3] = GOAWAY;
        frame[9..13].copy_from_slice(&self.highest_stream.to_be_bytes());
        frame[13..17].copy_from_slice(&PROTOCOL_ERROR.to_be_bytes());
        frame
    }
}

impl<IO: AsyncWrite> TerminateOnInvalid<IO> {
    /// Writes what is left of the `GOAWAY`, flushes and shuts the connection.
    fn poll_terminate(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if let State::Terminating { goaway, written } = this.state {
            while *written < GOAWAY_FRAME {
                match ready!(this.inner.as_mut().poll_write(cx, &goaway[*written..])) {
                    Ok(0) | Err(_) => {
                        *this.state = State::Terminated;
                        return Poll::Ready(Ok(()));
                    }
                    Ok(n) => *written += n,
                }
            }
            let _ = ready!(this.inner.as_mut().poll_flush(cx));
            let _ = ready!(this.inner.as_mut().poll_shutdown(cx));
            *this.state = State::Terminated;
        }
        Poll::Ready(Ok(()))
    }

    /// Decides the protocol from the first bytes written.
    fn decide(state: &mut State, first: &[u8]) {
        if let (State::Undecided, Some(byte)) = (&state, first.first()) {
            *state = match byte {
                b'H' => State::Http1,
                _ => State::Http2(FrameScanner::default()),
            };
        }
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncRead for TerminateOnInvalid<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.state {
            State::Terminating { .. } => {
                ready!(self.as_mut().poll_terminate(cx))?;
                Poll::Ready(Ok(()))
            }
            State::Terminated => Poll::Ready(Ok(())),
            _ => self.project().inner.poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncWrite> TerminateOnInvalid<IO> {
    /// Writes `bufs` (one slice: a plain write), stopping after a malformed request's reset,
    /// which turns the connection to terminating.
    fn poll_write_slices(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|buf| !buf.is_empty()) {
            Self::decide(self.as_mut().project().state, first);
        }
        let this = self.as_mut().project();
        let write = |inner: Pin<&mut IO>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]| match bufs
        {
            [one] => inner.poll_write(cx, one),
            many => inner.poll_write_vectored(cx, many),
        };
        let scanner = match this.state {
            State::Undecided | State::Http1 => return write(this.inner, cx, bufs),
            State::Http2(scanner) => scanner,
            State::Terminating { .. } | State::Terminated => {
                ready!(self.as_mut().poll_terminate(cx))?;
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
        };
        // Nothing past a malformed request's reset is written: the slices up to its end.
        let mut dry_run = *scanner;
        let mut kept = 0;
        let mut last_len = 0;
        for buf in bufs {
            let (taken, reset) = dry_run.scan(buf);
            kept += 1;
            last_len = taken;
            if reset {
                break;
            }
        }
        let written = if kept == bufs.len() && last_len == bufs.last().map_or(0, |b| b.len()) {
            ready!(write(this.inner, cx, bufs))?
        } else {
            let mut slices: Vec<io::IoSlice<'_>> = bufs[..kept].to_vec();
            if let Some(last) = slices.last_mut() {
                *last = io::IoSlice::new(&bufs[kept - 1][..last_len]);
            }
            ready!(write(this.inner, cx, &slices))?
        };
        let mut left = written;
        let mut reset = false;
        for buf in bufs {
            if left == 0 || reset {
                break;
            }
            let span = left.min(buf.len());
            reset = scanner.scan(&buf[..span]).1;
            left -= span;
        }
        if reset {
            *this.state = State::Terminating {
                goaway: scanner.goaway(),
                written: 0,
            };
            // Written now if the connection takes it, else on the next flush or read.
            let _ = self.poll_terminate(cx);
        }
        Poll::Ready(Ok(written))
    }
}

impl<IO: AsyncWrite> AsyncWrite for TerminateOnInvalid<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.state {
            State::Terminating { .. } => self.poll_terminate(cx),
            State::Terminated => Poll::Ready(Ok(())),
            _ => self.project().inner.poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.state {
            State::Terminating { .. } => self.poll_terminate(cx),
            State::Terminated => Poll::Ready(Ok(())),
            _ => self.project().inner.poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut bytes = length.to_be_bytes()[1..].to_vec();
        bytes.extend([kind, 0]);
        bytes.extend(stream.to_be_bytes());
        bytes.extend(payload);
        bytes
    }

    fn settings() -> Vec<u8> {
        frame(0x4, 0, &[0, 3, 0, 0, 0, 100])
    }

    #[tokio::test]
    async fn a_protocol_error_reset_is_followed_by_goaway_and_the_end() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut guarded = TerminateOnInvalid::new(server, true);
        let mut written = settings();
        written.extend(frame(0x1, 5, b"headers"));
        written.extend(frame(RST_STREAM, 7, &PROTOCOL_ERROR.to_be_bytes()));
        let after = frame(0x0, 5, b"data past the reset");
        // Written in odd pieces, as a server may.
        let mut all = written.clone();
        all.extend(&after);
        let mut offset = 0;
        for piece in [3, 1, 10, 40, 200] {
            let end = (offset + piece).min(all.len());
            if offset == end {
                break;
            }
            match guarded.write(&all[offset..end]).await {
                Ok(n) => offset += n,
                Err(error) => {
                    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
                    break;
                }
            }
        }
        assert_eq!(offset, written.len(), "nothing past the reset is taken");
        let mut read = [0u8; 8];
        assert_eq!(guarded.read(&mut read).await.unwrap(), 0, "reads end");
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        let mut expected = written;
        expected.extend(frame(GOAWAY, 0, &[0, 0, 0, 7, 0, 0, 0, 1]));
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn other_resets_and_http1_pass_through() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut guarded = TerminateOnInvalid::new(server, true);
        let mut written = settings();
        written.extend(frame(RST_STREAM, 1, &8u32.to_be_bytes())); // CANCEL
        written.extend(frame(0x0, 3, b"more"));
        guarded.write_all(&written).await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, written);

        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut guarded = TerminateOnInvalid::new(server, true);
        // A reset's bytes inside an HTTP/1 body mean nothing.
        let mut answer = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n".to_vec();
        answer.extend(frame(RST_STREAM, 1, &PROTOCOL_ERROR.to_be_bytes()));
        guarded.write_all(&answer).await.unwrap();
        guarded.write_all(b"more").await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        answer.extend(b"more");
        assert_eq!(seen, answer);
    }

    #[tokio::test]
    async fn a_client_connection_is_followed_past_its_preface() {
        let (client_side, mut server) = tokio::io::duplex(1 << 16);
        let mut guarded = TerminateOnInvalid::client(client_side, true);
        let mut written = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        written.extend(settings());
        written.extend(frame(0x1, 1, b"request"));
        written.extend(frame(RST_STREAM, 1, &PROTOCOL_ERROR.to_be_bytes()));
        let taken = guarded.write(&written).await.unwrap();
        assert_eq!(taken, written.len());
        let mut read = [0u8; 8];
        assert_eq!(guarded.read(&mut read).await.unwrap(), 0);
        let mut seen = Vec::new();
        server.read_to_end(&mut seen).await.unwrap();
        written.extend(frame(GOAWAY, 0, &[0, 0, 0, 1, 0, 0, 0, 1]));
        assert_eq!(seen, written);
    }

    #[tokio::test]
    async fn vectored_writes_stop_at_the_reset() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut guarded = TerminateOnInvalid::new(server, true);
        let head = settings();
        let reset = frame(RST_STREAM, 3, &PROTOCOL_ERROR.to_be_bytes());
        let mut joined = head.clone();
        joined.extend(&reset[..5]);
        let tail = [&reset[5..], &frame(0x0, 1, b"late")[..]].concat();
        // Offered as two slices again and again from where the last write stopped, as a
        // writer of vectored bytes does.
        let whole = [joined.clone(), tail.clone()].concat();
        let mut offset = 0;
        loop {
            let (first, second) = if offset < joined.len() {
                (&joined[offset..], &tail[..])
            } else {
                (&tail[offset - joined.len()..], &[][..])
            };
            let slices = [io::IoSlice::new(first), io::IoSlice::new(second)];
            let written =
                std::future::poll_fn(|cx| Pin::new(&mut guarded).poll_write_vectored(cx, &slices))
                    .await;
            match written {
                Ok(n) if n > 0 && offset + n < whole.len() => offset += n,
                Ok(n) => {
                    offset += n;
                    break;
                }
                Err(error) => {
                    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
                    break;
                }
            }
        }
        assert_eq!(offset, head.len() + reset.len());
        let mut read = [0u8; 8];
        assert_eq!(guarded.read(&mut read).await.unwrap(), 0);
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        let mut expected = [head, reset].concat();
        expected.extend(frame(GOAWAY, 0, &[0, 0, 0, 3, 0, 0, 0, 1]));
        assert_eq!(seen, expected);
    }
}
