//! TLSRoute, TCPRoute and UDPRoute: one shape, matched by listener (and SNI for TLS).

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::refs::{BackendRef, ParentReference};

/// A TLSRoute, TCPRoute or UDPRoute (the kind is where the [`Config`](super::Config) keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L4Route {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: L4RouteSpec,
}

/// The spec of an L4 route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L4RouteSpec {
    /// Gateways to attach to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// SNI host names (TLSRoute only, required there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Exactly one rule.
    #[serde(default)]
    pub rules: Vec<L4RouteRule>,
}

/// The rule of an L4 route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct L4RouteRule {
    /// Weighted backends.
    pub backend_refs: Vec<BackendRef>,
}
