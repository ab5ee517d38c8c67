//! Forwarding a routed request to one endpoint of its [`SelectedBackend`]: HTTP/1.1 or h2c
//! (by `appProtocol`), pooled connections, hop-by-hop headers removed, `Host` kept as sent.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::compiled::BackendProtocol;
use routing::router::{SelectedBackend, UpstreamFailure};
use rustls::crypto::CryptoProvider;

use super::backend_tls::BackendTlsClients;
use super::http1_pool::Http1Pool;

/// The body of every request and response the gateway forwards.
pub type ResponseBody = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The forwarding service: an HTTP/1.1 and an h2c connection pool, round-robin over endpoints.
#[derive(Clone)]
pub struct Forwarder {
    /// Shared by every clone: a clone per request costs one reference count.
    inner: Arc<Pools>,
}

struct Pools {
    http1: Client<HttpConnector, ResponseBody>,
    h2c: Client<HttpConnector, ResponseBody>,
    tls: BackendTlsClients,
    plain: Arc<Http1Pool>,
    next_endpoint: AtomicUsize,
}

impl Forwarder {
    /// A forwarder with empty pools; backends under a BackendTLSPolicy use `crypto`.
    pub fn new(crypto: Arc<CryptoProvider>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        let http1 = Client::builder(TokioExecutor::new()).build(connector.clone());
        let h2c = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Forwarder {
            inner: Arc::new(Pools {
                http1,
                h2c,
                tls: BackendTlsClients::new(crypto),
                plain: Arc::new(Http1Pool::default()),
                next_endpoint: AtomicUsize::new(0),
            }),
        }
    }

    async fn forward(self, mut request: Request<ResponseBody>) -> Response<ResponseBody> {
        let Some(backend) = request.extensions_mut().remove::<SelectedBackend>() else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let turn = self.inner.next_endpoint.fetch_add(1, Ordering::Relaxed);
        let Some(endpoint) = backend.endpoints.get(turn % backend.endpoints.len().max(1)) else {
            return status(StatusCode::SERVICE_UNAVAILABLE);
        };
        // Keep the authority the client sent as the Host header (HTTP/2 clients send
        // `:authority` only).
        if !request.headers().contains_key(header::HOST)
            && let Some(authority) = request.uri().authority()
            && let Ok(host) = HeaderValue::try_from(authority.as_str())
        {
            request.headers_mut().insert(header::HOST, host);
        }
        // An HTTP/1.1 upgrade (WebSocket) is passed through: the Upgrade header survives, and
        // on 101 both upgraded connections are spliced.
        let upgrade = upgrade_protocol(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        remove_hop_by_hop(request.headers_mut());
        let upgrading = upgrade.is_some();
        if let Some(protocol) = upgrade {
            request.headers_mut().insert(header::UPGRADE, protocol);
            request
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        // The path and query move over unchanged (never re-parsed or normalized): in origin
        // form on the lean pool, which writes the URI as the request target; in absolute form
        // (the endpoint's address) for hyper-util's clients, which connect by it.
        let legacy_client =
            backend.tls.is_some() || upgrading || backend.protocol == BackendProtocol::H2c;
        let target = if legacy_client {
            absolute_form(request.uri(), endpoint.address)
        } else {
            origin_form(request.uri())
        };
        let Some(target) = target else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        *request.uri_mut() = target;
        let sent = match (&backend.tls, backend.protocol) {
            (Some(tls), _) => {
                // HTTPS to the backend, HTTP/1.1 (ALPN offers only http/1.1).
                *request.version_mut() = http::Version::HTTP_11;
                let Some(client) = self.inner.tls.client(tls) else {
                    return status(StatusCode::INTERNAL_SERVER_ERROR);
                };
                boxed(client.request(request).await)
            }
            (None, BackendProtocol::H2c) if !upgrading => {
                *request.version_mut() = http::Version::HTTP_2;
                boxed(self.inner.h2c.request(request).await)
            }
            (None, _) if upgrading => {
                *request.version_mut() = http::Version::HTTP_11;
                boxed(self.inner.http1.request(request).await)
            }
            (None, _) => {
                // The common case: HTTP/1.1 on the lean pool.
                *request.version_mut() = http::Version::HTTP_11;
                self.inner
                    .plain
                    .send(endpoint.address, request)
                    .await
                    .map_err(|_| ())
            }
        };
        match sent {
            Ok(mut response) => {
                let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                if let (true, Some(client_upgrade)) = (switched, client_upgrade) {
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(splice_upgraded(client_upgrade, backend_upgrade));
                    return response;
                }
                remove_hop_by_hop(response.headers_mut());
                response
            }
            // Envoy's answer to a refused or reset upstream connection; marked so that the
            // router may retry it.
            Err(_) => {
                let mut response = status(StatusCode::SERVICE_UNAVAILABLE);
                response.extensions_mut().insert(UpstreamFailure);
                response
            }
        }
    }
}

/// `/path?query` of `uri` (`/` when it has none).
fn origin_form(uri: &Uri) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path_and_query(uri));
    Uri::from_parts(parts).ok()
}

/// `http://{endpoint}/path?query` of `uri`.
fn absolute_form(uri: &Uri, endpoint: SocketAddr) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(Authority::try_from(endpoint.to_string()).ok()?);
    parts.path_and_query = Some(path_and_query(uri));
    Uri::from_parts(parts).ok()
}

fn path_and_query(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// A legacy-client answer with its body boxed, or `Err` for any failure to reach the backend.
fn boxed<E>(
    answer: Result<Response<hyper::body::Incoming>, E>,
) -> Result<Response<ResponseBody>, ()> {
    answer
        .map(|response| response.map(BodyExt::boxed))
        .map_err(|_| ())
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` with `Upgrade: X`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Copies bytes both ways between the client's and the backend's upgraded connections.
async fn splice_upgraded(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    if let (Ok(client), Ok(backend)) = (client.await, backend.await) {
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    }
}

/// Removes hop-by-hop headers, including those named by `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// An empty response with `code`.
pub(crate) fn status(code: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::default());
    *response.status_mut() = code;
    response
}

impl tower::Service<Request<ResponseBody>> for Forwarder {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ResponseBody>) -> Self::Future {
        let forwarder = self.clone();
        Box::pin(async move { Ok(forwarder.forward(request).await) })
    }
}
