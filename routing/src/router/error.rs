//! Why a routed request was not answered by a backend: typed errors, never status codes.
//! The embedder turns them into HTTP or gRPC answers in one place (`waypoint::respond`).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error cause.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why route selection, filters or dispatch ended a request without a backend's response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No listener serves the request's host, or no rule of its table matches.
    #[error("no route matches the request")]
    NoRoute,
    /// HTTPS: the `Host` belongs to another listener than the connection's SNI.
    #[error("the request's host belongs to another listener than the TLS server name")]
    Misdirected,
    /// The request carries no [`MeshDestination`](super::MeshDestination) (the stack is
    /// misassembled) or no [`MatchedRoute`](super::MatchedRoute) reached a later stage.
    #[error("the request reached {0} without what an earlier layer should have set")]
    Misassembled(&'static str),
    /// A filter that cannot be honoured (unresolvable ExtensionRef, unknown type), or a
    /// rewrite that produced an invalid URI.
    #[error("filter cannot be applied: {0}")]
    InvalidFilter(String),
    /// The chosen backend reference is invalid, the rule has no backends, or every weight is 0.
    #[error("the chosen backend is invalid")]
    InvalidBackend,
    /// The chosen Service has no ready endpoints.
    #[error("the chosen Service has no ready endpoints")]
    NoEndpoints,
    /// `timeouts.request` elapsed.
    #[error("the route's request timeout elapsed")]
    RequestTimeout,
    /// The last try hit `timeouts.backendRequest`.
    #[error("the route's backend request timeout elapsed")]
    BackendTimeout,
    /// The upstream failed (refused, reset, timed out, TLS, overload).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An authorization policy refused the request (the reason names the policy).
    #[error("access denied: {0}")]
    Denied(String),
    /// Authentication failed: credentials missing or invalid (basic auth, API key, JWT).
    #[error("authentication failed ({policy}): {text}")]
    Unauthenticated {
        /// The policy (and rule) that asked for credentials.
        policy: String,
        /// Envoy's local-reply text for the failure.
        text: &'static str,
        /// The `www-authenticate` challenge to send, if the scheme has one.
        challenge: Option<http::HeaderValue>,
    },
    /// Authenticated but not allowed by the authentication itself (a JWT whose audiences
    /// the provider does not accept): 403 with Envoy's text for it.
    #[error("forbidden ({policy}): {text}")]
    Forbidden {
        /// The policy (and check) that refused.
        policy: String,
        /// Envoy's local-reply text.
        text: &'static str,
    },
    /// A policy attached to the route cannot be enforced (invalid, or asks for what is not
    /// supported): the request is refused rather than let through unprotected.
    #[error("policy cannot be enforced: {0}")]
    PolicyInvalid(String),
    /// An external authorizer refused the request: its answer (status, headers, body) is
    /// relayed to the client, as Envoy's ext_authz does.
    #[error("denied by the external authorizer ({}): {}", .0.policy, .0.status)]
    ExternallyDenied(Box<RelayedAnswer>),
    /// The external authorizer could not decide (unreachable, timed out, an answer that is not
    /// one) and the policy does not fail open: answered with the policy's `statusOnError`.
    #[error("external authorization failed ({policy}): {reason}")]
    AuthorizerFailed {
        /// The policy that asked.
        policy: String,
        /// The status to answer (`statusOnError`, 403 by default).
        status: http::StatusCode,
        /// What went wrong.
        reason: String,
    },
    /// A rate limit refused the request: 429 with these (`x-ratelimit-*`) headers.
    #[error("rate limited ({policy})")]
    RateLimited {
        /// The policy whose limit was reached.
        policy: String,
        /// Headers for the answer.
        headers: http::HeaderMap,
    },
    /// A global rate limit refused the request: 429 with these (`x-ratelimit-*`) headers
    /// and `x-envoy-ratelimited: true`, without a body (Envoy's rate-limit filter).
    #[error("rate limited by a global limit ({policy})")]
    GloballyRateLimited {
        /// The policy whose limit was reached.
        policy: String,
        /// Headers for the answer (boxed: the error stays small).
        headers: Box<http::HeaderMap>,
    },
    /// The global rate limit's backend failed and the gateway fails closed: 500.
    #[error("the rate-limit backend failed ({policy})")]
    RateLimitBackendFailed {
        /// The policy whose limit could not be counted.
        policy: String,
    },
    /// A circuit breaker's limit was reached: 503 with `x-envoy-overloaded: true`.
    #[error("circuit breaker open ({policy})")]
    Overloaded {
        /// The policy (and limit) that refused.
        policy: String,
    },
    /// Admission control refused the request, the rule's recent success rate being low: 503.
    #[error("refused by admission control ({policy})")]
    AdmissionRefused {
        /// The policy.
        policy: String,
    },
    /// Fault injection aborted the request with this status (or, for gRPC, this
    /// `grpc-status`).
    #[error("aborted by fault injection ({policy}): {status}")]
    FaultAbort {
        /// The policy.
        policy: String,
        /// The HTTP status to answer.
        status: http::StatusCode,
        /// The gRPC status to answer a gRPC request with, when the fault names one.
        grpc_status: Option<u8>,
    },
    /// A policy refused the request as malformed (an escaped slash, a header with an
    /// underscore): 400.
    #[error("bad request ({policy}): {reason}")]
    BadRequest {
        /// The policy.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP/1.1 upgrade to a protocol the route does not allow (Envoy allows `websocket`
    /// unless a policy's `httpUpgrade` lists others): 403 without a body, as Envoy answers.
    #[error("upgrade to {protocol:?} is not allowed on this route")]
    UpgradeRefused {
        /// The protocol asked for.
        protocol: String,
    },
    /// The request body is larger than a policy may buffer (413).
    #[error("request body larger than {policy} buffers")]
    BodyTooLarge {
        /// The policy (and check) that buffers the body.
        policy: String,
    },
}

/// An answer made by someone else (an external authorizer) and relayed as it is.
#[derive(Debug, Clone)]
pub struct RelayedAnswer {
    /// The policy whose authorizer answered.
    pub policy: String,
    /// The status.
    pub status: http::StatusCode,
    /// The headers (hop-by-hop and framing headers already removed).
    pub headers: http::HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
}

impl From<std::convert::Infallible> for RouteError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// How an upstream failed, for retries, answers and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpstreamErrorKind {
    /// The connection was refused or could not be established.
    Refused,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// Connecting or waiting for the response timed out.
    Timeout,
    /// The TLS handshake or the backend's certificate failed.
    Tls,
    /// The backend spoke invalid HTTP.
    Protocol,
    /// A local cap (connections per endpoint, mirrors in flight) refused the request.
    Overloaded,
}

