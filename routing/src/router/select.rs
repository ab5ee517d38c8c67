//! [`SelectRoute`]: chooses the listener (by host, SNI-checked) and the rule of a request, and
//! puts them into the request as a [`MatchedRoute`]. It selects and nothing else: filters,
//! backend choice and forwarding are the layers after it.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use http::header::{self, HeaderValue};
use tower::{Layer, Service};

use super::future::EarlyOrInner;
use super::{ListenerSet, MatchedRoute, MatchedRouteSlot, RouteError, TlsServerName};
use crate::compiled::{CompiledListener, ListenerRoutes};
use crate::http_route::RequestView;

/// How a selection layer finds the rule of a request: by listener and host
/// ([`ListenerSet`]) or by mesh destination ([`MeshRoutes`](crate::compiled::MeshRoutes)).
pub trait RouteSelector {
    /// The listener and rule of `request` (which it may normalize, e.g. its `Host`).
    fn select_route<B>(&self, request: &mut Request<B>) -> Result<MatchedRoute, RouteError>;
}

impl RouteSelector for ListenerSet {
    fn select_route<B>(&self, request: &mut Request<B>) -> Result<MatchedRoute, RouteError> {
        select(self, request)
    }
}

/// A layer putting the [`MatchedRoute`] of each request into its extensions.
#[derive(Debug)]
pub struct SelectLayer<R> {
    selector: Arc<R>,
}

/// The service of [`SelectLayer`]: the selector's error, else the inner service with a
/// [`MatchedRoute`] in the request's extensions.
#[derive(Debug)]
pub struct Select<R, S> {
    selector: Arc<R>,
    inner: S,
}

/// Route selection among the listeners of one socket: `NoRoute` (no listener or rule),
/// `Misdirected` (the `Host` belongs to another listener than the connection's SNI).
pub type SelectRoute<S> = Select<ListenerSet, S>;

/// The layer of [`SelectRoute`].
pub type SelectRouteLayer = SelectLayer<ListenerSet>;

impl<R> SelectLayer<R> {
    /// Selects with `selector`.
    pub fn new(selector: Arc<R>) -> Self {
        SelectLayer { selector }
    }
}

impl<R> Clone for SelectLayer<R> {
    fn clone(&self) -> Self {
        SelectLayer::new(Arc::clone(&self.selector))
    }
}

impl<R, S: Clone> Clone for Select<R, S> {
    fn clone(&self) -> Self {
        Select::new(Arc::clone(&self.selector), self.inner.clone())
    }
}

impl<R, S> Layer<S> for SelectLayer<R> {
    type Service = Select<R, S>;

    fn layer(&self, inner: S) -> Select<R, S> {
        Select::new(Arc::clone(&self.selector), inner)
    }
}

impl<R, S> Select<R, S> {
    /// Selects with `selector`, then calls `inner`.
    pub fn new(selector: Arc<R>, inner: S) -> Self {
        Select { selector, inner }
    }
}

impl<R, S, B, Res> Service<Request<B>> for Select<R, S>
where
    R: RouteSelector,
    S: Service<Request<B>, Response = Res>,
    S::Error: Into<RouteError>,
{
    type Response = Res;
    type Error = RouteError;
    type Future = EarlyOrInner<S::Future, Res, RouteError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.selector.select_route(&mut request) {
            Ok(matched) => {
                if let Some(slot) = request.extensions().get::<MatchedRouteSlot>() {
                    slot.fill(&matched);
                }
                request.extensions_mut().insert(matched);
                EarlyOrInner::Inner(self.inner.call(request))
            }
            Err(error) => EarlyOrInner::Early(Some(Err(error))),
        }
    }
}

/// The listener and rule of `request`. An absolute-form target's authority is the host routed
/// on, and becomes the `Host` header forwarded (RFC 9112 §3.2.2: a proxy replaces a differing
/// `Host`).
pub fn select<B>(
    listeners: &ListenerSet,
    request: &mut Request<B>,
) -> Result<MatchedRoute, RouteError> {
    host_from_target(request);
    let view = RequestView::of(request);
    let listener = listeners
        .for_host(view.host_without_port())
        .ok_or(RouteError::NoRoute)?;
    if let Some(TlsServerName(sni)) = request.extensions().get::<TlsServerName>() {
        let by_sni = listeners.for_host(sni);
        if by_sni.is_none_or(|other| !same_listener(other, listener)) {
            return Err(RouteError::Misdirected);
        }
    }
    let ListenerRoutes::Http(table) = &listener.routes else {
        return Err(RouteError::NoRoute);
    };
    let selected = table.select(&view).ok_or(RouteError::NoRoute)?;
    Ok(MatchedRoute::on_listener(
        Arc::clone(listener),
        Arc::clone(&selected.target),
    ))
}

/// Selects the rule of `request` again, on the listener it was matched on, after a policy
/// changed its headers (Envoy's route-cache clearing: `recomputeRoute`). The new
/// [`MatchedRoute`] replaces the old; no rule matching now is `NoRoute`. A request matched
/// without a listener (a mesh route) keeps its route.
pub fn reselect<B>(request: &mut Request<B>) -> Result<(), RouteError> {
    let Some(listener) = request
        .extensions()
        .get::<MatchedRoute>()
        .and_then(|m| m.listener.clone())
    else {
        return Ok(());
    };
    let ListenerRoutes::Http(table) = &listener.routes else {
        return Err(RouteError::NoRoute);
    };
    let target = {
        let view = RequestView::of(request);
        Arc::clone(&table.select(&view).ok_or(RouteError::NoRoute)?.target)
    };
    let matched = MatchedRoute::on_listener(Arc::clone(&listener), target);
    if let Some(slot) = request.extensions().get::<MatchedRouteSlot>() {
        slot.fill(&matched);
    }
    request.extensions_mut().insert(matched);
    Ok(())
}

/// Makes the `Host` header agree with an authority in the request target.
fn host_from_target<B>(request: &mut Request<B>) {
    let Some(authority) = request.uri().authority() else {
        return;
    };
    let agrees = request
        .headers()
        .get(header::HOST)
        .is_some_and(|host| host.as_bytes() == authority.as_str().as_bytes());
    if !agrees && let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(header::HOST, host);
    }
}

fn same_listener(a: &CompiledListener, b: &CompiledListener) -> bool {
    a.gateway == b.gateway && a.listener_set == b.listener_set && a.name == b.name
}
