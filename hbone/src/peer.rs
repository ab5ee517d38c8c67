//! [`Peer`]: who is at the other end of a connection the proxy serves, as it learned it — the
//! TCP peer, an HBONE tunnel's mTLS identity and `forwarded` client, or a PROXY header's
//! source and Istio peer identity (TLV `0xD0`). Terminating layers put one into every
//! request's extensions; authorization and logging read it.

use std::net::SocketAddr;

use crate::connect_headers::{Authority, FORWARDED, forwarded_for};
use crate::identity::SpiffeId;
use crate::proxy_protocol::ProxyHeader;
use crate::server::ConnectRequest;

/// How a connection reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerTransport {
    /// Plain TCP.
    Tcp,
    /// TLS terminated by the proxy.
    Tls,
    /// A CONNECT stream of an HBONE (mTLS + HTTP/2) connection.
    Hbone,
    /// A stream preceded by a PROXY protocol header (e.g. from a co-located ztunnel).
    Proxy,
}

/// The peer of one served connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address: the TCP peer, the `forwarded: for=` client of an HBONE tunnel
    /// (the tunnel's own peer when absent), or the PROXY header's source.
    pub address: SocketAddr,
    /// Where the client wanted to go, when known: the local address, the CONNECT
    /// `:authority`, or the PROXY header's destination.
    pub destination: Option<SocketAddr>,
    /// The client's SPIFFE identity: from its certificate (mTLS, HBONE) or the PROXY
    /// header's TLV `0xD0`.
    pub identity: Option<SpiffeId>,
    /// How the connection arrived.
    pub transport: PeerTransport,
}

impl Peer {
    /// A plain connection from `address` to `local`.
    pub fn tcp(address: SocketAddr, local: Option<SocketAddr>) -> Self {
        Peer {
            address,
            destination: local,
            identity: None,
            transport: PeerTransport::Tcp,
        }
    }

    /// The peer of an HBONE tunnel: the client named by `forwarded: for=` (mTLS-authenticated
    /// mesh peers are trusted to report it), else the tunnel connection's peer; the
    /// destination is a socket authority, else the address the tunnel arrived on.
    pub fn from_connect(request: &ConnectRequest) -> Self {
        let forwarded = request
            .headers
            .get(FORWARDED)
            .and_then(|value| value.to_str().ok())
            .and_then(forwarded_for);
        let destination = match &request.authority {
            Authority::Socket(target) => *target,
            Authority::Host { .. } => request.local_address,
        };
        Peer {
            address: forwarded.unwrap_or(request.peer_address),
            destination: Some(destination),
            identity: request.peer_identity.clone(),
            transport: PeerTransport::Hbone,
        }
    }

    /// The peer a PROXY header describes: its source (else `connection_peer`, for `LOCAL`
    /// and `UNKNOWN` headers), its destination, and the TLV `0xD0` identity when it parses
    /// as a SPIFFE ID.
    pub fn from_proxy_header(header: &ProxyHeader<'_>, connection_peer: SocketAddr) -> Self {
        Peer {
            address: header.addresses.source().unwrap_or(connection_peer),
            destination: header.addresses.destination(),
            identity: header.peer_identity().and_then(|id| id.parse().ok()),
            transport: PeerTransport::Proxy,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn an_hbone_peer_is_the_forwarded_client_with_the_tunnel_identity() {
        let identity: SpiffeId = "spiffe://cluster.local/ns/a/sa/b".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, "for=\"10.0.0.7:40000\"".parse().unwrap());
        let mut request = ConnectRequest {
            authority: "10.0.0.5:8080".parse().unwrap(),
            peer_identity: Some(identity.clone()),
            peer_address: "10.0.0.9:50000".parse().unwrap(),
            local_address: "10.0.0.5:15008".parse().unwrap(),
            headers,
        };
        let peer = Peer::from_connect(&request);
        assert_eq!(peer.address, "10.0.0.7:40000".parse().unwrap());
        assert_eq!(peer.destination, Some("10.0.0.5:8080".parse().unwrap()));
        assert_eq!(peer.identity, Some(identity));
        assert_eq!(peer.transport, PeerTransport::Hbone);
        request.headers.clear();
        request.authority = "svc.ns.svc.cluster.local:80".parse().unwrap();
        let peer = Peer::from_connect(&request);
        assert_eq!(peer.address, request.peer_address);
        assert_eq!(peer.destination, Some(request.local_address));
    }

    #[test]
    fn a_sandwich_header_gives_source_destination_and_identity() {
        let source: SocketAddr = "10.0.0.7:40000".parse().unwrap();
        let destination: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let header = ProxyHeader::sandwich(source, destination, Some("spiffe://td/ns/a/sa/b"));
        let peer = Peer::from_proxy_header(&header, "127.0.0.1:1".parse().unwrap());
        assert_eq!(peer.address, source);
        assert_eq!(peer.destination, Some(destination));
        assert_eq!(
            peer.identity.map(|id| id.to_string()).as_deref(),
            Some("spiffe://td/ns/a/sa/b")
        );
        let bogus = ProxyHeader::sandwich(source, destination, Some("not a spiffe id"));
        assert_eq!(Peer::from_proxy_header(&bogus, source).identity, None);
    }
}
