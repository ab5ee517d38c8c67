//! RequestHeaderModifier and ResponseHeaderModifier as tower layers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower::{Layer, Service};

use super::header_modifier::HeaderModifier;
use super::request_edit::{RequestEdit, RequestEditLayer, RequestEditService};

/// Applies a [`HeaderModifier`] to every request before the inner service sees it
/// (`RequestHeaderModifierLayer::new(modifier)`).
pub type RequestHeaderModifierLayer = RequestEditLayer<HeaderModifier>;

/// The service of [`RequestHeaderModifierLayer`].
pub type RequestHeaderModifierService<S> = RequestEditService<S, HeaderModifier>;

impl RequestEdit for HeaderModifier {
    fn edit<B>(&self, request: &mut Request<B>) {
        self.apply(request.headers_mut());
    }
}

/// Applies a [`HeaderModifier`] to every response of the inner service.
#[derive(Debug, Clone)]
pub struct ResponseHeaderModifierLayer {
    modifier: Arc<HeaderModifier>,
}

/// The service of [`ResponseHeaderModifierLayer`].
#[derive(Debug, Clone)]
pub struct ResponseHeaderModifierService<S> {
    inner: S,
    modifier: Arc<HeaderModifier>,
}

/// The future of [`ResponseHeaderModifierService`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct ResponseHeaderModifierFuture<F> {
    #[pin]
    inner: F,
    modifier: Arc<HeaderModifier>,
}

impl ResponseHeaderModifierLayer {
    /// A layer applying `modifier` to responses.
    pub fn new(modifier: HeaderModifier) -> Self {
        ResponseHeaderModifierLayer {
            modifier: Arc::new(modifier),
        }
    }
}

impl<S> Layer<S> for ResponseHeaderModifierLayer {
    type Service = ResponseHeaderModifierService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseHeaderModifierService {
            inner,
            modifier: self.modifier.clone(),
        }
    }
}

impl<S, B, ResponseBody> Service<Request<B>> for ResponseHeaderModifierService<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseHeaderModifierFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseHeaderModifierFuture {
            inner: self.inner.call(request),
            modifier: self.modifier.clone(),
        }
    }
}

impl<F, ResponseBody, E> Future for ResponseHeaderModifierFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        this.modifier.apply(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    fn modifier(set: &str, remove: &str) -> HeaderModifier {
        HeaderModifier::new(
            vec![(
                HeaderName::from_bytes(set.as_bytes()).unwrap(),
                HeaderValue::from_static("set"),
            )],
            vec![],
            vec![HeaderName::from_bytes(remove.as_bytes()).unwrap()],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn request_and_response_headers_are_modified_around_the_inner_service() {
        let backend = service_fn(|request: Request<()>| async move {
            let seen_set = request.headers().get("x-req").cloned();
            let seen_removed = request.headers().get("x-drop").is_some();
            let mut response = Response::new(());
            response
                .headers_mut()
                .insert("x-backend-secret", HeaderValue::from_static("1"));
            response
                .headers_mut()
                .insert("x-seen-removed", HeaderValue::from(u16::from(seen_removed)));
            if let Some(value) = seen_set {
                response.headers_mut().insert("x-seen-set", value);
            }
            Ok::<_, std::convert::Infallible>(response)
        });
        let service = ServiceBuilder::new()
            .layer(ResponseHeaderModifierLayer::new(modifier(
                "X-Resp",
                "X-Backend-Secret",
            )))
            .layer(RequestHeaderModifierLayer::new(modifier("X-Req", "X-Drop")))
            .service(backend);
        let request = Request::builder()
            .header("x-req", "original")
            .header("x-drop", "1")
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-seen-set"], "set");
        assert_eq!(response.headers()["x-seen-removed"], "0");
        assert_eq!(response.headers()["x-resp"], "set");
        assert!(response.headers().get("x-backend-secret").is_none());
    }
}
