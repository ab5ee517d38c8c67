//! Fault injection (policy.md §2.7, BackendTrafficPolicy `faultInjection`): a share of
//! requests is delayed, a share aborted with an HTTP status or a gRPC status; the delay comes
//! first. Percentages have Envoy's precision (a millionth).
//!
//! ```
//! use std::time::Duration;
//! use mesh_policy::traffic::fault::{Abort, FaultInjection, FaultInjectionLayer};
//! let fault = FaultInjection {
//!     delay: Some((Duration::from_millis(100), 50.0)),
//!     abort: Some((Abort::Http(http::StatusCode::SERVICE_UNAVAILABLE), 10.0)),
//! };
//! let layer = FaultInjectionLayer::new("chaos", fault);
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, StatusCode};
use routing::router::RouteError;
use tower::{Layer, Service, ServiceExt};

/// How an aborted request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// With this HTTP status (`httpStatus`).
    Http(StatusCode),
    /// With this gRPC status (`grpcStatus`, HTTP 200 trailers-only).
    Grpc(u8),
}

/// The faults to inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultInjection {
    /// A fixed delay and the percentage of requests it applies to.
    pub delay: Option<(Duration, f64)>,
    /// An abort and the percentage of requests it applies to.
    pub abort: Option<(Abort, f64)>,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Then answer so instead of forwarding.
    pub abort: Option<Abort>,
}

/// Uniform draws for percentages (SplitMix64 over a counter: cheap, no lock, no global).
#[derive(Debug)]
pub struct Dice(AtomicU64);

impl Dice {
    /// Dice starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Dice(AtomicU64::new(seed))
    }

    /// Dice seeded from the clock.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Dice::new(nanos)
    }

    /// The next 64 random bits.
    pub fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether a draw falls within `percent` (0–100, a millionth's precision).
    pub fn within(&self, percent: f64) -> bool {
        if percent >= 100.0 {
            return true;
        }
        if percent.is_nan() || percent <= 0.0 {
            return false;
        }
        let threshold = (percent * 10_000.0).round() as u64;
        self.next() % 1_000_000 < threshold
    }
}

impl FaultInjection {
    /// What happens to the next request.
    pub fn plan(&self, dice: &Dice) -> FaultPlan {
        FaultPlan {
            delay: self
                .delay
                .and_then(|(delay, percent)| dice.within(percent).then_some(delay)),
            abort: self
                .abort
                .and_then(|(abort, percent)| dice.within(percent).then_some(abort)),
        }
    }
}

impl FaultPlan {
    /// The refusal an abort ends with.
    pub fn refusal(abort: Abort, policy: &str) -> RouteError {
        let (status, grpc_status) = match abort {
            Abort::Http(status) => (status, None),
            Abort::Grpc(code) => (StatusCode::OK, Some(code)),
        };
        RouteError::FaultAbort {
            policy: policy.to_owned(),
            status,
            grpc_status,
        }
    }
}

/// Injects one set of faults into every request.
#[derive(Debug, Clone)]
pub struct FaultInjectionLayer {
    name: Arc<str>,
    fault: FaultInjection,
    dice: Arc<Dice>,
}

impl FaultInjectionLayer {
    /// Injects `fault`; aborts name `name`.
    pub fn new(name: impl Into<Arc<str>>, fault: FaultInjection) -> Self {
        FaultInjectionLayer {
            name: name.into(),
            fault,
            dice: Arc::new(Dice::from_clock()),
        }
    }
}

impl<S> Layer<S> for FaultInjectionLayer {
    type Service = FaultInjectionService<S>;

    fn layer(&self, inner: S) -> FaultInjectionService<S> {
        FaultInjectionService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`FaultInjectionLayer`].
#[derive(Debug, Clone)]
pub struct FaultInjectionService<S> {
    layer: FaultInjectionLayer,
    inner: S,
}

/// Carries out `plan` for `request`: waits, then aborts or calls `inner`.
pub async fn inject<S, B>(
    plan: FaultPlan,
    policy: Arc<str>,
    inner: S,
    request: Request<B>,
) -> Result<S::Response, RouteError>
where
    S: Service<Request<B>, Error = RouteError>,
{
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(abort) = plan.abort {
        return Err(FaultPlan::refusal(abort, &policy));
    }
    inner.oneshot(request).await
}

impl<S, B> Service<Request<B>> for FaultInjectionService<S>
where
    S: Service<Request<B>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = RouteError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, RouteError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        // Each request drives its own clone of the inner service to readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let plan = self.layer.fault.plan(&self.layer.dice);
        Box::pin(inject(
            plan,
            Arc::clone(&self.layer.name),
            self.inner.clone(),
            request,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_hold_over_many_draws() {
        let dice = Dice::new(7);
        let hits = (0..100_000).filter(|_| dice.within(25.0)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| dice.within(100.0)));
        assert!((0..1000).all(|_| !dice.within(0.0)));
        let rare = (0..1_000_000).filter(|_| dice.within(0.001)).count();
        assert!((2..40).contains(&rare), "{rare}");
    }

    #[test]
    fn plans_follow_the_configured_shares() {
        let fault = FaultInjection {
            delay: Some((Duration::from_millis(5), 100.0)),
            abort: Some((Abort::Grpc(14), 50.0)),
        };
        let dice = Dice::new(1);
        let plans: Vec<FaultPlan> = (0..10_000).map(|_| fault.plan(&dice)).collect();
        assert!(
            plans
                .iter()
                .all(|p| p.delay == Some(Duration::from_millis(5)))
        );
        let aborted = plans.iter().filter(|p| p.abort.is_some()).count();
        assert!((4_700..5_300).contains(&aborted), "{aborted}");
        assert!(matches!(
            FaultPlan::refusal(Abort::Grpc(14), "p"),
            RouteError::FaultAbort {
                status: StatusCode::OK,
                grpc_status: Some(14),
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_comes_before_the_abort() {
        let inner = tower::service_fn(|_: Request<()>| async { Ok::<_, RouteError>(()) });
        let plan = FaultPlan {
            delay: Some(Duration::from_secs(2)),
            abort: Some(Abort::Http(StatusCode::IM_A_TEAPOT)),
        };
        let started = tokio::time::Instant::now();
        let outcome = inject(plan, "p".into(), inner, Request::new(())).await;
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(matches!(
            outcome,
            Err(RouteError::FaultAbort {
                status: StatusCode::IM_A_TEAPOT,
                ..
            })
        ));
    }
}
