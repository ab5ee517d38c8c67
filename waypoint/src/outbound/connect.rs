//! [`Connect`]: how the outbound side opens a byte stream to one endpoint — plain TCP (or
//! the Unix socket a `Backend`'s stand-in address names: [`TcpConnect`]) or an HBONE tunnel ([`HboneConnect`](super::HboneConnect)) — with every
//! failure typed as an [`UpstreamError`]. The forwarder's pools, its TLS and h2c clients and
//! the TCP/TLS stream relays all connect through one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use routing::router::{UpstreamError, UpstreamErrorKind, UpstreamTcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

pub use super::socket_stream::{SocketStream, UnixSockets};

/// Opens a byte stream to an endpoint (an `ip:port` of a backend).
pub trait Connect: Clone + Send + Sync + 'static {
    /// The stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Opens a stream to `endpoint`; a failure says how it failed (refused, timed out, TLS…).
    fn connect(
        &self,
        endpoint: SocketAddr,
    ) -> impl Future<Output = Result<Self::Io, UpstreamError>> + Send;

    /// Opens a stream to `endpoint` with a request's `options` (by default: the connector's
    /// connect, cut at the options' timeout; keepalive applies to TCP connectors only).
    fn connect_with(
        &self,
        endpoint: SocketAddr,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<Self::Io, UpstreamError>> + Send {
        async move {
            match options.timeout {
                None => self.connect(endpoint).await,
                Some(timeout) => tokio::time::timeout(timeout, self.connect(endpoint))
                    .await
                    .unwrap_or_else(|_| Err(UpstreamError::new(UpstreamErrorKind::Timeout))),
            }
        }
    }
}

/// What a request's policy asks of the connections opened for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectOptions {
    /// The connect timeout, instead of the connector's own.
    pub timeout: Option<Duration>,
    /// TCP keepalive on the socket.
    pub keepalive: Option<UpstreamTcpKeepalive>,
    /// `SO_RCVBUF` and `SO_SNDBUF` on the socket, in bytes.
    pub socket_buffer: Option<u32>,
}

impl ConnectOptions {
    /// What a route policy's `upstream` settings ask of new connections.
    pub fn of(upstream: &routing::router::UpstreamConnection) -> Self {
        ConnectOptions {
            timeout: upstream.connect_timeout,
            keepalive: upstream.keepalive,
            socket_buffer: upstream.socket_buffer,
        }
    }

    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none() && self.keepalive.is_none() && self.socket_buffer.is_none()
    }
}

/// Plain TCP with `TCP_NODELAY`, a connect timeout and, optionally, a firewall mark on the
/// socket (`SO_MARK`, so that capture rules can exclude the proxy's own connections).
#[derive(Debug, Clone)]
pub struct TcpConnect {
    timeout: Duration,
    mark: Option<u32>,
    /// The Unix sockets stand-in addresses name (Envoy Gateway `Backend` `unix` endpoints).
    unix: UnixSockets,
}

impl Default for TcpConnect {
    fn default() -> Self {
        TcpConnect::new(Duration::from_secs(5))
    }
}

impl TcpConnect {
    /// TCP connecting within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        TcpConnect {
            timeout,
            mark: None,
            unix: UnixSockets::default(),
        }
    }

    /// The same, with `mark` set as `SO_MARK` on every socket (Linux; needs `CAP_NET_ADMIN`).
    pub fn with_mark(mut self, mark: u32) -> Self {
        self.mark = Some(mark);
        self
    }

    /// The connect timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same, opening the Unix socket of each stand-in address `unix` knows.
    pub fn with_unix_sockets(mut self, unix: UnixSockets) -> Self {
        self.unix = unix;
        self
    }

    async fn open(&self, endpoint: SocketAddr) -> std::io::Result<SocketStream> {
        match self.unix.path(&endpoint) {
            Some(path) => UnixStream::connect(path).await.map(SocketStream::Unix),
            None => hbone::socket::connect_tcp(endpoint, self.mark)
                .await
                .map(SocketStream::Tcp),
        }
    }
}

impl Connect for TcpConnect {
    type Io = SocketStream;

    async fn connect(&self, endpoint: SocketAddr) -> Result<SocketStream, UpstreamError> {
        self.connect_with(endpoint, ConnectOptions::default()).await
    }

    async fn connect_with(
        &self,
        endpoint: SocketAddr,
        options: ConnectOptions,
    ) -> Result<SocketStream, UpstreamError> {
        let timeout = options.timeout.unwrap_or(self.timeout);
        let stream = match tokio::time::timeout(timeout, self.open(endpoint)).await {
            Err(_) => return Err(UpstreamError::new(UpstreamErrorKind::Timeout)),
            Ok(Err(error)) => return Err(UpstreamError::with_source(io_kind(&error), error)),
            Ok(Ok(stream)) => stream,
        };
        let Some(tcp) = stream.tcp() else {
            return Ok(stream);
        };
        if let Some(keepalive) = options.keepalive {
            let settings = socket2::TcpKeepalive::new()
                .with_time(keepalive.idle)
                .with_interval(keepalive.interval)
                .with_retries(keepalive.probes);
            socket2::SockRef::from(tcp)
                .set_tcp_keepalive(&settings)
                .map_err(|error| UpstreamError::with_source(io_kind(&error), error))?;
        }
        if let Some(bytes) = options.socket_buffer {
            set_socket_buffers(tcp, bytes)
                .map_err(|error| UpstreamError::with_source(io_kind(&error), error))?;
        }
        Ok(stream)
    }
}

