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
//! - [`identity`]: the SPIFFE identity type with Istio's parsing rules.
//! - [`proxy_protocol`]: the PROXY protocol v1/v2 codec with TLVs (sans-IO).

pub mod identity;
pub mod proxy_protocol;
