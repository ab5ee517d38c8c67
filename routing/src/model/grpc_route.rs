//! GRPCRoute (GEP-1016).

use serde::{Deserialize, Serialize};

use super::http_route::{HeaderMatchType, HttpHeaderMatch, HttpRouteFilter};
use super::meta::ObjectMeta;
use super::refs::{HttpBackendRef, ParentReference};

/// A GRPCRoute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrpcRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: GrpcRouteSpec,
}

/// `GRPCRoute.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// Gateways or Services to attach to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names (ORed).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<GrpcRouteRule>,
}

/// One gRPC rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteRule {
    /// The rule's optional name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches (ORed); none: every request.
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    pub backend_refs: Vec<HttpBackendRef>,
}

/// One gRPC match: method AND headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteMatch {
    /// Service and method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
}

/// `match.method`: a missing service or method matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcMethodMatch {
    /// Default `Exact`.
    #[serde(rename = "type")]
    pub match_type: HeaderMatchType,
    /// `package.Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}
