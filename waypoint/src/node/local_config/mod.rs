//! ztunnel's local configuration file (`LOCAL_XDS_PATH`), read unchanged
//! (`ztunnel-local-config.md`): top-level `workloads`, `policies`, `services` with ztunnel's
//! camelCase fields, enum spellings and YAML tags; unknown fields refused where ztunnel
//! refuses them, each error naming the file, the path and the field.

mod gateway_address;
mod service;
mod workload;

use mesh_policy::l4::Authorization;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

pub use gateway_address::{Destination, GatewayAddress};
pub use service::{
    CidrVip, ExplicitEndpoint, HealthPolicy, IpFamilies, LoadBalancer, LoadBalancerMode,
    NetworkAddress, RoutingPreference, Service, Visibility, WeightedWaypoint,
};
pub use workload::{
    ApplicationTunnel, ApplicationTunnelProtocol, HealthStatus, Locality, NetworkMode, PortMap,
    TunnelProtocol, Workload,
};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocalConfig {
    /// Workloads, in file order.
    pub workloads: Vec<Workload>,
    /// L4 authorization policies, in file order.
    pub policies: Vec<Authorization>,
    /// Services, in file order.
    pub services: Vec<Service>,
}

/// Why a file was refused (nothing of it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalConfigError {
    /// The YAML does not fit the format.
    #[error("{origin}: {path}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// Where in the document (`workloads[0]`, `services[1].ports`…).
        path: String,
        /// What is wrong, with the position when known.
        message: String,
    },
    /// A workload's `services` key is not `namespace/hostname`.
    #[error("{origin}: workloads[{index}]: failed to parse namespaced hostname: {key}")]
    NamespacedHostname {
        /// The file.
        origin: String,
        /// The workload's index.
        index: usize,
        /// The key.
        key: String,
    },
}

/// The top level as read before workload entries are checked one by one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(default)]
    workloads: Option<Vec<Value>>,
    #[serde(default)]
    policies: Option<Vec<Authorization>>,
    #[serde(default)]
    services: Option<Vec<Service>>,
}

/// Parses the text of a local configuration file read from `origin`.
pub fn parse_local_config(origin: &str, text: &str) -> Result<LocalConfig, LocalConfigError> {
    let invalid = |path: String, message: String| LocalConfigError::Invalid {
        origin: origin.to_owned(),
        path,
        message,
    };
    // One document only; empty, comment-only and null documents are an empty configuration.
    let document: Value =
        serde_yaml_ng::from_str(text).map_err(|e| invalid("(document)".into(), e.to_string()))?;
    if document.is_null() {
        return Ok(LocalConfig::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let top: TopLevel = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        invalid(path, error.into_inner().to_string())
    })?;
    let mut workloads = Vec::new();
    // Workload entries go through a value first, as ztunnel's do: a scalar YAML reads as a
    // number, a boolean or null is refused for a string field.
    for (index, value) in top.workloads.unwrap_or_default().into_iter().enumerate() {
        let workload: Workload = serde_yaml_ng::from_value(value)
            .map_err(|e| invalid(format!("workloads[{index}]"), e.to_string()))?;
        if let Some(key) = workload.services.keys().find(|key| !key.contains('/')) {
            return Err(LocalConfigError::NamespacedHostname {
                origin: origin.to_owned(),
                index,
                key: key.clone(),
            });
        }
        workloads.push(workload);
    }
    Ok(LocalConfig {
        workloads,
        policies: top.policies.unwrap_or_default(),
        services: top.services.unwrap_or_default(),
    })
}
