//! A compiled HTTPRoute rule: filters in list order, weighted backends, timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use crate::backends::{BackendState, WeightedBackends};
use crate::filters::{CorsPolicy, HeaderModifier, RequestRedirect, UrlRewrite};
use crate::model::ObjectKey;
use crate::slot::PolicySlot;

use super::backend::Backend;

/// One filter of a rule or backend, ready to run.
#[derive(Debug, Clone)]
pub enum HttpFilter {
    /// RequestHeaderModifier.
    RequestHeaders(HeaderModifier),
    /// ResponseHeaderModifier (shared: a request keeps a reference until its response).
    ResponseHeaders(Arc<HeaderModifier>),
    /// RequestRedirect (terminal).
    Redirect(RequestRedirect),
    /// URLRewrite.
    Rewrite(UrlRewrite),
    /// RequestMirror.
    Mirror(Mirror),
    /// CORS (preflights are answered without the backend).
    Cors(Arc<CorsPolicy>),
    /// A filter that cannot be honoured (unresolvable ExtensionRef, unknown type): the request
    /// gets 500, never a silent skip.
    Unresolvable(String),
}

/// A RequestMirror: copies of a share of the requests go to `backend`; responses are ignored.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// Where copies go.
    pub backend: BackendState<Arc<Backend>>,
    /// Mirrored share as `numerator / denominator`.
    pub numerator: u32,
    /// Never zero.
    pub denominator: u32,
}

/// `timeouts` of a rule; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// The whole client transaction (→ 504).
    pub request: Option<Duration>,
    /// One attempt to the backend.
    pub backend_request: Option<Duration>,
}

/// `retry` of a rule: `attempts` retries after the first try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Statuses that trigger a retry.
    pub codes: Vec<u16>,
    /// gRPC statuses that trigger a retry, read from a trailers-only answer's `grpc-status`
    /// (Envoy's gRPC retry triggers).
    pub grpc_statuses: Vec<u8>,
    /// Retries after the first try.
    pub attempts: u32,
    /// Wait before each retry.
    pub backoff: Duration,
    /// With fallback backends, after every this many tries the levels tried are left out of
    /// the next tries while another level has health (Envoy Gateway's
    /// `numAttemptsPerPriority`, Envoy's previous-priorities retry selector).
    pub attempts_per_priority: Option<u32>,
}

impl HttpRule {
    /// The implicit rule of a mesh Service port without routes: everything to `backend`.
    pub fn forward_to_service(service: ObjectKey, backend: BackendState<Arc<Backend>>) -> Self {
        HttpRule {
            kind: "Service",
            route: service,
            index: 0,
            name: None,
            matched_prefix: None,
            filters: Vec::new(),
            backends: WeightedBackends::new(vec![crate::backends::WeightedBackend::primary(
                1, backend,
            )]),
            timeouts: RouteTimeouts::default(),
            retry: None,
            policy: PolicySlot::default(),
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct HttpRule {
    /// The kind of route it came from: `HTTPRoute`, `GRPCRoute`, or `Service` for the implicit
    /// rule of a mesh Service port without routes.
    pub kind: &'static str,
    /// The route it came from (the Service, for the implicit mesh rule).
    pub route: ObjectKey,
    /// Its index in the route.
    pub index: usize,
    /// The rule's `name`, when it has one.
    pub name: Option<String>,
    /// The rule's single `PathPrefix` value, when it has one (for `ReplacePrefixMatch`).
    pub matched_prefix: Option<String>,
    /// Filters, in list order.
    pub filters: Vec<HttpFilter>,
    /// The weighted backends (an empty set answers 500).
    pub backends: WeightedBackends<Arc<Backend>>,
    /// Timeouts.
    pub timeouts: RouteTimeouts,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// Policies attached when the configuration was compiled.
    pub policy: PolicySlot,
}
