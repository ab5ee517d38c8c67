//! Where an outbound connection from the proxied workload goes (`ztunnel-local-config.md`
//! §6), decided sans-IO: passthrough, plain TCP to a workload, or HBONE — to the workload's
//! `:15008` with its `ip:targetPort` as authority, or to a waypoint with the original
//! destination as authority — with the identities the peer must present.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::local_config::{
    ApplicationTunnel, Destination, GatewayAddress, IpFamilies, LoadBalancerMode,
    RoutingPreference, TunnelProtocol, Workload,
};
use super::state::{NodeState, ServiceState};

/// The ports a proxy listens on itself; a connection to one of them on loopback is a self-call.
pub const ILLEGAL_PORTS: [u16; 3] = [15001, 15006, 15008];

/// How to reach the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundRoute {
    /// Plain TCP to the original destination, no identity (unknown destinations).
    Passthrough(SocketAddr),
    /// Plain TCP to a workload that does not speak HBONE.
    Tcp(SocketAddr),
    /// An HBONE tunnel.
    Hbone(HboneRoute),
}

/// An HBONE tunnel to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HboneRoute {
    /// Where to dial (`ip:15008`, or the waypoint's port).
    pub next_hop: SocketAddr,
    /// The CONNECT `:authority`.
    pub authority: SocketAddr,
    /// The identities the peer may present (SPIFFE URIs).
    pub expected_identities: Vec<String>,
    /// Whether the tunnel goes to a waypoint.
    pub via_waypoint: bool,
}

/// Why an outbound connection cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// A loopback destination on one of the proxy's own ports.
    #[error("self-call to {0}")]
    SelfCall(SocketAddr),
    /// The service has no usable endpoint for the port.
    #[error("no healthy upstream for {service} port {port}")]
    NoHealthyUpstream {
        /// `namespace/hostname`.
        service: String,
        /// The service port.
        port: u16,
    },
    /// The waypoint could not be resolved.
    #[error("unknown waypoint {0}")]
    UnknownWaypoint(String),
    /// The chosen workload has no address to dial.
    #[error("workload {0} has no usable IP")]
    NoIp(String),
    /// The chosen workload is in another network (east-west gateways are not supported).
    #[error("workload {0} is in another network")]
    OtherNetwork(String),
}

/// The proxy's outbound context.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// The loaded state.
    pub state: &'a NodeState,
    /// The proxied workload (S).
    pub source: &'a Workload,
    /// The proxy's own network (`NETWORK`).
    pub network: &'a str,
    /// The proxy's own ports (self-call guard).
    pub illegal_ports: &'a [u16],
}

