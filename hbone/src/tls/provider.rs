//! The crypto provider HBONE uses: the embedder's provider restricted to ztunnel's suites.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

/// Which TLS versions HBONE connections may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.3 only (ztunnel's default).
    #[default]
    Tls13Only,
    /// TLS 1.3 and 1.2 (ztunnel's `TLS12_ENABLED=true`).
    Tls13And12,
}

/// The cipher suites ztunnel offers: AES-GCM only, no ChaCha20 (hbone spec §1.2).
const ALLOWED_SUITES: [CipherSuite; 6] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS13_AND_12: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

impl TlsVersions {
    /// The rustls protocol versions.
    pub fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        match self {
            TlsVersions::Tls13Only => TLS13_ONLY,
            TlsVersions::Tls13And12 => TLS13_AND_12,
        }
    }
}

/// `base` with its cipher suites restricted to the AES-GCM suites of the enabled versions, in
/// ztunnel's order (AES-256 first). Key exchange groups are the provider's.
pub fn hbone_crypto_provider(base: &CryptoProvider, versions: TlsVersions) -> CryptoProvider {
    let cipher_suites: Vec<SupportedCipherSuite> = ALLOWED_SUITES
        .iter()
        .filter_map(|wanted| {
            base.cipher_suites
                .iter()
                .find(|s| s.suite() == *wanted)
                .copied()
        })
        .filter(|suite| versions == TlsVersions::Tls13And12 || suite.tls13().is_some())
        .collect();
    CryptoProvider {
        cipher_suites,
        ..base.clone()
    }
}
