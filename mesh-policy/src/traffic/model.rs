//! Envoy Gateway's `gateway.envoyproxy.io/v1alpha1` ClientTrafficPolicy and
//! BackendTrafficPolicy as written in Kubernetes YAML (policy.md §1–§2). Unknown fields are
//! refused, so a typo is an error naming its field. Fields of the API that this data plane
//! does not enforce yet are read as [`NotYet`] and make the policy invalid (reported in its
//! status) rather than silently ignored.

use serde::{Deserialize, Serialize};

use routing::model::ObjectMeta;

use crate::security::model::{PolicyTargetReference, TargetSelector};

/// A field of the API read but not enforced yet: setting it makes the policy invalid.
pub type NotYet = Option<serde_yaml_ng::Value>;

/// A ClientTrafficPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTrafficPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: ClientTrafficPolicySpec,
}

/// A BackendTrafficPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendTrafficPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: BackendTrafficPolicySpec,
}

/// ClientTrafficPolicy `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTrafficPolicySpec {
    /// One target (deprecated form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, or one listener by `sectionName`.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Gateways by label.
    #[serde(default)]
    pub target_selectors: Vec<TargetSelector>,
    /// How the client's address is found.
    #[serde(
        default,
        rename = "clientIPDetection",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_ip_detection: Option<ClientIpDetectionSpec>,
    /// Path normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathSettings>,
    /// Header handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderSettings>,
    /// The health-check path the listener answers itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSettings>,
    /// TCP keepalive on accepted connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepaliveSpec>,
    /// Require a PROXY header on every connection (deprecated for `proxyProtocol`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_proxy_protocol: Option<bool>,
    /// Read a PROXY v1 or v2 header before anything else on every connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocolSettings>,
    /// TLS versions, ciphers, ALPN, resumption and client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::client_tls::ClientTlsSpec>,
    /// Client-side timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ClientTimeoutSpec>,
    /// Connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ClientConnectionSpec>,
    /// HTTP/1 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1: Option<Http1Spec>,
    /// HTTP/2 settings announced to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<super::http2_settings::Http2Spec>,
    /// HTTP/3 over QUIC on the listener's port (UDP), advertised by `alt-svc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http3: Option<Http3Spec>,
    /// The `:scheme` sent to HTTP/2 backends: `Preserve` (default: the client's) or
    /// `MatchBackend` (`https` to TLS backends, `http` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// ClientTrafficPolicy `http3` (Envoy Gateway's `HTTP3Settings`, which has no fields yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http3Spec {}

/// ClientTrafficPolicy `http1`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http1Spec {
    /// Accept HTTP/1.0 (without it, HTTP/1.0 requests get 426).
    #[serde(default, rename = "http10", skip_serializing_if = "Option::is_none")]
    pub http10: Option<Http10Spec>,
    /// Proxy HTTP/1 trailers (default false: dropped both ways, as Envoy does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_trailers: Option<bool>,
    /// Keep the case of header names on HTTP/1.1, to the backend and back (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_header_case: Option<bool>,
}

/// `http1.http10`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http10Spec {
    /// Give a request without `Host` the listener's hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_default_host: Option<bool>,
}

/// `clientIPDetection`: at most one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIpDetectionSpec {
    /// From `X-Forwarded-For`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<XForwardedForSettings>,
    /// From a custom header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_header: Option<CustomHeaderSettings>,
    /// The TCP peer, `X-Forwarded-For` untouched.
    #[serde(
        default,
        rename = "directSourceIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub direct_source_ip: Option<serde_yaml_ng::Value>,
}

/// `xForwardedFor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XForwardedForSettings {
    /// Trusted hops from the right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_trusted_hops: Option<u32>,
    /// Trusted proxy blocks.
    #[serde(
        default,
        rename = "trustedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trusted_cidrs: Vec<String>,
    /// Do not append the peer to the header.
    #[serde(default)]
    pub disable_x_forwarded_for_append: bool,
}

/// `customHeader`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomHeaderSettings {
    /// The header.
    pub name: String,
    /// 403 when it is missing or not an address.
    #[serde(default)]
    pub fail_closed: bool,
}

