//! Reading a PROXY header off an accepted stream, and the tower layer that does it per
//! connection.
//!
//! The reader never consumes a payload byte: it reads at most the lower bound of the header
//! length that the sans-IO parser reports, so after the header the stream is positioned exactly
//! at the first payload byte and is handed on untouched (no wrapper, no buffered bytes).
//! On a [`TcpStream`] it first peeks, so a header that arrived whole costs one peek and one read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tower::{Layer, Service};

use super::error::ProxyHeaderError;
use super::header::ProxyHeader;
use super::parse::{ParseOptions, ParseStatus, parse};

/// The default time a sender has to deliver the whole header. The specification asks receivers
/// that time out to wait at least 3 seconds.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no header could be read from a connection. The connection must be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The header did not arrive within the timeout.
    #[error("PROXY header not received within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection before a complete header.
    #[error("connection closed after {0} bytes, before a complete PROXY header")]
    ClosedEarly(usize),
    /// Reading from the connection failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a valid header.
    #[error(transparent)]
    InvalidHeader(#[from] ProxyHeaderError),
}

/// How to read headers: parser options plus the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptorConfig {
    /// Accepted versions, strictness, size limit.
    pub parse: ParseOptions,
    /// Time allowed for the whole header.
    pub timeout: Duration,
}

impl Default for AcceptorConfig {
    fn default() -> Self {
        AcceptorConfig {
            parse: ParseOptions::default(),
            timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// A stream a header can be read from. Implemented for every `AsyncRead`; [`TcpStream`] gets a
/// peek fast path through [`HeaderStream::peek_hint`].
pub trait HeaderStream: AsyncRead + Unpin + Send {
    /// Copies bytes already received into `buf` without consuming them, if the stream can.
    fn peek_hint(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        let _ = buf;
        async { Ok(0) }
    }
}

impl HeaderStream for TcpStream {
    async fn peek_hint(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.peek(buf).await
    }
}

impl<T: AsyncRead + Unpin + Send> HeaderStream for tokio::io::BufReader<T> {}
impl HeaderStream for tokio::io::DuplexStream {}

/// Reads one PROXY header from `stream`, leaving the stream at the first payload byte.
pub async fn read_proxy_header<S: HeaderStream>(
    stream: &mut S,
    config: &AcceptorConfig,
) -> Result<ProxyHeader<'static>, AcceptError> {
    tokio::time::timeout(config.timeout, read_header_untimed(stream, &config.parse))
        .await
        .map_err(|_| AcceptError::Timeout(config.timeout))?
}

async fn read_header_untimed<S: HeaderStream>(
    stream: &mut S,
    options: &ParseOptions,
) -> Result<ProxyHeader<'static>, AcceptError> {
    let mut buffer = vec![0u8; options.max_v2_len.max(super::V1_MAX_LEN)];
    // Fast path: everything may already be there; then one read takes exactly the header.
    let peeked = stream.peek_hint(&mut buffer).await?;
    if let ParseStatus::Complete { len, .. } = parse(&buffer[..peeked], options)? {
        stream.read_exact(&mut buffer[..len]).await?;
        return complete(&buffer[..len], options);
    }
    let mut filled = 0;
    loop {
        match parse(&buffer[..filled], options)? {
            ParseStatus::Complete { header, .. } => return Ok(header.into_owned()),
            ParseStatus::Incomplete { needed } => {
                // `needed` never exceeds the header's length, so this never reads payload.
                let read = stream.read(&mut buffer[filled..needed]).await?;
                if read == 0 {
                    return Err(AcceptError::ClosedEarly(filled));
                }
                filled += read;
            }
        }
    }
}

fn complete(bytes: &[u8], options: &ParseOptions) -> Result<ProxyHeader<'static>, AcceptError> {
    match parse(bytes, options)? {
        ParseStatus::Complete { header, .. } => Ok(header.into_owned()),
        // The same bytes parsed as complete when peeked.
        ParseStatus::Incomplete { .. } => Err(AcceptError::ClosedEarly(bytes.len())),
    }
}

/// An accepted connection with the PROXY header that preceded its payload.
#[derive(Debug)]
pub struct ProxiedConnection<S> {
    /// The header: original addresses and TLVs (e.g. Istio's peer identity).
    pub header: ProxyHeader<'static>,
    /// The stream, positioned at the first payload byte.
    pub stream: S,
}

/// A [`Layer`] that reads a PROXY header off each accepted stream before calling the inner
/// service with a [`ProxiedConnection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyProtocolLayer {
    config: AcceptorConfig,
}

impl ProxyProtocolLayer {
    /// A layer with the given configuration.
    pub const fn new(config: AcceptorConfig) -> Self {
        ProxyProtocolLayer { config }
    }
}

impl<S> Layer<S> for ProxyProtocolLayer {
    type Service = ProxyProtocolAcceptor<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProxyProtocolAcceptor {
            inner,
            config: self.config,
        }
    }
}

/// The service of [`ProxyProtocolLayer`]: takes an accepted stream, reads its header, and calls
/// the inner service with a [`ProxiedConnection`].
#[derive(Debug, Clone)]
pub struct ProxyProtocolAcceptor<S> {
    inner: S,
    config: AcceptorConfig,
}

/// The error of [`ProxyProtocolAcceptor`]: the header could not be read, or the inner service
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxiedServiceError<E> {
    /// Reading the header failed; the connection has been dropped.
    #[error(transparent)]
    Accept(#[from] AcceptError),
    /// The inner service failed.
    #[error("service error: {0}")]
    Service(E),
}

impl<S, IO> Service<IO> for ProxyProtocolAcceptor<S>
where
    IO: HeaderStream + 'static,
    S: Service<ProxiedConnection<IO>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = ProxiedServiceError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ProxiedServiceError::Service)
    }

    fn call(&mut self, mut stream: IO) -> Self::Future {
        // The instance that was polled ready goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config;
        Box::pin(async move {
            let header = read_proxy_header(&mut stream, &config).await?;
            inner
                .call(ProxiedConnection { header, stream })
                .await
                .map_err(ProxiedServiceError::Service)
        })
    }
}
