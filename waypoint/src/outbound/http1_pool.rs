//! A lean HTTP/1.1 connection pool to plain-text backends, on hyper's `client::conn`: idle
//! senders per endpoint, checked out last-in first-out, returned when the response body ends.
//! A pooled connection the backend closed in the meantime hands the request back (it was
//! never written), and the next connection is tried.
//!
//! Bounded: at most [`PoolLimits::max_connections_per_endpoint`] open connections per endpoint
//! (a request beyond it fails at once as overloaded, like Envoy's circuit breaker), at most
//! [`PoolLimits::max_idle_per_endpoint`] idle ones, each closed after
//! [`PoolLimits::idle_timeout`] unused; endpoints that leave the configuration lose their idle
//! connections at the next reload ([`Http1Pool::retain_endpoints`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use routing::router::UpstreamError;

use super::connect::ConnectOptions;

use super::body_error::BodyError;
use super::connect::Connect;
use super::forward::ResponseBody;
use super::idle_timeout::IdleTimeoutBody;

/// Bounds on the HTTP/1.1 pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Open connections (busy and idle) per endpoint (default 1024, Envoy's
    /// `max_connections`).
    pub max_connections_per_endpoint: usize,
    /// Idle connections kept per endpoint (default 128).
    pub max_idle_per_endpoint: usize,
    /// How long an idle connection is kept (default 90 s).
    pub idle_timeout: Duration,
    /// How long a TCP connect may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long a response body may go without a frame before it is cut with an error
    /// (default 300 s, Envoy's `stream_idle_timeout`).
    pub response_idle_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_connections_per_endpoint: 1024,
            max_idle_per_endpoint: 128,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(5),
            response_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Http1PoolError {
    /// The connection could not be opened (typed by the connector).
    #[error("connect: {0}")]
    Connect(#[source] UpstreamError),
    /// HTTP/1.1 failed on the connection.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The endpoint has as many open connections as the pool allows.
    #[error("{0} connections to the endpoint are open already")]
    Overloaded(usize),
}

/// The connections of one endpoint.
#[derive(Default)]
struct EndpointConnections {
    /// Idle senders with the time they became idle, oldest first.
    idle: Vec<(SendRequest<ResponseBody>, Instant)>,
    /// Open connections (busy and idle); each connection task holds one count.
    open: Arc<AtomicUsize>,
}

/// Connections by endpoint, opened through the connector `C`.
pub(crate) struct Http1Pool<C> {
    limits: PoolLimits,
    connector: C,
    endpoints: Mutex<HashMap<SocketAddr, EndpointConnections>>,
    reaper_started: AtomicBool,
}

/// One open connection's place in its endpoint's count, released when the connection ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C: Connect> Http1Pool<C> {
    /// An empty pool with `limits`, connecting through `connector`.
    pub(crate) fn new(limits: PoolLimits, connector: C) -> Self {
        Http1Pool {
            limits,
            connector,
            endpoints: Mutex::default(),
            reaper_started: AtomicBool::new(false),
        }
    }

    /// Sends `request` to `endpoint` on a pooled or new connection (a new one opened with the
    /// request's connect `options`).
    pub(crate) async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<ResponseBody>,
        options: ConnectOptions,
    ) -> Result<Response<ResponseBody>, Http1PoolError> {
        self.start_reaper();
        while let Some(mut sender) = self.checkout(endpoint) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(endpoint, sender, response)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(error.into_error().into()),
                },
            }
        }
        let place = self.reserve(endpoint)?;
        let io = self
            .connector
            .connect_with(endpoint, options)
            .await
            .map_err(Http1PoolError::Connect)?;
        let mut sender = handshake(io, place).await?;
        let response = sender.send_request(request).await?;
        Ok(self.track(endpoint, sender, response))
    }

    /// Sends `request` to `endpoint` on a connection of its own, opened for it (with `options`)
    /// and closed after it, whose first bytes are `preface` — a PROXY header:
    /// a connection that names one client is never shared with another.
    pub(crate) async fn send_once(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        request: Request<ResponseBody>,
        options: ConnectOptions,
        preface: &[u8],
    ) -> Result<Response<ResponseBody>, Http1PoolError> {
        let place = self.reserve(endpoint)?;
        let mut io = self
            .connector
            .connect_with(endpoint, options)
            .await
            .map_err(Http1PoolError::Connect)?;
        tokio::io::AsyncWriteExt::write_all(&mut io, preface)
            .await
            .map_err(|error| {
                Http1PoolError::Connect(UpstreamError::with_source(
                    super::connect::io_kind(&error),
                    error,
                ))
            })?;
        let mut sender = handshake(io, place).await?;
        let response = sender.send_request(request).await?;
        Ok(self.track_connection(endpoint, sender, response, false))
    }

    /// Open connections to `endpoint` now (busy and idle).
    pub(crate) fn open_connections(&self, endpoint: SocketAddr) -> usize {
        self.endpoints.lock().map_or(0, |endpoints| {
            endpoints
                .get(&endpoint)
                .map_or(0, |e| e.open.load(Ordering::Acquire))
        })
    }

    /// Idle connections to `endpoint` now.
    pub(crate) fn idle_connections(&self, endpoint: SocketAddr) -> usize {
        self.endpoints.lock().map_or(0, |endpoints| {
            endpoints.get(&endpoint).map_or(0, |e| e.idle.len())
        })
    }

    /// Closes the idle connections of every endpoint not in `live` and forgets those
    /// endpoints once their busy connections end.
    pub(crate) fn retain_endpoints(&self, live: &HashSet<SocketAddr>) {
        if let Ok(mut endpoints) = self.endpoints.lock() {
            for (endpoint, connections) in endpoints.iter_mut() {
                if !live.contains(endpoint) {
                    connections.idle.clear();
                }
            }
            endpoints.retain(|endpoint, connections| {
                live.contains(endpoint) || connections.open.load(Ordering::Acquire) > 0
            });
        }
    }

    /// Closes connections idle for longer than the idle timeout (or closed by the backend)
    /// and forgets endpoints without connections.
    pub(crate) fn evict_idle(&self) {
        let now = Instant::now();
        let timeout = self.limits.idle_timeout;
        if let Ok(mut endpoints) = self.endpoints.lock() {
            for connections in endpoints.values_mut() {
                connections
                    .idle
                    .retain(|(sender, since)| sender.is_ready() && now - *since < timeout);
            }
            endpoints.retain(|_, connections| {
                !connections.idle.is_empty() || connections.open.load(Ordering::Acquire) > 0
            });
        }
    }

    /// Starts the task that evicts idle connections (once, when a runtime is there); it ends
    /// with the pool.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaper_started.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Http1Pool<C>> = Arc::downgrade(self);
        let period = (self.limits.idle_timeout / 2).max(Duration::from_millis(10));
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                match pool.upgrade() {
                    Some(pool) => pool.evict_idle(),
                    None => return,
                }
            }
        });
    }

    /// A place for one more connection to `endpoint`, unless it has as many as allowed.
    fn reserve(&self, endpoint: SocketAddr) -> Result<OpenConnection, Http1PoolError> {
        let max = self.limits.max_connections_per_endpoint;
        let open = match self.endpoints.lock() {
            Ok(mut endpoints) => Arc::clone(&endpoints.entry(endpoint).or_default().open),
            Err(_) => Arc::default(),
        };
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map_err(Http1PoolError::Overloaded)?;
        Ok(OpenConnection(open))
    }

    fn checkout(&self, endpoint: SocketAddr) -> Option<SendRequest<ResponseBody>> {
        let mut endpoints = self.endpoints.lock().ok()?;
        let idle = &mut endpoints.get_mut(&endpoint)?.idle;
        let now = Instant::now();
        while let Some((sender, since)) = idle.pop() {
            if sender.is_ready() && now - since < self.limits.idle_timeout {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, endpoint: SocketAddr, sender: SendRequest<ResponseBody>) {
        if !sender.is_ready() {
            return;
        }
        if let Ok(mut endpoints) = self.endpoints.lock()
            && let Some(connections) = endpoints.get_mut(&endpoint)
            && connections.idle.len() < self.limits.max_idle_per_endpoint
        {
            connections.idle.push((sender, Instant::now()));
        }
    }

    /// The response, whose body returns the connection to the pool when it ends.
    fn track(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        sender: SendRequest<ResponseBody>,
        response: Response<Incoming>,
    ) -> Response<ResponseBody> {
        self.track_connection(endpoint, sender, response, true)
    }

    /// The response, whose body gives the connection back (if `reusable`) or closes it when it
    /// ends.
    fn track_connection(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        sender: SendRequest<ResponseBody>,
        response: Response<Incoming>,
        reusable: bool,
    ) -> Response<ResponseBody> {
        let idle = self.limits.response_idle_timeout;
        response.map(|body| {
            let returning = ReturningBody {
                body,
                sender: Some(sender),
                pool: Arc::clone(self),
                endpoint,
                reusable,
            };
            IdleTimeoutBody::new(returning, idle).boxed()
        })
    }
}

/// HTTP/1.1 on a freshly opened stream; the connection task holds its place in the count.
async fn handshake<IO>(
    io: IO,
    place: OpenConnection,
) -> Result<SendRequest<ResponseBody>, Http1PoolError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _place = place;
        let _ = connection.await;
    });
    Ok(sender)
}

