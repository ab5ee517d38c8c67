//! What the server's tower service sees for each CONNECT, and what it answers.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use http::{HeaderMap, StatusCode};

use crate::connect_headers::Authority;
use crate::h2_stream::H2Stream;
use crate::identity::SpiffeId;
use crate::proxy_protocol::ProxyHeader;

/// A validated CONNECT request on an HBONE connection.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The `:authority`: where the client wants to go.
    pub authority: Authority,
    /// The client's identity from its certificate (first SPIFFE URI SAN).
    pub peer_identity: Option<SpiffeId>,
    /// The TCP peer of the tunnel connection.
    pub peer_address: SocketAddr,
    /// The local address the tunnel connection arrived on (the L3 destination).
    pub local_address: SocketAddr,
    /// The request headers (`forwarded`, `baggage`, `traceparent`, …).
    pub headers: HeaderMap,
}

/// A handler that takes over a tunnel's stream after the 200 (e.g. an echo service).
pub type StreamHandler =
    Box<dyn FnOnce(H2Stream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The service's answer to a CONNECT.
pub enum ConnectDecision {
    /// Connect to `upstream` (10 s timeout) and answer 200 only once connected, else 503;
    /// then write `proxy_header` (if any) to the upstream before the first tunnelled byte.
    Forward {
        /// Where to connect.
        upstream: SocketAddr,
        /// A PROXY header for a sandwiched proxy (ztunnel's application tunnel).
        proxy_header: Option<Box<ProxyHeader<'static>>>,
        /// Extra headers for the 200 response (e.g. the destination's `baggage`).
        response_headers: HeaderMap,
    },
    /// Answer 200 and hand the stream to a local handler.
    Serve(StreamHandler),
    /// Refuse with this status (400, 401, 503, …) and no body.
    Reject(StatusCode),
}

impl ConnectDecision {
    /// Forward to `upstream` with no PROXY header and no extra response headers.
    pub fn forward(upstream: SocketAddr) -> Self {
        ConnectDecision::Forward {
            upstream,
            proxy_header: None,
            response_headers: HeaderMap::new(),
        }
    }

    /// Serve the stream locally with `handler`.
    pub fn serve<F, Fut>(handler: F) -> Self
    where
        F: FnOnce(H2Stream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        ConnectDecision::Serve(Box::new(move |stream| Box::pin(handler(stream))))
    }
}

impl fmt::Debug for ConnectDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectDecision::Forward {
                upstream,
                proxy_header,
                ..
            } => f
                .debug_struct("Forward")
                .field("upstream", upstream)
                .field("proxy_header", &proxy_header.is_some())
                .finish(),
            ConnectDecision::Serve(_) => f.write_str("Serve"),
            ConnectDecision::Reject(status) => f.debug_tuple("Reject").field(status).finish(),
        }
    }
}
