//! [`HboneConnect`]: endpoints reached through HBONE tunnels, as a waypoint reaches the
//! workloads behind a Service — the tunnel goes to the endpoint's HBONE port (15008), its
//! `:authority` is the endpoint's `ip:port`, and the peer must present the identity the
//! configuration gives that endpoint (hbone spec §1.5).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hbone::client::{HboneClientError, HboneConnector, HboneTarget};
use hbone::connect_headers::Authority;
use hbone::h2_stream::H2Stream;
use hbone::identity::SpiffeId;
use hbone::tls::WorkloadCertificate;
use routing::router::{UpstreamError, UpstreamErrorKind};

use super::connect::{Connect, io_kind};

/// The port HBONE listens on (ztunnel's inbound, a waypoint's, a gateway's).
pub const HBONE_PORT: u16 = 15008;

/// The identities an endpoint may present (its workload's service account): an empty list
/// means any identity of the trust anchors, `None` an endpoint that must not be dialled (its
/// identity is unknown).
pub trait EndpointIdentities: Send + Sync + 'static {
    /// The identities `endpoint` may present.
    fn expected(&self, endpoint: SocketAddr) -> Option<Vec<SpiffeId>>;
}

impl<F> EndpointIdentities for F
where
    F: Fn(SocketAddr) -> Option<Vec<SpiffeId>> + Send + Sync + 'static,
{
    fn expected(&self, endpoint: SocketAddr) -> Option<Vec<SpiffeId>> {
        self(endpoint)
    }
}

/// Opens an HBONE tunnel per stream, pooled by the [`HboneConnector`].
#[derive(Clone)]
pub struct HboneConnect {
    connector: HboneConnector,
    certificate: Arc<WorkloadCertificate>,
    source: SpiffeId,
    identities: Arc<dyn EndpointIdentities>,
    port: u16,
}

impl fmt::Debug for HboneConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HboneConnect")
            .field("source", &self.source)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl HboneConnect {
    /// Tunnels presenting `certificate`, to peers whose identities `identities` names.
    pub fn new(
        connector: HboneConnector,
        certificate: Arc<WorkloadCertificate>,
        identities: impl EndpointIdentities,
    ) -> Result<Self, hbone::tls::TlsConfigError> {
        let source = certificate.identity()?;
        Ok(HboneConnect {
            connector,
            certificate,
            source,
            identities: Arc::new(identities),
            port: HBONE_PORT,
        })
    }

    /// The same, dialling `port` instead of 15008 (tests, non-standard meshes).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The tunnel request for `endpoint` (`None`: its identity is unknown).
    pub fn target(&self, endpoint: SocketAddr) -> Option<HboneTarget> {
        Some(HboneTarget {
            next_hop: SocketAddr::new(endpoint.ip(), self.port),
            authority: Authority::Socket(endpoint),
            expected_identities: self.identities.expected(endpoint)?,
            certificate: Arc::clone(&self.certificate),
            source_identity: self.source.clone(),
            client: None,
            forwarded_host: None,
            baggage: String::new(),
            extra_headers: http::HeaderMap::new(),
        })
    }
}

impl Connect for HboneConnect {
    type Io = H2Stream;

    async fn connect(&self, endpoint: SocketAddr) -> Result<H2Stream, UpstreamError> {
        let Some(target) = self.target(endpoint) else {
            return Err(UpstreamError::with_source(
                UpstreamErrorKind::Tls,
                format!("no identity is known for endpoint {endpoint}"),
            ));
        };
        self.connector
            .open(&target)
            .await
            .map_err(|error| UpstreamError::with_source(hbone_kind(&error), error))
    }
}

/// How an HBONE tunnel failed, as the retry loop and `respond` see it.
fn hbone_kind(error: &HboneClientError) -> UpstreamErrorKind {
    if error.is_tls() {
        return UpstreamErrorKind::Tls;
    }
    match error {
        HboneClientError::ConnectTimeout { .. } => UpstreamErrorKind::Timeout,
        HboneClientError::Connect { source, .. } => io_kind(source),
        // The far side could not connect (503), or refused the tunnel (401, 400).
        HboneClientError::Status(_) => UpstreamErrorKind::Refused,
        HboneClientError::InvalidRequest(_) => UpstreamErrorKind::Protocol,
        _ => UpstreamErrorKind::Reset,
    }
}
