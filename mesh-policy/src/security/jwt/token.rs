//! One JWT (RFC 7519, compact JWS) checked as Envoy's `jwt_authn` checks it: three base64url
//! sections, a JSON header whose `alg` is a signature algorithm (never `none`, never HMAC),
//! the signature verified with a key of the matching type — every key of the set when the
//! token has no `kid`, keys without a `kid` too when it has one — then `exp` and `nbf` (only
//! when present, 60 s of clock skew), the issuer and the audiences.

use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::jwks::{Jwk, Jwks, PublicKey};

/// The most a token may weigh (Envoy bounds it by the header size; so do we, tighter).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Allowed clock skew for `exp` and `nbf`, in seconds.
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// Why a token is refused, with Envoy's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url sections, or over [`MAX_TOKEN_BYTES`].
    Malformed,
    /// The header is not a JSON object with an `alg`.
    BadHeader,
    /// The payload is not a JSON object.
    BadPayload,
    /// `alg` is `none`, an HMAC or unknown.
    UnsupportedAlgorithm,
    /// The provider's remote JWKS has not been fetched (yet).
    JwksUnavailable,
    /// No key of the set has the token's `kid` and the algorithm's type.
    NoMatchingKey,
    /// The signature does not verify with any candidate key.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still to come.
    NotYetValid,
    /// `iss` is not the provider's issuer.
    WrongIssuer,
    /// None of the token's audiences is allowed (a 403, as Envoy answers).
    AudienceNotAllowed,
}

impl JwtError {
    /// Envoy's local-reply text.
    pub fn text(self) -> &'static str {
        match self {
            JwtError::Malformed => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            JwtError::BadHeader => "Jwt header is an invalid JSON",
            JwtError::BadPayload => "Jwt payload is an invalid JSON",
            JwtError::UnsupportedAlgorithm => "Jwt header [alg] is not supported",
            JwtError::JwksUnavailable => "Jwks remote fetch is failed",
            JwtError::NoMatchingKey => "Jwks doesn't have key to match kid or alg from Jwt",
            JwtError::BadSignature => "Jwt verification fails",
            JwtError::Expired => "Jwt is expired",
            JwtError::NotYetValid => "Jwt not yet valid",
            JwtError::WrongIssuer => "Jwt issuer is not configured",
            JwtError::AudienceNotAllowed => "Audiences in Jwt are not allowed",
        }
    }
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for JwtError {}

/// What a provider requires of a token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRequirements {
    /// `iss` must equal it, when set.
    pub issuer: Option<String>,
    /// `aud` must contain one of them, when any.
    pub audiences: Vec<String>,
}

/// Signature algorithms.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Rs(&'static signature::RsaParameters),
    Ps(&'static signature::RsaParameters),
    Es256,
    Es384,
    EdDsa,
}

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::Rs(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Algorithm::Rs(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Algorithm::Rs(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Algorithm::Ps(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => Algorithm::Ps(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => Algorithm::Ps(&signature::RSA_PSS_2048_8192_SHA512),
        "ES256" => Algorithm::Es256,
        "ES384" => Algorithm::Es384,
        "EdDSA" => Algorithm::EdDsa,
        _ => return None,
    })
}

fn decode_section(section: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(section)
        .ok()
}

/// Verifies `token` against `jwks` and `requirements` at `now` (seconds since the Unix
/// epoch); the claims when it passes.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    requirements: &ClaimRequirements,
    now: u64,
) -> Result<Map<String, Value>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut sections = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        sections.next(),
        sections.next(),
        sections.next(),
        sections.next(),
    ) else {
        return Err(JwtError::Malformed);
    };
    let header_json = decode_section(header_b64).ok_or(JwtError::Malformed)?;
    let payload_json = decode_section(payload_b64).ok_or(JwtError::Malformed)?;
    let signature = decode_section(signature_b64).ok_or(JwtError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_json).map_err(|_| JwtError::BadHeader)?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::BadHeader)?;
    let alg = algorithm(alg_name).ok_or(JwtError::UnsupportedAlgorithm)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload_json).map_err(|_| JwtError::BadPayload)?;

    let signed = token
        .as_bytes()
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(JwtError::Malformed)?;
    let candidates = jwks.keys.iter().filter(|key| {
        kid.is_none_or(|kid| key.kid.as_deref().is_none_or(|k| k == kid))
            && key.alg.as_deref().is_none_or(|a| a == alg_name)
            && key_fits(alg, key)
    });
    let mut any_candidate = false;
    let mut verified = false;
    for key in candidates {
        any_candidate = true;
        if verify_with(alg, &key.key, signed, &signature) {
            verified = true;
            break;
        }
    }
    if !any_candidate {
        return Err(JwtError::NoMatchingKey);
    }
    if !verified {
        return Err(JwtError::BadSignature);
    }
    check_claims(&claims, requirements, now)?;
    Ok(claims)
}

fn key_fits(alg: Algorithm, key: &Jwk) -> bool {
    matches!(
        (alg, &key.key),
        (Algorithm::Rs(_) | Algorithm::Ps(_), PublicKey::Rsa { .. })
            | (Algorithm::Es256, PublicKey::P256(_))
            | (Algorithm::Es384, PublicKey::P384(_))
            | (Algorithm::EdDsa, PublicKey::Ed25519(_))
    )
}

