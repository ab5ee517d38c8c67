//! Where an HBONE client sends a tunnel, and as whom.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;

use crate::connect_headers::Authority;
use crate::identity::SpiffeId;
use crate::tls::WorkloadCertificate;

/// One tunnel request for [`HboneConnector`](super::HboneConnector).
#[derive(Debug, Clone)]
pub struct HboneTarget {
    /// The next hop's HBONE address (`ip:15008`): a ztunnel, waypoint or gateway.
    pub next_hop: SocketAddr,
    /// The CONNECT `:authority`: the final `pod_ip:port`, the original `vip:port` through a
    /// waypoint, or `fqdn:port` for double HBONE.
    pub authority: Authority,
    /// The next hop must present one of these identities (any, when empty).
    pub expected_identities: Vec<SpiffeId>,
    /// The source workload's certificate, presented to the next hop.
    pub certificate: Arc<WorkloadCertificate>,
    /// The source workload's identity (from `certificate`), part of the pool key.
    pub source_identity: SpiffeId,
    /// The original client's address, sent as `forwarded: for="…"`; its IP is part of the
    /// pool key.
    pub client: Option<SocketAddr>,
    /// The service host name the client addressed, sent as `;host=` in `forwarded`.
    pub forwarded_host: Option<String>,
    /// The `baggage` value describing the source workload (sent even when empty).
    pub baggage: String,
    /// Further request headers (e.g. `x-forwarded-network` on an inner double-HBONE request).
    pub extra_headers: HeaderMap,
}

/// The pool key (hbone spec §2): source identity, expected identities, next hop, client IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    source_identity: SpiffeId,
    expected_identities: Vec<SpiffeId>,
    next_hop: SocketAddr,
    client_ip: Option<IpAddr>,
}

impl HboneTarget {
    /// A target with the certificate's own identity as source and no client metadata.
    pub fn new(
        next_hop: SocketAddr,
        authority: Authority,
        expected_identities: Vec<SpiffeId>,
        certificate: Arc<WorkloadCertificate>,
    ) -> Result<Self, crate::tls::TlsConfigError> {
        let source_identity = certificate.identity()?;
        Ok(HboneTarget {
            next_hop,
            authority,
            expected_identities,
            certificate,
            source_identity,
            client: None,
            forwarded_host: None,
            baggage: String::new(),
            extra_headers: HeaderMap::new(),
        })
    }

    pub(crate) fn pool_key(&self) -> PoolKey {
        PoolKey {
            source_identity: self.source_identity.clone(),
            expected_identities: self.expected_identities.clone(),
            next_hop: self.next_hop,
            client_ip: self.client.map(|client| client.ip()),
        }
    }
}