/// `path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathSettings {
    /// `KeepUnchanged`, `RejectRequest`, `UnescapeAndForward` or `UnescapeAndRedirect`
    /// (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped_slashes_action: Option<String>,
    /// Keep runs of `/`.
    #[serde(default)]
    pub disable_merge_slashes: bool,
}

/// `headers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderSettings {
    /// `Allow`, `RejectRequest` (the default) or `DropHeader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_underscores_action: Option<String>,
    /// Keep the client's `x-request-id` (deprecated for `requestID`).
    #[serde(
        default,
        rename = "preserveXRequestID",
        skip_serializing_if = "Option::is_none"
    )]
    pub preserve_x_request_id: Option<bool>,
    /// `Generate` (the default), `PreserveOrGenerate`, `Preserve` or `Disable`.
    #[serde(default, rename = "requestID", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Edits made before anything else reads the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_request_headers: Option<HeaderFilterSpec>,
    /// Edits made to every response last of all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_response_headers: Option<HeaderFilterSpec>,
    /// Add Envoy's router headers (`x-envoy-expected-rq-timeout-ms` to the backend,
    /// `x-envoy-upstream-service-time` to the client; default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_envoy_headers: Option<bool>,
    /// Send no `x-ratelimit-*` headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_rate_limit_headers: Option<bool>,
    /// What happens to `X-Forwarded-Client-Cert` (default: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_client_cert: Option<super::xfcc::XfccSpec>,
    /// The largest request head, in KiB (default 60, at most 8192); larger ones get 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_header_limit: Option<u32>,
}

/// `healthCheck` (ClientTrafficPolicy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSettings {
    /// The path answered 200 by the listener itself.
    pub path: String,
}

/// BackendTrafficPolicy `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTrafficPolicySpec {
    /// One target (deprecated form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways (or listeners), HTTPRoutes and GRPCRoutes (or their rules).
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Targets by label.
    #[serde(default)]
    pub target_selectors: Vec<TargetSelector>,
    /// `StrategicMerge` or `JSONMerge`: a route policy merged into its Gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_type: Option<String>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_injection: Option<FaultInjectionSpec>,
    /// Circuit breaking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<BackendTimeoutSpec>,
    /// Retries (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<super::balance::spec::LoadBalancerSpec>,
    /// Active and passive health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<super::balance::health_spec::HealthCheckSpec>,
    /// A PROXY header on each connection to the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<UpstreamProxyProtocolSpec>,
    /// TCP keepalive on connections to the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepaliveSpec>,
    /// How connections to the backends buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<BackendConnectionSpec>,
    /// How the host names of the route's Envoy Gateway `Backend`s are resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<super::dns::DnsSpec>,
    /// HTTP/2 flow-control windows announced to backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<super::http2_settings::Http2Spec>,
    /// Speak the client's protocol (HTTP/1.1 or HTTP/2) to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// Response compression (deprecated for `compressor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Vec<CompressorSpec>>,
    /// Response compression, in order of preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressor: Option<Vec<CompressorSpec>>,
    /// Responses replaced by status (and headers), first match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_override: Option<Vec<super::response_override::spec::ResponseOverrideSpec>>,
    /// The HTTP/1.1 upgrades the route allows (default: `websocket` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_upgrade: Option<Vec<ProtocolUpgradeSpec>>,
    /// Buffer whole requests (up to `limit`) before forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_buffer: Option<RequestBufferSpec>,
    /// How the route's requests are counted (`metrics.routeStatName`) and traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<super::route_stats::BackendTelemetrySpec>,
    /// `Endpoint` (the default: each request to one of the Service's endpoints) or `Service`
    /// (to the Service's cluster IP, as one address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_type: Option<String>,
    /// Paces request and response bodies to bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<BandwidthLimitSpec>,
    /// Refuse requests at random while the rule's success rate is low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_control: Option<super::admission::spec::AdmissionControlSpec>,
}

/// BackendTrafficPolicy `proxyProtocol`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamProxyProtocolSpec {
    /// `V1` or `V2`.
    pub version: String,
}

/// `retry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first try (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Tries sent to one priority before the next is tried (Envoy's `previous_priorities`):
    /// with fallback backends, after every this many tries the levels tried are left out of
    /// the next tries while another level has health; without them it changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attempts_per_priority: Option<u32>,
    /// What is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<RetryOnSpec>,
    /// Each try's timeout and the wait between tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_retry: Option<PerRetrySpec>,
}