impl Outbound<'_> {
    /// Decides how `destination` (D) is reached (§6.1); `choose(total)` returns a number
    /// below `total` for weighted choices.
    pub fn resolve(
        &self,
        destination: SocketAddr,
        choose: &mut dyn FnMut(u64) -> u64,
    ) -> Result<OutboundRoute, OutboundError> {
        if destination.ip().is_loopback() && self.illegal_ports.contains(&destination.port()) {
            return Err(OutboundError::SelfCall(destination));
        }
        let source = self.source;
        let state = self.state;
        // Step 3: service-addressed? A workload with that IP wins.
        let addressed_service = match state.workload_by_ip(self.network, destination.ip()) {
            Some(_) => None,
            None => state.service_by_vip(self.network, destination.ip(), &source.namespace),
        };
        if let Some(service) = addressed_service
            && let Some(waypoint) = sample_waypoint(service, choose)
        {
            return self.via_waypoint(&waypoint, destination, choose);
        }
        // Step 4: the upstream.
        let (workload, target_port, service) =
            match state.service_by_vip(&source.network, destination.ip(), &source.namespace) {
                Some(service) => {
                    let mode = service.service.load_balancer.as_ref().map(|lb| lb.mode);
                    if mode == Some(LoadBalancerMode::Passthrough) {
                        return Ok(OutboundRoute::Passthrough(destination));
                    }
                    let (workload, port) = self
                        .pick_endpoint(service, destination.port(), false, choose)
                        .ok_or_else(|| no_healthy_upstream(service, destination.port()))?;
                    (workload, port, Some(service))
                }
                None => match state.workload_by_ip(&source.network, destination.ip()) {
                    Some(workload) => (Arc::clone(workload), destination.port(), None),
                    None if addressed_service.is_some() => {
                        let service = addressed_service.map_or_else(String::new, service_key);
                        return Err(OutboundError::NoHealthyUpstream {
                            service,
                            port: destination.port(),
                        });
                    }
                    None => return Ok(OutboundRoute::Passthrough(destination)),
                },
            };
        if workload.network != source.network {
            return Err(OutboundError::OtherNetwork(workload.uid.clone()));
        }
        // Step 6: the workload's own waypoint, for traffic not addressed to a service.
        if addressed_service.is_none()
            && let Some(waypoint) = &workload.waypoint
            && !self.is_waypoint_itself(waypoint)
        {
            return self.via_waypoint(waypoint, destination, choose);
        }
        let ip = choose_ip(
            &workload,
            destination,
            service.map(|s| s.service.ip_families),
        )
        .ok_or_else(|| OutboundError::NoIp(workload.uid.clone()))?;
        let address = SocketAddr::new(ip, target_port);
        Ok(match workload.protocol {
            TunnelProtocol::Tcp => OutboundRoute::Tcp(address),
            TunnelProtocol::Hbone => {
                let mut expected = vec![workload.identity_uri()];
                if let Some(service) = service {
                    expected.extend(service.service.subject_alt_names.iter().cloned());
                }
                OutboundRoute::Hbone(HboneRoute {
                    next_hop: SocketAddr::new(ip, 15008),
                    authority: address,
                    expected_identities: expected,
                    via_waypoint: false,
                })
            }
        })
    }

    /// Whether S is the workload's waypoint (§6.1 step 6): S is `waypoint`'s workload.
    fn is_waypoint_itself(&self, waypoint: &GatewayAddress) -> bool {
        match &waypoint.destination {
            Destination::Address { ip, .. } => self.source.workload_ips.contains(ip),
            Destination::Hostname {
                namespace,
                hostname,
            } => self
                .state
                .service(namespace, hostname)
                .is_some_and(|service| {
                    service
                        .endpoints
                        .iter()
                        .any(|endpoint| endpoint.workload_uid == self.source.uid)
                }),
        }
    }

    /// The HBONE tunnel to `waypoint` carrying D untranslated (§6.2).
    fn via_waypoint(
        &self,
        waypoint: &GatewayAddress,
        destination: SocketAddr,
        choose: &mut dyn FnMut(u64) -> u64,
    ) -> Result<OutboundRoute, OutboundError> {
        let unknown = || OutboundError::UnknownWaypoint(waypoint.destination.to_string());
        let port = waypoint.hbone_mtls_port;
        let (workload, port, service) = match &waypoint.destination {
            Destination::Hostname {
                namespace,
                hostname,
            } => match self.state.service(namespace, hostname) {
                Some(service) => {
                    let (workload, port) = self
                        .pick_endpoint(service, port, true, choose)
                        .ok_or_else(unknown)?;
                    (workload, port, Some(service))
                }
                None => {
                    let workload = self
                        .state
                        .workloads()
                        .find(|w| w.hostname == *hostname && w.namespace == *namespace)
                        .ok_or_else(unknown)?;
                    (Arc::clone(workload), port, None)
                }
            },
            Destination::Address { network, ip } => {
                match self
                    .state
                    .service_by_vip(network, *ip, &self.source.namespace)
                {
                    Some(service) => {
                        let (workload, port) = self
                            .pick_endpoint(service, port, true, choose)
                            .ok_or_else(unknown)?;
                        (workload, port, Some(service))
                    }
                    None => {
                        let workload = self
                            .state
                            .workload_by_ip(network, *ip)
                            .ok_or_else(unknown)?;
                        (Arc::clone(workload), port, None)
                    }
                }
            }
        };
        let ip = match &waypoint.destination {
            Destination::Address { ip, .. } if workload.workload_ips.contains(ip) => *ip,
            _ => choose_ip(&workload, destination, None)
                .ok_or_else(|| OutboundError::NoIp(workload.uid.clone()))?,
        };
        let mut expected = vec![workload.identity_uri()];
        if let Some(service) = service {
            expected.extend(service.service.subject_alt_names.iter().cloned());
        }
        Ok(OutboundRoute::Hbone(HboneRoute {
            next_hop: SocketAddr::new(ip, port),
            authority: destination,
            expected_identities: expected,
            via_waypoint: true,
        }))
    }

    /// An endpoint of `service` for service port `port` and its target port (§3, §4.4);
    /// in waypoint mode an endpoint counts only if the service lists the port or the
    /// workload has an application tunnel.
    fn pick_endpoint(
        &self,
        service: &ServiceState,
        port: u16,
        waypoint_mode: bool,
        choose: &mut dyn FnMut(u64) -> u64,
    ) -> Option<(Arc<Workload>, u16)> {
        let listed = service.service.ports.get(&port).copied();
        if listed.is_none() && !waypoint_mode {
            return None;
        }
        let mut candidates: Vec<(Arc<Workload>, u16)> = service
            .endpoints
            .iter()
            .filter_map(|endpoint| {
                let workload = self.state.workload(&endpoint.workload_uid)?;
                if workload.workload_ips.is_empty() && workload.hostname.is_empty() {
                    return None;
                }
                let tunnel = workload.application_tunnel.as_ref();
                if waypoint_mode && listed.is_none() && tunnel.is_none() {
                    return None;
                }
                let target = endpoint
                    .ports
                    .get(&port)
                    .copied()
                    .or(listed.filter(|p| *p != 0))
                    .or_else(|| {
                        (waypoint_mode && tunnel.and_then(|t: &ApplicationTunnel| t.port).is_some())
                            .then_some(port)
                    })?;
                Some((Arc::clone(workload), target))
            })
            .collect();
        if let Some(lb) = &service.service.load_balancer {
            candidates =
                apply_preferences(candidates, self.source, &lb.routing_preferences, lb.mode);
        }
        let total: u64 = candidates.iter().map(|(w, _)| u64::from(w.capacity)).sum();
        if total == 0 {
            return None;
        }
        let mut point = choose(total) % total;
        for (workload, target) in candidates {
            let weight = u64::from(workload.capacity);
            if point < weight {
                return Some((workload, target));
            }
            point -= weight;
        }
        None
    }
}

