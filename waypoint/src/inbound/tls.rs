//! TLS termination for HTTPS listeners: one rustls configuration per listener, chosen by the
//! SNI of each ClientHello — the listener the server name belongs to (exact hostname, then
//! the longest wildcard, then the listener without a hostname) — with the listener's
//! certificate and ClientTrafficPolicy `tls` settings; and, for TLS listeners in Terminate
//! mode, one acceptor per listener.

use std::collections::HashMap;
use std::sync::Arc;

use mesh_policy::traffic::AttachedClientTraffic;
use mesh_policy::traffic::client_tls::TlsVersion;
use routing::compiled::{ClientValidation, CompiledListener, ListenerProtocol};
use routing::model::ObjectKey;
use routing::resolve::hostname_covers;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureScheme, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

use crate::rustls_names::{restricted_provider, signature_scheme};

use super::client_cert::{InsecureFallback, first_uri_san, policy_verifier, root_store};
use super::signature_schemes;
use super::verifier_wrapper::Wrapped;

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
        choose_by_sni(&self.entries, hello.server_name()).map(Arc::clone)
    }
}

/// The server configurations of a socket's HTTPS listeners, most specific hostname first; a
/// connection's configuration is chosen by the SNI of its ClientHello.
#[derive(Debug)]
pub(crate) struct SniConfigs {
    entries: Vec<(Option<String>, ListenerTls)>,
}

/// One listener's TLS configuration, and the URI SAN of its certificate (the `By` of
/// `X-Forwarded-Client-Cert`).
#[derive(Debug, Clone)]
pub(crate) struct ListenerTls {
    /// The server configuration.
    pub(crate) config: Arc<ServerConfig>,
    /// The certificate's first URI SAN.
    pub(crate) uri_san: Option<String>,
    /// `gateway/listener`.
    pub(crate) listener: String,
    /// Whether TLS 1.3 is among the versions the configuration speaks.
    pub(crate) tls13: bool,
    /// Whether the listener's ClientTrafficPolicy enables HTTP/3.
    pub(crate) http3: bool,
}

impl SniConfigs {
    /// The configuration for a ClientHello naming `server_name`: the listener the name
    /// belongs to (exact hostname, then the longest wildcard, then the listener without a
    /// hostname), else the first.
    pub(crate) fn choose(&self, server_name: Option<&str>) -> Option<&ListenerTls> {
        choose_by_sni(&self.entries, server_name)
    }

    /// Every listener's hostname and configuration, most specific hostname first.
    pub(crate) fn entries(&self) -> &[(Option<String>, ListenerTls)] {
        &self.entries
    }
}

/// The entry of the listener `server_name` belongs to, among `entries` by listener hostname
/// (most specific first): exact hostname, then the longest wildcard, then the listener
/// without a hostname, else the first.
pub(crate) fn choose_by_sni<'a, T>(
    entries: &'a [(Option<String>, T)],
    server_name: Option<&str>,
) -> Option<&'a T> {
    let name = server_name.map(str::to_ascii_lowercase);
    entries
        .iter()
        .find(|(hostname, _)| match (hostname, &name) {
            (None, _) => true,
            (Some(pattern), Some(name)) => hostname_covers(pattern, name),
            (Some(_), None) => false,
        })
        .or_else(|| entries.first())
        .map(|(_, entry)| entry)
}

/// The server configurations of a socket's HTTPS listeners (given most specific first), one
/// per listener: its certificate, its ClientTrafficPolicy's `tls` (versions, ciphers, groups,
/// ALPN — by default `h2` and `http/1.1` —, resumption, client validation) or else the
/// Gateway's `tls.frontend` client validation; `None` when none is HTTPS.
pub(crate) fn server_configs(
    listeners: &[Arc<CompiledListener>],
    provider: &Arc<CryptoProvider>,
) -> Result<Option<SniConfigs>, TlsSetupError> {
    let mut entries = Vec::new();
    for listener in listeners {
        if listener.protocol != ListenerProtocol::Https {
            continue;
        }
        if let Some(key) = certified_key(listener, provider)? {
            let uri_san = key.cert.first().and_then(|leaf| first_uri_san(leaf));
            let (config, tls13) = listener_config(listener, key, provider)?;
            let http3 = listener
                .policy
                .get::<AttachedClientTraffic>()
                .is_some_and(|attached| attached.0.http3);
            entries.push((
                listener.hostname.clone(),
                ListenerTls {
                    config,
                    uri_san,
                    listener: format!("{}/{}", listener.gateway, listener.name),
                    tls13,
                    http3,
                },
            ));
        }
    }
    Ok((!entries.is_empty()).then_some(SniConfigs { entries }))
}

