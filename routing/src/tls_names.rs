//! The names of the TLS settings Envoy Gateway's `TLSSettings` lists — TLS 1.2 cipher
//! suites, key-exchange groups (`ecdhCurves`), signature algorithms and ALPN protocols — read
//! into the values this data plane can offer. Shared by a listener's ClientTrafficPolicy
//! `tls` and a `Backend`'s `tls`. Errors name the field and the entry.
//!
//! ```
//! use routing::tls_names::{KxGroup, SignatureAlgorithm, Tls12Cipher, parse_ciphers, parse_kx_groups, parse_signature_algorithms};
//!
//! let ciphers = parse_ciphers(&["[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]".into()]).unwrap();
//! assert_eq!(ciphers, [Tls12Cipher::EcdheRsaAes128GcmSha256, Tls12Cipher::EcdheRsaChacha20Poly1305]);
//! assert_eq!(parse_kx_groups(&["P-256".into()]).unwrap(), [KxGroup::P256]);
//! let list = parse_signature_algorithms(&["rsa_pss_rsae_sha256".into(), "ED25519".into()]).unwrap();
//! assert_eq!(list, [SignatureAlgorithm::RsaPssRsaeSha256, SignatureAlgorithm::Ed25519]);
//! assert!(parse_signature_algorithms(&["rsa_pkcs1_sha1".into()]).is_err());
//! ```

use serde::Serialize;

/// A TLS 1.2 cipher suite this data plane offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Tls12Cipher {
    /// ECDHE-ECDSA-AES128-GCM-SHA256.
    EcdheEcdsaAes128GcmSha256,
    /// ECDHE-RSA-AES128-GCM-SHA256.
    EcdheRsaAes128GcmSha256,
    /// ECDHE-ECDSA-AES256-GCM-SHA384.
    EcdheEcdsaAes256GcmSha384,
    /// ECDHE-RSA-AES256-GCM-SHA384.
    EcdheRsaAes256GcmSha384,
    /// ECDHE-ECDSA-CHACHA20-POLY1305.
    EcdheEcdsaChacha20Poly1305,
    /// ECDHE-RSA-CHACHA20-POLY1305.
    EcdheRsaChacha20Poly1305,
}

/// (OpenSSL name, IANA name, suite).
const CIPHERS: [(&str, &str, Tls12Cipher); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Tls12Cipher::EcdheEcdsaAes128GcmSha256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Tls12Cipher::EcdheRsaAes128GcmSha256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Tls12Cipher::EcdheEcdsaAes256GcmSha384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Tls12Cipher::EcdheRsaAes256GcmSha384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12Cipher::EcdheEcdsaChacha20Poly1305,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12Cipher::EcdheRsaChacha20Poly1305,
    ),
];

/// `ciphers`: the suites named (OpenSSL or IANA names; BoringSSL's `[a|b]` equal-preference
/// groups flattened), in order, each once.
pub fn parse_ciphers(names: &[String]) -> Result<Vec<Tls12Cipher>, String> {
    let mut suites = Vec::new();
    for entry in names {
        let inner = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .unwrap_or(entry);
        for name in inner.split('|') {
            let suite = CIPHERS
                .iter()
                .find(|(openssl, iana, _)| name == *openssl || name == *iana)
                .map(|(_, _, suite)| *suite)
                .ok_or_else(|| {
                    format!(
                        "ciphers: {name:?} is not a TLS 1.2 suite this data plane offers \
                         (ECDHE with AES-GCM or ChaCha20-Poly1305)"
                    )
                })?;
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
    }
    Ok(suites)
}

/// A key-exchange group this data plane offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KxGroup {
    /// X25519.
    X25519,
    /// P-256 (secp256r1).
    P256,
    /// P-384 (secp384r1).
    P384,
}

/// `ecdhCurves`: the groups named, in order.
pub fn parse_kx_groups(names: &[String]) -> Result<Vec<KxGroup>, String> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "X25519" => Ok(KxGroup::X25519),
            "P-256" | "prime256v1" | "secp256r1" => Ok(KxGroup::P256),
            "P-384" | "secp384r1" => Ok(KxGroup::P384),
            other => Err(format!(
                "ecdhCurves: {other:?} is not offered by this data plane (X25519, P-256, P-384)"
            )),
        })
        .collect()
}

/// A TLS signature scheme this data plane can sign or verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
const SIGNATURE_NAMES: [(&str, SignatureAlgorithm); 10] = [
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

/// `signatureAlgorithms`: the schemes named (IANA names, as BoringSSL reads them, in any
/// case; the SHA-1 and MD5 ones are not offered), in order, each once.
pub fn parse_signature_algorithms(names: &[String]) -> Result<Vec<SignatureAlgorithm>, String> {
    if names.is_empty() {
        return Err("signatureAlgorithms: an empty list allows no handshake".into());
    }
    let mut list = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let Some((_, scheme)) = SIGNATURE_NAMES.iter().find(|(known, _)| *known == lower) else {
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

/// `alpnProtocols`: `h2`, `http/1.1` and `http/1.0`, in order.
pub fn parse_alpn_protocols(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "h2" | "http/1.1" | "http/1.0" => Ok(name.clone()),
            other => Err(format!("alpnProtocols: unsupported value {other:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn every_name_reads_and_unknown_ones_are_named() {
        for (openssl, iana, suite) in CIPHERS {
            assert_eq!(parse_ciphers(&names(&[openssl])).unwrap(), [suite]);
            assert_eq!(parse_ciphers(&names(&[iana])).unwrap(), [suite]);
        }
        let error = parse_ciphers(&names(&["AES128-SHA"])).unwrap_err();
        assert!(error.contains("\"AES128-SHA\""), "{error}");
        assert_eq!(
            parse_kx_groups(&names(&["secp384r1", "X25519"])).unwrap(),
            [KxGroup::P384, KxGroup::X25519]
        );
        assert!(parse_kx_groups(&names(&["X448"])).is_err());
        for (name, scheme) in SIGNATURE_NAMES {
            let upper = name.to_ascii_uppercase();
            assert_eq!(
                parse_signature_algorithms(&names(&[&upper, name])).unwrap(),
                [scheme]
            );
        }
        assert!(parse_signature_algorithms(&[]).is_err());
        assert_eq!(
            parse_alpn_protocols(&names(&["http/1.1", "h2"])).unwrap(),
            ["http/1.1", "h2"]
        );
        assert!(parse_alpn_protocols(&names(&["h3"])).is_err());
    }
}
