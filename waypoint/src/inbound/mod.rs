//! Inbound: sockets shared per address, port and transport; HTTP/1.1 and h2 serving with
//! limits; TLS termination with the certificate by SNI; TLS passthrough by the ClientHello's
//! SNI; TCP and UDP forwarding; SOCKS5 ([`socks5`]); HBONE termination ([`HttpInTunnels`]) and PROXY termination
//! ([`serve_proxied_http`]), each putting the connection's [`Peer`](hbone::peer::Peer) into
//! every request.

mod admission;
mod bandwidth;
mod client_cert;
pub mod client_hello;
mod compression;
mod expired_certificates;
mod h2_invalid;
mod http;
mod http3;
pub(crate) mod prefixed;
mod proxy;
mod quic;
mod quic_tls;
mod recording;
mod signature_schemes;
mod sockets;
pub mod socks5;
mod stream_idle;
mod streams;
mod tls;
mod trailers;
mod tunnels;
mod udp;
mod verifier_wrapper;

pub use bandwidth::BandwidthFromRoute;
pub use compression::CompressFromRoute;
pub(crate) use h2_invalid::TerminateOnInvalid;
pub use http::{DEFAULT_IDLE_TIMEOUT, HttpLimits, serve_http};
pub use proxy::{accept_proxy_header, serve_proxied_http};
pub use sockets::{
    AnsweredRequestPath, ApplyReport, DenialLog, GatewayRequestPath, SocketKey, Sockets,
    UnavailableSocket, answered_request_path, gateway_request_path, group_listeners,
};
pub use tls::TlsSetupError;
pub use tunnels::{HttpInTunnels, serve_with_peer};
