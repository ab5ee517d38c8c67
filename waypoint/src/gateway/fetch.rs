//! One-shot HTTP/1.1 exchanges over plain TCP or TLS (webpki roots), for the documents and
//! token exchanges policies need at a distance: remote JWKS, OpenID discovery, token
//! endpoints. A host `name.namespace[.svc[.cluster.local]]` is resolved through the
//! configuration's Services and EndpointSlices, as in-cluster DNS would; other hosts through
//! the resolver. Answers are read up to a size cap.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use routing::model::Config;
use tokio::net::TcpStream;

/// One exchange.
pub(crate) struct Fetch<'a> {
    pub method: Method,
    pub uri: &'a str,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The most bytes of the answer read; a longer answer is an error.
    pub cap: usize,
}

/// Performs `fetch`: the answer's status and body.
pub(crate) async fn fetch(
    fetch: Fetch<'_>,
    config: Option<&Config>,
    crypto: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<(StatusCode, Bytes), String> {
    let uri = fetch.uri;
    let parsed: http::Uri = uri.parse().map_err(|e| format!("{uri}: {e}"))?;
    let tls = match parsed.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{uri}: not http(s)")),
    };
    let host = parsed.host().ok_or_else(|| format!("{uri}: no host"))?;
    let port = parsed.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let in_cluster = config.and_then(|config| {
        routing::resolve::service_host_endpoints(config, host, port)
            .first()
            .copied()
    });
    let address = match in_cluster {
        Some(address) => address,
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?,
    };
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    let path = parsed.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::builder()
        .method(fetch.method)
        .uri(path)
        .header(
            http::header::HOST,
            parsed.authority().map_or(host, |a| a.as_str()),
        )
        .body(Full::new(fetch.body))
        .map_err(|e| e.to_string())?;
    request.headers_mut().extend(fetch.headers);
    if tls {
        let server_name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host}: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let client = rustls::ClientConfig::builder_with_provider(Arc::clone(crypto))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(server_name, stream)
            .await
            .map_err(|e| format!("{uri}: TLS: {e}"))?;
        exchange(stream, request, fetch.cap).await
    } else {
        exchange(stream, request, fetch.cap).await
    }
}

async fn exchange<IO>(
    io: IO,
    request: http::Request<Full<Bytes>>,
    cap: usize,
) -> Result<(StatusCode, Bytes), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), cap)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok((status, body.to_bytes()))
}
