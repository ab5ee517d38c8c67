//! HTTP CONNECT on a route whose BackendTrafficPolicy allows it (`httpUpgrade` of type
//! `CONNECT`): terminated (`connect.terminate`) — the gateway opens a TCP connection to the
//! chosen endpoint, answers 200, and relays the tunnel's bytes to it, as Envoy's CONNECT
//! termination does — or passed on — the CONNECT goes to the endpoint on a connection of its
//! own and, when the endpoint answers 2xx, the client's tunnel and the endpoint's are spliced.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use routing::router::{UpstreamError, UpstreamErrorKind};

use super::body_error::BodyError;
use super::connect::{Connect, ConnectOptions};
use super::forward::{ResponseBody, full_body};

/// Opens the tunnel `request` (a CONNECT) asks for, to `endpoint`.
pub(crate) async fn tunnel<C: Connect>(
    connector: &C,
    endpoint: SocketAddr,
    options: ConnectOptions,
    terminate: bool,
    mut request: Request<ResponseBody>,
) -> Result<Response<ResponseBody>, UpstreamError> {
    let client = hyper::upgrade::on(&mut request);
    let io = connector.connect_with(endpoint, options).await?;
    if terminate {
        tokio::spawn(async move {
            if let Ok(client) = client.await {
                let mut client = TokioIo::new(client);
                let mut io = io;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut io).await;
            }
        });
        let mut answer = Response::new(full_body(Bytes::new()));
        *answer.status_mut() = StatusCode::OK;
        return Ok(answer);
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Protocol, error))?;
    tokio::spawn(connection.with_upgrades());
    *request.version_mut() = http::Version::HTTP_11;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Reset, error))?;
    if response.status().is_success() {
        let backend = hyper::upgrade::on(&mut response);
        tokio::spawn(super::forward::splice_upgraded(client, backend));
    }
    Ok(response.map(|body| body.map_err(BodyError::new).boxed()))
}
