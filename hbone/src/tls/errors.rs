//! Errors of the TLS layer.

use rustls::{CertificateError, Error};

use crate::identity::SpiffeId;

/// The server's certificate carries none of the identities the client expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "identity verification error: peer did not present the expected SAN (presented {presented:?}, expected one of {expected:?})"
)]
pub struct IdentityMismatch {
    /// The identities in the peer certificate.
    pub presented: Vec<SpiffeId>,
    /// The identities the client accepts.
    pub expected: Vec<SpiffeId>,
}

/// The client's certificate carries no identity in the server's trust domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client identity {presented:?} is not in trust domain {trust_domain}")]
pub struct ForeignTrustDomain {
    /// The identities in the client certificate.
    pub presented: Vec<SpiffeId>,
    /// The server's trust domain.
    pub trust_domain: String,
}

/// Why TLS material or configuration cannot be loaded or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file has no usable item of the expected kind, or is malformed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The certificate carries no Istio SPIFFE identity in a URI SAN.
    #[error("the workload certificate has no SPIFFE identity in its URI SANs")]
    NoIdentity,
    /// rustls rejected the configuration (e.g. key does not match certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] Error),
}

/// Maps a WebPKI path-validation error to the rustls error (and so the TLS alert) it means.
pub(crate) fn webpki_error(error: webpki::Error) -> Error {
    use webpki::Error as E;
    let certificate_error = match error {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertificateError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(rustls::OtherError(std::sync::Arc::new(other))),
    };
    Error::InvalidCertificate(certificate_error)
}
