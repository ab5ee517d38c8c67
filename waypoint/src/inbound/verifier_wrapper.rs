//! The client-certificate verifiers that wrap another one (pins, expired certificates,
//! signature schemes, the insecure fallback) change one or two of its answers; [`Wrapped`]
//! gives rustls the whole [`ClientCertVerifier`], the rest of the answers the inner one's.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// What a wrapping verifier changes; each hook defaults to the inner verifier's answer.
pub(super) trait WrapClientVerifier: std::fmt::Debug + Send + Sync {
    /// The wrapped verifier.
    fn inner(&self) -> &Arc<dyn ClientCertVerifier>;

    /// Whether a certificate is asked for.
    fn offer_client_auth(&self) -> bool {
        self.inner().offer_client_auth()
    }

    /// Whether a certificate is required.
    fn client_auth_mandatory(&self) -> bool {
        self.inner().client_auth_mandatory()
    }

    /// The client's certificate chain judged.
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner()
            .verify_client_cert(end_entity, intermediates, now)
    }

    /// Refuses a handshake signature's scheme before it is checked (none by default).
    fn check_scheme(&self, _scheme: SignatureScheme) -> Result<(), Error> {
        Ok(())
    }

    /// The schemes asked for.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

/// A [`WrapClientVerifier`] as rustls's [`ClientCertVerifier`].
#[derive(Debug)]
pub(super) struct Wrapped<W>(pub(super) W);

impl<W: WrapClientVerifier> ClientCertVerifier for Wrapped<W> {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.inner().root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.check_scheme(dss.scheme)?;
        self.0.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.check_scheme(dss.scheme)?;
        self.0.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
