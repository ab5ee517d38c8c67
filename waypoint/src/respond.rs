//! The one place where request-path failures become answers: every [`RouteError`] (no route,
//! misdirected, invalid filter or backend, no endpoints, timeouts, and the upstream's typed
//! failures) becomes an HTTP status, or — for a gRPC request — HTTP 200 with a trailers-only
//! `grpc-status`, as the Gateway API and Envoy answer.
//!
//! | error | HTTP | gRPC |
//! | --- | --- | --- |
//! | `NoRoute` | 404 | UNIMPLEMENTED (12) |
//! | `Misdirected` | 421 | UNAVAILABLE (14) |
//! | `InvalidFilter`, `InvalidBackend`, `Misassembled` | 500 | UNAVAILABLE (14) |
//! | `NoEndpoints` (none ready, or none healthy outside panic mode) | 503 `no healthy upstream` | UNAVAILABLE (14) |
//! | `Upstream` (refused, reset, connect timeout, TLS, protocol, overloaded) | 503 | UNAVAILABLE (14) |
//! | `BackendTimeout`, `RequestTimeout` (the route's timeouts) | 504 | DEADLINE_EXCEEDED (4) |
//! | `Denied` (an authorization policy) | 403 `RBAC: access denied` | PERMISSION_DENIED (7) |
//! | `Forbidden` (a JWT's audiences not accepted) | 403 with Envoy's text for it | PERMISSION_DENIED (7) |
//! | `Unauthenticated` (basic auth, API key, JWT) | 401 with the policy's text and `www-authenticate` challenge | UNAUTHENTICATED (16) |
//! | `PolicyInvalid` (a policy that cannot be enforced: fail closed) | 500 | UNAVAILABLE (14) |
//! | `ExternallyDenied` (an external authorizer refused) | the authorizer's status, headers and body | from that status |
//! | `AuthorizerFailed` (no answer from an external authorizer) | the policy's `statusOnError` (403) | from that status |
//! | `BodyTooLarge` (a policy buffers the body) | 413 | UNAVAILABLE (14) |
//! | `RateLimited` (local rate limit) | 429 `local_rate_limited` with `x-ratelimit-*` | UNAVAILABLE (14) |
//! | `GloballyRateLimited` (global rate limit) | 429 with `x-ratelimit-*` and `x-envoy-ratelimited: true` | UNAVAILABLE (14) |
//! | `RateLimitBackendFailed` (Redis down, failing closed) | 500 | UNAVAILABLE (14) |
//! | `Overloaded` (circuit breaker) | 503 with `x-envoy-overloaded: true` | UNAVAILABLE (14) |
//! | `FaultAbort` (fault injection) | the fault's status, `fault filter abort` | the fault's `grpcStatus`, else from the status |
//! | `BadRequest` (path or header normalisation refused it) | 400 | UNAVAILABLE (14) |
//! | `UpgradeRefused` (an upgrade the route does not allow) | 403 | PERMISSION_DENIED (7) |
//!
//! As Envoy, an upstream that cannot be reached — even by timing out while connecting — is a
//! 503; only the route's own timeouts are 504.
//!
//! Answers have an empty body, except those with Envoy's local-reply text (403
//! `RBAC: access denied`) and relayed authorizer answers: [`Respond`] marks such answers with
//! a [`LocalReply`] extension, and [`with_local_reply_body`] writes the body into the
//! runtime's own body type. Every answer made here carries
//! [`LocalAnswer`], so that a response override outside this
//! layer can tell the proxy's answers from a backend's. [`Respond`] is
//! the layer that applies this table to an inner
//! service whose error is a [`RouteError`], making it infallible for hyper or axum.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use routing::router::{LocalAnswer, RouteError};
use tower::{Layer, Service};

