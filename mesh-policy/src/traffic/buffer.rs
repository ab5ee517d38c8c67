//! [`RequestBufferFromRoute`]: BackendTrafficPolicy `requestBuffer` (Envoy's buffer filter):
//! the whole request body is read before the request goes on — at most `limit` bytes; a
//! larger one is answered 413 (`BodyTooLarge`) — and forwarded with its `content-length`, so
//! a slow client never holds a backend connection. Other rules' requests stream as before.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use routing::router::RouteError;
use tower::Service;

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

/// The future of [`RequestBufferFromRoute`]: the inner one, or buffering first (boxed).
#[pin_project::pin_project(project = BufferProjection)]
pub enum BufferFuture<F, R> {
    /// Streamed.
    Inner(#[pin] F),
    /// Buffered first.
    Buffered(Pin<Box<dyn Future<Output = Result<R, RouteError>> + Send>>),
}

impl<F, R> Future for BufferFuture<F, R>
where
    F: Future<Output = Result<R, RouteError>>,
{
    type Output = Result<R, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            BufferProjection::Inner(future) => future.poll(cx),
            BufferProjection::Buffered(future) => future.as_mut().poll(cx),
        }
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
    type Future = BufferFuture<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some((limit, policy)) = later_route_traffic(&request)
            .and_then(|t| Some((t.policy.request_buffer?, t.name.clone())))
        else {
            return BufferFuture::Inner(self.inner.call(request));
        };
        // The ready service goes with the request; a fresh clone stays for the next one.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        BufferFuture::Buffered(Box::pin(async move {
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
