//! TLS to backends a BackendTLSPolicy or a `Backend`'s `tls` covers: one pooled client per
//! settings (server name, trust anchors, client certificate, suites, groups, signature
//! schemes, ALPN), whose connector sends the server name as SNI and verifies the backend's
//! certificate for it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use routing::compiled::{BackendTls, BackendTlsVersions, Certificate, TlsRoots};
use routing::router::{UpstreamError, UpstreamErrorKind};
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::backend_verifier::BackendCertVerifier;
use super::connect::{Connect, ConnectOptions, ConnectedIo, UriConnector};
use super::forward::ResponseBody;
use super::h2_pool::PoolTls;
use crate::rustls_names::{restricted_provider, signature_scheme};

/// The most distinct TLS clients kept; past it the cache starts over.
const MAX_CLIENTS: usize = 256;

/// An HTTPS-to-backend client.
pub(crate) type TlsClient<C> = Client<TlsConnect<C>, ResponseBody>;

/// HTTP/1.1 clients and HTTP/2 pool configurations by backend TLS settings.
pub(crate) struct BackendTlsClients<C> {
    provider: Arc<CryptoProvider>,
    connector: C,
    clients: Mutex<HashMap<ClientKey, TlsClient<C>>>,
    /// The configurations of HTTP/2 backends' pooled connections (see [`PoolTls`]).
    h2_configs: Mutex<HashMap<H2Key, PoolTls>>,
}

/// What makes two HTTP/2 TLS configurations differ: the backend's TLS settings and the
/// client certificate presented.
type H2Key = (BackendTls, Option<Arc<Certificate>>);

/// What makes two clients differ: the backend's TLS settings, the client certificate
/// presented (the Gateway's `tls.backend`), how connections are opened and whether they
/// carry upgrades.
type ClientKey = (BackendTls, Option<Arc<Certificate>>, ConnectOptions, bool);

/// What the forwarder speaks over a backend's TLS, which bounds the ALPN protocols offered:
/// without a `Backend`'s `alpnProtocols`, `h2` or `http/1.1`; with them, the list (without
/// `h2` for upgrades).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsSpeech {
    /// HTTP/2 (the pool, for gRPC and HTTP/2 backends).
    Http2,
    /// HTTP/1.1, or HTTP/2 if the backend chooses `h2` from the listed protocols.
    Negotiated,
    /// HTTP/1.1 only (upgrades).
    Http1,
}

impl TlsSpeech {
    /// The ALPN protocols offered when `listed` (a Backend's `alpnProtocols`), or not.
    fn alpn(self, listed: Option<&[String]>) -> Vec<Vec<u8>> {
        match (listed, self) {
            (None, TlsSpeech::Http2) => vec![b"h2".to_vec()],
            (None, _) => vec![b"http/1.1".to_vec()],
            (Some(listed), TlsSpeech::Http1) => listed
                .iter()
                .filter(|protocol| protocol.as_str() != "h2")
                .map(|protocol| protocol.as_bytes().to_vec())
                .collect(),
            (Some(listed), _) => listed
                .iter()
                .map(|protocol| protocol.as_bytes().to_vec())
                .collect(),
        }
    }
}

impl<C: Connect> BackendTlsClients<C> {
    /// No clients yet; those made will connect through `connector`.
    pub(crate) fn new(provider: Arc<CryptoProvider>, connector: C) -> Self {
        BackendTlsClients {
            provider,
            connector,
            clients: Mutex::new(HashMap::new()),
            h2_configs: Mutex::new(HashMap::new()),
        }
    }

    /// The TLS of HTTP/2 connections to backends under `tls` presenting `client_certificate`
    /// (ALPN `h2`), made once and kept while in use, so that their connections pool together;
    /// `None` when the settings cannot make a configuration.
    pub(crate) fn h2_tls(
        &self,
        tls: &BackendTls,
        client_certificate: Option<&Arc<Certificate>>,
    ) -> Option<PoolTls> {
        let key = (tls.clone(), client_certificate.cloned());
        let mut configs = self.h2_configs.lock().ok()?;
        if let Some(known) = configs.get(&key) {
            return Some(known.clone());
        }
        let (config, name) = self.config(tls, TlsSpeech::Http2, client_certificate)?;
        if configs.len() >= MAX_CLIENTS {
            configs.clear();
        }
        let made = PoolTls { config, name };
        configs.insert(key, made.clone());
        Some(made)
    }

