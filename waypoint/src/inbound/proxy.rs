//! PROXY protocol termination: a connection that starts with a PROXY v1/v2 header (from a
//! load balancer, or from a co-located ztunnel in front of a "sandwiched" waypoint, hbone
//! spec §4) is served as HTTP with the header's [`Peer`] — original source and destination,
//! and the client's SPIFFE identity from TLV `0xD0` — in every request. A connection whose
//! header is missing, invalid or too slow is closed without an answer.
//!
//! A gateway listener under a ClientTrafficPolicy with `proxyProtocol` reads the header with
//! [`accept_proxy_header`] before TLS or HTTP: required (a connection without one is closed)
//! or optional (a connection that does not start with a PROXY signature is served as is).

use std::convert::Infallible;
use std::net::SocketAddr;

use hbone::peer::Peer;
use std::time::{Duration, Instant};

use hbone::proxy_protocol::{
    AcceptError, AcceptorConfig, HeaderStream, ProxyHeader, V2_SIGNATURE, read_proxy_header,
};
use http::{Request, Response};
use mesh_policy::traffic::compile::ProxyProtocolMode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
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

/// The PROXY header a gateway connection starts with, read as `mode` says: `Ok(None)` for an
/// optional header that is absent. Errors (missing when required, invalid, too slow) mean the
/// connection must be closed.
pub async fn accept_proxy_header(
    stream: &mut TcpStream,
    mode: ProxyProtocolMode,
) -> Result<Option<ProxyHeader<'static>>, AcceptError> {
    let config = AcceptorConfig::default();
    if mode == ProxyProtocolMode::Optional && !starts_with_signature(stream, config.timeout).await?
    {
        return Ok(None);
    }
    read_proxy_header(stream, &config).await.map(Some)
}

/// Whether the first bytes are a PROXY v1 (`PROXY `) or v2 signature, peeked (nothing is
/// consumed); waits for as many bytes as it takes to tell, within `timeout`.
async fn starts_with_signature(stream: &TcpStream, timeout: Duration) -> Result<bool, AcceptError> {
    const V1: &[u8] = b"PROXY ";
    let started = Instant::now();
    let mut first = [0u8; 12];
    loop {
        let seen = stream.peek(&mut first).await?;
        if seen == 0 {
            return Ok(false);
        }
        let bytes = &first[..seen];
        let maybe_v1 = bytes[..seen.min(V1.len())] == V1[..seen.min(V1.len())];
        let maybe_v2 = bytes == &V2_SIGNATURE[..seen];
        if (maybe_v1 && seen >= V1.len()) || (maybe_v2 && seen == V2_SIGNATURE.len()) {
            return Ok(true);
        }
        if !maybe_v1 && !maybe_v2 {
            return Ok(false);
        }
        // A prefix of a signature: wait for more bytes (peek returns at once while any wait).
        if started.elapsed() >= timeout {
            return Err(AcceptError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
