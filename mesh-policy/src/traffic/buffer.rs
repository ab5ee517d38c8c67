//! [`RequestBufferFromRoute`]: BackendTrafficPolicy `requestBuffer` (Envoy's buffer filter):
//! the whole request body is read before the request goes on — at most `limit` bytes; a
//! larger one is answered 413 (`BodyTooLarge`) — and forwarded with its `content-length`, so
//! a slow client never holds a backend connection. Other rules' requests stream as before.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use routing::router::RouteError;
use tower::Service;

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
    let (mut parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(RouteError::BodyTooLarge {
                policy: format!("{policy} requestBuffer"),
            });
        }
        Err(error) => {
            return Err(RouteError::BadRequest {
                policy: format!("{policy} requestBuffer"),
                reason: format!("reading the request body: {error}"),
            });
        }
    };
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, bytes.len().into());
    Ok(Request::from_parts(parts, B::from_buffered(bytes)))
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
        let Some((limit, policy)) = later_route_traffic(&request)
            .and_then(|t| Some((t.policy.request_buffer?, t.name.clone())))
        else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let mut ready = take_ready(&mut self.inner);
        InnerOrBoxed::Boxed(Box::pin(async move {
            let request = buffer_request(request, limit, &policy).await?;
            poll_fn(|cx| ready.poll_ready(cx)).await?;
            ready.call(request).await
        }))
    }
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
