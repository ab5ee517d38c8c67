//! Sending mirror copies: fire-and-forget, with a cap on copies in flight and a timeout each,
//! so a slow mirror backend can neither pile up tasks nor hold connections forever.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;

use super::SelectedBackend;
use crate::compiled::Backend;

/// Bounds on mirroring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorLimits {
    /// Copies in flight at once, over every route of one dispatcher; a copy beyond it is
    /// dropped (default 128).
    pub max_in_flight: usize,
    /// How long one copy may take before it is abandoned (default 10 s).
    pub timeout: Duration,
}

impl Default for MirrorLimits {
    fn default() -> Self {
        MirrorLimits {
            max_in_flight: 128,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The mirror sender of one dispatcher (shared by its clones).
#[derive(Debug, Default)]
pub(super) struct Mirrors {
    limits: MirrorLimits,
    in_flight: Arc<AtomicUsize>,
    dropped: AtomicUsize,
}

/// Releases a copy's place when its task ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Mirrors {
    pub(super) fn new(limits: MirrorLimits) -> Self {
        Mirrors {
            limits,
            in_flight: Arc::default(),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Copies in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Copies dropped because the cap was reached.
    pub(super) fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends a bodiless copy of `request` to `backend` through `service` in the background;
    /// its response and errors are ignored. Dropped when the cap is reached, when the request
    /// has a body, or without a Tokio runtime.
    pub(super) fn send<S, B>(&self, mut service: S, request: &Request<B>, backend: Arc<Backend>)
    where
        S: tower::Service<Request<B>> + Send + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Default + Send + 'static,
    {
        if !request.body().is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limits.max_in_flight).then_some(n + 1)
            });
        if taken.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let place = InFlight(Arc::clone(&self.in_flight));
        let mut copy = copy_without_body(request);
        copy.extensions_mut().insert(SelectedBackend(backend));
        let timeout = self.limits.timeout;
        runtime.spawn(async move {
            let _place = place;
            let send = async move {
                if poll_fn(|cx| service.poll_ready(cx)).await.is_ok() {
                    let _ = service.call(copy).await;
                }
            };
            let _ = tokio::time::timeout(timeout, send).await;
        });
    }
}

/// A copy of `request` without its body, for a retry or a mirror.
pub(super) fn copy_without_body<B: Default>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(B::default());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}
