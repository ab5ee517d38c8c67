//! The core objects a gateway reads: Service, EndpointSlice, Secret, Namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;

/// A Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// `Service.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// The virtual IP, `None` for headless Services.
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// Pod selector (informational here: endpoints come from EndpointSlices).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
}

/// One Service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Name (required when there are several ports); EndpointSlice ports match it.
    #[serde(default)]
    pub name: String,
    /// The Service port.
    pub port: u16,
    /// Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<TargetPort>,
    /// Default `TCP`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// E.g. `kubernetes.io/h2c`, `kubernetes.io/ws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

fn tcp() -> String {
    "TCP".to_owned()
}

/// A target port: a number or a container port name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A named port.
    Name(String),
}

/// An EndpointSlice (the Service is named by label `kubernetes.io/service-name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<SlicedEndpoint>,
    /// Ports, matched to Service ports by name.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl EndpointSlice {
    /// The Service this slice belongs to, if labelled.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SlicedEndpoint {
    /// Addresses (usually one).
    pub addresses: Vec<String>,
    /// Readiness.
    pub conditions: EndpointConditions,
    /// The endpoint's host name (usually the pod's), reported by echo backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The object behind the endpoint (a Pod, whose service account is its identity).
    #[serde(rename = "targetRef", skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<EndpointTargetRef>,
    /// The zone the endpoint runs in (`topology.kubernetes.io/zone` of its node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `endpoints[].conditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    /// Unset means ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// One port of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// Matches the Service port's name.
    pub name: String,
    /// The port on the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default `TCP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Application protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// A Secret; a listener certificate is of type `kubernetes.io/tls` with `tls.crt` and `tls.key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The Secret type.
    #[serde(default, rename = "type")]
    pub secret_type: String,
    /// Base64-encoded values (decoded by the loader into `string_data`'s form on use).
    #[serde(default, skip_serializing)]
    pub data: BTreeMap<String, String>,
    /// Plain values.
    #[serde(default, skip_serializing)]
    pub string_data: BTreeMap<String, String>,
}

impl Secret {
    /// The decoded value of `key` (`stringData` wins over `data`); `None` when absent or not
    /// valid base64.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        if let Some(plain) = self.string_data.get(key) {
            return Some(plain.as_bytes().to_vec());
        }
        let encoded: String = self
            .data
            .get(key)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
    }
}

/// A ConfigMap (BackendTLSPolicy reads CA certificates from its `ca.crt` key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMap {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Values.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A Namespace (its labels feed `allowedRoutes` selectors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Metadata (cluster-scoped: the name is the namespace).
    pub metadata: ObjectMeta,
}

/// A Pod: what a mesh needs of it — the service account its identity is built from, and its
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: PodSpec,
    /// The status.
    #[serde(default)]
    pub status: PodStatus,
}

/// `Pod.spec` (the fields a mesh reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The service account (`default` when empty).
    pub service_account_name: String,
}

/// `Pod.status` (the fields a mesh reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// The primary address.
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Every address.
    #[serde(rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
}

/// One of `status.podIPs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

impl Pod {
    /// The service account its identity uses.
    pub fn service_account(&self) -> &str {
        if self.spec.service_account_name.is_empty() {
            "default"
        } else {
            &self.spec.service_account_name
        }
    }

    /// Its addresses, primary first.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.status
            .pod_ip
            .as_deref()
            .into_iter()
            .chain(self.status.pod_ips.iter().map(|ip| ip.ip.as_str()))
    }
}

/// `endpoints[].targetRef`: the object behind an endpoint (usually a Pod).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointTargetRef {
    /// `Pod`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace (the slice's when empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
