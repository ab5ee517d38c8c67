//! A request to a TLS backend whose BackendTrafficPolicy asks for a PROXY header
//! (`proxyProtocol`, with a BackendTLSPolicy on the Service): a connection of the request's
//! own — TCP, the PROXY header naming the request's client, then TLS with the backend's
//! policy, then HTTP/2 or HTTP/1.1 as ALPN chose — closed once the answer is read, as for
//! plain backends (a PROXY header describes one client's connection).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::router::{UpstreamError, UpstreamErrorKind};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;

use super::connect::{Connect, ConnectOptions};
use super::forward::ResponseBody;

/// Sends `request` on a new connection to `endpoint` that starts with `preface` (the PROXY
/// header) and then speaks TLS with `config` to `name`.
pub(crate) async fn send_once<C: Connect>(
    connector: &C,
    endpoint: SocketAddr,
    options: ConnectOptions,
    preface: &[u8],
    (config, name): (Arc<ClientConfig>, ServerName<'static>),
    mut request: Request<ResponseBody>,
) -> Result<Response<Incoming>, UpstreamError> {
    let mut io = connector.connect_with(endpoint, options).await?;
    io.write_all(preface)
        .await
        .map_err(|error| UpstreamError::with_source(super::connect::io_kind(&error), error))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Tls, error))?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let failed =
        |error: hyper::Error| UpstreamError::with_source(UpstreamErrorKind::Protocol, error);
    if h2 {
        *request.version_mut() = http::Version::HTTP_2;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(failed)?;
        tokio::spawn(connection);
        return sender
            .send_request(request)
            .await
            .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Reset, error));
    }
    // HTTP/1.1 writes the target in origin form.
    *request.version_mut() = http::Version::HTTP_11;
    if let Some(path) = request.uri().path_and_query().cloned() {
        *request.uri_mut() = http::Uri::from(path);
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(failed)?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Reset, error))
}
