//! Running a rule's or a backend's filters on a request, sans-IO: request edits now, response
//! edits and mirrors recorded for later, redirects and CORS preflights as the answer.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};

use super::{MatchedRoute, RouteError};
use crate::backends::BackendState;
use crate::compiled::{Backend, HttpFilter, Mirror};
use crate::filters::{CorsPolicy, HeaderModifier, RedirectContext};
use crate::http_route::RequestView;

/// What filters leave for later: response edits, CORS decoration, mirror targets.
#[derive(Debug, Default)]
pub(super) struct FilterEffects {
    /// Response header edits, in filter order.
    pub(super) response_edits: Vec<Arc<HeaderModifier>>,
    /// A CORS policy and the request's origin, to decorate the response.
    pub(super) cors: Option<(Arc<CorsPolicy>, HeaderValue)>,
    /// Backends that get a copy of this request (sampled already).
    pub(super) mirrors: Vec<Arc<Backend>>,
}

impl FilterEffects {
    /// Whether nothing is left to do on the response.
    pub(super) fn response_untouched(&self) -> bool {
        self.response_edits.is_empty() && self.cors.is_none()
    }

    /// Applies the response edits and the CORS headers to `headers`.
    pub(super) fn decorate(&self, headers: &mut HeaderMap) {
        for edit in &self.response_edits {
            edit.apply(headers);
        }
        if let Some((policy, origin)) = &self.cors {
            policy.decorate(Some(origin), headers);
        }
    }
}

/// Runs `filters` in list order. `Ok(Some(answer))`: a redirect or a CORS preflight ends the
/// request; `Err`: a filter that cannot be honoured.
pub(super) fn apply_filters<B, RB: Default>(
    filters: &[HttpFilter],
    matched: &MatchedRoute,
    request: &mut Request<B>,
    effects: &mut FilterEffects,
) -> Result<Option<Response<RB>>, RouteError> {
    let prefix = matched.rule.matched_prefix.as_deref().unwrap_or("/");
    for filter in filters {
        match filter {
            HttpFilter::RequestHeaders(modifier) => modifier.apply(request.headers_mut()),
            HttpFilter::ResponseHeaders(modifier) => {
                effects.response_edits.push(Arc::clone(modifier));
            }
            HttpFilter::Redirect(redirect) => {
                let view = RequestView::of(request);
                let location = redirect.location(&RedirectContext {
                    scheme: matched.scheme,
                    host: view.host_without_port(),
                    path: view.path,
                    query: view.query,
                    listener_port: matched.port,
                    matched_prefix: prefix,
                });
                return Ok(Some(redirect_answer(redirect.status.code(), &location)));
            }
            HttpFilter::Rewrite(rewrite) => {
                rewrite
                    .apply(request, prefix)
                    .map_err(|error| RouteError::InvalidFilter(error.to_string()))?;
            }
            HttpFilter::Mirror(mirror) => {
                if let Some(backend) = sampled_mirror(mirror) {
                    effects.mirrors.push(backend);
                }
            }
            HttpFilter::Cors(policy) => {
                if let Some(answer) = policy.preflight(request.method(), request.headers()) {
                    let mut response = empty(answer.status);
                    *response.headers_mut() = answer.headers;
                    return Ok(Some(response));
                }
                if let Some(origin) = request.headers().get(header::ORIGIN) {
                    effects.cors = Some((Arc::clone(policy), origin.clone()));
                }
            }
            HttpFilter::Unresolvable(what) => {
                return Err(RouteError::InvalidFilter(what.clone()));
            }
        }
    }
    Ok(None)
}

/// The mirror's backend when this request is sampled and the backend has endpoints.
fn sampled_mirror(mirror: &Mirror) -> Option<Arc<Backend>> {
    let BackendState::Ready(backend) = &mirror.backend else {
        return None;
    };
    let sampled = rand::random::<u32>() % mirror.denominator.max(1) < mirror.numerator;
    sampled.then(|| Arc::clone(backend))
}

/// An empty-bodied response with `status`.
fn empty<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// A redirect to `location` (a filter's answer, not an error).
fn redirect_answer<B: Default>(code: u16, location: &str) -> Response<B> {
    let mut response = empty(StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND));
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
