//! BackendTrafficPolicy `responseOverride` (Envoy's custom response filter with local
//! response policies): a response whose status (and headers) match a rule of the matched
//! route's policy is replaced — status, `content-type`, body, headers — whether a backend sent
//! it or the proxy made it (an answer to a refusal, a rate limit, an unreachable backend), as
//! the rule's `source` says.
//!
//! [`OverrideResponses`] sits outside the step that turns errors into answers, so it sees every
//! answer; route selection tells it the matched rule through a
//! [`MatchedRouteSlot`], and the answers the proxy made carry [`LocalAnswer`]. Without a
//! policy with overrides on the socket it passes requests through untouched.
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, StatusCode};
//! use mesh_policy::traffic::response_override::{first_match, spec::compile_overrides};
//!
//! let yaml = "- match: {statusCodes: [{type: Range, range: {start: 500, end: 599}}]}\n  \
//!             response: {contentType: text/plain, body: {inline: 'sorry (%RESPONSE_CODE%)'}}";
//! let specs = serde_yaml_ng::from_str::<Vec<_>>(yaml).unwrap();
//! let rules = compile_overrides(&specs, "default", &Default::default()).unwrap();
//! let rule = first_match(&rules, StatusCode::BAD_GATEWAY, &HeaderMap::new(), false).unwrap();
//! let (mut status, mut headers) = (StatusCode::BAD_GATEWAY, HeaderMap::new());
//! let body = rule.edits.apply(&mut status, &mut headers, &Default::default()).unwrap();
//! assert_eq!(body, Bytes::from_static(b"sorry (502)"));
//! assert_eq!(headers["content-type"], "text/plain");
//! ```

pub mod rules;
pub mod spec;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use routing::compiled::{HttpRule, ListenerRoutes};
use routing::router::{ListenerSet, LocalAnswer, MatchedRoute, MatchedRouteSlot};
use tower::Service;

pub use rules::{OverrideRule, ResponseEdits, ResponseSource, first_match};

use super::header_format::FormatFacts;
use super::layer::traffic_of;
use super::tls_fingerprint::TlsFingerprints;

/// Replaces the responses the matched rule's BackendTrafficPolicy overrides. `make_body` turns
/// a new body into the response body type.
#[derive(Debug)]
pub struct OverrideResponses<S, RB> {
    inner: S,
    enabled: bool,
    make_body: fn(Bytes) -> RB,
}

impl<S: Clone, RB> Clone for OverrideResponses<S, RB> {
    fn clone(&self) -> Self {
        OverrideResponses {
            inner: self.inner.clone(),
            enabled: self.enabled,
            make_body: self.make_body,
        }
    }
}

impl<S, RB> OverrideResponses<S, RB> {
    /// Overrides the responses of `inner`, for every request.
    pub fn new(inner: S, make_body: fn(Bytes) -> RB) -> Self {
        OverrideResponses {
            inner,
            enabled: true,
            make_body,
        }
    }

    /// The same, passing every request through untouched (no rule has overrides).
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Overrides the responses of `inner` only if a rule of `listeners` has a policy with
    /// overrides (else requests pass through untouched).
    pub fn for_listeners(listeners: &ListenerSet, inner: S, make_body: fn(Bytes) -> RB) -> Self {
        let enabled = listeners
            .listeners()
            .iter()
            .any(|listener| match &listener.routes {
                ListenerRoutes::Http(table) => table.targets().any(|rule| has_overrides(rule)),
                _ => false,
            });
        OverrideResponses {
            inner,
            enabled,
            make_body,
        }
    }
}

/// Whether a BackendTrafficPolicy with response overrides covers `rule` (on any listener).
pub fn has_overrides(rule: &HttpRule) -> bool {
    rule.policy
        .get::<super::AttachedBackendTraffic>()
        .is_some_and(|attached| {
            attached
                .0
                .iter()
                .any(|scoped| !scoped.traffic.policy.response_override.is_empty())
        })
}

impl<S, B, RB> Service<Request<B>> for OverrideResponses<S, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = OverrideFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // An outer layer (the runtime's route statistics) may read the same slot.
        let slot = self.enabled.then(|| MatchedRouteSlot::of(&mut request));
        // Header operators of an override read the connection's TLS fingerprints.
        let fingerprints = self
            .enabled
            .then(|| request.extensions().get::<Arc<TlsFingerprints>>().cloned())
            .flatten();
        OverrideFuture {
            inner: self.inner.call(request),
            slot,
            fingerprints,
            make_body: self.make_body,
        }
    }
}

/// The future of [`OverrideResponses`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct OverrideFuture<F, RB> {
    #[pin]
    inner: F,
    slot: Option<MatchedRouteSlot>,
    fingerprints: Option<Arc<TlsFingerprints>>,
    make_body: fn(Bytes) -> RB,
}

impl<F, RB, E> Future for OverrideFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(matched) = this.slot.take().and_then(|slot| slot.get()) {
            let facts = FormatFacts {
                fingerprints: this.fingerprints.as_deref(),
            };
            override_response(&matched, &mut response, &facts, *this.make_body);
        }
        Poll::Ready(Ok(response))
    }
}

/// Applies the first override of `matched`'s policy that matches `response`.
fn override_response<RB>(
    matched: &MatchedRoute,
    response: &mut Response<RB>,
    facts: &FormatFacts<'_>,
    make_body: fn(Bytes) -> RB,
) {
    let Some(traffic) = traffic_of(matched) else {
        return;
    };
    let local = response.extensions().get::<LocalAnswer>().is_some();
    let Some(rule) = first_match(
        &traffic.policy.response_override,
        response.status(),
        response.headers(),
        local,
    ) else {
        return;
    };
    let mut status = response.status();
    if let Some(body) = rule.edits.apply(&mut status, response.headers_mut(), facts) {
        *response.body_mut() = make_body(body);
    }
    *response.status_mut() = status;
}
