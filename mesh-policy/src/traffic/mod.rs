//! Envoy Gateway's ClientTrafficPolicy and BackendTrafficPolicy (policy.md §1–§2) as sans-IO
//! engines and tower layers: client IP detection ([`client_ip`]), path and header
//! normalisation ([`path`], [`normalize`]), local rate limits ([`rate_limit`]), fault
//! injection ([`fault`]), circuit breaking ([`circuit_breaker`]) and load balancing
//! ([`balance`], a picker any forwarder can call) — each a `Layer` with
//! plain-data parameters usable in any tower stack. The policies are read from Kubernetes
//! YAML ([`model`]), compiled ([`compile`]), attached to listeners and route rules
//! ([`attach`]) and applied on a gateway's request path from the policy slots ([`layer`]).

pub mod admission;
pub mod attach;
pub mod balance;
pub mod bandwidth;
pub mod buffer;
pub mod circuit_breaker;
pub mod client_hello;
pub mod client_ip;
pub mod client_tls;
pub mod compile;
pub mod dns;
pub mod facts;
pub mod fault;
pub mod future;
pub mod global_layer;
pub mod header_format;
pub mod headers;
pub mod http2_settings;
pub mod late_headers;
pub mod layer;
pub mod model;
pub mod normalize;
pub mod path;
pub mod rate_limit;
pub mod response_override;
pub mod route_stats;
pub mod tls_fingerprint;
mod upstream;
pub mod xfcc;

pub use attach::{AttachedBackendTraffic, AttachedClientTraffic, TrafficPolicies};
pub use buffer::RequestBufferFromRoute;
pub use circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
pub use client_ip::{ClientAddress, ClientAddressLayer, ClientIpDetection};
pub use fault::{FaultInjection, FaultInjectionLayer};
pub use global_layer::GlobalRateLimitFromRoute;
pub use late_headers::LateResponseHeaders;
pub use layer::{
    BackendTrafficFromRoute, ClientTrafficFromListener, FaultFromRoute, HealthCheckFailing,
};
pub use normalize::{Normalization, PathNormalizationLayer};
pub use rate_limit::{LocalRateLimit, LocalRateLimitLayer};
pub use response_override::OverrideResponses;
