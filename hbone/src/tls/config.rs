//! Building rustls configurations for HBONE clients and servers.

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::errors::TlsConfigError;
use super::provider::{TlsVersions, hbone_crypto_provider};
use super::server_identity_verifier::ServerIdentityVerifier;
use super::trust_domain_verifier::TrustDomainVerifier;
use crate::identity::{SpiffeId, peer_identity};

/// HBONE's only application protocol.
pub const ALPN_H2: &[u8] = b"h2";

/// A workload's certificate chain (leaf first), private key, and the roots it trusts.
#[derive(Debug)]
pub struct WorkloadCertificate {
    /// Leaf certificate followed by intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PrivateKeyDer<'static>,
    /// Trust anchors for peers.
    pub roots: Vec<CertificateDer<'static>>,
}

/// Builds HBONE TLS configurations from the embedder's crypto provider (never the process-wide
/// default): TLS 1.3 only unless 1.2 is enabled, AES-GCM suites only, ALPN `h2`, mutual TLS.
#[derive(Debug, Clone)]
pub struct HboneTls {
    provider: Arc<CryptoProvider>,
    versions: TlsVersions,
}

impl WorkloadCertificate {
    /// Loads the chain, key and roots from PEM files. Keys may be PKCS#8, PKCS#1 (RSA) or SEC1.
    pub fn from_pem_files(chain: &Path, key: &Path, roots: &Path) -> Result<Self, TlsConfigError> {
        Ok(WorkloadCertificate {
            chain: certificates_from_pem_file(chain)?,
            key: PrivateKeyDer::from_pem_file(key).map_err(|error| pem_error(key, error))?,
            roots: certificates_from_pem_file(roots)?,
        })
    }

    /// The workload's identity: the first SPIFFE ID among the leaf's URI SANs.
    pub fn identity(&self) -> Result<SpiffeId, TlsConfigError> {
        self.chain
            .first()
            .and_then(peer_identity)
            .ok_or(TlsConfigError::NoIdentity)
    }

    /// The roots as a rustls store.
    pub fn root_store(&self) -> Result<RootCertStore, TlsConfigError> {
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone())?;
        }
        Ok(store)
    }
}

impl Clone for WorkloadCertificate {
    fn clone(&self) -> Self {
        WorkloadCertificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
        }
    }
}

impl HboneTls {
    /// TLS 1.3 only, with `provider`'s AES-GCM suites.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self::with_versions(provider, TlsVersions::Tls13Only)
    }

    /// The given versions, with `provider`'s AES-GCM suites.
    pub fn with_versions(provider: Arc<CryptoProvider>, versions: TlsVersions) -> Self {
        HboneTls {
            provider: Arc::new(hbone_crypto_provider(&provider, versions)),
            versions,
        }
    }

    /// The restricted provider the configurations use.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// A client configuration presenting `certificate` and accepting a server whose leaf
    /// carries one of `expected` (any identity chaining to the roots, when empty). No SNI is
    /// sent and sessions are never resumed, as ztunnel does.
    pub fn client_config(
        &self,
        certificate: &WorkloadCertificate,
        expected: Vec<SpiffeId>,
    ) -> Result<ClientConfig, TlsConfigError> {
        let roots = Arc::new(certificate.root_store()?);
        let verifier = ServerIdentityVerifier::new(roots, expected, self.provider.clone());
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions.protocol_versions())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(certificate.chain.clone(), certificate.key.clone_key())?;
        config.enable_sni = false;
        config.resumption = Resumption::disabled();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }

    /// A server configuration presenting `certificate`, requiring a client certificate that
    /// chains to the roots and carries an identity in the server's own trust domain.
    pub fn server_config(
        &self,
        certificate: &WorkloadCertificate,
    ) -> Result<ServerConfig, TlsConfigError> {
        let trust_domain = certificate.identity()?.trust_domain().to_owned();
        let roots = Arc::new(certificate.root_store()?);
        let webpki = WebPkiClientVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|error| TlsConfigError::Rustls(rustls::Error::General(error.to_string())))?;
        let verifier = TrustDomainVerifier::new(webpki, trust_domain);
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions.protocol_versions())?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(certificate.chain.clone(), certificate.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }
}

fn certificates_from_pem_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, error))?;
    if certificates.is_empty() {
        return Err(TlsConfigError::Pem {
            path: path.display().to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certificates)
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsConfigError {
    let path = path.display().to_string();
    match error {
        rustls::pki_types::pem::Error::Io(source) => TlsConfigError::Read { path, source },
        other => TlsConfigError::Pem {
            path,
            reason: other.to_string(),
        },
    }
}
