//! The admin endpoint: `/ready`, `/status`, `/config_dump`, `/metrics`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{LastReloadError, Snapshot};
use crate::metrics::GatewayMetrics;

/// What the admin endpoint reports.
pub struct AdminState {
    /// The configuration being served.
    pub snapshot: ArcSwap<Snapshot>,
    /// True once every listener is bound and its routes programmed.
    pub ready: AtomicBool,
    /// Why the last reload was rejected, if it was.
    pub last_error: LastReloadError,
    /// The metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// The registry `/metrics` serves (the embedder's, with the gateway's metrics in it).
    pub registry: prometheus_client::registry::Registry,
}

impl AdminState {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        let snapshot = self.snapshot.load();
        match request.uri().path() {
            "/ready" if self.ready.load(Ordering::Acquire) => {
                text(StatusCode::OK, "ready\n".into())
            }
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
            "/status" => json(&serde_json::json!({
                "generation": snapshot.generation,
                "lastReloadError": self.last_error.get(),
                "warnings": snapshot.warnings,
                "resources": snapshot.resolution.statuses,
            })),
            "/config_dump" => config_dump(snapshot.generation, &snapshot.config),
            "/metrics" => metrics_answer(&self.registry),
            "/debug/authorize" => {
                match crate::explain::ExplainQuery::parse(request.uri().query().unwrap_or("")) {
                    Ok(query) => json(&crate::explain::explain(&snapshot.resolution, &query)),
                    Err(problem) => text(StatusCode::BAD_REQUEST, format!("{problem}\n")),
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "try /ready, /status, /config_dump, /metrics, /debug/authorize\n".into(),
            ),
        }
    }
}

/// The Prometheus text exposition of `registry`.
pub(crate) fn metrics_answer(
    registry: &prometheus_client::registry::Registry,
) -> Response<Full<Bytes>> {
    let mut exposition = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut exposition, registry);
    let mut response = text(StatusCode::OK, exposition);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {what} on {address}: {error}")]
pub struct BindError {
    /// Which listener.
    pub what: &'static str,
    /// The address.
    pub address: SocketAddr,
    /// The error.
    #[source]
    pub error: io::Error,
}

/// Binds the listener `what` at `address`.
pub(crate) async fn bind_listener(
    what: &'static str,
    address: SocketAddr,
) -> Result<TcpListener, BindError> {
    TcpListener::bind(address).await.map_err(|error| BindError {
        what,
        address,
        error,
    })
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// `/config_dump`: the configuration as loaded, or 500 when it cannot be shown as JSON.
pub(crate) fn config_dump(
    generation: u64,
    config: &routing::model::Config,
) -> Response<Full<Bytes>> {
    match serde_json::to_value(config) {
        Ok(config) => json(&serde_json::json!({
            "generation": generation,
            "config": config,
        })),
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the configuration cannot be shown as JSON: {error}\n"),
        ),
    }
}

/// A pretty-printed JSON answer.
pub(crate) fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Binds the admin endpoint at `address`.
pub(super) async fn bind_admin(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves the admin endpoint on `listener` until the task is dropped.
pub(super) async fn serve_admin(listener: TcpListener, state: Arc<AdminState>) {
    serve_answers(listener, move |request| state.answer(request)).await;
}

/// Serves HTTP/1.1 on `listener`, each request answered synchronously by `answer`, until
/// the task is dropped (admin, readiness and metrics ports).
pub(crate) async fn serve_answers<F>(listener: TcpListener, answer: F)
where
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let answer = Arc::clone(&answer);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
