//! GatewayAddress (`waypoint`, `networkGateway`): `{destination, hboneMtlsPort}`, where the
//! destination is an address `network/IP` or, failing that, a hostname `namespace/hostname`
//! (`ztunnel-local-config.md` §2.2).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A waypoint or gateway reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayAddress {
    /// Where it is.
    pub destination: Destination,
    /// The port to dial, also the service port looked up on a waypoint service.
    pub hbone_mtls_port: u16,
}

/// A GatewayAddress's destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `network/IP`.
    Address {
        /// The network (`""` by default).
        network: String,
        /// The address.
        ip: IpAddr,
    },
    /// `namespace/hostname`: a service (or a workload with that hostname).
    Hostname {
        /// The namespace.
        namespace: String,
        /// The host name.
        hostname: String,
    },
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (first, rest) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is neither network/IP nor namespace/hostname"))?;
        Ok(match rest.parse::<IpAddr>() {
            Ok(ip) => Destination::Address {
                network: first.to_owned(),
                ip,
            },
            Err(_) => Destination::Hostname {
                namespace: first.to_owned(),
                hostname: rest.to_owned(),
            },
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Address { network, ip } => write!(f, "{network}/{ip}"),
            Destination::Hostname {
                namespace,
                hostname,
            } => write!(f, "{namespace}/{hostname}"),
        }
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
