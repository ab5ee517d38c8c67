//! The sending side: writing a PROXY header before the payload of a new upstream connection.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::error::BuildError;
use super::header::ProxyHeader;

/// Why a header could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The header cannot be encoded.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Writing to the connection failed.
    #[error("writing the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Encodes `header` and writes it to `stream` with a single write of one contiguous buffer, as
/// the specification requires of senders, before any payload.
///
/// Multiplexing proxies must not send PROXY headers on shared upstream connections: call this
/// once per freshly connected stream.
pub async fn write_proxy_header<W: AsyncWrite + Unpin>(
    stream: &mut W,
    header: &ProxyHeader<'_>,
) -> Result<usize, SendError> {
    let mut buffer = Vec::with_capacity(256);
    let len = header.encode(&mut buffer)?;
    stream.write_all(&buffer).await?;
    Ok(len)
}