/// The HTTP status for `error`.
pub fn status_for(error: &RouteError) -> StatusCode {
    match error {
        RouteError::NoRoute => StatusCode::NOT_FOUND,
        RouteError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        RouteError::NoEndpoints | RouteError::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
        RouteError::RequestTimeout | RouteError::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
        RouteError::Denied(_)
        | RouteError::Forbidden { .. }
        | RouteError::UpgradeRefused { .. } => StatusCode::FORBIDDEN,
        RouteError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        RouteError::ExternallyDenied(relayed) => relayed.status,
        RouteError::AuthorizerFailed { status, .. } => *status,
        RouteError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        RouteError::RateLimited { .. } | RouteError::GloballyRateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        RouteError::RateLimitBackendFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        RouteError::Overloaded { .. } | RouteError::AdmissionRefused { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        RouteError::FaultAbort { status, .. } => *status,
        RouteError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The gRPC status code for `error` (the Gateway API's choices for GRPCRoute; a fault's own
/// `grpcStatus`).
pub fn grpc_status_for(error: &RouteError) -> u8 {
    if let RouteError::FaultAbort {
        grpc_status: Some(code),
        ..
    } = error
    {
        return *code;
    }
    match status_for(error) {
        StatusCode::FORBIDDEN => 7,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::NOT_FOUND => 12,
        StatusCode::GATEWAY_TIMEOUT => 4,
        _ => 14,
    }
}

/// Whether `headers` belong to a gRPC request (`content-type: application/grpc[+proto…]`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The answer to `error`: an empty-bodied HTTP status, or for gRPC a trailers-only 200 with
/// `grpc-status` and `grpc-message`.
pub fn answer<B: Default>(error: &RouteError, grpc: bool) -> Response<B> {
    let mut response = Response::new(B::default());
    response.extensions_mut().insert(LocalAnswer);
    if let Some(refusal) = policy_refusal(error) {
        response.extensions_mut().insert(refusal);
    }
    if let RouteError::Unauthenticated {
        challenge: Some(challenge),
        ..
    } = error
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
    }
    match error {
        RouteError::RateLimited { headers, .. } => response.headers_mut().extend(headers.clone()),
        RouteError::GloballyRateLimited { headers, .. } => {
            response.headers_mut().extend((**headers).clone());
            response
                .headers_mut()
                .insert("x-envoy-ratelimited", HeaderValue::from_static("true"));
        }
        RouteError::Overloaded { .. } => {
            response
                .headers_mut()
                .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
        }
        _ => {}
    }
    if !grpc {
        *response.status_mut() = status_for(error);
        if let RouteError::ExternallyDenied(relayed) = error {
            response.headers_mut().extend(relayed.headers.clone());
            response
                .extensions_mut()
                .insert(LocalReply(relayed.body.clone()));
        } else if let Some(text) = local_reply_text(error) {
            response
                .extensions_mut()
                .insert(LocalReply(bytes::Bytes::from_static(text.as_bytes())));
        }
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_status_for(error))),
    );
    if let Ok(message) = HeaderValue::try_from(percent_encode_message(&error.to_string())) {
        headers.insert("grpc-message", message);
    }
    response
}

/// On an answer to a policy's refusal: which policy and rule decided (for metrics and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// `unauthenticated`, `denied` or `policy_invalid`.
    pub flag: &'static str,
    /// The policy and rule (or failed check) that decided (a metric label: from the
    /// configuration only).
    pub decided_by: String,
    /// What else is known, for logs only (text that came from the network, such as an
    /// authorizer's error, never becomes a label).
    pub detail: Option<String>,
}

impl std::fmt::Display for PolicyRefusal {
    /// `flag: decided_by[: detail]`, as denial log lines print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.flag, self.decided_by)?;
        match &self.detail {
            Some(detail) => write!(f, ": {detail}"),
            None => Ok(()),
        }
    }
}

fn policy_refusal(error: &RouteError) -> Option<PolicyRefusal> {
    if let RouteError::AuthorizerFailed { policy, reason, .. } = error {
        return Some(PolicyRefusal {
            flag: "ext_authz_error",
            decided_by: format!("{policy} extAuth"),
            detail: Some(reason.clone()),
        });
    }
    let (flag, decided_by) = match error {
        RouteError::Denied(by) => ("denied", by.clone()),
        RouteError::Unauthenticated { policy, text, .. } => {
            ("unauthenticated", format!("{policy}: {text}"))
        }
        RouteError::Forbidden { policy, text } => ("denied", format!("{policy}: {text}")),
        RouteError::PolicyInvalid(reason) => ("policy_invalid", reason.clone()),
        RouteError::ExternallyDenied(relayed) => (
            "ext_authz_denied",
            format!(
                "{} extAuth: the authorizer answered {}",
                relayed.policy, relayed.status
            ),
        ),
        RouteError::BodyTooLarge { policy } => ("body_too_large", policy.clone()),
        RouteError::RateLimited { policy, .. } | RouteError::GloballyRateLimited { policy, .. } => {
            ("rate_limited", policy.clone())
        }
        RouteError::RateLimitBackendFailed { policy } => {
            ("rate_limit_service_error", policy.clone())
        }
        RouteError::Overloaded { policy } => ("overflow", policy.clone()),
        RouteError::AdmissionRefused { policy } => ("admission_control", policy.clone()),
        RouteError::FaultAbort { policy, .. } => ("fault_injected", policy.clone()),
        RouteError::BadRequest { policy, .. } => ("bad_request", policy.clone()),
        RouteError::UpgradeRefused { protocol } => {
            ("upgrade_failed", format!("httpUpgrade: {protocol}"))
        }
        _ => return None,
    };
    Some(PolicyRefusal {
        flag,
        decided_by,
        detail: None,
    })
}

