//! The asynchronous part of routing: tries, retries, timeouts, response edits, mirrors.

use std::future::poll_fn;
use std::time::Duration;

use http::{Request, Response, StatusCode};

use super::UpstreamFailure;
use super::decide::{FilterEffects, Routed, copy_without_body, prepare_attempt};
use super::response;

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
    let grpc = response::is_grpc(routed.request.headers());
    match routed.rule.timeouts.request {
        None => tries(inner, routed).await,
        Some(limit) => match tokio::time::timeout(limit, tries(inner, routed)).await {
            Ok(result) => result,
            Err(_elapsed) if grpc => Ok(response::for_grpc(response::status(
                StatusCode::GATEWAY_TIMEOUT,
            ))),
            Err(_elapsed) => Ok(response::status(StatusCode::GATEWAY_TIMEOUT)),
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
    } = routed;
    let grpc = response::is_grpc(request.headers());
    // Only a request without a body can be sent again.
    let retry = rule
        .retry
        .as_ref()
        .filter(|_| request.body().is_end_stream());
    let tries = 1 + retry.map_or(0, |r| r.attempts);
    let mut original = Some(request);
    let mut try_number = 0;
    let (mut response, backend_effects) = loop {
        try_number += 1;
        let last = try_number >= tries;
        let request = match (&original, last) {
            (Some(request), false) => copy_without_body(request),
            _ => match original.take() {
                Some(request) => request,
                None => {
                    break (response::status(StatusCode::INTERNAL_SERVER_ERROR), None);
                }
            },
        };
        let (outcome, attempt_effects) = match prepare_attempt(&rule, listener, request) {
            Err(own_answer) if grpc => (Outcome::Answered(response::for_grpc(own_answer)), None),
            Err(own_answer) => (Outcome::Answered(own_answer), None),
            Ok((request, backend_effects)) => {
                let mut service = inner.clone();
                poll_fn(|cx| service.poll_ready(cx)).await?;
                let call = service.call(request);
                let outcome = match rule.timeouts.backend_request {
                    None => Outcome::Answered(call.await?),
                    Some(limit) => match tokio::time::timeout(limit, call).await {
                        Ok(result) => Outcome::Answered(result?),
                        Err(_elapsed) => Outcome::TimedOut,
                    },
                };
                (outcome, Some(backend_effects))
            }
        };
        let retriable = retry.is_some_and(|retry| match &outcome {
            Outcome::TimedOut => true,
            Outcome::Answered(response) => {
                response.extensions().get::<UpstreamFailure>().is_some()
                    || retry.codes.contains(&response.status().as_u16())
            }
        });
        if retriable && !last {
            if let Some(retry) = retry
                && retry.backoff > Duration::ZERO
            {
                tokio::time::sleep(retry.backoff).await;
            }
            continue;
        }
        let response = match outcome {
            Outcome::Answered(response) => response,
            Outcome::TimedOut if grpc => {
                response::for_grpc(response::status(StatusCode::GATEWAY_TIMEOUT))
            }
            Outcome::TimedOut => response::status(StatusCode::GATEWAY_TIMEOUT),
        };
        break (response, attempt_effects);
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
    Ok(response)
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
