//! What the node proxy does with an inbound connection (`ztunnel-local-config.md` §7),
//! decided sans-IO: the HBONE destination check (400), the upstream address with service
//! ports translated and the application tunnel applied (503 when there is none), and L4
//! authorization (401) — or, for plaintext captured on 15006, the policies alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hbone::connect_headers::Authority;
use hbone::identity::SpiffeId;
use hbone::proxy_protocol::ProxyHeader;
use http::StatusCode;
use mesh_policy::l4::{Connection, Denied, authorize};

use super::local_config::{ApplicationTunnelProtocol, Destination, GatewayAddress, Workload};
use super::state::NodeState;

/// Where an accepted inbound stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRoute {
    /// The application's address.
    pub upstream: SocketAddr,
    /// A PROXY v2 header to write first (`applicationTunnel: PROXY`).
    pub proxy_header: Option<ProxyHeader<'static>>,
}

/// Why an inbound stream is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The authority's IP is not the address the tunnel was made to (400).
    #[error("ip mismatch: {dialled} != {authority}")]
    IpMismatch {
        /// The address dialled.
        dialled: IpAddr,
        /// The authority's IP.
        authority: IpAddr,
    },
    /// No upstream port for a host-name authority, or no VIP for the PROXY header (503).
    #[error("no upstream for {0}")]
    NoUpstream(String),
    /// The destination port is one of the proxy's own (503).
    #[error("self-call to port {0}")]
    SelfCall(u16),
    /// An authorization policy refused the connection (401).
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl InboundError {
    /// The status answering the CONNECT.
    pub fn status(&self) -> StatusCode {
        match self {
            InboundError::IpMismatch { .. } => StatusCode::BAD_REQUEST,
            InboundError::Denied(_) => StatusCode::UNAUTHORIZED,
            InboundError::NoUpstream(_) | InboundError::SelfCall(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// A CONNECT as the inbound decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct InboundConnect<'a> {
    /// The `:authority`.
    pub authority: &'a Authority,
    /// The address the tunnel connection was made to.
    pub dialled: SocketAddr,
    /// The tunnel's TCP peer.
    pub peer: SocketAddr,
    /// The peer's certificate identity.
    pub identity: Option<&'a SpiffeId>,
}

/// The proxy's inbound context.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The loaded state.
    pub state: &'a NodeState,
    /// The proxied workload (S): every inbound connection is for it.
    pub local: &'a Workload,
    /// The proxy's own network (`NETWORK`).
    pub network: &'a str,
    /// The proxy's own ports.
    pub illegal_ports: &'a [u16],
    /// `applicationTunnel: PROXY` delivers to loopback (`LOCALHOST_APP_TUNNEL`, default true).
    pub localhost_app_tunnel: bool,
}

impl Inbound<'_> {
    /// Decides an HBONE CONNECT (§7.1, §7.2).
    pub fn hbone(&self, connect: &InboundConnect<'_>) -> Result<InboundRoute, InboundError> {
        let local = self.local;
        let dialled = connect.dialled.ip();
        let (port, proxy_destination) = match connect.authority {
            Authority::Socket(target) => {
                if target.ip() != dialled
                    && local.application_tunnel.is_none()
                    && !self.is_waypoint_for(target.ip(), dialled)
                {
                    return Err(InboundError::IpMismatch {
                        dialled,
                        authority: target.ip(),
                    });
                }
                (target.port(), Some(*target))
            }
            Authority::Host { host, port } => {
                let service = self.state.service_by_hostname(host, &local.namespace);
                let key =
                    service.map(|s| format!("{}/{}", s.service.namespace, s.service.hostname));
                let target = key
                    .as_ref()
                    .and_then(|key| local.services.get(key))
                    .and_then(|ports| ports.get(port).copied())
                    .or_else(|| {
                        service
                            .and_then(|s| s.service.ports.get(port).copied())
                            .filter(|p| *p != 0)
                    })
                    .ok_or_else(|| InboundError::NoUpstream(format!("{host}:{port}")))?;
                let vip = service.and_then(|s| {
                    let in_network = || s.service.vips.iter().filter(|v| v.network == self.network);
                    in_network()
                        .find(|v| v.ip.is_ipv4())
                        .or_else(|| in_network().next())
                        .map(|v| SocketAddr::new(v.ip, *port))
                });
                (target, vip)
            }
        };
        if self.illegal_ports.contains(&port) {
            return Err(InboundError::SelfCall(port));
        }
        let mut upstream = SocketAddr::new(dialled, port);
        let mut proxy_header = None;
        if let Some(tunnel) = &local.application_tunnel {
            if let Some(port) = tunnel.port {
                upstream.set_port(port);
            }
            if tunnel.protocol == ApplicationTunnelProtocol::Proxy {
                let destination = proxy_destination.ok_or_else(|| {
                    InboundError::NoUpstream(format!("no VIP for {}", connect.authority))
                })?;
                let identity = connect.identity.map(SpiffeId::as_str);
                proxy_header = Some(ProxyHeader::sandwich(connect.peer, destination, identity));
                if self.localhost_app_tunnel {
                    let loopback = if upstream.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::LOCALHOST)
                    } else {
                        IpAddr::V6(Ipv6Addr::LOCALHOST)
                    };
                    upstream.set_ip(loopback);
                }
            }
        }
        let connection = Connection {
            source: connect.peer.ip(),
            destination: SocketAddr::new(dialled, upstream.port()),
            identity: connect.identity,
        };
        authorize(self.state.policies_for(local), &connection)?;
        Ok(InboundRoute {
            upstream,
            proxy_header,
        })
    }

    /// Decides a plaintext connection captured on 15006 (§7.3): policies with no identity
    /// and the original destination, then a plain connection to it.
    pub fn plaintext(
        &self,
        source: SocketAddr,
        original_destination: SocketAddr,
    ) -> Result<SocketAddr, InboundError> {
        if self.illegal_ports.contains(&original_destination.port()) {
            return Err(InboundError::SelfCall(original_destination.port()));
        }
        let connection = Connection {
            source: source.ip(),
            destination: original_destination,
            identity: None,
        };
        authorize(self.state.policies_for(self.local), &connection)?;
        Ok(original_destination)
    }

    /// Whether `authority` belongs to a service or workload whose waypoint is the local
    /// workload (reached at `dialled`).
    fn is_waypoint_for(&self, authority: IpAddr, dialled: IpAddr) -> bool {
        let state = self.state;
        let by_service = state
            .service_by_vip(self.network, authority, &self.local.namespace)
            .is_some_and(|service| {
                let waypoints = service
                    .service
                    .weighted_waypoints
                    .iter()
                    .map(|w| &w.destination)
                    .chain(service.service.waypoint.as_ref());
                waypoints
                    .into_iter()
                    .any(|w| self.resolves_to_local(w, dialled))
            });
        by_service
            || state
                .workload_by_ip(self.network, authority)
                .and_then(|workload| workload.waypoint.as_ref())
                .is_some_and(|w| self.resolves_to_local(w, dialled))
    }

    fn resolves_to_local(&self, waypoint: &GatewayAddress, dialled: IpAddr) -> bool {
        match &waypoint.destination {
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
                        .any(|endpoint| endpoint.workload_uid == self.local.uid)
                }),
            Destination::Address { network, ip } => {
                *ip == dialled
                    || self
                        .state
                        .workload_by_ip(network, *ip)
                        .is_some_and(|w| w.uid == self.local.uid)
            }
        }
    }
}
