//! The server's check of an HBONE client: rustls' WebPKI client verifier (chain, clientAuth
//! usage, certificate mandatory) plus "same trust domain as this server".

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

use super::errors::ForeignTrustDomain;
use crate::identity::identities_from_certificate;

/// Wraps a client-certificate verifier: after it accepts the chain, at least one SPIFFE identity
/// of the client certificate must be in the server's own trust domain (hbone spec §1.3). Which
/// identities may connect is left to authorization.
///
/// A rejection is a `certificate_unknown` alert; with TLS 1.3 the client sees it on its first
/// read after the handshake.
#[derive(Debug)]
pub struct TrustDomainVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl TrustDomainVerifier {
    /// Accepts what `inner` accepts, if a client identity is in `trust_domain`.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, trust_domain: impl Into<String>) -> Self {
        TrustDomainVerifier {
            inner,
            trust_domain: trust_domain.into(),
        }
    }
}

impl ClientCertVerifier for TrustDomainVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let presented = identities_from_certificate(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented
            .iter()
            .any(|identity| identity.trust_domain() == self.trust_domain)
        {
            return Ok(ClientCertVerified::assertion());
        }
        let foreign = ForeignTrustDomain {
            presented,
            trust_domain: self.trust_domain.clone(),
        };
        Err(Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(foreign)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
