//! Splicing a tunnel's stream with a TCP connection.
//!
//! Both directions run independently: EOF on one side becomes a half-close (FIN ↔ END_STREAM)
//! on the other while the reverse direction keeps flowing (hbone spec §1.8). When either side
//! fails (e.g. a TCP reset), both are dropped; the HTTP/2 stream is then reset with CANCEL,
//! which an HBONE peer reads as a clean EOF — the same outcome ztunnel gives by turning a TCP
//! reset into END_STREAM.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// The copy buffer per direction.
pub const BRIDGE_BUFFER_SIZE: usize = 64 * 1024;

/// Copies both directions until both have ended; returns (bytes a→b, bytes b→a).
pub async fn bridge<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, BRIDGE_BUFFER_SIZE, BRIDGE_BUFFER_SIZE).await
}
