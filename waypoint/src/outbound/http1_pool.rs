//! A lean HTTP/1.1 connection pool to plain-text backends, on hyper's `client::conn`: idle
//! senders per endpoint, checked out last-in first-out, returned when the response body ends.
//! A pooled connection the backend closed in the meantime hands the request back (it was
//! never written), and the next connection is tried.
//!
//! Connections are pooled per endpoint *and* [`PoolClass`] — the settings a policy asks of
//! them (keepalive, idle timeout, lifetime, requests per connection, header case) — as Envoy
//! keeps one pool per cluster: a connection is only reused by requests asking the same.
//!
//! Bounded: at most [`PoolLimits::max_connections_per_endpoint`] open connections per endpoint
//! and class (a request beyond it fails at once as overloaded, like Envoy's circuit breaker),
//! at most [`PoolLimits::max_idle_per_endpoint`] idle ones, each closed after its class's idle
//! timeout (else [`PoolLimits::idle_timeout`]) unused, or once its class's lifetime or request
//! budget is spent; endpoints that leave the configuration lose their idle connections at the
//! next reload ([`Http1Pool::retain_endpoints`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

use routing::router::{UpstreamConnection, UpstreamError, UpstreamTcpKeepalive};

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

/// What a policy asks of the connections its requests use; connections are pooled apart
/// by it (the default: no policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct PoolClass {
    /// TCP keepalive on the socket.
    pub(crate) keepalive: Option<UpstreamTcpKeepalive>,
    /// How long the connection may stay idle (else the pool's idle timeout).
    pub(crate) idle_timeout: Option<Duration>,
    /// How long the connection may live.
    pub(crate) max_lifetime: Option<Duration>,
    /// How many requests the connection may carry.
    pub(crate) max_requests: Option<u32>,
    /// Whether header names keep the case they arrived in (HTTP/1.1 both ways).
    pub(crate) preserve_header_case: bool,
    /// `SO_RCVBUF` and `SO_SNDBUF` of the socket.
    pub(crate) socket_buffer: Option<u32>,
    /// Connections kept open, in percent of the busy ones (the rest opened ahead of need).
    pub(crate) preconnect_percent: Option<u32>,
    /// The most connections to one endpoint (`circuitBreaker.perEndpoint.maxConnections`):
    /// beyond it requests wait for one.
    pub(crate) max_connections: Option<u32>,
}

impl PoolClass {
    /// The class a request asks for with `upstream` (a policy's connection settings).
    pub(crate) fn of(upstream: &UpstreamConnection, preserve_header_case: bool) -> Self {
        PoolClass {
            keepalive: upstream.keepalive,
            idle_timeout: upstream.idle_timeout,
            max_lifetime: upstream.max_lifetime,
            max_requests: upstream.max_requests,
            preserve_header_case,
            socket_buffer: upstream.socket_buffer,
            preconnect_percent: upstream.preconnect_percent,
            max_connections: upstream.max_connections_per_endpoint,
        }
    }

    /// Whether a connection opened at `opened` that has carried `served` requests may carry
    /// another at `now`.
    fn usable(&self, opened: Instant, served: u32, now: Instant) -> bool {
        self.max_requests.is_none_or(|max| served < max)
            && self.max_lifetime.is_none_or(|life| now - opened < life)
    }
}

/// A connection, checked out or idle, with what it has done so far.
struct Lease {
    sender: SendRequest<ResponseBody>,
    /// When it was opened.
    opened: Instant,
    /// Requests it has carried, the one in flight included.
    served: u32,
}

/// The most connections one request opens ahead of need.
const MAX_PRECONNECTS: usize = 4;

/// The pool's key: an endpoint and what the connections to it were opened for.
type PoolKey = (SocketAddr, PoolClass);

/// The connections of one endpoint and class.
#[derive(Default)]
struct EndpointConnections {
    /// Idle connections with the time they became idle, oldest first.
    idle: Vec<(Lease, Instant)>,
    /// Open connections (busy and idle); each connection task holds one count.
    open: Arc<AtomicUsize>,
    /// Woken when a connection is given back idle or closes (requests waiting at a
    /// per-endpoint cap look again).
    freed: Arc<tokio::sync::Notify>,
}

/// Connections by endpoint and class, opened through the connector `C`.
pub(crate) struct Http1Pool<C> {
    limits: PoolLimits,
    connector: C,
    endpoints: Mutex<HashMap<PoolKey, EndpointConnections>>,
    reaper_started: AtomicBool,
    /// The reaper's period in milliseconds: half the shortest idle timeout or lifetime seen.
    reaper_period_ms: AtomicU64,
    /// Wakes the reaper when a class with a shorter period appears.
    reaper_wake: Arc<tokio::sync::Notify>,
}