fn verify_with(alg: Algorithm, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match (alg, key) {
        (Algorithm::Rs(params) | Algorithm::Ps(params), PublicKey::Rsa { modulus, exponent }) => {
            RsaPublicKeyComponents {
                n: modulus,
                e: exponent,
            }
            .verify(params, message, signature)
            .is_ok()
        }
        (Algorithm::Es256, PublicKey::P256(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        (Algorithm::Es384, PublicKey::P384(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        (Algorithm::EdDsa, PublicKey::Ed25519(x)) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(message, signature)
            .is_ok(),
        _ => false,
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    requirements: &ClaimRequirements,
    now: u64,
) -> Result<(), JwtError> {
    let seconds = |name: &str| claims.get(name).and_then(Value::as_f64);
    if let Some(exp) = seconds("exp")
        && (now as f64) > exp + CLOCK_SKEW_SECONDS as f64
    {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = seconds("nbf")
        && (now as f64) + (CLOCK_SKEW_SECONDS as f64) < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(issuer) = &requirements.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(JwtError::WrongIssuer);
    }
    if !requirements.audiences.is_empty() {
        let allowed = |aud: &str| requirements.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => allowed(aud),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(allowed),
            _ => false,
        };
        if !ok {
            return Err(JwtError::AudienceNotAllowed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An Ed25519 key pair, its JWKS (with `kid`), and a signer of claims.
    fn ed25519() -> (Ed25519KeyPair, Jwks) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwks = Jwks::parse(
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"{}"}}]}}"#,
                b64(pair.public_key().as_ref())
            )
            .as_bytes(),
        )
        .unwrap();
        (pair, jwks)
    }

    fn sign(pair: &Ed25519KeyPair, header: &str, claims: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let signature = pair.sign(signed.as_bytes());
        format!("{signed}.{}", b64(signature.as_ref()))
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_signed_token_without_kid_exp_or_iss_verifies() {
        let (pair, jwks) = ed25519();
        let token = sign(&pair, r#"{"alg":"EdDSA"}"#, r#"{"sub":"alice"}"#);
        let claims = verify(&token, &jwks, &ClaimRequirements::default(), NOW).unwrap();
        assert_eq!(claims["sub"], "alice");
    }

    #[test]
    fn times_issuer_and_audience_are_checked() {
        let (pair, jwks) = ed25519();
        let check = |claims: &str, requirements: &ClaimRequirements| {
            let token = sign(&pair, r#"{"alg":"EdDSA","kid":"k1"}"#, claims);
            verify(&token, &jwks, requirements, NOW)
        };
        let none = ClaimRequirements::default();
        assert_eq!(
            check(&format!(r#"{{"exp":{}}}"#, NOW - 61), &none),
            Err(JwtError::Expired)
        );
        assert!(
            check(&format!(r#"{{"exp":{}}}"#, NOW - 59), &none).is_ok(),
            "skew"
        );
        assert_eq!(
            check(&format!(r#"{{"nbf":{}}}"#, NOW + 61), &none),
            Err(JwtError::NotYetValid)
        );
        let strict = ClaimRequirements {
            issuer: Some("https://idp".into()),
            audiences: vec!["api".into(), "web".into()],
        };
        assert_eq!(
            check(r#"{"iss":"other","aud":"api"}"#, &strict),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            check(r#"{"iss":"https://idp","aud":["x","y"]}"#, &strict),
            Err(JwtError::AudienceNotAllowed)
        );
        assert!(check(r#"{"iss":"https://idp","aud":["x","web"]}"#, &strict).is_ok());
    }

    #[test]
    fn tampering_none_and_key_confusion_are_refused() {
        let (pair, jwks) = ed25519();
        let none = ClaimRequirements::default();
        let token = sign(&pair, r#"{"alg":"EdDSA"}"#, r#"{"sub":"alice"}"#);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(br#"{"sub":"mallory"}"#);
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &jwks, &none, NOW),
            Err(JwtError::BadSignature)
        );
        let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(
            verify(&unsigned, &jwks, &none, NOW),
            Err(JwtError::UnsupportedAlgorithm)
        );
        let hmac = sign(&pair, r#"{"alg":"HS256"}"#, "{}");
        assert_eq!(
            verify(&hmac, &jwks, &none, NOW),
            Err(JwtError::UnsupportedAlgorithm)
        );
        // An RSA algorithm against an Ed25519 key set: no key of that type.
        let confused = sign(&pair, r#"{"alg":"RS256"}"#, "{}");
        assert_eq!(
            verify(&confused, &jwks, &none, NOW),
            Err(JwtError::NoMatchingKey)
        );
        let other_kid = sign(&pair, r#"{"alg":"EdDSA","kid":"k2"}"#, "{}");
        assert_eq!(
            verify(&other_kid, &jwks, &none, NOW),
            Err(JwtError::NoMatchingKey)
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.e30",
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                verify(bad, &jwks, &none, NOW),
                Err(JwtError::Malformed),
                "{bad:.20}"
            );
        }
        let not_json = format!("{}.{}.{}", b64(b"[1]"), b64(b"{}"), b64(b"x"));
        assert_eq!(
            verify(&not_json, &jwks, &none, NOW),
            Err(JwtError::BadHeader)
        );
    }
}
