//! An echo backend: answers every request with a JSON description of the request it saw —
//! `path` (the raw target, query included), `host` (the raw `Host`, port included), `method`,
//! `proto`, `headers` (name → values), `namespace` and `pod` — the shape the Gateway API
//! conformance backends use. Serves HTTP/1.1 and h2c. A request with an `x-echo-status`
//! header is answered with that status (for tests of what a proxy does with a backend's
//! errors); one with `x-echo-delay-ms: N` is answered N ms late (a slow backend). The answer
//! comes once the request's body has been read.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Who an echo backend says it is.
#[derive(Debug, Clone)]
pub struct EchoIdentity {
    /// The namespace reported.
    pub namespace: String,
    /// The pod name reported.
    pub pod: String,
}

/// The JSON description of `request`, as the echo backend answers it.
pub fn describe<B>(request: &Request<B>, identity: &EchoIdentity) -> serde_json::Value {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    serde_json::json!({
        "path": request_target(request),
        "host": host,
        "method": request.method().as_str(),
        "proto": format!("{:?}", request.version()),
        "headers": headers,
        "namespace": identity.namespace,
        "pod": identity.pod,
    })
}

/// The request target as the client wrote it: the HTTP/1 request line's target (origin form
/// `/p?q`, or absolute form if a client sent that), the `:path` of HTTP/2.
fn request_target<B>(request: &Request<B>) -> String {
    match request.version() {
        http::Version::HTTP_2 | http::Version::HTTP_3 => request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string),
        _ => request.uri().to_string(),
    }
}

/// Serves the echo backend on `listener` until the task is dropped.
pub async fn serve_echo(listener: TcpListener, identity: EchoIdentity) {
    let identity = Arc::new(identity);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve_echo_connection(stream, Arc::clone(&identity)));
    }
}

/// Serves the echo backend on one connection (plain or already TLS-terminated) until it
/// closes.
pub async fn serve_echo_connection<IO>(io: IO, identity: Arc<EchoIdentity>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let body = describe(&request, &identity).to_string() + "\n";
        let mut response = Response::new(Full::new(Bytes::from(body)));
        if let Some(status) = request
            .headers()
            .get("x-echo-status")
            .and_then(|value| value.to_str().ok()?.parse::<u16>().ok())
            .and_then(|code| http::StatusCode::from_u16(code).ok())
        {
            *response.status_mut() = status;
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        // `x-echo-delay-ms: N` holds the answer back N ms (at most a minute): a slow backend.
        let delay = request
            .headers()
            .get("x-echo-delay-ms")
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .map(|ms| std::time::Duration::from_millis(ms.min(60_000)));
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            // The answer follows the whole request, as most servers' do (a stalled upload is
            // never answered early); bodies are read and dropped, at most 64 MiB.
            let _ = http_body_util::Limited::new(request.into_body(), 64 << 20)
                .collect()
                .await;
            Ok::<_, Infallible>(response)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
