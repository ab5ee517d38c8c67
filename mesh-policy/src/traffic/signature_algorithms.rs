//! ClientTrafficPolicy `tls.signatureAlgorithms` (policy.md §1.5): the TLS signature schemes a
//! listener signs its handshakes with and accepts in client certificates' handshake
//! signatures, in preference order — as Envoy passes the list to BoringSSL for both. Names are
//! the IANA ones BoringSSL reads (`ecdsa_secp256r1_sha256`, `rsa_pss_rsae_sha256`, …), in any
//! case; the SHA-1 and MD5 schemes are not offered by this data plane.
//!
//! ```
//! use mesh_policy::traffic::signature_algorithms::{SignatureAlgorithm, parse_signature_algorithms};
//!
//! let list = parse_signature_algorithms(&["rsa_pss_rsae_sha256".into(), "ED25519".into()]).unwrap();
//! assert_eq!(list, [SignatureAlgorithm::RsaPssRsaeSha256, SignatureAlgorithm::Ed25519]);
//! assert!(parse_signature_algorithms(&["rsa_pkcs1_sha1".into()]).is_err());
//! ```

/// A TLS signature scheme this data plane can sign or verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// `ecdsa_secp256r1_sha256`.
    EcdsaSecp256r1Sha256,
    /// `ecdsa_secp384r1_sha384`.
    EcdsaSecp384r1Sha384,
    /// `ecdsa_secp521r1_sha512`.
    EcdsaSecp521r1Sha512,
    /// `rsa_pkcs1_sha256` (TLS 1.2 only).
    RsaPkcs1Sha256,
    /// `rsa_pkcs1_sha384` (TLS 1.2 only).
    RsaPkcs1Sha384,
    /// `rsa_pkcs1_sha512` (TLS 1.2 only).
    RsaPkcs1Sha512,
    /// `rsa_pss_rsae_sha256`.
    RsaPssRsaeSha256,
    /// `rsa_pss_rsae_sha384`.
    RsaPssRsaeSha384,
    /// `rsa_pss_rsae_sha512`.
    RsaPssRsaeSha512,
    /// `ed25519`.
    Ed25519,
}

/// Every scheme by its IANA name.
const NAMES: [(&str, SignatureAlgorithm); 10] = [
    (
        "ecdsa_secp256r1_sha256",
        SignatureAlgorithm::EcdsaSecp256r1Sha256,
    ),
    (
        "ecdsa_secp384r1_sha384",
        SignatureAlgorithm::EcdsaSecp384r1Sha384,
    ),
    (
        "ecdsa_secp521r1_sha512",
        SignatureAlgorithm::EcdsaSecp521r1Sha512,
    ),
    ("rsa_pkcs1_sha256", SignatureAlgorithm::RsaPkcs1Sha256),
    ("rsa_pkcs1_sha384", SignatureAlgorithm::RsaPkcs1Sha384),
    ("rsa_pkcs1_sha512", SignatureAlgorithm::RsaPkcs1Sha512),
    ("rsa_pss_rsae_sha256", SignatureAlgorithm::RsaPssRsaeSha256),
    ("rsa_pss_rsae_sha384", SignatureAlgorithm::RsaPssRsaeSha384),
    ("rsa_pss_rsae_sha512", SignatureAlgorithm::RsaPssRsaeSha512),
    ("ed25519", SignatureAlgorithm::Ed25519),
];

/// The schemes `names` list, in their order (a repeated one counts once); errors name the
/// entry.
pub fn parse_signature_algorithms(names: &[String]) -> Result<Vec<SignatureAlgorithm>, String> {
    if names.is_empty() {
        return Err("signatureAlgorithms: an empty list allows no handshake".into());
    }
    let mut list = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let Some((_, scheme)) = NAMES.iter().find(|(known, _)| *known == lower) else {
            return Err(format!(
                "signatureAlgorithms[{index}]: {name:?} is not offered by this data plane"
            ));
        };
        if !list.contains(scheme) {
            list.push(*scheme);
        }
    }
    Ok(list)
}
