//! Workload identities: SPIFFE IDs in Istio's form, and reading them from certificates.

mod certificate;
mod spiffe;

pub use certificate::{CertificateIdentityError, identities_from_certificate, peer_identity};
pub use spiffe::{SPIFFE_SCHEME, SpiffeId, SpiffeIdError};
