//! HTTP/3 sockets: the UDP socket of an HTTPS port whose listeners' ClientTrafficPolicy
//! enables `http3`, served by a quinn endpoint. Its connections' TLS is the listeners' own,
//! chosen by SNI ([`SniQuicConfig`]); each connection's requests go through the same request
//! path as the port's TCP connections ([`routed_service`]), with the same admission (the
//! listeners' connection limit) and [`HttpLimits`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hbone::peer::{Peer, PeerTransport};
use quinn::crypto::rustls::HandshakeData;
use rustls::pki_types::CertificateDer;

use super::admission::OpenConnection;
use super::client_cert::client_cert_details;
use super::http::HttpLimits;
use super::http3::serve_http3;
use super::quic_tls::{QuicSetupError, SniQuicConfig};
use super::sockets::{ConnectionContext, TlsFacts, routed_service};
use super::tls::SniConfigs;
use super::tunnels::wait_for_true;

/// How long a client may take to complete the QUIC handshake (as for TLS over TCP).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a QUIC connection may go without a packet before it is dropped (Envoy's
/// `idle_network_timeout` default); an HTTP/3 connection without requests is closed
/// gracefully after the listener's HTTP idle timeout before that.
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The QUIC server configuration of an HTTP/3 socket whose HTTPS listeners' TLS is `tls`,
/// with at most `max_concurrent_streams` requests at once per connection (the policy's
/// `http2.maxConcurrentStreams`, else 100, Envoy's default for HTTP/3).
pub(super) fn quic_server_config(
    tls: &SniConfigs,
    max_concurrent_streams: Option<u32>,
) -> Result<quinn::ServerConfig, QuicSetupError> {
    let crypto = SniQuicConfig::of(tls)?.ok_or(QuicSetupError::NoHttp3)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let streams = max_concurrent_streams.unwrap_or(100);
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(streams.into())
        // HTTP/3 clients open three unidirectional streams (control and QPACK).
        .max_concurrent_uni_streams(8u32.into())
        .max_idle_timeout(quinn::IdleTimeout::try_from(QUIC_IDLE_TIMEOUT).ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A quinn endpoint on a UDP socket bound to `address`.
pub(super) fn bind_quic(
    address: SocketAddr,
    config: quinn::ServerConfig,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(address)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Accepts the endpoint's connections: over the listeners' connection limit a connection is
/// refused; else it is served on a task of its own.
pub(super) async fn quic_accept_loop(endpoint: quinn::Endpoint, context: ConnectionContext) {
    let local_port = endpoint.local_addr().map(|a| a.port()).unwrap_or(0);
    while let Some(incoming) = endpoint.accept().await {
        let admission = context.state.load().admission;
        if admission.refusal(&context.open).is_some() {
            incoming.refuse();
            continue;
        }
        let counted = OpenConnection::count(&context.open);
        let context = context.clone();
        tokio::spawn(async move {
            let _counted = counted;
            handle_quic(incoming, local_port, context).await;
        });
    }
}

/// Completes one connection's handshake and serves its requests.
async fn handle_quic(incoming: quinn::Incoming, local_port: u16, context: ConnectionContext) {
    let client = incoming.remote_address();
    let local = incoming
        .local_ip()
        .map(|ip| SocketAddr::new(ip, local_port));
    let Ok(Ok(connection)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await else {
        return;
    };
    context.metrics.connection_opened();
    let state = context.state.load_full();
    let server_name = connection
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.server_name);
    // Described once per connection, for X-Forwarded-Client-Cert.
    let by = state
        .tls
        .as_ref()
        .and_then(|tls| tls.choose(server_name.as_deref()))
        .and_then(|listener| listener.uri_san.clone());
    let client_cert = state
        .admission
        .client_certificates
        .then(|| connection.peer_identity())
        .flatten()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| client_cert_details(&chain, by))
        .map(Arc::new);
    let mut peer = Peer::tcp(client, local);
    peer.transport = PeerTransport::Tls;
    let facts = TlsFacts {
        server_name,
        client_cert,
        fingerprints: None,
    };
    let service = routed_service(peer, facts, true, &context);
    let mut draining = context.draining.clone();
    let drain = async move { wait_for_true(&mut draining).await };
    let limits: HttpLimits = state.admission.http;
    serve_http3(connection, service, limits, drain).await;
    context.metrics.connection_closed();
}