/// Sets `SO_RCVBUF` and `SO_SNDBUF` of `stream` to `bytes` (Linux doubles them, and caps them
/// at `net.core.rmem_max` / `wmem_max`).
pub(crate) fn set_socket_buffers(stream: &TcpStream, bytes: u32) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    socket.set_recv_buffer_size(bytes)?;
    socket.set_send_buffer_size(bytes)
}

/// The kind of a failed connect by its I/O error.
pub(crate) fn io_kind(error: &std::io::Error) -> UpstreamErrorKind {
    match error.kind() {
        std::io::ErrorKind::TimedOut => UpstreamErrorKind::Timeout,
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            UpstreamErrorKind::Reset
        }
        _ => UpstreamErrorKind::Refused,
    }
}

/// A [`Connect`] as the `tower::Service<Uri>` hyper-util's pooled clients connect through:
/// the URI's authority must be the endpoint's `ip:port` (the forwarder writes it so).
#[derive(Debug, Clone)]
pub(crate) struct UriConnector<C> {
    connect: C,
    options: ConnectOptions,
}

impl<C> UriConnector<C> {
    pub(crate) fn new(connect: C) -> Self {
        UriConnector {
            connect,
            options: ConnectOptions::default(),
        }
    }

    /// The same, opening connections with `options` (a policy's connect timeout, keepalive,
    /// socket buffers).
    pub(crate) fn with_options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }
}

impl<C: Connect> tower::Service<Uri> for UriConnector<C> {
    type Response = ConnectedIo<C::Io>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.connect.clone();
        let options = self.options;
        Box::pin(async move {
            let endpoint = uri
                .authority()
                .and_then(|authority| authority.as_str().parse::<SocketAddr>().ok())
                .ok_or_else(|| {
                    UpstreamError::with_source(
                        UpstreamErrorKind::Protocol,
                        "the connector needs an ip:port authority",
                    )
                })?;
            let io = if options.is_empty() {
                connect.connect(endpoint).await?
            } else {
                connect.connect_with(endpoint, options).await?
            };
            Ok(ConnectedIo::new(io))
        })
    }
}

/// A connected stream as hyper's client reads and writes it; `h2` when ALPN chose HTTP/2.
pub(crate) struct ConnectedIo<IO> {
    io: TokioIo<IO>,
    h2: bool,
}

impl<IO> ConnectedIo<IO> {
    pub(crate) fn new(io: IO) -> Self {
        ConnectedIo {
            io: TokioIo::new(io),
            h2: false,
        }
    }

    /// The stream itself.
    pub(crate) fn into_inner(self) -> IO {
        self.io.into_inner()
    }

    pub(crate) fn negotiated_h2(io: IO, h2: bool) -> Self {
        ConnectedIo {
            io: TokioIo::new(io),
            h2,
        }
    }
}

impl<IO> Connection for ConnectedIo<IO> {
    fn connected(&self) -> Connected {
        if self.h2 {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for ConnectedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> hyper::rt::Write for ConnectedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpSocket;

    use super::*;

    #[tokio::test]
    async fn a_refused_connect_is_typed_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = TcpConnect::default().connect(address).await.unwrap_err();
        assert_eq!(error.kind(), UpstreamErrorKind::Refused);
    }

    #[tokio::test]
    async fn a_connect_that_does_not_finish_in_time_is_typed_timeout() {
        // A listener that never accepts, with the smallest backlog: once its queue is full
        // the kernel drops further SYNs, so a connect hangs until the timeout.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        let connect = TcpConnect::new(Duration::from_millis(300));
        let mut held = Vec::new();
        let mut timed_out = false;
        for _ in 0..16 {
            match connect.connect(address).await {
                Ok(stream) => held.push(stream),
                Err(error) => {
                    assert_eq!(error.kind(), UpstreamErrorKind::Timeout, "{error}");
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(timed_out, "{} connections were all accepted", held.len());
    }

    #[tokio::test]
    async fn an_unprivileged_mark_fails_as_refused_or_succeeds_with_the_mark() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        match TcpConnect::default()
            .with_mark(0x539)
            .connect(address)
            .await
        {
            // With CAP_NET_ADMIN the socket carries the mark.
            Ok(stream) => {
                let mark = socket2::SockRef::from(stream.tcp().unwrap())
                    .mark()
                    .unwrap();
                assert_eq!(mark, 0x539);
            }
            Err(error) => assert_eq!(error.kind(), UpstreamErrorKind::Refused),
        }
    }
}