fn service_key(service: &Arc<ServiceState>) -> String {
    format!("{}/{}", service.service.namespace, service.service.hostname)
}

fn no_healthy_upstream(service: &Arc<ServiceState>, port: u16) -> OutboundError {
    OutboundError::NoHealthyUpstream {
        service: service_key(service),
        port,
    }
}

/// The service's waypoint: one of `weightedWaypoints` by weight, else `waypoint`.
fn sample_waypoint(
    service: &ServiceState,
    choose: &mut dyn FnMut(u64) -> u64,
) -> Option<GatewayAddress> {
    let weighted = &service.service.weighted_waypoints;
    let total: u64 = weighted.iter().map(|w| u64::from(w.weight)).sum();
    if total > 0 {
        let mut point = choose(total) % total;
        for candidate in weighted {
            let weight = u64::from(candidate.weight);
            if point < weight {
                return Some(candidate.destination.clone());
            }
            point -= weight;
        }
    }
    service.service.waypoint.clone()
}

/// The IP to dial (§6.1 step 7): D's if it is the workload's; else the first allowed by the
/// service's families, preferring D's family.
fn choose_ip(
    workload: &Workload,
    destination: SocketAddr,
    families: Option<Option<IpFamilies>>,
) -> Option<IpAddr> {
    if workload.workload_ips.contains(&destination.ip()) {
        return Some(destination.ip());
    }
    let allowed = |ip: &IpAddr| match families.flatten() {
        Some(IpFamilies::IPv4) => ip.is_ipv4(),
        Some(IpFamilies::IPv6) => ip.is_ipv6(),
        _ => true,
    };
    let same_family = |ip: &IpAddr| ip.is_ipv4() == destination.is_ipv4();
    workload
        .workload_ips
        .iter()
        .filter(|ip| allowed(ip))
        .find(|ip| same_family(ip))
        .or_else(|| workload.workload_ips.iter().find(|ip| allowed(ip)))
        .copied()
}

/// Locality preferences (§4.4): `Strict` keeps endpoints matching every preference,
/// `Failover` the best-ranked group, `Standard` ignores them.
fn apply_preferences(
    candidates: Vec<(Arc<Workload>, u16)>,
    source: &Workload,
    preferences: &[RoutingPreference],
    mode: LoadBalancerMode,
) -> Vec<(Arc<Workload>, u16)> {
    let rank = |workload: &Workload| rank(source, workload, preferences);
    match mode {
        LoadBalancerMode::Strict => candidates
            .into_iter()
            .filter(|(w, _)| preferences.iter().all(|p| same(source, w, *p)))
            .collect(),
        LoadBalancerMode::Failover => {
            let best = candidates.iter().map(|(w, _)| rank(w)).max().unwrap_or(0);
            candidates
                .into_iter()
                .filter(|(w, _)| rank(w) == best)
                .collect()
        }
        LoadBalancerMode::Standard | LoadBalancerMode::Passthrough => candidates,
    }
}

/// Leading preferences matched, stopping at the first mismatch; a first `Network`
/// preference does not stop the scan and weighs as much as all the others.
fn rank(source: &Workload, workload: &Workload, preferences: &[RoutingPreference]) -> usize {
    let mut rank = 0;
    for (index, preference) in preferences.iter().enumerate() {
        let matched = same(source, workload, *preference);
        if index == 0 && *preference == RoutingPreference::Network {
            if matched {
                rank += preferences.len().saturating_sub(1) + 1;
            }
            continue;
        }
        if !matched {
            break;
        }
        rank += 1;
    }
    rank
}

fn same(a: &Workload, b: &Workload, preference: RoutingPreference) -> bool {
    let locality = |w: &Workload| w.locality.clone().unwrap_or_default();
    match preference {
        RoutingPreference::Region => locality(a).region == locality(b).region,
        RoutingPreference::Zone => locality(a).zone == locality(b).zone,
        RoutingPreference::Subzone => locality(a).subzone == locality(b).subzone,
        RoutingPreference::Node => a.node == b.node,
        RoutingPreference::Cluster => a.cluster_id == b.cluster_id,
        RoutingPreference::Network => a.network == b.network,
    }
}
