//! [`BackendCertVerifier`]: checks a backend's certificate as a BackendTLSPolicy says — the
//! chain to the policy's roots for server authentication, then the name: `validation.hostname`,
//! or, when `subjectAltNames` is set, one of those (DNS names matched as TLS clients match
//! host names, URIs such as SPIFFE IDs matched exactly) instead. An Envoy Gateway `Backend`'s
//! `insecureSkipVerify` accepts any certificate (the handshake signatures are still checked);
//! its `signatureAlgorithms` are the only schemes offered and accepted for the handshake
//! signature.

use std::sync::Arc;

use routing::compiled::BackendSubjectAltName;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, Error, PeerMisbehaved, RootCertStore, SignatureScheme,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Verifies backend certificates for one BackendTLSPolicy.
#[derive(Debug)]
pub(crate) struct BackendCertVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    hostname: ServerName<'static>,
    subject_alt_names: Vec<BackendSubjectAltName>,
    /// Accept any certificate (`insecureSkipVerify`).
    skip_verification: bool,
    /// The handshake signature schemes offered and accepted, in order (`None`: the
    /// provider's).
    schemes: Option<Vec<SignatureScheme>>,
}

impl BackendCertVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        hostname: ServerName<'static>,
        subject_alt_names: Vec<BackendSubjectAltName>,
    ) -> Self {
        BackendCertVerifier {
            roots,
            provider,
            hostname,
            subject_alt_names,
            skip_verification: false,
            schemes: None,
        }
    }

    /// The verifier, offering and accepting only `schemes` for the handshake signature.
    pub(crate) fn with_signature_schemes(mut self, schemes: Vec<SignatureScheme>) -> Self {
        self.schemes = Some(schemes);
        self
    }

    /// Refuses a handshake signed with a scheme not offered.
    fn check_scheme(&self, scheme: SignatureScheme) -> Result<(), Error> {
        match &self.schemes {
            Some(schemes) if !schemes.contains(&scheme) => {
                Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into())
            }
            _ => Ok(()),
        }
    }

    /// The verifier, accepting any certificate the backend presents.
    pub(crate) fn skipping_verification(mut self) -> Self {
        self.skip_verification = true;
        self
    }

    /// Whether `certificate` carries one of the policy's names.
    fn matches_names(&self, certificate: &webpki::EndEntityCert<'_>, der: &[u8]) -> bool {
        if self.subject_alt_names.is_empty() {
            return certificate
                .verify_is_valid_for_subject_name(&self.hostname)
                .is_ok();
        }
        let uris = uri_sans(der);
        self.subject_alt_names.iter().any(|name| match name {
            BackendSubjectAltName::Hostname(hostname) => ServerName::try_from(hostname.as_str())
                .is_ok_and(|name| certificate.verify_is_valid_for_subject_name(&name).is_ok()),
            BackendSubjectAltName::Uri(uri) => uris.iter().any(|presented| presented == uri),
        })
    }
}

/// The URI SANs of a DER certificate (none when it cannot be read).
fn uri_sans(der: &[u8]) -> Vec<String> {
    let Ok((_, parsed)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(sans)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

fn chain_error(error: webpki::Error) -> Error {
    use webpki::Error as E;
    Error::InvalidCertificate(match error {
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        _ => CertificateError::BadSignature,
    })
}

impl ServerCertVerifier for BackendCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.skip_verification {
            return Ok(ServerCertVerified::assertion());
        }
        let certificate = webpki::EndEntityCert::try_from(end_entity).map_err(chain_error)?;
        certificate
            .verify_for_usage(
                self.provider.signature_verification_algorithms.all,
                &self.roots.roots,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(chain_error)?;
        if self.matches_names(&certificate, end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check_scheme(dss.scheme)?;
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check_scheme(dss.scheme)?;
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let supported = self
            .provider
            .signature_verification_algorithms
            .supported_schemes();
        match &self.schemes {
            None => supported,
            Some(schemes) => schemes
                .iter()
                .copied()
                .filter(|scheme| supported.contains(scheme))
                .collect(),
        }
    }
}
