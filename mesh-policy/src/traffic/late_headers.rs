//! ClientTrafficPolicy `headers.lateResponseHeaders`: header edits made to every response of
//! a listener last of all — after the route's filters, the policies' and the proxy's own
//! answers (local replies, response overrides). [`LateResponseHeaders`] sits outermost and
//! finds the listener's policy the way [`ClientTrafficFromListener`](super::ClientTrafficFromListener)
//! does (by TLS server name, else `Host`); without a policy with such edits on the socket it
//! passes requests through untouched.
//!
//! On HTTPS listeners whose policy enables `http3`, it also advertises HTTP/3 on the
//! listener's port to every response, as Envoy Gateway does: `alt-svc: h3=":PORT"; ma=86400`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use routing::compiled::ListenerProtocol;
use routing::router::ListenerSet;
use tower::Service;

use super::compile::CompiledClientTraffic;
use super::header_format::FormatFacts;
use super::layer::client_policy;
use super::tls_fingerprint::TlsFingerprints;

/// Applies the listener's `lateResponseHeaders` to each response of the inner service.
#[derive(Debug, Clone)]
pub struct LateResponseHeaders<S> {
    /// `None` when no listener of the socket has late edits or advertises HTTP/3.
    listeners: Option<Arc<ListenerSet>>,
    /// `h3=":PORT"; ma=86400` when the socket's listeners are HTTPS.
    alt_svc: Option<HeaderValue>,
    inner: S,
}

impl<S> LateResponseHeaders<S> {
    /// Over the listeners of one socket.
    pub fn new(listeners: &Arc<ListenerSet>, inner: S) -> Self {
        let alt_svc = listeners
            .listeners()
            .first()
            .filter(|listener| listener.protocol == ListenerProtocol::Https)
            .and_then(|listener| {
                HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", listener.port)).ok()
            });
        let any = listeners.listeners().iter().any(|listener| {
            listener
                .policy
                .get::<super::AttachedClientTraffic>()
                .is_some_and(|attached| {
                    !attached.0.late_response_headers.is_empty()
                        || (attached.0.http3 && alt_svc.is_some())
                })
        });
        LateResponseHeaders {
            listeners: any.then(|| Arc::clone(listeners)),
            alt_svc,
            inner,
        }
    }
}

impl<S, B, RB> Service<Request<B>> for LateResponseHeaders<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = LateHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let policy = self
            .listeners
            .as_ref()
            .and_then(|listeners| client_policy(listeners, &request))
            .filter(|policy| !policy.late_response_headers.is_empty() || policy.http3)
            .cloned();
        let alt_svc = policy
            .as_ref()
            .filter(|policy| policy.http3)
            .and(self.alt_svc.clone());
        // Header operators read the connection's TLS fingerprints.
        let fingerprints = policy
            .as_ref()
            .and_then(|_| request.extensions().get::<Arc<TlsFingerprints>>().cloned());
        LateHeadersFuture {
            inner: self.inner.call(request),
            policy,
            fingerprints,
            alt_svc,
        }
    }
}

/// The future of [`LateResponseHeaders`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct LateHeadersFuture<F> {
    #[pin]
    inner: F,
    policy: Option<Arc<CompiledClientTraffic>>,
    fingerprints: Option<Arc<TlsFingerprints>>,
    alt_svc: Option<HeaderValue>,
}

impl<F, RB, E> Future for LateHeadersFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(alt_svc) = this.alt_svc.take() {
            response
                .headers_mut()
                .insert(http::header::ALT_SVC, alt_svc);
        }
        if let Some(policy) = this.policy.take() {
            let facts = FormatFacts {
                fingerprints: this.fingerprints.as_deref(),
            };
            policy
                .late_response_headers
                .apply(response.headers_mut(), &facts);
        }
        Poll::Ready(Ok(response))
    }
}
