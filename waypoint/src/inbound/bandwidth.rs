//! [`BandwidthFromRoute`]: BackendTrafficPolicy `bandwidthLimit` on the request path. For a
//! rule under such a policy, the request body is paced on its way to the backend and the
//! response body on its way to the client by the rule's shared buckets
//! ([`RouteBandwidth`](mesh_policy::traffic::bandwidth::RouteBandwidth)); other rules' bodies
//! pass untouched, with no allocation.

use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_policy::traffic::future::{InnerOrBoxed, take_ready};
use mesh_policy::traffic::layer::later_route_traffic;
use routing::router::RouteError;
use tower::{Service, ServiceExt};

use crate::outbound::ResponseBody;

/// Paces the bodies of rules whose BackendTrafficPolicy has a `bandwidthLimit`.
#[derive(Debug, Clone)]
pub struct BandwidthFromRoute<S> {
    inner: S,
}

impl<S> BandwidthFromRoute<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        BandwidthFromRoute { inner }
    }
}

impl<S> Service<Request<ResponseBody>> for BandwidthFromRoute<S>
where
    S: Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = RouteError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<ResponseBody>;
    type Error = RouteError;
    type Future = InnerOrBoxed<S::Future, Response<ResponseBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ResponseBody>) -> Self::Future {
        let Some(buckets) = later_route_traffic(&request).and_then(|t| t.bandwidth.clone()) else {
            return InnerOrBoxed::Inner(self.inner.call(request));
        };
        let ready = take_ready(&mut self.inner);
        let (request, pacer) = buckets.pace_request(request);
        let request = request.map(|body| body.boxed());
        InnerOrBoxed::Boxed(Box::pin(async move {
            let response = ready.oneshot(request).await?;
            Ok(pacer.pace(response).map(|body| body.boxed()))
        }))
    }
}
