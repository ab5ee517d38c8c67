//! HTTP/2 to backends — cleartext (h2c), or over TLS for backends a BackendTLSPolicy covers —
//! on hyper's `client::conn::http2`: one multiplexed connection per endpoint, set of
//! flow-control windows (a BackendTrafficPolicy `http2` asks for its own, as Envoy keeps one
//! pool per cluster) and TLS configuration, opened through the forwarder's connector,
//! replaced once closed. Under a policy's `maxConcurrentStreams`, a connection
//! carrying that many streams (until their response bodies end) takes no more: another is
//! opened, at most [`MAX_CONNECTIONS_PER_KEY`] per endpoint, beyond which the least busy one
//! is shared. Requests carry the client's authority as `:authority`
//! (Envoy's behaviour, and RFC 9113 §8.3.1: no `Host` that disagrees with it), while the
//! connection goes to the chosen endpoint.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::inbound::TerminateOnInvalid;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::router::{UpstreamError, UpstreamErrorKind, UpstreamHttp2};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connect::{Connect, ConnectOptions};
use super::forward::ResponseBody;

/// Why an HTTP/2 request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H2PoolError {
    /// The connection could not be opened (typed by the connector).
    #[error("connect: {0}")]
    Connect(#[source] UpstreamError),
    /// HTTP/2 failed on the connection.
    #[error("http2: {0}")]
    Http(#[from] hyper::Error),
}

/// TLS for pooled connections: the configuration (its address tells pools apart; every
/// connection made with it keeps it alive, so the address cannot be reused meanwhile) and the
/// server name sent and verified.
#[derive(Clone)]
pub(crate) struct PoolTls {
    /// The rustls configuration (ALPN `h2`).
    pub(crate) config: Arc<ClientConfig>,
    /// The name the backend's certificate must carry.
    pub(crate) name: ServerName<'static>,
}

/// A connection's key: its endpoint, the windows it announced, and the address of its TLS
/// configuration (none for h2c).
type Key = (SocketAddr, Option<UpstreamHttp2>, Option<usize>);

/// The most connections to one endpoint (for one set of settings) a stream limit opens.
pub(crate) const MAX_CONNECTIONS_PER_KEY: usize = 256;

/// The most keys kept: TLS settings named by each request's host (a `Backend`'s `tls`
/// without `sni`) make new keys, so past this many, a new key evicts another (its
/// connections close once their streams end).
pub(crate) const MAX_KEYS: usize = 1024;

/// One pooled connection — open, or being opened by the first request that wanted it, which
/// later requests wait for — and the streams it carries now.
#[derive(Clone)]
struct Pooled {
    connection: Arc<OnceCell<SendRequest<ResponseBody>>>,
    streams: Arc<AtomicU32>,
    /// Keeps the TLS configuration the key names alive.
    _tls: Option<Arc<ClientConfig>>,
}

impl Pooled {
    /// Whether the connection was open and has closed (one being opened is not).
    fn closed(&self) -> bool {
        self.connection
            .get()
            .is_some_and(|sender| sender.is_closed())
    }
}

/// A stream's place on its connection, given back when dropped (with the response body).
#[derive(Debug)]
pub(crate) struct StreamPlace(Arc<AtomicU32>);

impl Drop for StreamPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// HTTP/2 connections by endpoint, windows and TLS, opened through the connector `C`.
pub(crate) struct H2Pool<C> {
    connector: C,
    connections: Mutex<HashMap<Key, Vec<Pooled>>>,
}

/// Makes room for a key: drops the keys whose connections all closed, else one key (its
/// open connections close once the requests holding them end).
fn evict_one(connections: &mut HashMap<Key, Vec<Pooled>>) {
    connections.retain(|_, pooled| {
        pooled.retain(|p| !p.closed());
        !pooled.is_empty()
    });
    if connections.len() >= MAX_KEYS
        && let Some(key) = connections.keys().next().copied()
    {
        connections.remove(&key);
    }
}

impl<C: Connect> H2Pool<C> {
    /// No connections yet; they will be opened through `connector`.
    pub(crate) fn new(connector: C) -> Self {
        H2Pool {
            connector,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` (in absolute form: its authority becomes `:authority`) to `endpoint`
    /// on a connection announcing `windows` — over TLS with `tls` when given — with room for
    /// another stream (one being opened counts), opened (with `options`) if there is none.
    /// Under a stream limit, the place is held until the returned [`StreamPlace`] (kept with
    /// the response body) is dropped.
    pub(crate) async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<ResponseBody>,
        windows: Option<UpstreamHttp2>,
        options: ConnectOptions,
        tls: Option<&PoolTls>,
    ) -> Result<(Response<Incoming>, Option<StreamPlace>), H2PoolError> {
        let tls_key = tls.map(|tls| Arc::as_ptr(&tls.config) as usize);
        let key = (endpoint, windows, tls_key);
        let limit = windows.and_then(|w| w.max_concurrent_streams);
        let pooled = self.take_place(key, limit, tls.map(|tls| Arc::clone(&tls.config)));
        let place = limit.map(|_| StreamPlace(Arc::clone(&pooled.streams)));
        // The first request of a new connection opens it; the others wait for it (and one
        // of them tries again if it could not be opened).
        let mut sender = pooled
            .connection
            .get_or_try_init(|| self.open(endpoint, windows, options, tls))
            .await?
            .clone();
        // Waits while the backend's own stream limit is reached.
        sender.ready().await?;
        Ok((sender.send_request(request).await?, place))
    }

    /// A place on a connection of `key` with room for one more stream under `limit`: an
    /// existing one, else a new entry (to be opened), else — at
    /// [`MAX_CONNECTIONS_PER_KEY`] — the least busy.
    fn take_place(&self, key: Key, limit: Option<u32>, tls: Option<Arc<ClientConfig>>) -> Pooled {
        // Streams are counted only under a limit (nothing reads the count otherwise).
        let fresh = || Pooled {
            connection: Arc::new(OnceCell::new()),
            streams: Arc::new(AtomicU32::new(u32::from(limit.is_some()))),
            _tls: tls.clone(),
        };
        let Ok(mut connections) = self.connections.lock() else {
            return fresh();
        };
        if connections.len() >= MAX_KEYS && !connections.contains_key(&key) {
            evict_one(&mut connections);
        }
        let pooled = connections.entry(key).or_default();
        pooled.retain(|p| !p.closed());
        let with_room = pooled
            .iter()
            .find(|p| limit.is_none_or(|limit| p.streams.load(Ordering::Relaxed) < limit));
        let chosen = match with_room {
            Some(p) => p.clone(),
            None if pooled.len() < MAX_CONNECTIONS_PER_KEY => {
                let new = fresh();
                pooled.push(new.clone());
                return new;
            }
            None => match pooled
                .iter()
                .min_by_key(|p| p.streams.load(Ordering::Relaxed))
            {
                Some(p) => p.clone(),
                None => return fresh(),
            },
        };
        if limit.is_some() {
            chosen.streams.fetch_add(1, Ordering::Relaxed);
        }
        chosen
    }

    /// How many keys are kept.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.connections.lock().map_or(0, |c| c.len())
    }

    /// Forgets the connections to endpoints not in `live` (they close once idle).
    pub(crate) fn retain_endpoints(&self, live: &HashSet<SocketAddr>) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.retain(|(endpoint, _, _), pooled| {
                pooled.retain(|p| !p.closed());
                live.contains(endpoint) && !pooled.is_empty()
            });
        }
    }

    /// Opens a connection to `endpoint` announcing `windows`, over TLS with `tls` when given.
    async fn open(
        &self,
        endpoint: SocketAddr,
        windows: Option<UpstreamHttp2>,
        options: ConnectOptions,
        tls: Option<&PoolTls>,
    ) -> Result<SendRequest<ResponseBody>, H2PoolError> {
        let io = self
            .connector
            .connect_with(endpoint, options)
            .await
            .map_err(H2PoolError::Connect)?;
        let Some(tls) = tls else {
            return handshake(io, windows).await;
        };
        let secured = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
            .connect(tls.name.clone(), io)
            .await
            .map_err(|error| {
                H2PoolError::Connect(UpstreamError::with_source(UpstreamErrorKind::Tls, error))
            })?;
        handshake(secured, windows).await
    }
}

/// The HTTP/2 handshake on `io`, announcing `windows`; the connection is driven by a task.
async fn handshake<IO>(
    io: IO,
    windows: Option<UpstreamHttp2>,
) -> Result<SendRequest<ResponseBody>, H2PoolError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    if let Some(windows) = windows {
        if let Some(window) = windows.initial_stream_window {
            builder.initial_stream_window_size(window);
        }
        if let Some(window) = windows.initial_connection_window {
            builder.initial_connection_window_size(window);
        }
    }
    let terminate_on_invalid = !windows.is_some_and(|w| w.stream_error_on_invalid_message);
    let io = TerminateOnInvalid::client(io, terminate_on_invalid);
    let (sender, connection) = builder.handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::TcpConnect;

    #[test]
    fn keys_stay_bounded_however_many_settings_requests_name() {
        let pool = H2Pool::new(TcpConnect::default());
        for port in 0..(MAX_KEYS as u16 + 100) {
            let endpoint = SocketAddr::from(([192, 0, 2, 1], port));
            let _ = pool.take_place((endpoint, None, None), None, None);
        }
        assert_eq!(pool.keys(), MAX_KEYS);
    }
}
