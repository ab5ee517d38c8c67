//! TLS for HBONE: rustls configurations and SPIFFE verifiers (hbone spec §1.2–1.3).
//!
//! - [`HboneTls`] builds client and server configurations from the embedder's crypto provider:
//!   TLS 1.3 only by default, the AES-GCM suites only, ALPN `h2`, mutual TLS, clients without
//!   SNI and without resumption.
//! - [`ServerIdentityVerifier`] (client side): chain + one of the expected identities.
//! - [`TrustDomainVerifier`] (server side): chain + same trust domain as the server.
//! - [`WorkloadCertificate`] holds a chain, key and roots, loaded from PEM files;
//!   [`PemFiles::watch`] reloads them when they change.

mod config;
mod errors;
mod provider;
mod reload;
mod server_identity_verifier;
mod trust_domain_verifier;

pub use config::{ALPN_H2, HboneTls, WorkloadCertificate};
pub use errors::{ForeignTrustDomain, IdentityMismatch, TlsConfigError};
pub use provider::{TlsVersions, hbone_crypto_provider};
pub use reload::PemFiles;
pub use server_identity_verifier::ServerIdentityVerifier;
pub use trust_domain_verifier::TrustDomainVerifier;
