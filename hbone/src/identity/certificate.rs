//! Reading SPIFFE identities from X.509 certificates.
//!
//! Istio puts a workload's identity in a URI subject alternative name. Identities come from URI
//! SANs only (never the subject or DNS names); SANs that do not parse as an Istio SPIFFE ID are
//! ignored, and the first one that parses is "the" peer identity (hbone spec §1.3).

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::SpiffeId;

/// Why a certificate's identities cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateIdentityError {
    /// The certificate is not valid DER X.509.
    #[error("certificate is not valid X.509: {0}")]
    Malformed(String),
    /// The subject alternative name extension is malformed or duplicated.
    #[error("certificate's subject alternative names cannot be read: {0}")]
    BadSubjectAlternativeNames(String),
}

/// Every Istio SPIFFE identity among the certificate's URI SANs, in certificate order.
pub fn identities_from_certificate(
    certificate: &CertificateDer<'_>,
) -> Result<Vec<SpiffeId>, CertificateIdentityError> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref())
        .map_err(|error| CertificateIdentityError::Malformed(error.to_string()))?;
    let Some(sans) = parsed
        .subject_alternative_name()
        .map_err(|error| CertificateIdentityError::BadSubjectAlternativeNames(error.to_string()))?
    else {
        return Ok(Vec::new());
    };
    Ok(sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.parse::<SpiffeId>().ok(),
            _ => None,
        })
        .collect())
}

/// The first Istio SPIFFE identity among the certificate's URI SANs.
pub fn peer_identity(certificate: &CertificateDer<'_>) -> Option<SpiffeId> {
    identities_from_certificate(certificate)
        .ok()?
        .into_iter()
        .next()
}
