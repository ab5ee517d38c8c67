//! One request through `extAuth` on the request path: the body buffered when the policy sends
//! it (a larger one is 413, whatever `failOpen` says), the check request prepared, the
//! exchange awaited, and the verdict applied — edits onto the request, or a typed refusal.

use bytes::Bytes;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use routing::router::{RelayedAnswer, RouteError};

use super::{CheckContext, ExtAuth, ExtAuthVerdict};

/// A request body type that can be rebuilt from bytes buffered out of it.
pub trait BufferedBody: Sized {
    /// A body that yields `bytes`.
    fn from_buffered(bytes: Bytes) -> Self;
}

impl<E: 'static> BufferedBody for http_body_util::combinators::BoxBody<Bytes, E> {
    fn from_buffered(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    }
}

impl<E: 'static> BufferedBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E> {
    fn from_buffered(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
}

impl BufferedBody for Full<Bytes> {
    fn from_buffered(bytes: Bytes) -> Self {
        Full::new(bytes)
    }
}

/// Asks `ext`'s authorizer about `request`; the request to go on with, or why not.
/// `context` has everything but the body, which is buffered here when the policy sends it.
pub async fn authorize<B>(
    ext: &ExtAuth,
    policy: &str,
    request: Request<B>,
    context: CheckContext<'_>,
) -> Result<Request<B>, RouteError>
where
    B: Body<Data = Bytes> + BufferedBody + Send,
    B::Error: Into<routing::router::BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let (body, buffered) = match ext.max_body_bytes {
        None => (body, None),
        Some(limit) => {
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    return Err(RouteError::BodyTooLarge {
                        policy: format!("{policy} extAuth.bodyToExtAuth"),
                    });
                }
                Err(error) => {
                    return Err(RouteError::AuthorizerFailed {
                        policy: policy.to_owned(),
                        status: ext.status_on_error,
                        reason: format!("reading the request body: {error}"),
                    });
                }
            };
            (B::from_buffered(bytes.clone()), Some(bytes))
        }
    };
    let context = CheckContext {
        body: buffered.as_ref(),
        ..context
    };
    let verdict = match ext.prepare(&parts, &context) {
        Ok(call) => ext.interpret(ext.client.exchange(call).await),
        Err(reason) => ExtAuthVerdict::Failed(reason),
    };
    match verdict {
        ExtAuthVerdict::Allowed(edits) => edits.apply(&mut parts.headers),
        ExtAuthVerdict::Denied {
            status,
            headers,
            body,
        } => {
            return Err(RouteError::ExternallyDenied(Box::new(RelayedAnswer {
                policy: policy.to_owned(),
                status,
                headers,
                body,
            })));
        }
        ExtAuthVerdict::Failed(_) if ext.fail_open => {}
        ExtAuthVerdict::Failed(reason) => {
            return Err(RouteError::AuthorizerFailed {
                policy: policy.to_owned(),
                status: ext.status_on_error,
                reason,
            });
        }
    }
    Ok(Request::from_parts(parts, body))
}
