//! GatewayClass, Gateway and its listeners.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::refs::SecretObjectReference;

/// A GatewayClass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayClass {
    /// Metadata (cluster-scoped: no namespace).
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: GatewayClassSpec,
}

/// `GatewayClass.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayClassSpec {
    /// The controller that owns the class.
    pub controller_name: String,
}

/// A Gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: GatewaySpec,
}

/// `Gateway.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The GatewayClass.
    pub gateway_class_name: String,
    /// The listeners (names unique).
    pub listeners: Vec<Listener>,
    /// Addresses to bind; none: all interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    /// Gateway-wide TLS: client-certificate validation of frontends, the client certificate
    /// presented to backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTls>,
    /// Which namespaces' ListenerSets may add listeners (none: no ListenerSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_listeners: Option<super::listener_set::AllowedListeners>,
}

/// `Gateway.spec.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayTls {
    /// Validation of client certificates on the Gateway's TLS listeners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendTls>,
    /// TLS towards backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<GatewayBackendTls>,
}

/// `spec.tls.frontend`: a default and per-port overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FrontendTls {
    /// For every port without an override.
    pub default: FrontendTlsConfig,
    /// Overrides by port.
    pub per_port: Vec<FrontendTlsPort>,
}

/// One port's frontend TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FrontendTlsPort {
    /// The port.
    pub port: u16,
    /// Its settings.
    pub tls: FrontendTlsConfig,
}

/// Frontend TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FrontendTlsConfig {
    /// Client-certificate validation; none: clients are not asked for certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<FrontendTlsValidation>,
}

/// `validation`: the CAs client certificates must chain to, and what happens otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FrontendTlsValidation {
    /// ConfigMaps (key `ca.crt`).
    pub ca_certificate_refs: Vec<SecretObjectReference>,
    /// `AllowValidOnly` (default) or `AllowInsecureFallback`.
    pub mode: FrontendValidationMode,
}

/// What a client without a valid certificate gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrontendValidationMode {
    /// The TLS handshake fails.
    #[default]
    AllowValidOnly,
    /// The connection is served anyway.
    AllowInsecureFallback,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// `spec.tls.backend`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayBackendTls {
    /// The certificate the Gateway presents to TLS backends (a `kubernetes.io/tls` Secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<SecretObjectReference>,
}

/// A requested Gateway address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    /// Default `IPAddress` (`Hostname` and others are not bound).
    #[serde(default = "ip_address_type", rename = "type")]
    pub address_type: String,
    /// The address.
    pub value: String,
}

fn ip_address_type() -> String {
    "IPAddress".to_owned()
}

/// One listener of a Gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Unique within the Gateway.
    pub name: String,
    /// Host name the listener serves (HTTP, HTTPS, TLS); none: every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port.
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed custom protocol.
    pub protocol: String,
    /// TLS settings (HTTPS and TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Which routes may attach.
    #[serde(default)]
    pub allowed_routes: AllowedRoutes,
}

/// `Listener.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// Default `Terminate`.
    #[serde(default)]
    pub mode: TlsMode,
    /// Certificates (Secrets of type `kubernetes.io/tls`).
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
}

/// TLS mode of a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMode {
    /// The gateway terminates TLS.
    #[default]
    Terminate,
    /// The gateway forwards the TLS stream by SNI.
    Passthrough,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// `Listener.allowedRoutes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AllowedRoutes {
    /// Namespaces routes may come from (default: the Gateway's).
    pub namespaces: RouteNamespaces,
    /// Route kinds; empty: the protocol's default kinds.
    pub kinds: Vec<RouteGroupKind>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteNamespaces {
    /// Default `Same`.
    pub from: FromNamespaces,
    /// Namespace label selector, for `Selector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `allowedRoutes.namespaces.from`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromNamespaces {
    /// The Gateway's namespace.
    #[default]
    Same,
    /// Every namespace.
    All,
    /// Namespaces whose labels match the selector.
    Selector,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelectorRequirement {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values, for `In` and `NotIn`.
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an unknown operator never matches).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|requirement| {
                let value = labels.get(&requirement.key);
                match requirement.operator.as_str() {
                    "In" => value.is_some_and(|v| requirement.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !requirement.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// A route kind in `allowedRoutes.kinds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default = "super::refs::gateway_group")]
    pub group: String,
    /// `HTTPRoute`, `GRPCRoute`, `TLSRoute`, `TCPRoute`, `UDPRoute`.
    pub kind: String,
}
