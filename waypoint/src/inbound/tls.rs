//! TLS termination for HTTPS listeners: one rustls configuration per socket whose certificate
//! is chosen by SNI — the certificate of the listener the server name belongs to (exact
//! hostname, then the longest wildcard, then the listener without a hostname) — and, for TLS
//! listeners in Terminate mode, one acceptor per listener.

use std::collections::HashMap;
use std::sync::Arc;

use routing::compiled::{ClientValidation, CompiledListener, ListenerProtocol};
use routing::model::ObjectKey;
use routing::resolve::hostname_covers;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio_rustls::TlsAcceptor;

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
    /// The client-certificate validation's CAs could not be used.
    #[error("client certificate validation: {0}")]
    ClientValidation(String),
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
        if let Some(key) = certified_key(listener, provider)? {
            entries.push((listener.hostname.clone(), key));
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    // Listeners sharing a port share its client validation (the Gateway's `tls.frontend`
    // for that port); the most specific listener's applies.
    let validation = listeners
        .iter()
        .find(|listener| listener.protocol == ListenerProtocol::Https)
        .and_then(|listener| listener.client_validation.as_ref());
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()?;
    let builder = match validation {
        None => builder.with_no_client_auth(),
        Some(validation) => {
            builder.with_client_cert_verifier(client_verifier(validation, provider)?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver { entries }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// TLS acceptors of a socket's TLS listeners in Terminate mode, by (Gateway, listener).
/// By listener: Gateway, declaring ListenerSet (if any), listener name.
pub(crate) type Terminators = HashMap<(ObjectKey, Option<ObjectKey>, String), TlsAcceptor>;

/// The acceptors that terminate TLS for the TLS listeners in Terminate mode among `listeners`
/// (each with its own certificate; no ALPN, the plaintext is forwarded as it is).
pub(crate) fn terminators(
    listeners: &[Arc<CompiledListener>],
    provider: &Arc<CryptoProvider>,
) -> Result<Terminators, TlsSetupError> {
    let mut acceptors = HashMap::new();
    for listener in listeners {
        if listener.protocol != ListenerProtocol::Tls || !listener.tls_terminate {
            continue;
        }
        let Some(key) = certified_key(listener, provider)? else {
            continue;
        };
        let config = ServerConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver {
                entries: vec![(None, key)],
            }));
        acceptors.insert(
            (
                listener.gateway.clone(),
                listener.listener_set.clone(),
                listener.name.clone(),
            ),
            TlsAcceptor::from(Arc::new(config)),
        );
    }
    Ok(acceptors)
}

/// The listener's first certificate, loaded with `provider`'s key loader.
fn certified_key(
    listener: &CompiledListener,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<CertifiedKey>>, TlsSetupError> {
    let Some(certificate) = listener.certificates.first() else {
        return Ok(None);
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
    let key =
        PrivateKeyDer::from_pem_slice(&certificate.key_pem).map_err(|e| failed(e.to_string()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Some(Arc::new(CertifiedKey::new(chain, signing_key))))
}

/// The verifier of client certificates for `validation`: chained to its CAs, or — in
/// `AllowInsecureFallback` mode — anything, including no certificate.
fn client_verifier(
    validation: &ClientValidation,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
    let invalid = |e: &dyn std::fmt::Display| TlsSetupError::ClientValidation(e.to_string());
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&validation.roots_pem) {
        let certificate = certificate.map_err(|e| invalid(&e))?;
        roots.add(certificate).map_err(|e| invalid(&e))?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    if validation.allow_insecure_fallback {
        let lenient = builder
            .allow_unauthenticated()
            .build()
            .map_err(|e| invalid(&e))?;
        Ok(Arc::new(InsecureFallback(lenient)))
    } else {
        builder.build().map_err(|e| invalid(&e))
    }
}

/// `AllowInsecureFallback`: asks for a client certificate and serves the client whatever it
/// presents (a valid one, an invalid one, none).
#[derive(Debug)]
struct InsecureFallback(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for InsecureFallback {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The result is not enforced: that is what the fallback mode means.
        let _ = self.0.verify_client_cert(end_entity, intermediates, now);
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