/// The text Envoy answers `error` with, when it has one.
fn local_reply_text(error: &RouteError) -> Option<&'static str> {
    match error {
        RouteError::Denied(_) => Some("RBAC: access denied"),
        RouteError::Unauthenticated { text, .. } | RouteError::Forbidden { text, .. } => Some(text),
        RouteError::RateLimited { .. } => Some("local_rate_limited"),
        RouteError::FaultAbort { .. } => Some("fault filter abort"),
        RouteError::NoEndpoints => Some("no healthy upstream"),
        RouteError::Overloaded { .. } => Some(
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        ),
        _ => None,
    }
}

/// Marks an answer whose body should carry these bytes (`text/plain` unless the answer has a
/// content type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply(pub bytes::Bytes);

/// Writes a [`LocalReply`]'s body into `response` (other responses are unchanged).
pub fn with_local_reply_body(
    mut response: Response<crate::outbound::ResponseBody>,
) -> Response<crate::outbound::ResponseBody> {
    use http_body_util::BodyExt;
    if let Some(LocalReply(body)) = response.extensions_mut().remove::<LocalReply>() {
        let length = body.len();
        *response.body_mut() = http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed();
        let headers = response.headers_mut();
        if length > 0 {
            headers
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("text/plain"));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

/// `grpc-message` is percent-encoded outside printable ASCII (gRPC over HTTP/2 spec).
fn percent_encode_message(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A layer answering the inner service's [`RouteError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct RespondLayer;

/// The service of [`RespondLayer`]: infallible, every error answered by [`answer`].
#[derive(Debug)]
pub struct Respond<S> {
    inner: S,
    /// A readiness failure of the inner service, answered on the next call.
    not_ready: Option<RouteError>,
}

impl<S: Clone> Clone for Respond<S> {
    fn clone(&self) -> Self {
        Respond::new(self.inner.clone())
    }
}

impl<S> Respond<S> {
    /// Answers the errors of `inner`.
    pub fn new(inner: S) -> Self {
        Respond {
            inner,
            not_ready: None,
        }
    }
}

impl<S> Layer<S> for RespondLayer {
    type Service = Respond<S>;

    fn layer(&self, inner: S) -> Respond<S> {
        Respond::new(inner)
    }
}

/// The future of [`Respond`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct RespondFuture<F> {
    #[pin]
    inner: Option<F>,
    not_ready: Option<RouteError>,
    grpc: bool,
}

impl<S, B, RB> Service<Request<B>> for Respond<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = Infallible;
    type Future = RespondFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_none()
            && let Err(error) = ready!(self.inner.poll_ready(cx))
        {
            self.not_ready = Some(error);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        match self.not_ready.take() {
            Some(error) => RespondFuture {
                inner: None,
                not_ready: Some(error),
                grpc,
            },
            None => RespondFuture {
                inner: Some(self.inner.call(request)),
                not_ready: None,
                grpc,
            },
        }
    }
}

impl<F, RB> Future for RespondFuture<F>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
    RB: Default,
{
    type Output = Result<Response<RB>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.as_pin_mut() {
            Some(inner) => ready!(inner.poll(cx)),
            None => Err(this
                .not_ready
                .take()
                .unwrap_or(RouteError::Misassembled("respond"))),
        };
        Poll::Ready(Ok(result.unwrap_or_else(|error| answer(&error, *this.grpc))))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use routing::router::{UpstreamError, UpstreamErrorKind};

    use super::*;

    #[tokio::test]
    async fn a_denied_request_gets_envoys_rbac_text() {
        let denied: Response<crate::outbound::ResponseBody> =
            answer(&RouteError::Denied("ns/p".into()), false);
        let rendered = with_local_reply_body(denied);
        assert_eq!(rendered.status(), StatusCode::FORBIDDEN);
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], "text/plain");
        let body = rendered.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"RBAC: access denied");
        let not_found: Response<crate::outbound::ResponseBody> =
            answer(&RouteError::NoRoute, false);
        let unchanged = with_local_reply_body(not_found);
        assert!(unchanged.headers().get(header::CONTENT_TYPE).is_none());
    }

    fn relayed(status: u16) -> RouteError {
        let mut headers = HeaderMap::new();
        headers.insert("x-reason", HeaderValue::from_static("no-token"));
        RouteError::ExternallyDenied(Box::new(routing::router::RelayedAnswer {
            policy: "shop/ext".into(),
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            headers,
            body: bytes::Bytes::from_static(b"{\"denied\":true}"),
        }))
    }

    #[tokio::test]
    async fn an_authorizers_denial_is_relayed_whole() {
        let mut error = relayed(302);
        if let RouteError::ExternallyDenied(answer) = &mut error {
            answer.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let rendered =
            with_local_reply_body(answer::<crate::outbound::ResponseBody>(&error, false));
        assert_eq!(rendered.status(), StatusCode::FOUND);
        assert_eq!(rendered.headers()["x-reason"], "no-token");
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], "application/json");
        let refusal = rendered.extensions().get::<PolicyRefusal>().cloned();
        assert_eq!(refusal.map(|r| r.flag), Some("ext_authz_denied"));
        let body = rendered.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{\"denied\":true}");
    }

    #[test]
    fn an_authorizers_own_words_stay_out_of_metric_labels() {
        let failed = RouteError::AuthorizerFailed {
            policy: "SecurityPolicy shop/ext".into(),
            status: StatusCode::FORBIDDEN,
            reason: "authorizer failed: grpc-status 14 any text it likes".into(),
        };
        let answer: Response<String> = answer(&failed, false);
        let refusal = answer.extensions().get::<PolicyRefusal>().unwrap();
        assert_eq!(refusal.decided_by, "SecurityPolicy shop/ext extAuth");
        assert_eq!(
            refusal.to_string(),
            "ext_authz_error: SecurityPolicy shop/ext extAuth: authorizer failed: grpc-status 14 any text it likes"
        );
    }

    fn upstream(kind: UpstreamErrorKind) -> RouteError {
        RouteError::Upstream(UpstreamError::new(kind))
    }

    #[test]
    fn every_error_has_its_documented_http_and_grpc_answer() {
        let table = [
            (RouteError::NoRoute, 404, "12"),
            (RouteError::Misdirected, 421, "14"),
            (RouteError::InvalidFilter("x".into()), 500, "14"),
            (RouteError::InvalidBackend, 500, "14"),
            (RouteError::Misassembled("dispatch"), 500, "14"),
            (RouteError::NoEndpoints, 503, "14"),
            (RouteError::RequestTimeout, 504, "4"),
            (RouteError::BackendTimeout, 504, "4"),
            (upstream(UpstreamErrorKind::Refused), 503, "14"),
            (upstream(UpstreamErrorKind::Reset), 503, "14"),
            (upstream(UpstreamErrorKind::Tls), 503, "14"),
            (upstream(UpstreamErrorKind::Protocol), 503, "14"),
            (upstream(UpstreamErrorKind::Overloaded), 503, "14"),
            (upstream(UpstreamErrorKind::Timeout), 503, "14"),
            (RouteError::Denied("shop/deny".into()), 403, "7"),
            (
                RouteError::Unauthenticated {
                    policy: "shop/basic".into(),
                    text: "User authentication failed. Missing username and password.",
                    challenge: None,
                },
                401,
                "16",
            ),
            (RouteError::PolicyInvalid("shop/jwt".into()), 500, "14"),
            (
                RouteError::Forbidden {
                    policy: "shop/jwt".into(),
                    text: "Audiences in Jwt are not allowed",
                },
                403,
                "7",
            ),
            (
                RouteError::AuthorizerFailed {
                    policy: "shop/ext".into(),
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    reason: "timeout".into(),
                },
                503,
                "14",
            ),
            (
                RouteError::BodyTooLarge {
                    policy: "shop/ext".into(),
                },
                413,
                "14",
            ),
            (relayed(401), 401, "16"),
        ];
        for (error, http, grpc) in table {
            let plain: Response<String> = answer(&error, false);
            assert_eq!(plain.status().as_u16(), http, "{error:?}");
            assert!(plain.body().is_empty());
            let as_grpc: Response<String> = answer(&error, true);
            assert_eq!(as_grpc.status(), StatusCode::OK, "{error:?}");
            assert_eq!(as_grpc.headers()["grpc-status"], grpc, "{error:?}");
            assert_eq!(as_grpc.headers()["content-type"], "application/grpc");
        }
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode_message("a b%\u{e9}"), "a b%25%C3%A9");
    }

    #[tokio::test]
    async fn the_layer_answers_errors_by_the_request_kind() {
        use tower::ServiceExt;
        let failing = tower::service_fn(|_: Request<String>| async {
            Err::<Response<String>, _>(RouteError::NoRoute)
        });
        let service = RespondLayer.layer(failing);
        let plain = service
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::NOT_FOUND);
        let grpc = Request::post("/a.B/C")
            .header("content-type", "application/grpc+proto")
            .body(String::new())
            .unwrap();
        let answered = service.oneshot(grpc).await.unwrap();
        assert_eq!(answered.headers()["grpc-status"], "12");
    }
}
