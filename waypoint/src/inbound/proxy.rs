//! PROXY protocol termination: a connection that starts with a PROXY v1/v2 header (from a
//! load balancer, or from a co-located ztunnel in front of a "sandwiched" waypoint, hbone
//! spec §4) is served as HTTP with the header's [`Peer`] — original source and destination,
//! and the client's SPIFFE identity from TLV `0xD0` — in every request. A connection whose
//! header is missing, invalid or too slow is closed without an answer.

use std::convert::Infallible;
use std::net::SocketAddr;

use hbone::peer::Peer;
use hbone::proxy_protocol::{AcceptError, AcceptorConfig, HeaderStream, read_proxy_header};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::http::HttpLimits;
use super::tunnels::serve_with_peer;
use crate::outbound::ResponseBody;

/// Reads the PROXY header off `stream` (within the acceptor's timeout, never consuming a
/// payload byte), then serves the rest as HTTP through `service` with the header's [`Peer`]
/// in each request. `connection_peer` stands in for the source of `LOCAL` headers.
pub async fn serve_proxied_http<IO, S>(
    mut stream: IO,
    connection_peer: SocketAddr,
    service: S,
    acceptor: AcceptorConfig,
    limits: HttpLimits,
    drain: Option<watch::Receiver<bool>>,
) -> Result<(), AcceptError>
where
    IO: HeaderStream + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let header = read_proxy_header(&mut stream, &acceptor).await?;
    let peer = Peer::from_proxy_header(&header, connection_peer);
    serve_with_peer(stream, service, peer, limits, drain).await;
    Ok(())
}
