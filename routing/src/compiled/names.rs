//! An Envoy Gateway `Backend`'s endpoints as written — addresses, and host names with every
//! address they resolved to — and the address family a route's policy asks of those names
//! (BackendTrafficPolicy `dns.lookupFamily`), from which the backend's endpoints are built.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::backend::Endpoint;

/// Which addresses of a host name a backend uses (Envoy's DNS lookup family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum LookupFamily {
    /// IPv4 addresses only.
    Ipv4,
    /// IPv6 addresses only.
    Ipv6,
    /// IPv4 addresses, or IPv6 ones when there is none (the default).
    #[default]
    Ipv4Preferred,
    /// IPv6 addresses, or IPv4 ones when there is none.
    Ipv6Preferred,
    /// Both.
    Ipv4AndIpv6,
}

impl LookupFamily {
    /// The addresses of `resolved` this family keeps, in their order.
    pub fn select(self, resolved: &[IpAddr]) -> Vec<IpAddr> {
        let has_v4 = resolved.iter().any(IpAddr::is_ipv4);
        let has_v6 = resolved.iter().any(IpAddr::is_ipv6);
        let keep_v4 = match self {
            LookupFamily::Ipv4 | LookupFamily::Ipv4AndIpv6 => true,
            LookupFamily::Ipv6 => false,
            LookupFamily::Ipv4Preferred => true,
            LookupFamily::Ipv6Preferred => !has_v6,
        };
        let keep_v6 = match self {
            LookupFamily::Ipv6 | LookupFamily::Ipv4AndIpv6 => true,
            LookupFamily::Ipv4 => false,
            LookupFamily::Ipv6Preferred => true,
            LookupFamily::Ipv4Preferred => !has_v4,
        };
        resolved
            .iter()
            .copied()
            .filter(|address| match address {
                IpAddr::V4(_) => keep_v4,
                IpAddr::V6(_) => keep_v6,
            })
            .collect()
    }
}

/// One endpoint of a `Backend` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenEndpoint {
    /// An address (`ip`).
    Address(Endpoint),
    /// A host name (`fqdn`), with what it resolved to.
    Name(NamedEndpoint),
}

/// A host name endpoint and every address (both families) it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEndpoint {
    /// The host name.
    pub hostname: String,
    /// The port.
    pub port: u16,
    /// The zone written for it.
    pub zone: Option<Arc<str>>,
    /// What the name resolved to.
    pub addresses: Vec<IpAddr>,
}

/// A `Backend`'s endpoints as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendNames(pub Vec<WrittenEndpoint>);

impl BackendNames {
    /// The host names written.
    pub fn hostnames(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|endpoint| match endpoint {
            WrittenEndpoint::Name(named) => Some(named.hostname.as_str()),
            WrittenEndpoint::Address(_) => None,
        })
    }

    /// The endpoints, each name giving the addresses of `family`.
    pub fn endpoints(&self, family: LookupFamily) -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        for written in &self.0 {
            match written {
                WrittenEndpoint::Address(endpoint) => endpoints.push(endpoint.clone()),
                WrittenEndpoint::Name(named) => {
                    endpoints.extend(family.select(&named.addresses).into_iter().map(|ip| {
                        Endpoint {
                            address: SocketAddr::new(ip, named.port),
                            pod: None,
                            zone: named.zone.clone(),
                        }
                    }));
                }
            }
        }
        endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn each_family_keeps_its_addresses() {
        let both = ips(&["127.0.0.1", "::1", "10.0.0.2"]);
        let v4 = ips(&["127.0.0.1", "10.0.0.2"]);
        let v6 = ips(&["::1"]);
        assert_eq!(LookupFamily::Ipv4.select(&both), v4);
        assert_eq!(LookupFamily::Ipv6.select(&both), v6);
        assert_eq!(LookupFamily::Ipv4Preferred.select(&both), v4);
        assert_eq!(LookupFamily::Ipv6Preferred.select(&both), v6);
        assert_eq!(LookupFamily::Ipv4AndIpv6.select(&both), both);
        // A preference falls back to the other family; a strict family does not.
        assert_eq!(LookupFamily::Ipv4Preferred.select(&v6), v6);
        assert_eq!(LookupFamily::Ipv6Preferred.select(&v4), v4);
        assert!(LookupFamily::Ipv6.select(&v4).is_empty());
    }

    #[test]
    fn endpoints_keep_the_written_order() {
        let names = BackendNames(vec![
            WrittenEndpoint::Name(NamedEndpoint {
                hostname: "api.example".into(),
                port: 443,
                zone: Some(Arc::from("a")),
                addresses: ips(&["192.0.2.1", "2001:db8::1"]),
            }),
            WrittenEndpoint::Address(Endpoint {
                address: "10.0.0.9:80".parse().unwrap(),
                pod: None,
                zone: None,
            }),
        ]);
        assert_eq!(names.hostnames().collect::<Vec<_>>(), ["api.example"]);
        let written: Vec<String> = names
            .endpoints(LookupFamily::Ipv4AndIpv6)
            .iter()
            .map(|e| e.address.to_string())
            .collect();
        assert_eq!(
            written,
            ["192.0.2.1:443", "[2001:db8::1]:443", "10.0.0.9:80"]
        );
        assert_eq!(
            names.endpoints(LookupFamily::Ipv6)[0].zone.as_deref(),
            Some("a")
        );
    }
}