/// `retry.retryOn`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryOnSpec {
    /// `5xx`, `gateway-error`, `reset`, `reset-before-request`, `connect-failure`,
    /// `retriable-4xx`, `refused-stream`, `retriable-status-codes`, and gRPC's.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// The codes `retriable-status-codes` retries.
    #[serde(default)]
    pub http_status_codes: Vec<u16>,
}

/// `retry.perRetry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerRetrySpec {
    /// Each try's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The wait between tries.
    #[serde(default, rename = "backOff", skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOffSpec>,
}

/// `retry.perRetry.backOff`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackOffSpec {
    /// The first wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<String>,
    /// The longest wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<String>,
}

/// `rateLimit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// `Local` or `Global` (deprecated: the presence of `local` / `global` decides).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Per-proxy limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalRateLimitSpec>,
    /// Limits shared by every gateway through the rate-limit backend (Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalRateLimitSpec>,
}

/// `rateLimit.global`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalRateLimitSpec {
    /// At most 256 rules.
    #[serde(default)]
    pub rules: Vec<RateLimitRuleSpec>,
}

/// `rateLimit.local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRateLimitSpec {
    /// At most 16 rules.
    #[serde(default)]
    pub rules: Vec<RateLimitRuleSpec>,
}

/// `rules[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitRuleSpec {
    /// All must match (none: every request of the route).
    #[serde(default)]
    pub client_selectors: Vec<ClientSelectorSpec>,
    /// The limit.
    pub limit: RateLimitValue,
    /// What a request costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<RateLimitCost>,
    /// One bucket for every target.
    #[serde(default)]
    pub shared: bool,
    /// Count, never refuse.
    #[serde(default)]
    pub shadow_mode: bool,
    /// `Off` or `DraftVersion03`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_rate_limit_headers: Option<String>,
}

/// `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitValue {
    /// Requests per unit.
    pub requests: u32,
    /// `Second`, `Minute`, `Hour`, `Day`, `Week`, `Month` or `Year`.
    pub unit: String,
}

/// `cost`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitCost {
    /// Taken when the request arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CostSpecifier>,
    /// Charged when the response arrives (global limits only): later requests pay it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<CostSpecifier>,
}

/// `cost.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostSpecifier {
    /// `Number` (supported) or `Metadata`.
    pub from: String,
    /// The number of tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Not enforced yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: NotYet,
}

/// `clientSelectors[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSelectorSpec {
    /// Header conditions, ANDed.
    #[serde(default)]
    pub headers: Vec<ValueMatchSpec>,
    /// Methods, ORed.
    #[serde(default)]
    pub methods: Vec<MethodMatchSpec>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchSpec>,
    /// The client's address.
    #[serde(
        default,
        rename = "sourceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_cidr: Option<SourceMatchSpec>,
    /// Query parameter conditions, ANDed.
    #[serde(default)]
    pub query_params: Vec<ValueMatchSpec>,
    /// The authenticated peer's SPIFFE identity, in Istio's form (beyond Envoy Gateway: a
    /// waypoint's per-workload limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_principal: Option<PrincipalMatchSpec>,
}

/// `sourcePrincipal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalMatchSpec {
    /// `Exact` (default), `RegularExpression` or `Distinct` (one bucket per workload).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The identity (`cluster.local/ns/shop/sa/web`), or an expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Match other peers (not with `Distinct`).
    #[serde(default)]
    pub invert: bool,
}

/// A header or query parameter condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatchSpec {
    /// The name.
    pub name: String,
    /// `Exact` (default), `RegularExpression` or `Distinct`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value (not with `Distinct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Match when the condition does not hold.
    #[serde(default)]
    pub invert: bool,
}

/// `methods[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MethodMatchSpec {
    /// The method.
    pub value: String,
    /// Any method but this.
    #[serde(default)]
    pub invert: bool,
}

/// `path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatchSpec {
    /// `PathPrefix` (default), `Exact` or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Match other paths.
    #[serde(default)]
    pub invert: bool,
}

