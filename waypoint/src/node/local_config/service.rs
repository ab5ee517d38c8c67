//! Service entries of ztunnel's local configuration (`ztunnel-local-config.md` §4).

use std::collections::BTreeMap;
use std::net::IpAddr;

use mesh_policy::l4::Cidr;
use serde::{Deserialize, Serialize};

use super::gateway_address::GatewayAddress;
use super::workload::{HealthStatus, PortMap};

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// The name (telemetry).
    pub name: String,
    /// With `hostname`, the primary key.
    pub namespace: String,
    /// The FQDN.
    pub hostname: String,
    /// VIPs per network.
    pub vips: Vec<NetworkAddress>,
    /// CIDR "VIPs", matched when no exact VIP does.
    #[serde(default)]
    pub cidr_vips: Vec<CidrVip>,
    /// `servicePort: targetPort`; a port must be listed to be usable (target 0: per endpoint).
    pub ports: PortMap,
    /// Explicit endpoints by uid.
    #[serde(default)]
    pub endpoints: BTreeMap<String, ExplicitEndpoint>,
    /// Extra acceptable server identities.
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// The service's waypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<GatewayAddress>,
    /// Waypoints sampled per connection by weight (empty or all zero: `waypoint`).
    #[serde(default)]
    pub weighted_waypoints: Vec<WeightedWaypoint>,
    /// Endpoint selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Which workload IP family to choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_families: Option<IpFamilies>,
    /// Preferred when several services share a VIP or hostname.
    #[serde(default)]
    pub canonical: bool,
    /// Who may resolve it.
    #[serde(default)]
    pub visibility: Visibility,
}

/// `network/IP`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkAddress {
    /// The network (`""` by default).
    pub network: String,
    /// The address.
    pub ip: IpAddr,
}

impl std::str::FromStr for NetworkAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (network, ip) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not network/IP (write \"/{text}\")"))?;
        let ip = ip
            .parse()
            .map_err(|_| format!("{text:?}: {ip:?} is not an IP address"))?;
        Ok(NetworkAddress {
            network: network.to_owned(),
            ip,
        })
    }
}

impl<'de> Deserialize<'de> for NetworkAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for NetworkAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}/{}", self.network, self.ip))
    }
}

/// A CIDR "VIP" (extra keys ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrVip {
    /// The network.
    pub network: String,
    /// The block.
    pub cidr: Cidr,
}

/// An explicit endpoint (not health-filtered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplicitEndpoint {
    /// The workload.
    pub workload_uid: String,
    /// Its port map.
    pub port: PortMap,
    /// Its health.
    pub status: HealthStatus,
}

/// One weighted waypoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedWaypoint {
    /// The waypoint.
    pub destination: GatewayAddress,
    /// Its weight (0: never chosen).
    pub weight: u32,
}

/// `loadBalancer` (all keys required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// Locality preferences in order.
    pub routing_preferences: Vec<RoutingPreference>,
    /// How preferences are applied.
    pub mode: LoadBalancerMode,
    /// Whether unhealthy workloads are endpoints.
    pub health_policy: HealthPolicy,
}

/// A locality preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RoutingPreference {
    Region,
    Zone,
    Subzone,
    Node,
    Cluster,
    Network,
}

/// How locality preferences are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancerMode {
    /// Preferences ignored.
    Standard,
    /// Only endpoints matching every preference.
    Strict,
    /// Only the best-ranked group.
    Failover,
    /// No endpoint selection: plain TCP to the original destination.
    Passthrough,
}

/// Whether unhealthy workloads are endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HealthPolicy {
    /// Healthy ones only.
    OnlyHealthy,
    /// All.
    AllowAll,
}

/// Which IP family a workload address is chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpFamilies {
    /// Either, preferring the destination's.
    Dual,
    /// IPv4 only.
    IPv4,
    /// IPv6 only.
    IPv6,
}

/// Who may resolve a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Visibility {
    /// Everyone.
    #[default]
    Public,
    /// Clients in the service's namespace only.
    Namespace,
}
