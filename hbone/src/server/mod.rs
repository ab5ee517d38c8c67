//! The HBONE server: accepts mTLS + HTTP/2 connections and hands each CONNECT to a tower
//! service that decides where it goes (hbone spec §1.6).
//!
//! Processing order per stream: a method other than CONNECT → 400; a missing or bad
//! `:authority` → 400; then the service decides: [`ConnectDecision::Reject`] with its status
//! (e.g. 401 for a policy deny, 503 for an unknown target), [`ConnectDecision::Forward`] to an
//! upstream — 200 only once the upstream TCP connection is established, 503 if it fails — or
//! [`ConnectDecision::Serve`] to handle the stream locally. Error responses have no body.

mod connection;
mod outcome;
mod request;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Service;

pub use outcome::ConnectRefusal;
pub use request::{CloseSignal, ConnectDecision, ConnectRequest, StreamHandler};

use crate::h2_settings::H2Settings;
use crate::identity::SpiffeId;
use crate::metrics::TcpMetrics;

/// Server settings with ztunnel's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HboneServerConfig {
    /// HTTP/2 settings and keepalive.
    pub h2: H2Settings,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to connect to an upstream (then 503).
    pub upstream_connect_timeout: Duration,
    /// After GOAWAY, how long streams may go on before the connection is closed.
    pub drain_deadline: Duration,
    /// A firewall mark (`SO_MARK`) on upstream sockets (none by default).
    pub upstream_mark: Option<u32>,
}

impl Default for HboneServerConfig {
    fn default() -> Self {
        HboneServerConfig {
            h2: H2Settings::server(),
            handshake_timeout: Duration::from_secs(10),
            upstream_connect_timeout: Duration::from_secs(10),
            drain_deadline: Duration::from_secs(5),
            upstream_mark: None,
        }
    }
}

/// Why a connection ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeConnectionError {
    /// A socket operation failed.
    #[error("socket: {0}")]
    Io(std::io::Error),
    /// The TLS handshake did not finish in time.
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    /// The TLS handshake failed (bad or foreign certificate, protocol error).
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// HTTP/2 failed.
    #[error("HTTP/2: {0}")]
    H2(h2::Error),
    /// A keepalive PING was not answered in time; the connection was shut down.
    #[error("keepalive PING not answered")]
    KeepaliveTimeout,
}

/// An HBONE server around a CONNECT-deciding tower service.
pub struct HboneServer<S> {
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    config: HboneServerConfig,
    service: S,
    observer: Option<connection::Observer>,
    metrics: Option<ServerMetrics>,
}

/// The server's metrics and the local identity they report as destination principal.
#[derive(Debug, Clone)]
struct ServerMetrics {
    metrics: TcpMetrics,
    local_identity: Option<SpiffeId>,
}

impl<S: Clone> Clone for HboneServer<S> {
    fn clone(&self) -> Self {
        HboneServer {
            tls: self.tls.clone(),
            config: self.config,
            service: self.service.clone(),
            observer: self.observer.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S> HboneServer<S>
where
    S: Service<ConnectRequest, Response = ConnectDecision> + Clone + Send + 'static,
    S::Error: std::fmt::Display + Send,
    S::Future: Send,
{
    /// A server with TLS configuration `tls` (see [`HboneTls::server_config`](crate::tls::HboneTls::server_config))
    /// and default settings.
    pub fn new(tls: Arc<rustls::ServerConfig>, service: S) -> Self {
        HboneServer {
            tls: watch::channel(tls).1,
            config: HboneServerConfig::default(),
            service,
            observer: None,
            metrics: None,
        }
    }

    /// Records `istio_tcp_*` metrics (reporter `destination`) for every CONNECT, with
    /// `local_identity` as the destination principal.
    pub fn with_metrics(mut self, metrics: TcpMetrics, local_identity: Option<SpiffeId>) -> Self {
        self.metrics = Some(ServerMetrics {
            metrics,
            local_identity,
        });
        self
    }

    /// Takes the TLS configuration from `updates`: each new connection uses the latest one
    /// (e.g. rebuilt from [`PemFiles::watch`](crate::tls::PemFiles::watch) after a rotation);
    /// connections already open keep theirs.
    pub fn with_tls_updates(mut self, updates: watch::Receiver<Arc<rustls::ServerConfig>>) -> Self {
        self.tls = updates;
        self
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: HboneServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls `observer` once per CONNECT, as soon as it has been answered, with its status.
    pub fn with_observer(
        mut self,
        observer: impl Fn(&ConnectRequest, StatusCode) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Accepts connections until `shutdown` resolves, then drains: every connection sends
    /// GOAWAY and gets [`HboneServerConfig::drain_deadline`] to finish its streams.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (drain_sender, drain) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let server = self.clone();
                    let drain = drain.clone();
                    connections.spawn(async move { server.serve_connection(tcp, drain).await });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = drain_sender.send(true);
        let grace = self.config.drain_deadline + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        Ok(())
    }
}