    /// The HTTP/1.1 client for `tls`, made on first use; `None` when its settings cannot
    /// make a TLS configuration (no usable root, an invalid server name). It offers
    /// `http/1.1` in ALPN, or the Backend's listed protocols (without `h2` when `upgrading`),
    /// and speaks HTTP/2 when the backend chooses `h2` (HTTP/2 backends are reached through
    /// the HTTP/2 pool, with [`Self::h2_tls`]).
    pub(crate) fn client(
        &self,
        tls: &BackendTls,
        client_certificate: Option<&Arc<Certificate>>,
        options: ConnectOptions,
        upgrading: bool,
    ) -> Option<TlsClient<C>> {
        let mut clients = self.clients.lock().ok()?;
        let key = (tls.clone(), client_certificate.cloned(), options, upgrading);
        if let Some(client) = clients.get(&key) {
            return Some(client.clone());
        }
        let speech = match upgrading {
            true => TlsSpeech::Http1,
            false => TlsSpeech::Negotiated,
        };
        let (config, name) = self.config(tls, speech, client_certificate)?;
        let connect = TlsConnect {
            uri: UriConnector::new(self.connector.clone()).with_options(options),
            tls: tokio_rustls::TlsConnector::from(config),
            name,
        };
        let client = Client::builder(TokioExecutor::new()).build(connect);
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Some(client)
    }

    /// The connector the clients connect through.
    pub(crate) fn connector(&self) -> &C {
        &self.connector
    }

    /// The TLS configuration for `tls` — its trust anchors and verification, the client
    /// certificate, its suites, groups and signature schemes, the ALPN protocols for `speech`
    /// — and the server name it sends.
    pub(crate) fn config(
        &self,
        tls: &BackendTls,
        speech: TlsSpeech,
        client_certificate: Option<&Arc<Certificate>>,
    ) -> Option<(Arc<ClientConfig>, ServerName<'static>)> {
        let protocol = &tls.protocol;
        let provider = match (&protocol.ciphers, &protocol.kx_groups) {
            (None, None) => Arc::clone(&self.provider),
            (ciphers, groups) => Arc::new(restricted_provider(
                &self.provider,
                ciphers.as_deref(),
                groups.as_deref(),
            )),
        };
        let mut roots = RootCertStore::empty();
        match &tls.roots {
            TlsRoots::Pem(pem) => {
                for certificate in CertificateDer::pem_slice_iter(pem) {
                    roots.add(certificate.ok()?).ok()?;
                }
            }
            TlsRoots::System => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            TlsRoots::SkipVerification => {}
        }
        let name = ServerName::try_from(tls.server_name.clone()).ok()?;
        let mut verifier = BackendCertVerifier::new(
            Arc::new(roots),
            Arc::clone(&provider),
            name.clone(),
            tls.subject_alt_names.clone(),
        );
        if tls.roots == TlsRoots::SkipVerification {
            verifier = verifier.skipping_verification();
        }
        if let Some(algorithms) = &protocol.signature_algorithms {
            verifier = verifier
                .with_signature_schemes(algorithms.iter().copied().map(signature_scheme).collect());
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(protocol_versions(tls.versions))
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match client_certificate {
            None => builder.with_no_client_auth(),
            Some(certificate) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&certificate.chain_pem)
                        .collect::<Result<_, _>>()
                        .ok()?;
                let key = PrivateKeyDer::from_pem_slice(&certificate.key_pem).ok()?;
                builder.with_client_auth_cert(chain, key).ok()?
            }
        };
        config.alpn_protocols = speech.alpn(protocol.alpn.as_deref());
        Some((Arc::new(config), name))
    }
}

/// Opens a stream through the connector, then TLS with the policy's server name.
#[derive(Clone)]
pub(crate) struct TlsConnect<C> {
    uri: UriConnector<C>,
    tls: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

/// A TLS connection to a backend over the connector's stream.
type TlsIo<C> = ConnectedIo<tokio_rustls::client::TlsStream<<C as Connect>::Io>>;

impl<C: Connect> tower::Service<Uri> for TlsConnect<C> {
    type Response = TlsIo<C>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo<C>, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = tower::Service::call(&mut self.uri, uri);
        let tls = self.tls.clone();
        let name = self.name.clone();
        Box::pin(async move {
            let stream = connect.await?.into_inner();
            let stream = tls
                .connect(name, stream)
                .await
                .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Tls, error))?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            Ok(ConnectedIo::negotiated_h2(stream, h2))
        })
    }
}

/// The rustls versions of `versions`.
fn protocol_versions(versions: BackendTlsVersions) -> &'static [&'static SupportedProtocolVersion] {
    const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
    const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match versions {
        BackendTlsVersions::Both => rustls::DEFAULT_VERSIONS,
        BackendTlsVersions::Tls12 => TLS12_ONLY,
        BackendTlsVersions::Tls13 => TLS13_ONLY,
    }
}
