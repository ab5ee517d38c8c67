//! The synchronous part of routing: listener, rule, rule filters; per try, the backend and its
//! filters.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::response;
use super::{ListenerSet, SelectedBackend, TlsServerName};
use crate::backends::{BackendChoice, BackendState};
use crate::compiled::{
    Backend, CompiledListener, HttpFilter, HttpRouteTable, HttpRule, ListenerProtocol,
    ListenerRoutes, Mirror,
};
use crate::filters::{CorsPolicy, HeaderModifier, RedirectContext};
use crate::http_route::RequestView;

/// What the redirect filter needs of the listener.
#[derive(Debug, Clone, Copy)]
pub(super) struct ListenerContext {
    pub(super) scheme: &'static str,
    pub(super) port: u16,
}

/// A request matched to a rule, its rule-level filters applied.
pub(super) struct Routed<B> {
    pub(super) request: Request<B>,
    pub(super) rule: Arc<HttpRule>,
    pub(super) listener: ListenerContext,
    pub(super) effects: FilterEffects<B>,
    /// Whether the request is gRPC (the router's own answers become gRPC statuses).
    pub(super) grpc: bool,
}

/// What filters leave for later: response edits, CORS decoration, mirror copies.
pub(super) struct FilterEffects<B> {
    /// Response header edits, in filter order.
    pub(super) response_edits: Vec<Arc<HeaderModifier>>,
    /// A CORS policy and the request's origin, to decorate the response.
    pub(super) cors: Option<(Arc<CorsPolicy>, HeaderValue)>,
    /// Copies to send to mirrors.
    pub(super) mirrors: Vec<Request<B>>,
}

impl<B> FilterEffects<B> {
    pub(super) fn new() -> Self {
        FilterEffects {
            response_edits: Vec::new(),
            cors: None,
            mirrors: Vec::new(),
        }
    }
}

/// Chooses the listener and the rule and applies the rule's filters; `Err` is the router's
/// own answer.
pub(super) fn route<B: http_body::Body + Default, RB: Default>(
    listeners: &ListenerSet,
    request: Request<B>,
) -> Result<Routed<B>, Response<RB>> {
    let not_found = || response::status(StatusCode::NOT_FOUND);
    let view = RequestView::of(&request);
    let listener = listeners
        .for_host(view.host_without_port())
        .ok_or_else(not_found)?;
    if let Some(TlsServerName(sni)) = request.extensions().get::<TlsServerName>() {
        let by_sni = listeners.for_host(sni);
        if by_sni.is_none_or(|other| !same_listener(other, listener)) {
            return Err(response::status(StatusCode::MISDIRECTED_REQUEST));
        }
    }
    let ListenerRoutes::Http(table) = &listener.routes else {
        return Err(not_found());
    };
    let context = ListenerContext {
        scheme: match listener.protocol {
            ListenerProtocol::Https => "https",
            _ => "http",
        },
        port: listener.port,
    };
    route_in_table(table, context, request)
}

/// Chooses the rule of `table` and applies its filters; `Err` is the router's own answer.
pub(super) fn route_in_table<B: http_body::Body + Default, RB: Default>(
    table: &HttpRouteTable,
    context: ListenerContext,
    mut request: Request<B>,
) -> Result<Routed<B>, Response<RB>> {
    let view = RequestView::of(&request);
    let selected = table
        .select(&view)
        .ok_or_else(|| response::status(StatusCode::NOT_FOUND))?;
    let rule = Arc::clone(&selected.target);
    let mut effects = FilterEffects::new();
    apply_filters(&rule.filters, &rule, context, &mut request, &mut effects)?;
    Ok(Routed {
        grpc: response::is_grpc(request.headers()),
        request,
        rule,
        listener: context,
        effects,
    })
}

/// Prepares one try: chooses a backend (500/503 shares answer directly) and applies its
/// filters; returns the request to forward and the backend filters' effects.
pub(super) fn prepare_attempt<B: http_body::Body + Default, RB: Default>(
    rule: &HttpRule,
    listener: ListenerContext,
    mut request: Request<B>,
) -> Result<(Request<B>, FilterEffects<B>), Response<RB>> {
    let backend = match rule.backends.choose(rand::random()) {
        BackendChoice::Forward(backend) => backend,
        BackendChoice::Respond(code) => {
            return Err(response::status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ));
        }
    };
    let mut effects = FilterEffects::new();
    if !backend.filters.is_empty() {
        apply_filters(&backend.filters, rule, listener, &mut request, &mut effects)?;
    }
    request.extensions_mut().insert(selected(backend));
    Ok((request, effects))
}

/// A copy of `request` without its body, for a retry or a mirror.
pub(super) fn copy_without_body<B: Default>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(B::default());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

fn same_listener(a: &CompiledListener, b: &CompiledListener) -> bool {
    a.gateway == b.gateway && a.name == b.name
}

fn selected(backend: &Arc<Backend>) -> SelectedBackend {
    SelectedBackend(Arc::clone(backend))
}

/// Runs `filters` in list order; a redirect, a preflight or an unresolvable filter ends the
/// request.
fn apply_filters<B: http_body::Body + Default, RB: Default>(
    filters: &[HttpFilter],
    rule: &HttpRule,
    listener: ListenerContext,
    request: &mut Request<B>,
    effects: &mut FilterEffects<B>,
) -> Result<(), Response<RB>> {
    let prefix = rule.matched_prefix.as_deref().unwrap_or("/");
    for filter in filters {
        match filter {
            HttpFilter::RequestHeaders(modifier) => modifier.apply(request.headers_mut()),
            HttpFilter::ResponseHeaders(modifier) => {
                effects.response_edits.push(Arc::clone(modifier));
            }
            HttpFilter::Redirect(redirect) => {
                let view = RequestView::of(request);
                let location = redirect.location(&RedirectContext {
                    scheme: listener.scheme,
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
            HttpFilter::Mirror(mirror) => {
                if let Some(copy) = mirror_copy(mirror, request) {
                    effects.mirrors.push(copy);
                }
            }
            HttpFilter::Cors(policy) => {
                if let Some(answer) = policy.preflight(request.method(), request.headers()) {
                    let mut response = response::status(answer.status);
                    *response.headers_mut() = answer.headers;
                    return Err(response);
                }
                if let Some(origin) = request.headers().get(header::ORIGIN) {
                    effects.cors = Some((Arc::clone(policy), origin.clone()));
                }
            }
            HttpFilter::Unresolvable(_) => {
                return Err(response::status(StatusCode::INTERNAL_SERVER_ERROR));
            }
        }
    }
    Ok(())
}

/// The copy a mirror gets, when this request is sampled, has no body and the mirror's backend
/// has endpoints.
fn mirror_copy<B: http_body::Body + Default>(
    mirror: &Mirror,
    request: &Request<B>,
) -> Option<Request<B>> {
    let BackendState::Ready(backend) = &mirror.backend else {
        return None;
    };
    let sampled = rand::random::<u32>() % mirror.denominator.max(1) < mirror.numerator;
    if !sampled || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = copy_without_body(request);
    copy.extensions_mut().insert(selected(backend));
    Some(copy)
}
