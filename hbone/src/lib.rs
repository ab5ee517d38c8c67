//! HBONE, SPIFFE identities and the PROXY protocol for Istio-ambient-style data planes.
//!
//! ```
//! use hbone::identity::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/client".parse()?;
//! assert_eq!(id.trust_domain(), "cluster.local");
//! assert_eq!(id.namespace(), "default");
//! assert_eq!(id.service_account(), "client");
//! assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/client");
//! # Ok::<(), hbone::identity::SpiffeIdError>(())
//! ```
//!
//! Modules:
//! - [`identity`]: the SPIFFE identity type with Istio's parsing rules, and reading identities
//!   from certificates' URI SANs.
//! - [`tls`]: rustls configurations and SPIFFE verifiers for HBONE.
//! - [`client`]: [`client::HboneConnector`], a pooled tower service opening HBONE tunnels.
//! - [`server`]: [`server::HboneServer`], handing each CONNECT to a deciding tower service.
//! - [`h2_stream`], [`bridge`], [`h2_settings`], [`connect_headers`]: the tunnel byte stream,
//!   splicing, HTTP/2 settings and the CONNECT header rules.
//! - [`peer`]: who is at the other end of a served connection (address, destination, SPIFFE
//!   identity, transport), as terminating layers put it into requests.
//! - [`metrics`]: ztunnel-compatible `istio_tcp_*` counters in the embedder's registry.
//! - [`socket`]: outbound TCP connections with an optional firewall mark.
//! - [`proxy_protocol`]: the PROXY protocol v1/v2 codec with TLVs (sans-IO), its acceptor and
//!   writer.
//! - `dev_ca` (feature `dev-ca`): an in-memory CA minting workload certificates for tests.

pub mod bridge;
pub mod client;
pub mod connect_headers;
#[cfg(feature = "dev-ca")]
pub mod dev_ca;
pub mod h2_settings;
pub mod h2_stream;
pub mod identity;
mod keepalive;
pub mod metrics;
pub mod peer;
pub mod proxy_protocol;
pub mod server;
pub mod socket;
pub mod tls;