/// One open connection's place in its endpoint's count, released when the connection ends.
struct OpenConnection {
    open: Arc<AtomicUsize>,
    /// Woken when the connection ends, under a per-endpoint cap.
    freed: Option<Arc<tokio::sync::Notify>>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(freed) = &self.freed {
            freed.notify_waiters();
        }
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
            reaper_period_ms: AtomicU64::new(reaper_period(limits.idle_timeout)),
            reaper_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Sends `request` to `endpoint` on a pooled connection of `class`, or a new one opened
    /// for it (within `connect_timeout`, else the connector's own).
    pub(crate) async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<ResponseBody>,
        class: PoolClass,
        connect_timeout: Option<Duration>,
    ) -> Result<Response<ResponseBody>, Http1PoolError> {
        self.start_reaper();
        let key = (endpoint, class);
        let place = loop {
            // Under a per-endpoint cap: registered before looking, so that a connection given
            // back or closed meanwhile wakes this request.
            let freed = class.max_connections.map(|_| self.freed(&key));
            let mut notified = freed.as_ref().map(|freed| Box::pin(freed.notified()));
            if let Some(notified) = notified.as_mut() {
                notified.as_mut().enable();
            }
            while let Some(mut lease) = self.checkout(&key) {
                self.preconnect(key, connect_timeout);
                match lease.sender.try_send_request(request).await {
                    Ok(response) => {
                        lease.served += 1;
                        return Ok(self.track(key, lease, response, true));
                    }
                    Err(mut error) => match error.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(error.into_error().into()),
                    },
                }
            }
            match self.reserve(&key) {
                Ok(place) => break place,
                // At a policy's per-endpoint cap the request waits for a connection, as
                // Envoy's pending requests do (bounded by the request's own timeouts).
                Err(Http1PoolError::Overloaded(open))
                    if class
                        .max_connections
                        .is_some_and(|max| usize::try_from(max).is_ok_and(|max| open >= max)) =>
                {
                    if let Some(notified) = notified {
                        notified.await;
                    }
                }
                Err(error) => return Err(error),
            }
        };
        self.preconnect(key, connect_timeout);
        let options = ConnectOptions {
            timeout: connect_timeout,
            keepalive: class.keepalive,
            socket_buffer: class.socket_buffer,
        };
        let io = self
            .connector
            .connect_with(endpoint, options)
            .await
            .map_err(Http1PoolError::Connect)?;
        let mut lease = handshake(io, place, &class).await?;
        let response = lease.sender.send_request(request).await?;
        lease.served = 1;
        Ok(self.track(key, lease, response, true))
    }

    /// Sends `request` to `endpoint` on a connection of its own, opened for it (with `options`)
    /// and closed after it, whose first bytes are `preface` — a PROXY header:
    /// a connection that names one client is never shared with another.
    pub(crate) async fn send_once(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        request: Request<ResponseBody>,
        class: PoolClass,
        connect_timeout: Option<Duration>,
        preface: &[u8],
    ) -> Result<Response<ResponseBody>, Http1PoolError> {
        let key = (endpoint, class);
        let place = self.reserve(&key)?;
        let options = ConnectOptions {
            timeout: connect_timeout,
            keepalive: class.keepalive,
            socket_buffer: class.socket_buffer,
        };
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
        let mut lease = handshake(io, place, &class).await?;
        let response = lease.sender.send_request(request).await?;
        lease.served = 1;
        Ok(self.track(key, lease, response, false))
    }

    /// Opens one connection to `endpoint` of `class` ahead of need when it has none (Envoy's
    /// predictive preconnect: the endpoint the balancer will likely pick next).
    pub(crate) fn warm(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        class: PoolClass,
        connect_timeout: Option<Duration>,
    ) {
        let key = (endpoint, class);
        let open = self
            .endpoints
            .lock()
            .ok()
            .and_then(|endpoints| endpoints.get(&key).map(|c| c.open.load(Ordering::Acquire)));
        if open.unwrap_or(0) > 0 {
            return;
        }
        if let Ok(place) = self.reserve(&key) {
            self.open_spare(key, place, connect_timeout);
        }
    }

    /// Opens a connection to `key` in the background, on `place`, and pools it idle.
    fn open_spare(
        self: &Arc<Self>,
        key: PoolKey,
        place: OpenConnection,
        connect_timeout: Option<Duration>,
    ) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            let class = key.1;
            let options = ConnectOptions {
                timeout: connect_timeout,
                keepalive: class.keepalive,
                socket_buffer: class.socket_buffer,
            };
            let Ok(io) = pool.connector.connect_with(key.0, options).await else {
                return;
            };
            if let Ok(mut lease) = handshake(io, place, &class).await
                && lease.sender.ready().await.is_ok()
            {
                pool.checkin(&key, lease);
            }
        });
    }

    /// Opens connections to `key` ahead of need (Envoy's per-upstream preconnect): as many as
    /// the class's percent of the busy ones (rounded up), counting idle ones and those being
    /// opened, at most [`MAX_PRECONNECTS`] at a time; each is opened in the background and
    /// pooled idle (within the per-endpoint cap).
    fn preconnect(self: &Arc<Self>, key: PoolKey, connect_timeout: Option<Duration>) {
        let Some(percent) = key.1.preconnect_percent else {
            return;
        };
        let (open, idle) = match self.endpoints.lock() {
            Ok(endpoints) => match endpoints.get(&key) {
                Some(c) => (c.open.load(Ordering::Acquire), c.idle.len()),
                None => return,
            },
            Err(_) => return,
        };
        // The caller's own connection is busy, though not yet counted out of idle.
        let busy = open.saturating_sub(idle).max(1);
        let want = (busy * percent as usize).div_ceil(100);
        for _ in open..want.min(open + MAX_PRECONNECTS) {
            let Ok(place) = self.reserve(&key) else {
                return;
            };
            self.open_spare(key, place, connect_timeout);
        }
    }

    /// Open connections to `endpoint` now (busy and idle), of every class.
    pub(crate) fn open_connections(&self, endpoint: SocketAddr) -> usize {
        self.endpoints.lock().map_or(0, |endpoints| {
            endpoints
                .iter()
                .filter(|((address, _), _)| *address == endpoint)
                .map(|(_, e)| e.open.load(Ordering::Acquire))
                .sum()
        })
    }

    /// Idle connections to `endpoint` now, of every class.
    pub(crate) fn idle_connections(&self, endpoint: SocketAddr) -> usize {
        self.endpoints.lock().map_or(0, |endpoints| {
            endpoints
                .iter()
                .filter(|((address, _), _)| *address == endpoint)
                .map(|(_, e)| e.idle.len())
                .sum()
        })
    }

    /// Closes the idle connections of every endpoint not in `live` and forgets those
    /// endpoints once their busy connections end.
    pub(crate) fn retain_endpoints(&self, live: &HashSet<SocketAddr>) {
        if let Ok(mut endpoints) = self.endpoints.lock() {
            for ((endpoint, _), connections) in endpoints.iter_mut() {
                if !live.contains(endpoint) {
                    connections.idle.clear();
                }
            }
            endpoints.retain(|(endpoint, _), connections| {
                live.contains(endpoint) || connections.open.load(Ordering::Acquire) > 0
            });
        }
    }

    /// Closes connections idle for longer than their idle timeout, past their lifetime, or
    /// closed by the backend, and forgets endpoints without connections.
    pub(crate) fn evict_idle(&self) {
        let now = Instant::now();
        if let Ok(mut endpoints) = self.endpoints.lock() {
            for ((_, class), connections) in endpoints.iter_mut() {
                let timeout = class.idle_timeout.unwrap_or(self.limits.idle_timeout);
                connections.idle.retain(|(lease, since)| {
                    lease.sender.is_ready()
                        && now - *since < timeout
                        && class
                            .max_lifetime
                            .is_none_or(|life| now - lease.opened < life)
                });
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
        let wake = Arc::clone(&self.reaper_wake);
        runtime.spawn(async move {
            loop {
                // Only a weak hold while asleep: the task ends with the pool.
                let Some(period) = pool
                    .upgrade()
                    .map(|pool| pool.reaper_period_ms.load(Ordering::Acquire))
                else {
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(period)) => {}
                    () = wake.notified() => {}
                }
                match pool.upgrade() {
                    Some(pool) => pool.evict_idle(),
                    None => return,
                }
            }
        });
    }

    /// Makes the reaper run at least as often as half of `class`'s idle timeout or lifetime.
    fn reap_for(&self, class: &PoolClass) {
        let shortest = [class.idle_timeout, class.max_lifetime]
            .into_iter()
            .flatten()
            .min();
        if let Some(shortest) = shortest {
            let period = reaper_period(shortest);
            if self.reaper_period_ms.fetch_min(period, Ordering::AcqRel) > period {
                self.reaper_wake.notify_one();
            }
        }
    }

    /// A place for one more connection to `key`'s endpoint and class, unless it has as many
    /// as allowed.
    fn reserve(&self, key: &PoolKey) -> Result<OpenConnection, Http1PoolError> {
        let max = match key.1.max_connections {
            Some(cap) => self
                .limits
                .max_connections_per_endpoint
                .min(usize::try_from(cap).unwrap_or(usize::MAX)),
            None => self.limits.max_connections_per_endpoint,
        };
        let (open, freed) = match self.endpoints.lock() {
            Ok(mut endpoints) => {
                let connections = endpoints.entry(*key).or_default();
                (
                    Arc::clone(&connections.open),
                    Arc::clone(&connections.freed),
                )
            }
            Err(_) => Default::default(),
        };
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map_err(Http1PoolError::Overloaded)?;
        self.reap_for(&key.1);
        let freed = key.1.max_connections.map(|_| freed);
        Ok(OpenConnection { open, freed })
    }

    /// What wakes requests waiting for a connection to `key`.
    fn freed(&self, key: &PoolKey) -> Arc<tokio::sync::Notify> {
        match self.endpoints.lock() {
            Ok(mut endpoints) => Arc::clone(&endpoints.entry(*key).or_default().freed),
            Err(_) => Arc::default(),
        }
    }

    fn checkout(&self, key: &PoolKey) -> Option<Lease> {
        let mut endpoints = self.endpoints.lock().ok()?;
        let idle = &mut endpoints.get_mut(key)?.idle;
        let class = &key.1;
        let timeout = class.idle_timeout.unwrap_or(self.limits.idle_timeout);
        let now = Instant::now();
        while let Some((lease, since)) = idle.pop() {
            if lease.sender.is_ready()
                && now - since < timeout
                && class.usable(lease.opened, lease.served, now)
            {
                return Some(lease);
            }
        }
        None
    }

    /// Pools `lease` again, unless its connection is closed, used up or the pool is full.
    fn checkin(&self, key: &PoolKey, lease: Lease) {
        let now = Instant::now();
        if !lease.sender.is_ready() || !key.1.usable(lease.opened, lease.served, now) {
            return;
        }
        if let Ok(mut endpoints) = self.endpoints.lock()
            && let Some(connections) = endpoints.get_mut(key)
            && connections.idle.len() < self.limits.max_idle_per_endpoint
        {
            connections.idle.push((lease, now));
            if key.1.max_connections.is_some() {
                connections.freed.notify_waiters();
            }
        }
    }

    /// The response, whose body gives the connection back (if `reusable`) or closes it when it
    /// ends.
    fn track(
        self: &Arc<Self>,
        key: PoolKey,
        lease: Lease,
        response: Response<Incoming>,
        reusable: bool,
    ) -> Response<ResponseBody> {
        let idle = self.limits.response_idle_timeout;
        response.map(|body| {
            let returning = ReturningBody {
                body,
                lease: Some(lease),
                pool: Arc::clone(self),
                key,
                reusable,
            };
            IdleTimeoutBody::new(returning, idle).boxed()
        })
    }
}

