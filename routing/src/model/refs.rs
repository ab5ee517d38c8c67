//! References between objects: `parentRefs`, `backendRefs`, secret references.

use serde::{Deserialize, Serialize};

use super::http_route::HttpRouteFilter;

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub(super) fn gateway_group() -> String {
    GATEWAY_GROUP.to_owned()
}

fn gateway_kind() -> String {
    "Gateway".to_owned()
}

fn service_kind() -> String {
    "Service".to_owned()
}

fn secret_kind() -> String {
    "Secret".to_owned()
}

pub(super) fn weight_one() -> u32 {
    1
}

/// A route's `parentRefs` entry: a Gateway (listener) or, for GAMMA, a Service (port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default = "gateway_group")]
    pub group: String,
    /// Default `Gateway`.
    #[serde(default = "gateway_kind")]
    pub kind: String,
    /// Default: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The parent's name.
    pub name: String,
    /// A listener name (Gateway) or port name (Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A listener port (Gateway) or Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A reference to a backend object (Service by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendObjectReference {
    /// Default `""` (core).
    #[serde(default)]
    pub group: String,
    /// Default `Service`.
    #[serde(default = "service_kind")]
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Default: the route's namespace (another one needs a ReferenceGrant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (required for Services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A weighted backend of a TCP, TLS, UDP or gRPC rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend: BackendObjectReference,
    /// Default 1; 0 means no traffic.
    #[serde(default = "weight_one")]
    pub weight: u32,
}

/// A weighted backend of an HTTP (or gRPC) rule, with filters applied only when it is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend: BackendObjectReference,
    /// Default 1; 0 means no traffic.
    #[serde(default = "weight_one")]
    pub weight: u32,
    /// Filters applied when this backend serves the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

/// A reference to a Secret (a listener's certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// Default `""`.
    #[serde(default)]
    pub group: String,
    /// Default `Secret`.
    #[serde(default = "secret_kind")]
    pub kind: String,
    /// The Secret's name.
    pub name: String,
    /// Default: the Gateway's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
