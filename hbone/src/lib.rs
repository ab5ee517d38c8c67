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
//! - [`proxy_protocol`]: the PROXY protocol v1/v2 codec with TLVs (sans-IO), its acceptor and
//!   writer.
//! - `dev_ca` (feature `dev-ca`): an in-memory CA minting workload certificates for tests.

#[cfg(feature = "dev-ca")]
pub mod dev_ca;
pub mod identity;
pub mod proxy_protocol;
pub mod tls;
