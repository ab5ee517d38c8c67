//! The [`Router`] tower service: request → listener (by host, SNI-checked) → rule → filters →
//! backend, with the Gateway API's status codes (spec §1.1, §1.4, §1.5):
//!
//! | situation | answer |
//! | --- | --- |
//! | no listener for the host, or no matching rule | 404 |
//! | HTTPS: `Host` belongs to another listener than the SNI | 421 |
//! | unresolvable filter, invalid backend's share, no backends, all weights 0 | 500 |
//! | the chosen Service has no ready endpoints | 503 |
//! | `timeouts.request` elapsed | 504 |
//!
//! Forwarding itself is the inner service's job: it receives the request (edited by the
//! filters) with a [`SelectedBackend`] extension and must answer connection failures itself.

mod listener_set;
mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};

pub use listener_set::ListenerSet;

use crate::backends::BackendChoice;
use crate::compiled::{
    Backend, BackendProtocol, CompiledListener, Endpoint, HttpFilter, HttpRule, ListenerProtocol,
    ListenerRoutes,
};
use crate::filters::{HeaderModifier, RedirectContext};
use crate::http_route::RequestView;
use crate::model::ObjectKey;

/// The TLS server name the connection was accepted with (HTTPS listeners set it on every
/// request, for the misdirected-request check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerName(pub String);

/// The backend the router chose, as a request extension for the forwarding service.
#[derive(Debug, Clone)]
pub struct SelectedBackend {
    /// The Service.
    pub service: ObjectKey,
    /// The Service port.
    pub port: u16,
    /// Its ready endpoints (never empty).
    pub endpoints: Arc<[Endpoint]>,
    /// The protocol to speak.
    pub protocol: BackendProtocol,
}

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

/// A routed request, ready to forward.
struct Forward<B> {
    request: Request<B>,
    response_edits: Vec<HeaderModifier>,
    timeout: Option<std::time::Duration>,
}

impl<S, B, RB> tower::Service<Request<B>> for Router<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = RouterFuture<Response<RB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let forward = match route(&self.listeners, request) {
            Ok(forward) => forward,
            Err(response) => return Box::pin(std::future::ready(Ok(response))),
        };
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let Forward {
                request,
                response_edits,
                timeout,
            } = forward;
            let call = inner.call(request);
            let mut response = match timeout {
                None => call.await?,
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(result) => result?,
                    Err(_elapsed) => response::status(StatusCode::GATEWAY_TIMEOUT),
                },
            };
            for edit in &response_edits {
                edit.apply(response.headers_mut());
            }
            Ok(response)
        })
    }
}

/// Chooses the listener, rule and backend and applies the filters; `Err` is the router's own
/// answer.
fn route<B, RB: Default>(
    listeners: &ListenerSet,
    mut request: Request<B>,
) -> Result<Forward<B>, Response<RB>> {
    let not_found = || response::status(StatusCode::NOT_FOUND);
    let view = RequestView::of(&request);
    let host = view.host_without_port();
    let listener = listeners.for_host(host).ok_or_else(not_found)?;
    if let Some(TlsServerName(sni)) = request.extensions().get::<TlsServerName>() {
        let by_sni = listeners.for_host(sni);
        if by_sni.is_none_or(|other| !same_listener(other, listener)) {
            return Err(response::status(StatusCode::MISDIRECTED_REQUEST));
        }
    }
    let ListenerRoutes::Http(table) = &listener.routes else {
        return Err(not_found());
    };
    let rule: Arc<HttpRule> = Arc::clone(&table.select(&view).ok_or_else(not_found)?.target);
    let mut response_edits = Vec::new();
    apply_filters(
        &rule.filters,
        &rule,
        listener,
        &mut request,
        &mut response_edits,
    )?;
    let backend = match rule.backends.choose(rand::random()) {
        BackendChoice::Forward(backend) => backend,
        BackendChoice::Respond(code) => {
            return Err(response::status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ));
        }
    };
    apply_filters(
        &backend.filters,
        &rule,
        listener,
        &mut request,
        &mut response_edits,
    )?;
    request.extensions_mut().insert(selected(backend));
    Ok(Forward {
        request,
        response_edits,
        timeout: rule.timeouts.request,
    })
}

fn same_listener(a: &CompiledListener, b: &CompiledListener) -> bool {
    a.gateway == b.gateway && a.name == b.name
}

fn selected(backend: &Backend) -> SelectedBackend {
    SelectedBackend {
        service: backend.service.clone(),
        port: backend.port,
        endpoints: Arc::clone(&backend.endpoints),
        protocol: backend.protocol,
    }
}

/// Runs `filters` in list order; a redirect or an unresolvable filter ends the request.
fn apply_filters<B, RB: Default>(
    filters: &[HttpFilter],
    rule: &HttpRule,
    listener: &CompiledListener,
    request: &mut Request<B>,
    response_edits: &mut Vec<HeaderModifier>,
) -> Result<(), Response<RB>> {
    let prefix = rule.matched_prefix.as_deref().unwrap_or("/");
    for filter in filters {
        match filter {
            HttpFilter::RequestHeaders(modifier) => modifier.apply(request.headers_mut()),
            HttpFilter::ResponseHeaders(modifier) => response_edits.push(modifier.clone()),
            HttpFilter::Redirect(redirect) => {
                let view = RequestView::of(request);
                let scheme = match listener.protocol {
                    ListenerProtocol::Https => "https",
                    _ => "http",
                };
                let location = redirect.location(&RedirectContext {
                    scheme,
                    host: view.host_without_port(),
                    path: view.path,
                    query: view.query,
                    listener_port: listener.port,
                    matched_prefix: prefix,
                });
                return Err(response::redirect(redirect.status.code(), &location));
            }
            HttpFilter::Rewrite(rewrite) => {
                if rewrite.apply(request, prefix).is_err() {
                    return Err(response::status(StatusCode::INTERNAL_SERVER_ERROR));
                }
            }
            HttpFilter::Unresolvable(_) => {
                return Err(response::status(StatusCode::INTERNAL_SERVER_ERROR));
            }
            // Mirrors and CORS are not applied yet (see the crate docs); never silently
            // answer as if they were: CORS preflights reach the backend.
            HttpFilter::Mirror(_) | HttpFilter::Cors(_) => {}
        }
    }
    Ok(())
}
