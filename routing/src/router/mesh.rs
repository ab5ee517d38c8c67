//! [`MeshRouter`]: GAMMA routing for waypoints — by destination Service and port and the
//! caller's namespace (spec §2.6), with the same filters, backends, retries and timeouts as
//! [`Router`](super::Router).
//!
//! | situation | answer |
//! | --- | --- |
//! | no [`MeshDestination`] on the request | 500 (the stack is misassembled) |
//! | the destination is not a known Service port | 404 |
//! | routes apply to the port but none matches | 404 |
//! | no route applies: the Service itself | forwarded; 503 without endpoints |
//!
//! As with [`Router`](super::Router), a gRPC request gets these answers as gRPC statuses.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};

use super::decide::{ListenerContext, route_in_table};
use super::{RouterFuture, SelectedBackend, attempts, response};
use crate::backends::BackendState;
use crate::compiled::MeshRoutes;
use crate::model::ObjectKey;

/// Where a mesh request goes and who sends it, as a request extension set by the layers that
/// terminate the tunnel (the HBONE `CONNECT` authority, the PROXY header, the peer identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshDestination {
    /// The destination Service.
    pub service: ObjectKey,
    /// The destination Service port.
    pub port: u16,
    /// The caller's namespace (from its SPIFFE identity), for consumer routes.
    pub source_namespace: Option<String>,
}

/// Routes mesh requests by destination.
#[derive(Debug, Clone)]
pub struct MeshRouter<S> {
    routes: Arc<MeshRoutes>,
    inner: S,
}

impl<S> MeshRouter<S> {
    /// A router over `routes` that forwards through `inner`.
    pub fn new(routes: Arc<MeshRoutes>, inner: S) -> Self {
        MeshRouter { routes, inner }
    }
}

impl<S, B, RB> tower::Service<Request<B>> for MeshRouter<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Default + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = RouterFuture<Response<RB>, S::Error>;

    /// Always ready: each request drives a clone of the inner service to readiness itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let grpc = response::is_grpc(request.headers());
        let own = move |response| -> Self::Future {
            Box::pin(std::future::ready(Ok(response::own_answer(response, grpc))))
        };
        let answer = |status| own(response::status(status));
        let Some(destination) = request.extensions().get::<MeshDestination>().cloned() else {
            return answer(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let port = self
            .routes
            .service(&destination.service)
            .and_then(|service| service.port(destination.port));
        let Some(port) = port else {
            return answer(StatusCode::NOT_FOUND);
        };
        let Some(table) = port.table_for(destination.source_namespace.as_deref()) else {
            // No route: the implicit behaviour, straight to the Service's endpoints.
            let backend = match &port.default_backend {
                BackendState::Ready(backend) => Arc::clone(backend),
                BackendState::NoEndpoints => return answer(StatusCode::SERVICE_UNAVAILABLE),
                BackendState::Invalid => return answer(StatusCode::INTERNAL_SERVER_ERROR),
            };
            request.extensions_mut().insert(SelectedBackend(backend));
            let mut inner = self.inner.clone();
            return Box::pin(async move {
                poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(request).await
            });
        };
        let context = ListenerContext {
            scheme: "http",
            port: destination.port,
        };
        let routed = match route_in_table(table, context, request) {
            Ok(routed) => routed,
            Err(response) => return own(response),
        };
        Box::pin(attempts::dispatch(self.inner.clone(), routed))
    }
}
