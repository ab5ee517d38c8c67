//! Traffic and security policy for data planes built from tower layers.
//!
//! This crate will own traffic policy (timeouts, retries, rate limits, load balancing, circuit
//! breaking, outlier detection) and security policy (CORS, basic, API-key, JWT and OIDC
//! authentication, external authorization, Istio AuthorizationPolicy at L4 and L7), each as a
//! tower `Layer` + `Service` pair with a plain-data parameter struct.
//!
//! Built so far:
//! - [`security`]: Envoy Gateway's SecurityPolicy — CORS, API keys, basic auth, authorization
//!   rules — attached by target and enforced by one tower layer.
//! - [`traffic`]: Envoy Gateway's ClientTrafficPolicy and BackendTrafficPolicy — client IP
//!   detection, path normalisation, local rate limits, fault injection, circuit breaking.
//! - [`l4`]: L4 authorization with Istio ztunnel's model and decision order (peer identity,
//!   namespaces, service accounts, source and destination addresses and ports).
//!
//! It may depend on `hbone` for identity types and on `routing` (see ARCHITECTURE.md).

pub mod istio;
pub mod l4;
mod policy_status;
pub mod security;
pub mod traffic;
