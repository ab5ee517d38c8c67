//! ClientTrafficPolicy `tls.signatureAlgorithms` on an HTTPS listener: the listener's key
//! signs with the first listed scheme the client offers and it can use
//! ([`RestrictedSigningKey`]), and a client certificate's handshake signature must use a
//! listed scheme, which is also all the listener asks for ([`RestrictedVerifier`]).

use std::sync::Arc;

use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, PeerMisbehaved, SignatureScheme};

use super::verifier_wrapper::WrapClientVerifier;

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

/// A client-certificate verifier that asks for and accepts only the allowed schemes (as a
/// rustls verifier through [`Wrapped`](super::verifier_wrapper::Wrapped)).
#[derive(Debug)]
pub(super) struct RestrictedVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) allowed: Vec<SignatureScheme>,
}

impl WrapClientVerifier for RestrictedVerifier {
    fn inner(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.inner
    }

    fn check_scheme(&self, scheme: SignatureScheme) -> Result<(), Error> {
        if self.allowed.contains(&scheme) {
            Ok(())
        } else {
            Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into())
        }
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