/// Half of `timeout` in milliseconds (at least 10), the reaper's period for it.
fn reaper_period(timeout: Duration) -> u64 {
    u64::try_from((timeout / 2).as_millis())
        .unwrap_or(u64::MAX)
        .max(10)
}

/// HTTP/1.1 on a freshly opened stream (keeping header case if `class` asks); the connection
/// task holds its place in the count.
async fn handshake<IO>(
    io: IO,
    place: OpenConnection,
    class: &PoolClass,
) -> Result<Lease, Http1PoolError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .preserve_header_case(class.preserve_header_case)
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        let _place = place;
        let _ = connection.await;
    });
    Ok(Lease {
        sender,
        opened: Instant::now(),
        served: 0,
    })
}

/// A response body that gives its connection back to the pool once fully read.
struct ReturningBody<C> {
    body: Incoming,
    lease: Option<Lease>,
    pool: Arc<Http1Pool<C>>,
    key: PoolKey,
    /// Whether the connection may serve other requests (else it closes after this one).
    reusable: bool,
}

impl<C: Connect> ReturningBody<C> {
    fn give_back(&mut self) {
        if let Some(lease) = self.lease.take()
            && self.reusable
        {
            self.pool.checkin(&self.key, lease);
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
            Poll::Ready(Some(Err(_))) => this.lease = None,
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
            .send(address, request, PoolClass::default(), None)
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
            pool.send(address, request, PoolClass::default(), None)
                .await,
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
                let _ = pool
                    .send(address, request, PoolClass::default(), None)
                    .await;
            });
        }
        eventually("two open connections", || {
            pool.open_connections(address) == 2
        })
        .await;
        let request = Request::get("/").body(ResponseBody::default()).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(address, request, PoolClass::default(), None)
                .await,
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
            .send(address, request, PoolClass::default(), None)
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
                .send(address, request, PoolClass::default(), None)
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
