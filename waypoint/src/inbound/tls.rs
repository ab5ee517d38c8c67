//! TLS termination for HTTPS listeners: one rustls configuration per socket whose certificate
//! is chosen by SNI — the certificate of the listener the server name belongs to (exact
//! hostname, then the longest wildcard, then the listener without a hostname).

use std::sync::Arc;

use routing::compiled::{CompiledListener, ListenerProtocol};
use routing::resolve::hostname_covers;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a listener's certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The PEM did not parse.
    #[error("listener {listener}: certificate {secret}: {message}")]
    Certificate {
        /// `gateway/listener`.
        listener: String,
        /// The Secret.
        secret: String,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Certificates by listener hostname, most specific first.
#[derive(Debug)]
struct SniResolver {
    entries: Vec<(Option<String>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let chosen = self
            .entries
            .iter()
            .find(|(hostname, _)| match (hostname, &name) {
                (None, _) => true,
                (Some(pattern), Some(name)) => hostname_covers(pattern, name),
                (Some(_), None) => false,
            });
        chosen
            .or_else(|| self.entries.first())
            .map(|(_, key)| Arc::clone(key))
    }
}

/// The server configuration of a socket's HTTPS listeners (given most specific first), offering
/// ALPN `h2` and `http/1.1`; `None` when none is HTTPS.
pub(crate) fn server_config(
    listeners: &[Arc<CompiledListener>],
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<ServerConfig>>, TlsSetupError> {
    let mut entries = Vec::new();
    for listener in listeners {
        if listener.protocol != ListenerProtocol::Https {
            continue;
        }
        let Some(certificate) = listener.certificates.first() else {
            continue;
        };
        let failed = |message: String| TlsSetupError::Certificate {
            listener: format!("{}/{}", listener.gateway, listener.name),
            secret: certificate.secret.to_string(),
            message,
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&certificate.chain_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| failed(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&certificate.key_pem)
            .map_err(|e| failed(e.to_string()))?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| failed(e.to_string()))?;
        entries.push((
            listener.hostname.clone(),
            Arc::new(CertifiedKey::new(chain, signing_key)),
        ));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { entries }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
