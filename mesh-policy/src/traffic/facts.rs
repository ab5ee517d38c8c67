//! What the traffic rules read of a request: method, path, query, headers, the client's
//! address (detected, else the connection's peer) and the peer's authenticated identity.

use std::net::IpAddr;

use http::Request;

use super::client_ip::ClientAddress;
use super::rate_limit::rules::RequestFacts;

/// The client's address: the detected one, else the connection's peer.
pub fn client_address<B>(request: &Request<B>) -> Option<IpAddr> {
    client_address_in(request.extensions())
}

/// The client's address from a request's extensions: the detected one, else the peer.
pub fn client_address_in(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddress>().map(|c| c.0).or_else(|| {
        extensions
            .get::<hbone::peer::Peer>()
            .map(|p| p.address.ip())
    })
}

/// Calls `f` with the facts of `request`.
pub fn with_facts<B, T>(request: &Request<B>, f: impl FnOnce(&RequestFacts<'_>) -> T) -> T {
    let facts = RequestFacts {
        method: request.method(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers: request.headers(),
        client: client_address(request),
        principal: request
            .extensions()
            .get::<hbone::peer::Peer>()
            .and_then(|peer| peer.identity.as_ref())
            .map(|id| id.as_str().trim_start_matches("spiffe://")),
    };
    f(&facts)
}
