//! Compiled Gateways and listeners: what a data plane binds and serves.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::backend::Backend;
use super::rule::HttpRule;
use crate::backends::WeightedBackends;
use crate::http_route::RouteTable;
use crate::model::ObjectKey;
use crate::slot::PolicySlot;

/// A listener protocol this implementation serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 and h2c.
    Http,
    /// TLS-terminated HTTP/1.1 and HTTP/2.
    Https,
    /// TLS passthrough by SNI.
    Tls,
    /// TCP forwarding.
    Tcp,
    /// UDP forwarding.
    Udp,
}

/// A certificate chain and key in PEM, from a `kubernetes.io/tls` Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// The Secret.
    pub secret: ObjectKey,
    /// `tls.crt`.
    pub chain_pem: Vec<u8>,
    /// `tls.key` (PKCS#1, PKCS#8 or SEC1).
    pub key_pem: Vec<u8>,
}

/// The weighted backends of a TLS, TCP or UDP route.
pub type L4Backends = WeightedBackends<Arc<Backend>>;

/// What a listener routes.
#[derive(Debug, Clone)]
pub enum ListenerRoutes {
    /// HTTP and HTTPS: the HTTPRoute table.
    Http(Arc<RouteTable<Arc<HttpRule>>>),
    /// TLS passthrough: SNI patterns (effective hostnames) to backends, most specific first.
    Tls(Arc<[(String, L4Backends)]>),
    /// TCP and UDP: the one route's backends, if a route attached.
    Stream(Option<Arc<L4Backends>>),
}

/// A listener that was accepted and whose references resolved.
#[derive(Debug, Clone)]
pub struct CompiledListener {
    /// The Gateway.
    pub gateway: ObjectKey,
    /// The ListenerSet that declared the listener (`None`: the Gateway itself).
    pub listener_set: Option<ObjectKey>,
    /// The listener's name.
    pub name: String,
    /// Host name (lowercase); `None` serves every host.
    pub hostname: Option<String>,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub protocol: ListenerProtocol,
    /// Certificates (HTTPS, and TLS in Terminate mode).
    pub certificates: Vec<Certificate>,
    /// A TLS listener in Terminate mode: TLS is terminated with `certificates` and the
    /// plaintext forwarded to the TLSRoute's backend (otherwise TLS passes through).
    pub tls_terminate: bool,
    /// Its routes.
    pub routes: ListenerRoutes,
    /// Client-certificate validation on its port (the Gateway's `tls.frontend`).
    pub client_validation: Option<Arc<ClientValidation>>,
    /// The certificate its Gateway presents to TLS backends (`tls.backend`).
    pub backend_client_certificate: Option<Arc<Certificate>>,
    /// Policies attached when the configuration was compiled.
    pub policy: PolicySlot,
}

/// How a TLS listener validates client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientValidation {
    /// The CA certificates (PEM) client certificates must chain to.
    pub roots_pem: Arc<[u8]>,
    /// Whether clients without a valid certificate are still served.
    pub allow_insecure_fallback: bool,
}

/// A Gateway to serve: where to bind and its usable listeners.
#[derive(Debug, Clone)]
pub struct CompiledGateway {
    /// The Gateway.
    pub key: ObjectKey,
    /// `spec.addresses` of type IPAddress; empty: all interfaces.
    pub addresses: Vec<IpAddr>,
    /// Accepted listeners.
    pub listeners: Vec<CompiledListener>,
}