/// `sourceCIDR`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceMatchSpec {
    /// `Exact` (default: one bucket for the block) or `Distinct` (one per address).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The block.
    pub value: String,
    /// Match addresses outside it.
    #[serde(default)]
    pub invert: bool,
}

/// `faultInjection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultInjectionSpec {
    /// A delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelaySpec>,
    /// An abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbortSpec>,
}

/// `faultInjection.delay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelaySpec {
    /// How long.
    pub fixed_delay: String,
    /// Of which share of requests (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// `faultInjection.abort`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbortSpec {
    /// An HTTP status (200–600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// A gRPC status (0–16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u8>,
    /// Of which share of requests (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// `circuitBreaker`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Requests in flight (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<u32>,
    /// Requests talking to the backends at once (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests waiting for one of those places (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Retries at once (default 1024 in Envoy Gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_retries: Option<u32>,
    /// Requests each connection to a backend may carry before it closes (default no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Limits on each endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_endpoint: Option<PerEndpointSpec>,
}

/// `bandwidthLimit`: at least one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthLimitSpec {
    /// Request bodies, client → backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BandwidthRequestSpec>,
    /// Response bodies, backend → client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<BandwidthResponseSpec>,
}

/// `bandwidthLimit.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthRequestSpec {
    /// Bytes per second: a quantity (`1Ki`), or `{value, unit}` with the unit `Second`,
    /// `Minute` or `Hour`.
    pub limit: serde_yaml_ng::Value,
}

/// `bandwidthLimit.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthResponseSpec {
    /// As for requests.
    pub limit: serde_yaml_ng::Value,
    /// The delay trailers added to responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_trailers: Option<BandwidthTrailersSpec>,
}

/// `bandwidthLimit.response.responseTrailers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthTrailersSpec {
    /// Put before each trailer's name (`x-eg` → `x-eg-bandwidth-request-delay-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `timeout` (BackendTrafficPolicy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTimeoutSpec {
    /// HTTP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<BackendHttpTimeoutSpec>,
    /// TCP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<BackendTcpTimeoutSpec>,
}

/// `timeout.tcp` (BackendTrafficPolicy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTcpTimeoutSpec {
    /// How long opening a connection to a backend may take (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
}

/// `timeout.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendHttpTimeoutSpec {
    /// The whole response must arrive within this (`0s`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// How long a connection to a backend may stay unused before it closes (default 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_idle_timeout: Option<String>,
    /// How long a connection to a backend may live (default no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<String>,
    /// How long a request and its response may take in all (504 before the answer, the
    /// body cut after; default no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<String>,
    /// How long a response body may go without a frame (default: the forwarder's 5 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<String>,
}

/// `httpUpgrade[]`: one protocol the route may upgrade to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtocolUpgradeSpec {
    /// The `Upgrade` token (`websocket`, `spdy/3.1`…), or `CONNECT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How CONNECT is handled (only with type `CONNECT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectConfigSpec>,
}

/// `httpUpgrade[].connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectConfigSpec {
    /// Terminate the CONNECT and relay its payload to the backend as raw TCP (default false:
    /// the CONNECT is passed on to the backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
}

/// Envoy Gateway's `HTTPHeaderFilter` (at most 64 entries per list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderFilterSpec {
    /// Overwrite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<routing::model::HttpHeader>,
    /// Append.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<routing::model::HttpHeader>,
    /// Set when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_if_absent: Vec<routing::model::HttpHeader>,
    /// Delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Delete every header whose name matches (`StringMatch`: Exact, Prefix, Suffix,
    /// RegularExpression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_on_match: Vec<crate::traffic::client_tls::StringMatchSpec>,
}

/// ClientTrafficPolicy `timeout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTimeoutSpec {
    /// TCP timeouts (TCP and TLS listeners' relayed streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ClientTcpTimeoutSpec>,
    /// HTTP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<ClientHttpTimeoutSpec>,
}