/// A response body that gives its connection back to the pool once fully read.
struct ReturningBody<C> {
    body: Incoming,
    sender: Option<SendRequest<ResponseBody>>,
    pool: Arc<Http1Pool<C>>,
    endpoint: SocketAddr,
    /// Whether the connection may serve other requests (else it closes after this one).
    reusable: bool,
}

impl<C: Connect> ReturningBody<C> {
    fn give_back(&mut self) {
        if let Some(sender) = self.sender.take()
            && self.reusable
        {
            self.pool.checkin(self.endpoint, sender);
        }
    }
}

impl<C: Connect> Body for ReturningBody<C> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.sender = None,
            _ => {}
        }
        polled.map_err(BodyError::new)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::TcpConnect;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn tcp_pool(limits: PoolLimits) -> Arc<Http1Pool<TcpConnect>> {
        Arc::new(Http1Pool::new(
            limits,
            TcpConnect::new(limits.connect_timeout),
        ))
    }

    /// A backend that answers one request per connection, then closes it without saying so.
    async fn one_shot_backend() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut served = 0u32;
            while let Ok((mut stream, _)) = listener.accept().await {
                served += 1;
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let body = format!("connection {served}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                // Dropped: the pooled sender now points at a closed connection.
            }
        });
        address
    }

    async fn get(pool: &Arc<Http1Pool<TcpConnect>>, address: SocketAddr) -> String {
        let request = Request::get("/")
            .header("host", "backend")
            .body(ResponseBody::default())
            .unwrap();
        let response = pool
            .send(address, request, ConnectOptions::default())
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_is_replaced_transparently() {
        let address = one_shot_backend().await;
        let pool = tcp_pool(PoolLimits::default());
        assert_eq!(get(&pool, address).await, "connection 1");
        // Let the close reach the pooled connection's task.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&pool, address).await, "connection 2");
        assert_eq!(get(&pool, address).await, "connection 3");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = unused.local_addr().unwrap();
        drop(unused);
        let pool = tcp_pool(PoolLimits::default());
        let request = Request::get("/").body(ResponseBody::default()).unwrap();
        assert!(matches!(
            pool.send(address, request, ConnectOptions::default()).await,
            Err(Http1PoolError::Connect(_))
        ));
    }

    /// A backend that reads requests and never answers.
    async fn silent_backend() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        address
    }

    /// A backend answering every request on a kept-alive connection.
    async fn keep_alive_backend() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} never happened");
    }

    #[tokio::test]
    async fn connections_per_endpoint_are_capped_and_the_excess_fails_at_once() {
        let address = silent_backend().await;
        let pool = tcp_pool(PoolLimits {
            max_connections_per_endpoint: 2,
            ..PoolLimits::default()
        });
        for _ in 0..2 {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                let request = Request::get("/").body(ResponseBody::default()).unwrap();
                let _ = pool.send(address, request, ConnectOptions::default()).await;
            });
        }
        eventually("two open connections", || {
            pool.open_connections(address) == 2
        })
        .await;
        let request = Request::get("/").body(ResponseBody::default()).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(address, request, ConnectOptions::default()).await,
            Err(Http1PoolError::Overloaded(2))
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(pool.open_connections(address), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let address = keep_alive_backend().await;
        let pool = tcp_pool(PoolLimits {
            idle_timeout: Duration::from_millis(100),
            ..PoolLimits::default()
        });
        let request = Request::get("/").body(ResponseBody::default()).unwrap();
        let response = pool
            .send(address, request, ConnectOptions::default())
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
        assert_eq!(pool.idle_connections(address), 1);
        eventually("the idle connection evicted", || {
            pool.idle_connections(address) == 0 && pool.open_connections(address) == 0
        })
        .await;
    }

    #[tokio::test]
    async fn endpoints_removed_from_the_configuration_lose_their_idle_connections() {
        let (kept, removed) = (keep_alive_backend().await, keep_alive_backend().await);
        let pool = tcp_pool(PoolLimits::default());
        for address in [kept, removed] {
            let request = Request::get("/").body(ResponseBody::default()).unwrap();
            let response = pool
                .send(address, request, ConnectOptions::default())
                .await
                .unwrap();
            response.into_body().collect().await.unwrap();
        }
        pool.retain_endpoints(&HashSet::from([kept]));
        assert_eq!(pool.idle_connections(kept), 1);
        assert_eq!(pool.idle_connections(removed), 0);
        eventually("the removed endpoint's connection closed", || {
            pool.open_connections(removed) == 0
        })
        .await;
    }
}
