//! [`RequestBufferFromRoute`]: BackendTrafficPolicy `requestBuffer` (Envoy's buffer filter):
//! the whole request body is read before the request goes on — at most `limit` bytes; a
//! larger one is answered 413 (`BodyTooLarge`) — and forwarded with its `content-length`, so
//! a slow client never holds a backend connection. Other rules' requests stream as before —
//! except that a rule that retries (its own `retry`, or its BackendTrafficPolicy's) keeps a
//! body of known length up to the listener's ClientTrafficPolicy `connection.bufferLimit`
//! (32 KiB by default) as a [`ReplayBody`], so that a retry can send it again, as Envoy
//! buffers such bodies; a larger or unsized body streams, and is not retried.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use routing::router::{MatchedRoute, PolicyRetry, ReplayBody, RouteError};
use tower::Service;

use super::attach::AttachedClientTraffic;
use super::compile::DEFAULT_BUFFER_LIMIT;
use super::future::{InnerOrBoxed, take_ready};
use super::layer::later_route_traffic;
use crate::security::ext_auth::BufferedBody;

/// Buffers the request body of rules whose BackendTrafficPolicy asks for it.
#[derive(Debug, Clone)]
pub struct RequestBufferFromRoute<S> {
    inner: S,
}

impl<S> RequestBufferFromRoute<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        RequestBufferFromRoute { inner }
    }
}

/// Reads `request`'s whole body, at most `limit` bytes.
pub async fn buffer_request<B>(
    request: Request<B>,
    limit: usize,
    policy: &str,
) -> Result<Request<B>, RouteError>
where
    B: Body<Data = Bytes> + BufferedBody,
    B::Error: Into<routing::router::BoxError>,
{
    let (parts, bytes) = read_whole(request, limit, &format!("{policy} requestBuffer")).await?;
    Ok(Request::from_parts(parts, B::from_buffered(bytes)))
}

/// The head of `request` (its length set) and its whole body, at most `limit` bytes;
/// failures name `what` read it.
async fn read_whole<B>(
    request: Request<B>,
    limit: usize,
    what: &str,
) -> Result<(http::request::Parts, Bytes), RouteError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<routing::router::BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(RouteError::BodyTooLarge {
                policy: what.to_owned(),
            });
        }
        Err(error) => {
            return Err(RouteError::BadRequest {
                policy: what.to_owned(),
                reason: format!("reading the request body: {error}"),
            });
        }
    };
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, bytes.len().into());
    Ok((parts, bytes))
}

impl<S, B, RB> Service<Request<B>> for RequestBufferFromRoute<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    B: Body<Data = Bytes> + BufferedBody + Send + 'static,
    B::Error: Into<routing::router::BoxError>,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = InnerOrBoxed<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some((limit, policy)) = later_route_traffic(&request)
            .and_then(|t| Some((t.policy.request_buffer?, t.name.clone())))
        {
            let mut ready = take_ready(&mut self.inner);
            return InnerOrBoxed::Boxed(Box::pin(async move {
                let what = format!("{policy} requestBuffer");
                let (parts, bytes) = read_whole(request, limit, &what).await?;
                let mut request = Request::from_parts(parts, B::from_buffered(bytes.clone()));
                if retries(&request) {
                    keep_for_retries(&mut request, bytes);
                }
                poll_fn(|cx| ready.poll_ready(cx)).await?;
                ready.call(request).await
            }));
        }
        let Some(limit) = retry_buffer(&request) else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let mut ready = take_ready(&mut self.inner);
        InnerOrBoxed::Boxed(Box::pin(async move {
            let (parts, bytes) = read_whole(request, limit, "the retry buffer").await?;
            let mut request = Request::from_parts(parts, B::from_buffered(bytes.clone()));
            keep_for_retries(&mut request, bytes);
            poll_fn(|cx| ready.poll_ready(cx)).await?;
            ready.call(request).await
        }))
    }
}

/// Whether the request's rule retries (its own `retry`, or a policy's).
fn retries<B>(request: &Request<B>) -> bool {
    request.extensions().get::<PolicyRetry>().is_some()
        || request
            .extensions()
            .get::<MatchedRoute>()
            .is_some_and(|matched| matched.rule.retry.is_some())
}

/// The limit up to which the body of `request` is kept for retries: `Some` when its rule
/// retries and its body, of known length, fits the listener's `connection.bufferLimit`.
fn retry_buffer<B: Body>(request: &Request<B>) -> Option<usize> {
    if request.body().is_end_stream() || !retries(request) {
        return None;
    }
    let limit = request
        .extensions()
        .get::<MatchedRoute>()
        .and_then(|matched| matched.listener.as_ref())
        .and_then(|listener| listener.policy.get::<AttachedClientTraffic>())
        .map_or(DEFAULT_BUFFER_LIMIT, |attached| attached.0.buffer_limit);
    let limit = usize::try_from(limit).ok()?;
    let length = request.body().size_hint().exact()?;
    (usize::try_from(length).ok()? <= limit).then_some(limit)
}

/// Keeps `bytes`, the body of `request`, as a [`ReplayBody`] for its retries.
fn keep_for_retries<B>(request: &mut Request<B>, bytes: Bytes)
where
    B: BufferedBody + 'static,
{
    let replay = move || B::from_buffered(bytes.clone());
    request
        .extensions_mut()
        .insert(ReplayBody::<B>(std::sync::Arc::new(replay)));
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[tokio::test]
    async fn bodies_are_buffered_up_to_the_limit() {
        let request = Request::builder()
            .header(TRANSFER_ENCODING, "chunked")
            .body(Full::new(Bytes::from_static(b"twelve bytes")))
            .unwrap();
        let buffered = buffer_request(request, 12, "p").await.unwrap();
        assert_eq!(buffered.headers()[CONTENT_LENGTH], "12");
        assert!(!buffered.headers().contains_key(TRANSFER_ENCODING));
        let body = buffered.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"twelve bytes");
        let too_large = Request::new(Full::new(Bytes::from_static(b"thirteen byte")));
        assert!(matches!(
            buffer_request(too_large, 12, "p").await,
            Err(RouteError::BodyTooLarge { policy }) if policy == "p requestBuffer"
        ));
    }
}
