//! rustls's values for the TLS settings `routing::tls_names` reads — suites, key-exchange
//! groups, signature schemes — and a crypto provider narrowed to the suites and groups a
//! listener's or a backend's settings list. Shared by TLS termination and backend TLS.

use routing::tls_names::{KxGroup, SignatureAlgorithm, Tls12Cipher};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup, SignatureScheme};

/// `provider` offering only the TLS 1.2 suites `ciphers` lists (TLS 1.3 suites are not chosen
/// by the settings, as in Envoy) and the key-exchange `groups`, in their order; `None`
/// leaves the provider's.
pub(crate) fn restricted_provider(
    provider: &CryptoProvider,
    ciphers: Option<&[Tls12Cipher]>,
    groups: Option<&[KxGroup]>,
) -> CryptoProvider {
    let mut restricted = provider.clone();
    if let Some(ciphers) = ciphers {
        let tls13 = provider
            .cipher_suites
            .iter()
            .filter(|suite| suite.version() == &rustls::version::TLS13);
        let tls12 = ciphers.iter().filter_map(|cipher| {
            let wanted = cipher_suite(*cipher);
            provider.cipher_suites.iter().find(|s| s.suite() == wanted)
        });
        restricted.cipher_suites = tls13.chain(tls12).copied().collect();
    }
    if let Some(groups) = groups {
        restricted.kx_groups = groups
            .iter()
            .filter_map(|group| {
                let wanted = named_group(*group);
                provider.kx_groups.iter().find(|g| g.name() == wanted)
            })
            .copied()
            .collect();
    }
    restricted
}

/// rustls's name of `cipher`.
fn cipher_suite(cipher: Tls12Cipher) -> CipherSuite {
    match cipher {
        Tls12Cipher::EcdheEcdsaAes128GcmSha256 => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        Tls12Cipher::EcdheRsaAes128GcmSha256 => CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        Tls12Cipher::EcdheEcdsaAes256GcmSha384 => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        Tls12Cipher::EcdheRsaAes256GcmSha384 => CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        Tls12Cipher::EcdheEcdsaChacha20Poly1305 => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        Tls12Cipher::EcdheRsaChacha20Poly1305 => {
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
    }
}

/// rustls's name of `group`.
fn named_group(group: KxGroup) -> NamedGroup {
    match group {
        KxGroup::X25519 => NamedGroup::X25519,
        KxGroup::P256 => NamedGroup::secp256r1,
        KxGroup::P384 => NamedGroup::secp384r1,
    }
}

/// rustls's name of `algorithm`.
pub(crate) fn signature_scheme(algorithm: SignatureAlgorithm) -> SignatureScheme {
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
