//! [`AdmissionControlLayer`]: admission control ([`AdmissionController`]) as a tower layer
//! for any service answering `Result<Response<_>, RouteError>` — a request is refused with
//! [`RouteError::AdmissionRefused`] (503 once answered) at the controller's rejection
//! probability, and how every admitted request ends is counted.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use http::{Request, Response, StatusCode};
//! use mesh_policy::traffic::admission::{AdmissionControlLayer, AdmissionParams};
//! use routing::router::RouteError;
//! use tower::{Layer, ServiceExt};
//!
//! let layer = AdmissionControlLayer::new("shop", AdmissionParams::default());
//! // A backend that always fails.
//! let failing = tower::service_fn(|_: Request<()>| async {
//!     let mut answer = Response::new(());
//!     *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!     Ok::<_, RouteError>(answer)
//! });
//! let service = layer.layer(failing);
//! let mut refused = 0;
//! for _ in 0..200 {
//!     if let Err(RouteError::AdmissionRefused { .. }) =
//!         service.clone().oneshot(Request::new(())).await
//!     {
//!         refused += 1;
//!     }
//! }
//! // Most requests after the first failures are refused, up to the 80 % cap.
//! assert!((100..=180).contains(&refused), "{refused}");
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use routing::router::RouteError;
use tower::{Layer, Service};

use super::{AdmissionController, AdmissionParams};

/// Refuses requests while the inner service's recent success rate is low.
#[derive(Debug, Clone)]
pub struct AdmissionControlLayer {
    name: Arc<str>,
    controller: Arc<AdmissionController>,
}

impl AdmissionControlLayer {
    /// A controller with `params`; refusals name `name`.
    pub fn new(name: impl Into<Arc<str>>, params: AdmissionParams) -> Self {
        AdmissionControlLayer {
            name: name.into(),
            controller: Arc::new(AdmissionController::new(params)),
        }
    }

    /// The controller (its rejection probability now, say).
    pub fn controller(&self) -> &Arc<AdmissionController> {
        &self.controller
    }
}

impl<S> Layer<S> for AdmissionControlLayer {
    type Service = AdmissionControlService<S>;

    fn layer(&self, inner: S) -> AdmissionControlService<S> {
        AdmissionControlService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`AdmissionControlLayer`].
#[derive(Debug, Clone)]
pub struct AdmissionControlService<S> {
    layer: AdmissionControlLayer,
    inner: S,
}

/// The inner service's future, counted when it ends; or a refusal.
#[pin_project::pin_project(project = AdmissionProjection)]
#[derive(Debug)]
pub enum AdmissionFuture<F> {
    /// Refused before the inner service.
    Refused(Option<RouteError>),
    /// Admitted: counted when it ends.
    Admitted {
        /// The inner future.
        #[pin]
        inner: F,
        /// Where its outcome is counted.
        controller: Arc<AdmissionController>,
    },
}

impl<F, RB> Future for AdmissionFuture<F>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmissionProjection::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or(RouteError::Misassembled("a finished future")))),
            AdmissionProjection::Admitted { inner, controller } => {
                let outcome = std::task::ready!(inner.poll(cx));
                controller.record_outcome(&outcome);
                Poll::Ready(outcome)
            }
        }
    }
}

impl<S, B, RB> Service<Request<B>> for AdmissionControlService<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = AdmissionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !self.layer.controller.admit() {
            return AdmissionFuture::Refused(Some(RouteError::AdmissionRefused {
                policy: self.layer.name.to_string(),
            }));
        }
        AdmissionFuture::Admitted {
            inner: self.inner.call(request),
            controller: Arc::clone(&self.layer.controller),
        }
    }
}
