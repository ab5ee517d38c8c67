//! Splicing a tunnel's stream with a TCP connection.
//!
//! Both directions run independently in one future: EOF on one side becomes a half-close
//! (FIN ↔ END_STREAM) on the other while the reverse direction keeps flowing (hbone spec §1.8).
//! When either side fails (e.g. a TCP reset), both are dropped; the HTTP/2 stream is then reset
//! with CANCEL, which an HBONE peer reads as a clean EOF — the same outcome ztunnel gives by
//! turning a TCP reset into END_STREAM.
//!
//! Each direction's buffer starts small and grows with the bytes it has carried (as ztunnel's
//! does), so an idle tunnel holds 2 KiB of buffers while a bulk transfer gets large reads.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::h2_stream::H2Stream;

/// The first buffer of each direction.
pub const INITIAL_BUFFER_SIZE: usize = 1024;
/// The buffer after [`LARGE_AFTER`] bytes.
pub const LARGE_BUFFER_SIZE: usize = 16 * 1024 - 64;
/// The buffer after [`JUMBO_AFTER`] bytes.
pub const JUMBO_BUFFER_SIZE: usize = 256 * 1024 - 64;
/// Bytes carried before the buffer grows to [`LARGE_BUFFER_SIZE`].
pub const LARGE_AFTER: u64 = 128 * 1024;
/// Bytes carried before the buffer grows to [`JUMBO_BUFFER_SIZE`].
pub const JUMBO_AFTER: u64 = 10 * 1024 * 1024;

/// Splices an HBONE stream with a TCP connection without copying the tunnelled bytes in user
/// space: bytes read from TCP go to h2 as they were read, and bytes received from h2 are
/// written to TCP as they arrived. Same half-close and reset semantics as [`bridge`]; returns
/// (bytes stream→tcp, bytes tcp→stream).
pub async fn bridge_tunnel(stream: &mut H2Stream, tcp: &mut TcpStream) -> io::Result<(u64, u64)> {
    let (mut send, mut recv) = stream.halves();
    let (mut tcp_read, mut tcp_write) = tcp.split();
    let downstream = async {
        let mut carried = 0u64;
        while let Some(chunk) = recv.chunk().await? {
            carried += chunk.len() as u64;
            tcp_write.write_all(&chunk).await?;
        }
        tcp_write.shutdown().await?;
        Ok::<_, io::Error>(carried)
    };
    let upstream = async {
        let mut carried = 0u64;
        let mut buffer = BytesMut::new();
        loop {
            buffer.reserve(buffer_size(carried));
            if tcp_read.read_buf(&mut buffer).await? == 0 {
                send.finish()?;
                return Ok::<_, io::Error>(carried);
            }
            let chunk = buffer.split().freeze();
            carried += chunk.len() as u64;
            send.send(chunk).await?;
        }
    };
    tokio::try_join!(downstream, upstream)
}

/// The read size for a direction that has carried `carried` bytes.
fn buffer_size(carried: u64) -> usize {
    match carried {
        carried if carried >= JUMBO_AFTER => JUMBO_BUFFER_SIZE,
        carried if carried >= LARGE_AFTER => LARGE_BUFFER_SIZE,
        _ => INITIAL_BUFFER_SIZE,
    }
}

/// Copies both directions until both have ended; returns (bytes a→b, bytes b→a).
pub async fn bridge<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    poll_fn(|cx| {
        let forward = a_to_b.poll_copy(cx, &mut *a, &mut *b)?;
        let backward = b_to_a.poll_copy(cx, &mut *b, &mut *a)?;
        match (forward, backward) {
            (Poll::Ready(sent), Poll::Ready(received)) => Poll::Ready(Ok((sent, received))),
            _ => Poll::Pending,
        }
    })
    .await
}

/// One direction's state: a growing buffer, the unwritten part of it, and progress.
#[derive(Debug, Default)]
struct Direction {
    buffer: Vec<u8>,
    /// Bytes of `buffer[start..end]` read but not yet written.
    start: usize,
    end: usize,
    carried: u64,
    read_done: bool,
    shut_down: bool,
}

impl Direction {
    /// Makes progress; Ready(total) once the reader hit EOF, everything was written and the
    /// writer was shut down.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.start < self.end {
                let written = ready!(
                    Pin::new(&mut *writer).poll_write(cx, &self.buffer[self.start..self.end])
                )?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += written;
                self.carried += written as u64;
                continue;
            }
            if self.read_done {
                if !self.shut_down {
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.shut_down = true;
                }
                return Poll::Ready(Ok(self.carried));
            }
            self.grow();
            let mut read_buf = ReadBuf::new(&mut self.buffer);
            match Pin::new(&mut *reader).poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let filled = read_buf.filled().len();
                    if filled == 0 {
                        self.read_done = true;
                    }
                    (self.start, self.end) = (0, filled);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    // Nothing to read: push out what the writer may be holding back.
                    ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                    return Poll::Pending;
                }
            }
        }
    }

    /// Sizes the (empty) buffer for the bytes carried so far.
    fn grow(&mut self) {
        let wanted = buffer_size(self.carried);
        if self.buffer.len() < wanted {
            self.buffer = vec![0; wanted];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_with_half_close_and_grows_its_buffers() {
        let (mut a_outer, mut a) = tokio::io::duplex(64 * 1024);
        let (mut b, mut b_outer) = tokio::io::duplex(64 * 1024);
        let bridged = tokio::spawn(async move { bridge(&mut a, &mut b).await });
        let payload: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| i as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            a_outer.write_all(&sent).await.unwrap();
            a_outer.shutdown().await.unwrap();
            let mut reply = Vec::new();
            a_outer.read_to_end(&mut reply).await.unwrap();
            reply
        });
        let mut received = Vec::new();
        b_outer.read_to_end(&mut received).await.unwrap();
        assert!(received == payload, "a→b intact, then EOF (half-close)");
        b_outer.write_all(b"reverse still flows").await.unwrap();
        b_outer.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reverse still flows");
        let (forward, backward) = bridged.await.unwrap().unwrap();
        assert_eq!((forward, backward), (payload.len() as u64, 19));
    }

    #[test]
    fn buffer_grows_with_bytes_carried() {
        let mut direction = Direction::default();
        direction.grow();
        assert_eq!(direction.buffer.len(), INITIAL_BUFFER_SIZE);
        direction.carried = LARGE_AFTER;
        direction.grow();
        assert_eq!(direction.buffer.len(), LARGE_BUFFER_SIZE);
        direction.carried = JUMBO_AFTER;
        direction.grow();
        assert_eq!(direction.buffer.len(), JUMBO_BUFFER_SIZE);
    }
}
