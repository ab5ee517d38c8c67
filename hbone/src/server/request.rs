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

impl ConnectRequest {
    /// ztunnel's destination check (hbone spec §1.6): an IP authority must name the address the
    /// tunnel connection arrived on (the L3 destination); host-name authorities are resolved by
    /// name and pass. A service answers 400 when this is false, unless an exemption applies
    /// (the local workload has an application tunnel, or it is the authority's waypoint).
    pub fn authority_matches_destination(&self) -> bool {
        match &self.authority {
            Authority::Socket(target) => target.ip() == self.local_address.ip(),
            Authority::Host { .. } => true,
        }
    }
}

/// A handler that takes over a tunnel's stream after the 200 (e.g. an echo service).
pub type StreamHandler =
    Box<dyn FnOnce(H2Stream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Resolves when a forwarded tunnel must be closed (e.g. a new policy no longer allows it).
pub type CloseSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

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
        /// When it resolves, both sides of the tunnel are closed.
        close_when: Option<CloseSignal>,
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
            close_when: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authority: &str) -> ConnectRequest {
        ConnectRequest {
            authority: authority.parse().unwrap(),
            peer_identity: None,
            peer_address: "10.0.0.9:40000".parse().unwrap(),
            local_address: "10.0.0.5:15008".parse().unwrap(),
            headers: HeaderMap::new(),
        }
    }

    #[test]
    fn authority_must_name_the_l3_destination() {
        assert!(request("10.0.0.5:8080").authority_matches_destination());
        assert!(
            !request("10.0.0.6:8080").authority_matches_destination(),
            "ip mismatch: 400"
        );
        assert!(request("svc.ns.svc.cluster.local:80").authority_matches_destination());
    }
}
