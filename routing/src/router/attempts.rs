//! The asynchronous part of routing: tries, retries, timeouts, response edits, mirrors.

use std::future::poll_fn;
use std::time::Duration;

use http::{Request, Response, StatusCode};

use super::UpstreamFailure;
use super::decide::{FilterEffects, ListenerContext, Routed, copy_without_body, prepare_attempt};
use super::response;
use crate::compiled::HttpRule;

/// How one try ended.
enum Outcome<RB> {
    Answered(Response<RB>),
    TimedOut,
}

/// Sends the routed request's mirror copies, then forwards it (see [`run`]).
pub(super) async fn dispatch<S, B, RB>(
    inner: S,
    mut routed: Routed<B>,
) -> Result<Response<RB>, S::Error>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Default + Send + 'static,
    RB: Default,
{
    for copy in routed.effects.mirrors.drain(..) {
        mirror(inner.clone(), copy);
    }
    run(inner, routed).await
}

/// Forwards a routed request within the rule's `timeouts.request`.
pub(super) async fn run<S, B, RB>(inner: S, routed: Routed<B>) -> Result<Response<RB>, S::Error>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Default + Send + 'static,
    RB: Default,
{
    let grpc = routed.grpc;
    match routed.rule.timeouts.request {
        None => tries(inner, routed).await,
        Some(limit) => match tokio::time::timeout(limit, tries(inner, routed)).await {
            Ok(result) => result,
            Err(_elapsed) => Ok(response::own_answer(
                response::status(StatusCode::GATEWAY_TIMEOUT),
                grpc,
            )),
        },
    }
}

async fn tries<S, B, RB>(inner: S, routed: Routed<B>) -> Result<Response<RB>, S::Error>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Default + Send + 'static,
    RB: Default,
{
    let Routed {
        request,
        rule,
        listener,
        effects,
        grpc,
    } = routed;
    // Only a request without a body can be sent again: retries send copies, the last try the
    // request itself.
    let retry = rule
        .retry
        .as_ref()
        .filter(|_| request.body().is_end_stream());
    if let Some(retry) = retry {
        for _ in 0..retry.attempts {
            let copy = copy_without_body(&request);
            let (outcome, backend_effects) =
                one_try(inner.clone(), &rule, listener, copy, grpc).await?;
            let retriable = match &outcome {
                Outcome::TimedOut => true,
                Outcome::Answered(response) => {
                    response.extensions().get::<UpstreamFailure>().is_some()
                        || retry.codes.contains(&response.status().as_u16())
                }
            };
            if !retriable {
                return Ok(finish(&inner, outcome, grpc, &effects, backend_effects));
            }
            if retry.backoff > Duration::ZERO {
                tokio::time::sleep(retry.backoff).await;
            }
        }
    }
    let (outcome, backend_effects) = one_try(inner.clone(), &rule, listener, request, grpc).await?;
    Ok(finish(&inner, outcome, grpc, &effects, backend_effects))
}

/// One try: a backend chosen and its filters applied (or the router's own answer), then the
/// call within `timeouts.backendRequest`.
async fn one_try<S, B, RB>(
    mut service: S,
    rule: &HttpRule,
    listener: ListenerContext,
    request: Request<B>,
    grpc: bool,
) -> Result<(Outcome<RB>, Option<FilterEffects<B>>), S::Error>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    B: http_body::Body + Default,
    RB: Default,
{
    let (request, backend_effects) = match prepare_attempt(rule, listener, request) {
        Ok(prepared) => prepared,
        Err(own) => return Ok((Outcome::Answered(response::own_answer(own, grpc)), None)),
    };
    poll_fn(|cx| service.poll_ready(cx)).await?;
    let call = service.call(request);
    let outcome = match rule.timeouts.backend_request {
        None => Outcome::Answered(call.await?),
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => Outcome::Answered(result?),
            Err(_elapsed) => Outcome::TimedOut,
        },
    };
    Ok((outcome, Some(backend_effects)))
}

/// The response of the last try, with the rule's and the chosen backend's response edits and
/// CORS headers; the backend's mirrors are sent.
fn finish<S, B, RB>(
    inner: &S,
    outcome: Outcome<RB>,
    grpc: bool,
    effects: &FilterEffects<B>,
    backend_effects: Option<FilterEffects<B>>,
) -> Response<RB>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default,
{
    let mut response = match outcome {
        Outcome::Answered(response) => response,
        Outcome::TimedOut => {
            response::own_answer(response::status(StatusCode::GATEWAY_TIMEOUT), grpc)
        }
    };
    let backend_effects = backend_effects.unwrap_or_else(FilterEffects::new);
    for edit in effects
        .response_edits
        .iter()
        .chain(&backend_effects.response_edits)
    {
        edit.apply(response.headers_mut());
    }
    for (policy, origin) in effects.cors.iter().chain(&backend_effects.cors) {
        policy.decorate(Some(origin), response.headers_mut());
    }
    for copy in backend_effects.mirrors {
        mirror(inner.clone(), copy);
    }
    response
}

/// Sends a mirror copy in the background; its response and errors are ignored. Without a
/// Tokio runtime the copy is dropped.
pub(super) fn mirror<S, B, RB>(mut inner: S, copy: Request<B>)
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if poll_fn(|cx| inner.poll_ready(cx)).await.is_ok() {
                let _ = inner.call(copy).await;
            }
        });
    }
}
