//! The [`Router`] tower service: request → listener (by host, SNI-checked) → rule → filters →
//! backend, with the Gateway API's status codes (spec §1.1, §1.4–1.6):
//!
//! | situation | answer |
//! | --- | --- |
//! | no listener for the host, or no matching rule | 404 |
//! | HTTPS: `Host` belongs to another listener than the SNI | 421 |
//! | CORS preflight | 200 from the proxy (empty body), or 403 for an origin not allowed |
//! | unresolvable filter, invalid backend's share, no backends, all weights 0 | 500 |
//! | the chosen Service has no ready endpoints | 503 |
//! | `timeouts.request` elapsed, or the last try hit `timeouts.backendRequest` | 504 |
//!
//! A gRPC request (`content-type: application/grpc`) gets these answers as gRPC statuses
//! instead: UNIMPLEMENTED for no route, UNAVAILABLE for invalid backends and missing endpoints,
//! DEADLINE_EXCEEDED for timeouts.
//!
//! Filters run in list order; redirects and preflights end the request; mirrors get a copy of
//! a request without a body (requests with a body are not mirrored). A rule's `retry` retries
//! a request without a body on its listed status codes, on [`UpstreamFailure`] responses and
//! on `backendRequest` timeouts — `attempts` retries after the first try, each to a freshly
//! chosen backend, after `backoff`.
//!
//! Forwarding itself is the inner service's job: it receives the request (edited by the
//! filters) with a [`SelectedBackend`] extension and answers connection failures itself,
//! marking them with [`UpstreamFailure`].

mod attempts;
mod decide;
mod listener_set;
mod mesh;
mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

pub use listener_set::ListenerSet;
pub use mesh::{MeshDestination, MeshRouter};

use crate::compiled::Backend;

/// The TLS server name the connection was accepted with (HTTPS listeners set it on every
/// request, for the misdirected-request check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerName(pub String);

/// The backend the router chose (a Service port with ready endpoints, never empty), as a
/// request extension for the forwarding service. Cloning it is one reference count.
#[derive(Debug, Clone)]
pub struct SelectedBackend(pub Arc<Backend>);

impl std::ops::Deref for SelectedBackend {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.0
    }
}

/// A response extension the forwarding service sets when the backend could not be reached
/// (refused, reset, timed out): the router retries such responses when the rule allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamFailure;

/// Routes requests of the listeners that share one socket.
#[derive(Debug, Clone)]
pub struct Router<S> {
    listeners: Arc<ListenerSet>,
    inner: S,
}

impl<S> Router<S> {
    /// A router over `listeners` that forwards through `inner`.
    pub fn new(listeners: Arc<ListenerSet>, inner: S) -> Self {
        Router { listeners, inner }
    }
}

/// The boxed future of [`Router`].
pub type RouterFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, RB> tower::Service<Request<B>> for Router<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Default + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = RouterFuture<Response<RB>, S::Error>;

    /// Always ready: each request drives a clone of the inner service to readiness itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let grpc = response::is_grpc(request.headers());
        let routed = match decide::route(&self.listeners, request) {
            Ok(routed) => routed,
            Err(response) => {
                return Box::pin(std::future::ready(Ok(response::own_answer(response, grpc))));
            }
        };
        Box::pin(attempts::dispatch(self.inner.clone(), routed))
    }
}
