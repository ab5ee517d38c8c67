//! Inbound: sockets shared per address, port and transport; HTTP/1.1 and h2 serving with
//! limits; TLS termination with the certificate by SNI; TLS passthrough by the ClientHello's
//! SNI; TCP and UDP forwarding.

pub mod client_hello;
mod http;
mod prefixed;
mod sockets;
mod streams;
mod tls;
mod udp;

pub use http::{HttpLimits, serve_http};
pub use sockets::{ApplyReport, SocketKey, Sockets, UnavailableSocket, group_listeners};
pub use tls::TlsSetupError;
