//! Workload entries of ztunnel's local configuration (`ztunnel-local-config.md` §2, §3).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::gateway_address::GatewayAddress;

/// `servicePort: targetPort` (integer keys).
pub type PortMap = BTreeMap<u16, u16>;

/// One workload (a pod, or a VM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Its addresses (may be empty).
    pub workload_ips: Vec<IpAddr>,
    /// The identity namespace.
    pub namespace: String,
    /// Service memberships: `"namespace/hostname"` → this endpoint's port map.
    pub services: BTreeMap<String, PortMap>,
    /// The primary key (endpoints reference it).
    #[serde(default)]
    pub uid: String,
    /// Matched against the proxied workload's name.
    #[serde(default)]
    pub name: String,
    /// The identity service account (default `""`).
    #[serde(default)]
    pub service_account: String,
    /// The identity trust domain (default `""`).
    #[serde(default)]
    pub trust_domain: String,
    /// The network of `workloadIps`.
    #[serde(default)]
    pub network: String,
    /// How peers reach it.
    #[serde(default)]
    pub protocol: TunnelProtocol,
    /// `HostNetwork` workloads are never found by IP.
    #[serde(default)]
    pub network_mode: NetworkMode,
    /// A DNS name resolved when the workload has no usable IP.
    #[serde(default)]
    pub hostname: String,
    /// The node it runs on.
    #[serde(default)]
    pub node: String,
    /// Its waypoint, for traffic addressed to its IPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<GatewayAddress>,
    /// The east-west gateway that reaches it from another network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_gateway: Option<GatewayAddress>,
    /// How inbound traffic is handed to the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_tunnel: Option<ApplicationTunnel>,
    /// Extra policies (`namespace/name`), the only way `WorkloadSelector` policies apply.
    #[serde(default)]
    pub authorization_policies: Vec<String>,
    /// Endpoint health.
    #[serde(default)]
    pub status: HealthStatus,
    /// Relative weight among endpoints (0: never picked).
    #[serde(default = "one")]
    pub capacity: u32,
    /// Locality for load-balancing scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
    /// The cluster, for load-balancing scopes and baggage.
    #[serde(default)]
    pub cluster_id: String,
    /// Telemetry: the owning workload's name.
    #[serde(default)]
    pub workload_name: String,
    /// Telemetry: the owning workload's kind, verbatim.
    #[serde(default)]
    pub workload_type: String,
    /// Telemetry: `service.name`.
    #[serde(default)]
    pub canonical_name: String,
    /// Telemetry: `service.version`.
    #[serde(default)]
    pub canonical_revision: String,
    /// Certificate prefetch in shared mode only.
    #[serde(default)]
    pub native_tunnel: bool,
}

fn one() -> u32 {
    1
}

/// How peers reach a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TunnelProtocol {
    /// Plain TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// An mTLS HBONE tunnel to `ip:15008`.
    #[serde(rename = "HBONE")]
    Hbone,
}

/// Whether the workload's IP is its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Its own IP.
    #[default]
    Standard,
    /// The node's IP, shared: never indexed by IP.
    HostNetwork,
}

/// Endpoint health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HealthStatus {
    /// Used as an endpoint.
    #[default]
    Healthy,
    /// Used only under `healthPolicy: AllowAll` (or when addressed by IP).
    Unhealthy,
}

/// `applicationTunnel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationTunnel {
    /// `NONE` or `PROXY`.
    pub protocol: ApplicationTunnelProtocol,
    /// Every inbound stream goes to this port (policies see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// How the application receives inbound streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApplicationTunnelProtocol {
    /// As they are.
    #[serde(rename = "NONE")]
    None,
    /// Preceded by a PROXY v2 header with the client identity in TLV 0xD0.
    #[serde(rename = "PROXY")]
    Proxy,
}

/// A workload's locality (all three keys required when present; others ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locality {
    /// The region.
    pub region: String,
    /// The zone.
    pub zone: String,
    /// The subzone.
    pub subzone: String,
}

impl Workload {
    /// `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`, empty values included.
    pub fn identity_uri(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}
