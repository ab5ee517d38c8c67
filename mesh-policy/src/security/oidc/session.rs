//! The cryptography of OIDC cookies: an HMAC over the session cookies (so that a tampered or
//! swapped cookie is not a session), AES-256-GCM sealing of tokens and of the PKCE verifier
//! (bound to the cookie's name, so a sealed value cannot be moved to another cookie), and the
//! random values of a login (state, nonce, verifier). Keys are derived per policy from one
//! secret: the runtime's, or the configuration's `envoy-oidc-hmac` Secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Why a sealed value or a random value could not be made or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not base64url, too short, or its tag does not verify (tampered, another key, another
    /// cookie).
    #[error("the sealed value is not one of ours")]
    NotOurs,
    /// The system's random generator failed.
    #[error("no randomness available")]
    NoRandomness,
    /// The cipher refused the derived key.
    #[error("the sealing key was refused")]
    KeyRejected,
}

/// The secret OIDC sessions are derived from (at least 16 bytes; its bytes never printed).
#[derive(Clone)]
pub struct SessionSecret(std::sync::Arc<[u8]>);

impl SessionSecret {
    /// The least length accepted.
    pub const MIN_LEN: usize = 16;

    /// `bytes` as a secret; `None` when shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= Self::MIN_LEN).then(|| SessionSecret(bytes.into()))
    }

    /// 32 fresh random bytes (sessions then last as long as the process).
    pub fn random() -> Result<Self, SessionError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SessionError::NoRandomness)?;
        Ok(SessionSecret(bytes.as_slice().into()))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionSecret({} bytes)", self.0.len())
    }
}

/// One policy's keys.
pub struct SessionKeys {
    signing: hmac::Key,
    sealing: LessSafeKey,
    random: SystemRandom,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys")
    }
}

impl SessionKeys {
    /// The keys of the policy named `scope`, derived from `secret`.
    pub fn derive(secret: &SessionSecret, scope: &str) -> Result<Self, SessionError> {
        let root = hmac::Key::new(hmac::HMAC_SHA256, &secret.0);
        let derive = |label: &str| hmac::sign(&root, format!("{label}\0{scope}").as_bytes());
        let signing = hmac::Key::new(hmac::HMAC_SHA256, derive("oidc-session-hmac").as_ref());
        let sealing_key = derive("oidc-token-sealing");
        // A SHA-256 HMAC is exactly AES-256's key length.
        let sealing = UnboundKey::new(&AES_256_GCM, sealing_key.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| SessionError::KeyRejected)?;
        Ok(SessionKeys {
            signing,
            sealing,
            random: SystemRandom::new(),
        })
    }

    /// The signature of `parts` (each length-prefixed, so no two lists sign alike), base64url.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.signing, &framed(parts)).as_ref())
    }

    /// Whether `signature` (base64url) is the signature of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        hmac::verify(&self.signing, &framed(parts), &tag).is_ok()
    }

    /// `plaintext` sealed for the cookie `name`: base64url of a random nonce and the
    /// ciphertext with its tag.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<String, SessionError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SessionError::NoRandomness)?;
        let mut sealed = plaintext.to_vec();
        self.sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SessionError::NotOurs)?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext [`seal`](Self::seal) sealed for cookie `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SessionError> {
        let mut bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SessionError::NotOurs)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SessionError::NotOurs);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plaintext = self
            .sealing
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| SessionError::NotOurs)?;
        Ok(plaintext.to_vec())
    }

    /// `len` random bytes, base64url.
    pub fn random_token(&self, len: usize) -> Result<String, SessionError> {
        let mut bytes = vec![0u8; len];
        self.random
            .fill(&mut bytes)
            .map_err(|_| SessionError::NoRandomness)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(scope: &str) -> SessionKeys {
        let secret = SessionSecret::new(b"0123456789abcdef0123").unwrap();
        SessionKeys::derive(&secret, scope).unwrap()
    }

    #[test]
    fn sealed_values_open_only_for_their_cookie_and_policy() {
        let keys = keys("ns/a");
        let sealed = keys.seal("AccessToken-x", b"token").unwrap();
        assert_eq!(
            keys.open("AccessToken-x", sealed.as_bytes()).unwrap(),
            b"token"
        );
        assert_eq!(
            keys.open("RefreshToken-x", sealed.as_bytes()),
            Err(SessionError::NotOurs)
        );
        assert_eq!(
            super::tests::keys("ns/b").open("AccessToken-x", sealed.as_bytes()),
            Err(SessionError::NotOurs)
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open("AccessToken-x", &tampered),
            Err(SessionError::NotOurs)
        );
        assert_eq!(
            keys.open("AccessToken-x", b"short"),
            Err(SessionError::NotOurs)
        );
        assert_eq!(
            keys.open("AccessToken-x", b"%%%"),
            Err(SessionError::NotOurs)
        );
    }

    #[test]
    fn signatures_cover_every_part_and_its_boundaries() {
        let keys = keys("ns/a");
        let signature = keys.sign(&[b"host", b"123", b"token"]);
        assert!(keys.verify(&[b"host", b"123", b"token"], signature.as_bytes()));
        assert!(!keys.verify(&[b"host", b"124", b"token"], signature.as_bytes()));
        assert!(!keys.verify(&[b"host1", b"23", b"token"], signature.as_bytes()));
        assert!(!keys.verify(&[b"host", b"123", b"token"], b"not base64!"));
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert!(SessionSecret::new(b"short").is_none());
        let secret = SessionSecret::new(b"0123456789abcdef").unwrap();
        assert_eq!(format!("{secret:?}"), "SessionSecret(16 bytes)");
    }
}
