//! Cleartext HTTP/2 (h2c) to backends, on hyper's `client::conn::http2`: one multiplexed
//! connection per endpoint and set of flow-control windows (a BackendTrafficPolicy `http2`
//! asks for its own, as Envoy keeps one pool per cluster), opened through the forwarder's
//! connector, replaced once closed. Requests carry the client's authority as `:authority`
//! (Envoy's behaviour, and RFC 9113 §8.3.1: no `Host` that disagrees with it), while the
//! connection goes to the chosen endpoint.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::client::legacy::Builder;
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::router::{UpstreamError, UpstreamHttp2};

use super::connect::{Connect, ConnectOptions};
use super::forward::ResponseBody;

/// Why an h2c request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H2PoolError {
    /// The connection could not be opened (typed by the connector).
    #[error("connect: {0}")]
    Connect(#[source] UpstreamError),
    /// HTTP/2 failed on the connection.
    #[error("http2: {0}")]
    Http(#[from] hyper::Error),
}

/// A connection's key: its endpoint and the windows it announced.
type Key = (SocketAddr, Option<UpstreamHttp2>);

/// h2c connections by endpoint and windows, opened through the connector `C`.
pub(crate) struct H2Pool<C> {
    connector: C,
    connections: Mutex<HashMap<Key, SendRequest<ResponseBody>>>,
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
    /// on the connection announcing `windows`, opened (with `options`) if there is none.
    pub(crate) async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<ResponseBody>,
        windows: Option<UpstreamHttp2>,
        options: ConnectOptions,
    ) -> Result<Response<Incoming>, H2PoolError> {
        let key = (endpoint, windows);
        let pooled = self
            .connections
            .lock()
            .ok()
            .and_then(|connections| connections.get(&key).cloned())
            .filter(|sender| !sender.is_closed());
        let mut sender = match pooled {
            Some(sender) => sender,
            None => self.open(key, options).await?,
        };
        // Waits while the backend's stream limit is reached.
        sender.ready().await?;
        Ok(sender.send_request(request).await?)
    }

    /// Forgets the connections to endpoints not in `live` (they close once idle).
    pub(crate) fn retain_endpoints(&self, live: &HashSet<SocketAddr>) {
        if let Ok(mut connections) = self.connections.lock() {
            connections
                .retain(|(endpoint, _), sender| live.contains(endpoint) && !sender.is_closed());
        }
    }

    async fn open(
        &self,
        key: Key,
        options: ConnectOptions,
    ) -> Result<SendRequest<ResponseBody>, H2PoolError> {
        let (endpoint, windows) = key;
        let io = self
            .connector
            .connect_with(endpoint, options)
            .await
            .map_err(H2PoolError::Connect)?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        if let Some(windows) = windows {
            if let Some(window) = windows.initial_stream_window {
                builder.initial_stream_window_size(window);
            }
            if let Some(window) = windows.initial_connection_window {
                builder.initial_connection_window_size(window);
            }
        }
        let (sender, connection) = builder.handshake(TokioIo::new(io)).await?;
        tokio::spawn(connection);
        if let Ok(mut connections) = self.connections.lock() {
            connections.retain(|_, sender| !sender.is_closed());
            connections.insert(key, sender.clone());
        }
        Ok(sender)
    }
}

/// Sets the HTTP/2 windows `windows` asks for on a hyper-util client `builder` (the TLS
/// backends' clients).
pub(crate) fn announce(builder: &mut Builder, windows: Option<UpstreamHttp2>) {
    let Some(windows) = windows else {
        return;
    };
    if let Some(window) = windows.initial_stream_window {
        builder.http2_initial_stream_window_size(window);
    }
    if let Some(window) = windows.initial_connection_window {
        builder.http2_initial_connection_window_size(window);
    }
}
