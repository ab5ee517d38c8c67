//! ClientTrafficPolicy `tls.signatureAlgorithms` on an HTTPS listener: the listener's key
//! signs with the first listed scheme the client offers and it can use
//! ([`RestrictedSigningKey`]), and a client certificate's handshake signature must use a
//! listed scheme, which is also all the listener asks for ([`RestrictedVerifier`]).

use std::sync::Arc;

use mesh_policy::traffic::signature_algorithms::SignatureAlgorithm;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{Signer, SigningKey};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved, SignatureScheme};

/// rustls's name of `algorithm`.
pub(super) fn scheme(algorithm: SignatureAlgorithm) -> SignatureScheme {
    match algorithm {
        SignatureAlgorithm::EcdsaSecp256r1Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureAlgorithm::EcdsaSecp384r1Sha384 => SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureAlgorithm::EcdsaSecp521r1Sha512 => SignatureScheme::ECDSA_NISTP521_SHA512,
        SignatureAlgorithm::RsaPkcs1Sha256 => SignatureScheme::RSA_PKCS1_SHA256,
        SignatureAlgorithm::RsaPkcs1Sha384 => SignatureScheme::RSA_PKCS1_SHA384,
        SignatureAlgorithm::RsaPkcs1Sha512 => SignatureScheme::RSA_PKCS1_SHA512,
        SignatureAlgorithm::RsaPssRsaeSha256 => SignatureScheme::RSA_PSS_SHA256,
        SignatureAlgorithm::RsaPssRsaeSha384 => SignatureScheme::RSA_PSS_SHA384,
        SignatureAlgorithm::RsaPssRsaeSha512 => SignatureScheme::RSA_PSS_SHA512,
        SignatureAlgorithm::Ed25519 => SignatureScheme::ED25519,
    }
}

/// A listener key that signs only with the allowed schemes, in their order.
#[derive(Debug)]
pub(super) struct RestrictedSigningKey {
    pub(super) inner: Arc<dyn SigningKey>,
    pub(super) allowed: Vec<SignatureScheme>,
}

impl RestrictedSigningKey {
    /// Whether the key can sign with any allowed scheme at all.
    pub(super) fn can_sign(&self) -> bool {
        self.inner.choose_scheme(&self.allowed).is_some()
    }
}

impl SigningKey for RestrictedSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        self.allowed
            .iter()
            .filter(|scheme| offered.contains(scheme))
            .find_map(|scheme| self.inner.choose_scheme(std::slice::from_ref(scheme)))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// A client-certificate verifier that asks for and accepts only the allowed schemes.
#[derive(Debug)]
pub(super) struct RestrictedVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) allowed: Vec<SignatureScheme>,
}

impl RestrictedVerifier {
    fn check(&self, dss: &DigitallySignedStruct) -> Result<(), Error> {
        if self.allowed.contains(&dss.scheme) {
            Ok(())
        } else {
            Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into())
        }
    }
}

impl ClientCertVerifier for RestrictedVerifier {
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
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check(dss)?;
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check(dss)?;
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let supported = self.inner.supported_verify_schemes();
        self.allowed
            .iter()
            .copied()
            .filter(|scheme| supported.contains(scheme))
            .collect()
    }
}