/// ClientTrafficPolicy `timeout.tcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTcpTimeoutSpec {
    /// How long a relayed stream may go without a byte either way (default 1 h; `0s`: no
    /// limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// ClientTrafficPolicy `timeout.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientHttpTimeoutSpec {
    /// How long a client may take to send a request's headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_received_timeout: Option<String>,
    /// How long a request may wait for its response to start (`0s`: no limit): then 408 if
    /// its body had not all arrived, else 504 (Envoy's `request_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_received_timeout: Option<String>,
    /// How long a connection without requests in flight stays open (default 1 h; `0s`: no
    /// limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// How long a stream's body may go without a frame either way (`0s`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<String>,
}

/// `compressor[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompressorSpec {
    /// `Gzip`, `Brotli` or `Zstd`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Gzip settings (none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<serde_yaml_ng::Mapping>,
    /// Brotli settings (none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brotli: Option<serde_yaml_ng::Mapping>,
    /// Zstd settings (none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<serde_yaml_ng::Mapping>,
    /// Smallest response compressed (a quantity; default 30 bytes, at least 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_content_length: Option<serde_yaml_ng::Value>,
}

/// `requestBuffer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestBufferSpec {
    /// The largest body buffered (a quantity); larger requests are answered 413.
    pub limit: serde_yaml_ng::Value,
}

/// `tcpKeepalive`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepaliveSpec {
    /// Unanswered probes before the connection is dropped (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before the first probe (default 7200s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_time: Option<String>,
    /// Time between probes (default 75s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// BackendTrafficPolicy `connection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConnectionSpec {
    /// Not enforced yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_limit: NotYet,
    /// `SO_RCVBUF` and `SO_SNDBUF` of each connection to a backend (a quantity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_buffer_limit: Option<serde_yaml_ng::Value>,
    /// Connections opened ahead of need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconnect: Option<PreconnectSpec>,
}

/// BackendTrafficPolicy `circuitBreaker.perEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerEndpointSpec {
    /// The most connections to one endpoint (default: no limit of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// BackendTrafficPolicy `connection.preconnect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreconnectSpec {
    /// Connections to keep open to each endpoint, in percent of the busy ones (100–300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_endpoint_percent: Option<u32>,
    /// Connections opened ahead of need to the endpoint the balancer will likely pick next, in
    /// percent of the requests in flight (at least 100; round robin and random only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive_percent: Option<u32>,
}

/// ClientTrafficPolicy `connection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConnectionSpec {
    /// Concurrent connections per listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<ConnectionLimitSpec>,
    /// The most request body bytes kept so that a retry can send the body again (a
    /// quantity; Envoy Gateway's default 32Ki). A larger body is not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_limit: Option<serde_yaml_ng::Value>,
    /// `SO_RCVBUF` and `SO_SNDBUF` of each accepted connection (a quantity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_buffer_limit: Option<serde_yaml_ng::Value>,
    /// Connections accepted in a row before the listener lets other work run (default 1;
    /// 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_accept_per_socket_event: Option<u32>,
}

/// `connection.connectionLimit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionLimitSpec {
    /// The most connections open at once (at least 1; absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    /// How long a refused connection is held before it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_delay: Option<String>,
    /// How long a connection may live; then it is closed gracefully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<String>,
    /// How many requests a connection may carry; then it is closed gracefully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u64>,
    /// How long one request and its response may take (408, or 504 once the request arrived
    /// whole, before the answer; the body cut after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<String>,
}

/// ClientTrafficPolicy `proxyProtocol`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocolSettings {
    /// Also accept connections without a header (default false: they are closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// The fields of a spec that are set but not enforced yet, by their YAML path.
pub trait UnsupportedFields {
    /// `spec.…` paths of set, unenforced fields.
    fn unsupported(&self) -> Vec<&'static str>;
}

fn set(found: &mut Vec<&'static str>, field: &NotYet, path: &'static str) {
    if field.is_some() {
        found.push(path);
    }
}

impl UnsupportedFields for ClientTrafficPolicySpec {
    fn unsupported(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

impl UnsupportedFields for BackendTrafficPolicySpec {
    fn unsupported(&self) -> Vec<&'static str> {
        let mut found = Vec::new();
        if let Some(connection) = &self.connection {
            set(
                &mut found,
                &connection.buffer_limit,
                "spec.connection.bufferLimit",
            );
        }
        if let Some(telemetry) = &self.telemetry {
            set(&mut found, &telemetry.tracing, "spec.telemetry.tracing");
        }
        found
    }
}
