//! A resolved backend: a Service port and its ready endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::rule::HttpFilter;
use crate::model::ObjectKey;
use crate::slot::PolicySlot;
use crate::tls_names::{KxGroup, SignatureAlgorithm, Tls12Cipher};

/// How to speak to a backend (from the Service port's `appProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum BackendProtocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (`kubernetes.io/h2c`).
    H2c,
    /// HTTP/1.1 with WebSocket upgrades passed through (`kubernetes.io/ws`).
    WebSocket,
}

/// One ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Address and target port.
    pub address: SocketAddr,
    /// The endpoint's host name (the pod), when the slice names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The zone the endpoint runs in, when the slice names it (zone-aware balancing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<Arc<str>>,
}

/// How to verify a backend that speaks TLS (from a BackendTLSPolicy).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BackendTls {
    /// The SNI to send, and the name to verify when `subject_alt_names` is empty
    /// (`validation.hostname`, or a `Backend`'s `tls.sni`); empty: each request's host (a
    /// `Backend`'s `tls` without `sni`).
    pub server_name: String,
    /// The trust anchors.
    pub roots: TlsRoots,
    /// Names of which the backend's certificate must carry one, instead of `server_name`
    /// (`validation.subjectAltNames`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<BackendSubjectAltName>,
    /// The TLS versions offered (a `Backend`'s `tls.minVersion`/`maxVersion`).
    #[serde(skip_serializing_if = "BackendTlsVersions::is_default")]
    pub versions: BackendTlsVersions,
    /// The certificate presented to the backend (a `Backend`'s `tls.clientCertificateRef`),
    /// instead of the Gateway's `tls.backend` one.
    #[serde(skip)]
    pub client_certificate: Option<Arc<super::Certificate>>,
    /// The suites, groups, signature schemes and ALPN protocols offered (a `Backend`'s
    /// `tls`).
    #[serde(skip_serializing_if = "BackendTlsProtocol::is_default")]
    pub protocol: BackendTlsProtocol,
}

/// What a TLS client offers a backend beyond its versions; `None`: this data plane's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
pub struct BackendTlsProtocol {
    /// TLS 1.2 suites in preference order (`ciphers`; TLS 1.3 suites are not chosen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<Vec<Tls12Cipher>>,
    /// Key-exchange groups in preference order (`ecdhCurves`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kx_groups: Option<Vec<KxGroup>>,
    /// The signature schemes the backend may sign its handshake with
    /// (`signatureAlgorithms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_algorithms: Option<Vec<SignatureAlgorithm>>,
    /// The ALPN protocols offered (`alpnProtocols`; `None`: the one the forwarder speaks,
    /// `h2` or `http/1.1`; empty: no ALPN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
}

impl BackendTlsProtocol {
    /// Whether nothing differs from the defaults.
    pub fn is_default(&self) -> bool {
        *self == BackendTlsProtocol::default()
    }
}

/// The TLS versions offered to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum BackendTlsVersions {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    Both,
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl BackendTlsVersions {
    /// Whether these are the default versions.
    pub fn is_default(&self) -> bool {
        *self == BackendTlsVersions::Both
    }
}

/// A name a backend's certificate may be verified for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum BackendSubjectAltName {
    /// A DNS name, matched as TLS clients match host names (wildcard certificates included).
    Hostname(String),
    /// A URI SAN, matched exactly (e.g. `spiffe://cluster.local/ns/a/sa/b`).
    Uri(String),
}

/// Trust anchors for a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum TlsRoots {
    /// PEM certificates from the policy's ConfigMaps (`ca.crt`).
    #[serde(skip)]
    Pem(Arc<[u8]>),
    /// The well-known public roots (`wellKnownCACertificates: System`).
    System,
    /// No verification of the certificate (an Envoy Gateway `Backend`'s
    /// `insecureSkipVerify`); the handshake's signatures are still checked.
    SkipVerification,
}

/// A Service port chosen by a backendRef, with its endpoints (non-empty: a Service without
/// ready endpoints resolves to [`BackendState::NoEndpoints`](crate::backends::BackendState)).
#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    /// The Service.
    pub service: ObjectKey,
    /// The Service port.
    pub port: u16,
    /// Ready endpoints.
    pub endpoints: Arc<[Endpoint]>,
    /// The protocol to the endpoints.
    pub protocol: BackendProtocol,
    /// TLS to the endpoints, when a BackendTLSPolicy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Arc<BackendTls>>,
    /// Filters applied only when this backend serves the request.
    #[serde(skip)]
    pub filters: Vec<HttpFilter>,
    /// Policies attached when the configuration was compiled.
    #[serde(skip)]
    pub policy: PolicySlot,
    /// The Service's `clusterIP` and this port, when it has one (not headless): where
    /// requests go instead of the endpoints when a policy asks for Service routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_address: Option<SocketAddr>,
    /// An Envoy Gateway `Backend`'s endpoints as written, host names with all their
    /// addresses: a policy's `dns.lookupFamily` rebuilds the endpoints from them.
    #[serde(skip)]
    pub names: Option<Arc<super::BackendNames>>,
}
