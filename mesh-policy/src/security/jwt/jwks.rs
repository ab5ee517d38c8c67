//! JSON Web Key Sets (RFC 7517) as Envoy's `jwt_authn` reads them: RSA (`n`, `e`), EC P-256
//! and P-384 (`x`, `y`) and OKP Ed25519 (`x`) keys; `kid` and `alg` optional. Keys of other
//! types are skipped; a set with no usable key, or larger than the caps, is refused.

use base64::Engine as _;
use serde::Deserialize;

/// The most a JWKS document may weigh.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// The most keys a set may hold.
pub const MAX_JWKS_KEYS: usize = 256;

/// A key's public material, ready for `ring`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent (big-endian).
    Rsa {
        /// `n`.
        modulus: Vec<u8>,
        /// `e`.
        exponent: Vec<u8>,
    },
    /// An uncompressed EC point (`0x04 ‖ x ‖ y`) on P-256.
    P256(Vec<u8>),
    /// An uncompressed EC point on P-384.
    P384(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
}

/// One key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`.
    pub kid: Option<String>,
    /// `alg`, when the key is restricted to one.
    pub alg: Option<String>,
    /// The public key.
    pub key: PublicKey,
}

/// A key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    /// Its usable keys.
    pub keys: Vec<Jwk>,
}

/// Why a JWKS document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Over [`MAX_JWKS_BYTES`] or [`MAX_JWKS_KEYS`].
    #[error("the JWKS is too large")]
    TooLarge,
    /// Not a JWKS JSON document.
    #[error("the JWKS is not valid JSON: {0}")]
    Json(String),
    /// No key of a supported type.
    #[error("the JWKS has no usable key")]
    NoUsableKey,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwks {
    /// Reads a JWKS document (`{"keys": [...]}`).
    pub fn parse(document: &[u8]) -> Result<Self, JwksError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let raw: RawSet =
            serde_json::from_slice(document).map_err(|e| JwksError::Json(e.to_string()))?;
        if raw.keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooLarge);
        }
        let keys: Vec<Jwk> = raw.keys.into_iter().filter_map(convert).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Jwks { keys })
    }
}

fn b64(text: &Option<String>) -> Option<Vec<u8>> {
    let text = text.as_deref()?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

fn convert(raw: RawKey) -> Option<Jwk> {
    let point = |size: usize| {
        let (x, y) = (b64(&raw.x)?, b64(&raw.y)?);
        (x.len() == size && y.len() == size).then(|| [&[4u8][..], &x, &y].concat())
    };
    let key = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => PublicKey::Rsa {
            modulus: b64(&raw.n)?,
            exponent: b64(&raw.e)?,
        },
        ("EC", Some("P-256")) => PublicKey::P256(point(32)?),
        ("EC", Some("P-384")) => PublicKey::P384(point(48)?),
        ("OKP", Some("Ed25519")) => PublicKey::Ed25519(b64(&raw.x).filter(|x| x.len() == 32)?),
        _ => return None,
    };
    Some(Jwk {
        kid: raw.kid,
        alg: raw.alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_keys_are_kept_and_others_skipped() {
        let jwks = Jwks::parse(
            br#"{"keys":[
              {"kty":"oct","k":"c2VjcmV0"},
              {"kty":"RSA","kid":"r1","n":"AQAB","e":"AQAB"},
              {"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
              {"kty":"EC","crv":"P-256","x":"AA","y":"AA"},
              {"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(jwks.keys.len(), 3);
        assert_eq!(jwks.keys[0].kid.as_deref(), Some("r1"));
        assert!(matches!(jwks.keys[1].key, PublicKey::P256(ref p) if p.len() == 65));
    }

    #[test]
    fn bad_documents_are_refused() {
        assert_eq!(Jwks::parse(br#"{"keys":[]}"#), Err(JwksError::NoUsableKey));
        assert!(matches!(Jwks::parse(b"{"), Err(JwksError::Json(_))));
        assert_eq!(
            Jwks::parse(&vec![b' '; MAX_JWKS_BYTES + 1]),
            Err(JwksError::TooLarge)
        );
    }
}
