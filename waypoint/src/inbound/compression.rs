//! [`CompressFromRoute`]: BackendTrafficPolicy `compressor` on the gateway's request path, with
//! tower-http's compression. For a rule under such a policy, the client's `Accept-Encoding` is
//! read (and removed before forwarding, as Envoy Gateway does, so the backend never compresses)
//! and the backend's answer is compressed with the best encoding both sides accept — when it
//! is at least `minContentLength` long (by `content-length`; unknown lengths are compressed),
//! has one of the content types Envoy's compressor compresses by default, is not already
//! encoded and does not forbid it (`cache-control: no-transform`). Other rules' answers pass
//! through untouched.

use std::task::{Context, Poll};

use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_policy::traffic::compile::Compression;
use mesh_policy::traffic::future::{InnerOrBoxed, take_ready};
use mesh_policy::traffic::layer::later_route_traffic;
use routing::router::RouteError;
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};

use crate::outbound::{BodyError, ResponseBody};

/// The content types Envoy's compressor compresses when none are configured.
const COMPRESSIBLE: [&str; 8] = [
    "application/javascript",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/css",
    "text/html",
    "text/plain",
    "text/xml",
];

/// Whether a response is one Envoy's compressor would compress (size aside).
#[derive(Debug, Clone, Copy)]
struct EnvoyCompressible;

impl Predicate for EnvoyCompressible {
    fn should_compress<B: http_body::Body>(&self, response: &Response<B>) -> bool {
        let headers = response.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let compressible = content_type.is_some_and(|t| COMPRESSIBLE.contains(&t.as_str()));
        let no_transform = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("no-transform"));
        compressible && !no_transform
    }
}

/// Compresses the answers of rules whose BackendTrafficPolicy asks for it.
#[derive(Debug, Clone)]
pub struct CompressFromRoute<S> {
    inner: S,
}

impl<S> CompressFromRoute<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CompressFromRoute { inner }
    }
}

fn layer_for(settings: Compression) -> CompressionLayer<impl Predicate> {
    let layer = CompressionLayer::new()
        .gzip(settings.gzip)
        .br(settings.brotli)
        .zstd(settings.zstd)
        .no_deflate();
    layer.compress_when(SizeAbove::new(settings.min_length).and(EnvoyCompressible))
}

impl<S, B> Service<Request<B>> for CompressFromRoute<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = RouteError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = RouteError;
    type Future = InnerOrBoxed<S::Future, Response<ResponseBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(settings) = later_route_traffic(&request).and_then(|t| t.policy.compression)
        else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let ready = take_ready(&mut self.inner);
        // The backend never sees the client's Accept-Encoding (tower-http reads it first).
        let stripped = tower::util::MapRequest::new(ready, |mut request: Request<B>| {
            request.headers_mut().remove(ACCEPT_ENCODING);
            request
        });
        let compressing = layer_for(settings).layer(stripped);
        InnerOrBoxed::Boxed(Box::pin(async move {
            let response = compressing.oneshot(request).await?;
            Ok(response.map(|body| body.map_err(BodyError::new).boxed()))
        }))
    }
}