/// One HTTPS listener's server configuration, and whether it speaks TLS 1.3.
fn listener_config(
    listener: &CompiledListener,
    key: Arc<CertifiedKey>,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<ServerConfig>, bool), TlsSetupError> {
    let policy = listener
        .policy
        .get::<AttachedClientTraffic>()
        .and_then(|attached| attached.0.tls.clone());
    let provider = match &policy {
        Some(tls) => Arc::new(restricted_provider(
            provider,
            tls.ciphers.as_deref(),
            tls.kx_groups.as_deref(),
        )),
        None => Arc::clone(provider),
    };
    let versions: &[&'static SupportedProtocolVersion] = match policy
        .as_ref()
        .map(|tls| (tls.min_version, tls.max_version))
    {
        Some((TlsVersion::Tls12, TlsVersion::Tls12)) => &[&rustls::version::TLS12],
        Some((TlsVersion::Tls13, _)) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)?;
    let verifier = match (
        policy
            .as_ref()
            .and_then(|tls| tls.client_validation.as_ref()),
        &listener.client_validation,
    ) {
        (Some(validation), _) => Some(policy_verifier(validation, &provider)?),
        (None, Some(validation)) => Some(gateway_verifier(validation, &provider)?),
        (None, None) => None,
    };
    // `signatureAlgorithms`: the key signs, and client certificates sign, only with those.
    let allowed: Option<Vec<SignatureScheme>> = policy
        .as_ref()
        .and_then(|tls| tls.signature_algorithms.as_ref())
        .map(|list| list.iter().copied().map(signature_scheme).collect());
    let (key, verifier) = match allowed {
        None => (key, verifier),
        Some(allowed) => {
            let restricted = signature_schemes::RestrictedSigningKey {
                inner: Arc::clone(&key.key),
                allowed: allowed.clone(),
            };
            if !restricted.can_sign() {
                return Err(TlsSetupError::Certificate {
                    listener: format!("{}/{}", listener.gateway, listener.name),
                    secret: listener
                        .certificates
                        .first()
                        .map(|c| c.secret.to_string())
                        .unwrap_or_default(),
                    message: "the key signs with none of the policy's signatureAlgorithms".into(),
                });
            }
            let key = Arc::new(CertifiedKey::new(key.cert.clone(), Arc::new(restricted)));
            let verifier = verifier.map(|inner| -> Arc<dyn ClientCertVerifier> {
                Arc::new(Wrapped(signature_schemes::RestrictedVerifier {
                    inner,
                    allowed,
                }))
            });
            (key, verifier)
        }
    };
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver {
        entries: vec![(None, key)],
    }));
    config.alpn_protocols = match policy.as_ref().and_then(|tls| tls.alpn.as_ref()) {
        Some(protocols) => protocols.iter().map(|p| p.as_bytes().to_vec()).collect(),
        None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    if let Some(tls) = &policy {
        // Envoy Gateway's default: no resumption unless the policy asks for it (stateful:
        // session ids the listener remembers; stateless: tickets carrying the session).
        config.session_storage = if tls.stateful_resumption {
            ServerSessionMemoryCache::new(SESSION_CACHE_SIZE)
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        if tls.stateless_resumption {
            // Tickets sealed with ChaCha20-Poly1305 under keys rotated every 6 hours.
            config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        }
    }
    Ok((
        Arc::new(config),
        versions.contains(&&rustls::version::TLS13),
    ))
}

/// Sessions remembered per listener for stateful resumption.
const SESSION_CACHE_SIZE: usize = 4096;

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

/// The verifier of the Gateway's `tls.frontend` client validation: chained to its CAs, or —
/// in `AllowInsecureFallback` mode — anything, including no certificate.
fn gateway_verifier(
    validation: &ClientValidation,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
    let invalid = |e: &dyn std::fmt::Display| TlsSetupError::ClientValidation(e.to_string());
    let roots = root_store(&validation.roots_pem)?;
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    if validation.allow_insecure_fallback {
        let lenient = builder
            .allow_unauthenticated()
            .build()
            .map_err(|e| invalid(&e))?;
        Ok(Arc::new(Wrapped(InsecureFallback(lenient))))
    } else {
        builder.build().map_err(|e| invalid(&e))
    }
}