/// A typed upstream failure with its cause.
#[derive(Debug)]
pub struct UpstreamError {
    kind: UpstreamErrorKind,
    source: Option<BoxError>,
}

impl UpstreamError {
    /// A failure of `kind` without a cause.
    pub fn new(kind: UpstreamErrorKind) -> Self {
        UpstreamError { kind, source: None }
    }

    /// A failure of `kind` caused by `source`.
    pub fn with_source(kind: UpstreamErrorKind, source: impl Into<BoxError>) -> Self {
        UpstreamError {
            kind,
            source: Some(source.into()),
        }
    }

    /// How it failed.
    pub fn kind(&self) -> UpstreamErrorKind {
        self.kind
    }

    /// Whether a retry to a freshly chosen backend may succeed (every kind but a local cap).
    pub fn is_retriable(&self) -> bool {
        self.kind != UpstreamErrorKind::Overloaded
    }
}

impl fmt::Display for UpstreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamErrorKind::Refused => "connection refused",
            UpstreamErrorKind::Reset => "connection reset",
            UpstreamErrorKind::Timeout => "timed out",
            UpstreamErrorKind::Tls => "TLS failure",
            UpstreamErrorKind::Protocol => "protocol error",
            UpstreamErrorKind::Overloaded => "overloaded",
        })
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream {}", self.kind)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}
