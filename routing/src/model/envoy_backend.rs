//! Envoy Gateway's `Backend` (`gateway.envoyproxy.io/v1alpha1`), a backendRef kind whose
//! endpoints are written out — IP addresses, or host names (`fqdn`) the runtime resolves — for
//! destinations outside the cluster's Services. Read from the object as loaded.

use std::net::IpAddr;

use serde::Deserialize;

use super::ForeignObject;

/// The API group of `Backend`.
pub const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";

/// `Backend.spec`, the fields this data plane reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyBackendSpec {
    /// Where requests go (1–64).
    pub endpoints: Vec<EnvoyBackendEndpoint>,
    /// `gateway.envoyproxy.io/h2c`, `…/ws` or `…/wss`.
    #[serde(default)]
    pub app_protocols: Vec<String>,
    /// A fallback backend: a second priority level of the rules that name it, taking traffic
    /// as the primary backends' health falls.
    #[serde(default)]
    pub fallback: Option<bool>,
    /// TLS to the endpoints (a BackendTLSPolicy targeting the Backend takes precedence).
    #[serde(default)]
    pub tls: Option<EnvoyBackendTls>,
}

/// `Backend.spec.tls`: how the endpoints' certificates are verified, and the SNI sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyBackendTls {
    /// ConfigMaps (in the Backend's namespace) whose `ca.crt` holds the trust anchors.
    #[serde(default)]
    pub ca_certificate_refs: Vec<crate::model::PolicyTargetRef>,
    /// `System`: the well-known public roots.
    #[serde(default, rename = "wellKnownCACertificates")]
    pub well_known_ca_certificates: Option<String>,
    /// Accept any certificate the endpoint presents (the handshake is still authenticated
    /// by its key).
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    /// The SNI sent, and the name the certificate is verified for.
    #[serde(default)]
    pub sni: Option<String>,
    /// Every other field: the settings of `BackendTLSConfig` (client certificate, versions,
    /// ciphers, curves, signature algorithms, ALPN), read by the resolver; others are
    /// unknown.
    #[serde(flatten)]
    pub config: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// One endpoint: exactly one of `ip`, `fqdn`, `unix`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyBackendEndpoint {
    /// An IP address and port.
    #[serde(default)]
    pub ip: Option<IpEndpoint>,
    /// A host name and port, resolved by the runtime.
    #[serde(default)]
    pub fqdn: Option<FqdnEndpoint>,
    /// A Unix domain socket.
    #[serde(default)]
    pub unix: Option<UnixEndpoint>,
    /// The zone of the endpoint.
    #[serde(default)]
    pub zone: Option<String>,
}

/// `unix`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnixEndpoint {
    /// The socket's path.
    pub path: String,
}

/// `ip`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpEndpoint {
    /// The address.
    pub address: IpAddr,
    /// The port.
    pub port: u16,
}

/// `fqdn`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnEndpoint {
    /// The host name.
    pub hostname: String,
    /// The port.
    pub port: u16,
}

/// The most endpoints a Backend may list (the CRD's bound).
pub const MAX_BACKEND_ENDPOINTS: usize = 64;

impl EnvoyBackendSpec {
    /// Reads the spec of `object` (a `Backend`); the error names the field.
    pub fn of(object: &ForeignObject) -> Result<Self, String> {
        let spec = object
            .body
            .get("spec")
            .cloned()
            .ok_or_else(|| "spec is missing".to_owned())?;
        let spec: EnvoyBackendSpec =
            serde_yaml_ng::from_value(spec).map_err(|e| format!("spec: {e}"))?;
        if spec.endpoints.is_empty() || spec.endpoints.len() > MAX_BACKEND_ENDPOINTS {
            return Err(format!(
                "spec.endpoints: between 1 and {MAX_BACKEND_ENDPOINTS} endpoints"
            ));
        }
        Ok(spec)
    }

    /// The host names of its `fqdn` endpoints.
    pub fn hostnames(&self) -> impl Iterator<Item = &str> {
        self.endpoints
            .iter()
            .filter_map(|endpoint| endpoint.fqdn.as_ref())
            .map(|fqdn| fqdn.hostname.as_str())
    }
}

/// Whether `object` is a `Backend`.
pub fn is_envoy_backend(object: &ForeignObject) -> bool {
    object.kind == "Backend" && object.group() == ENVOY_GATEWAY_GROUP
}
