//! Fetches the remote JWKS that SecurityPolicies name (`remoteJWKS`): each URL when its handle
//! is due (first at once, then every `cacheDuration`, a failure again after a second), over
//! HTTP/1.1 or HTTPS, within a timeout and a size cap. A host
//! `name.namespace[.svc[.cluster.local]]` is resolved through the configuration's Services and
//! EndpointSlices, as in-cluster DNS would; other hosts through the resolver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use mesh_policy::security::jwt::JwksRegistry;
use mesh_policy::security::jwt::jwks::MAX_JWKS_BYTES;
use routing::model::Config;
use tokio::net::TcpStream;

/// How long one fetch may take, connection included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often handles are looked at.
const POLL: Duration = Duration::from_millis(200);

/// Refreshes `registry`'s handles forever, resolving Service hosts in the configuration
/// `snapshot()` serves.
pub(crate) async fn refresh_forever(
    registry: Arc<JwksRegistry>,
    snapshot: impl Fn() -> Arc<crate::config::Snapshot>,
    crypto: Arc<rustls::crypto::CryptoProvider>,
) {
    loop {
        for handle in registry.all() {
            if !handle.is_due(Instant::now()) {
                continue;
            }
            let serving = snapshot();
            let fetched =
                tokio::time::timeout(FETCH_TIMEOUT, fetch(&handle.uri, &serving.config, &crypto))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")));
            let _ = handle.fetched(fetched, Instant::now());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `GET uri`: the body of a 200 answer (at most [`MAX_JWKS_BYTES`]).
pub(crate) async fn fetch(
    uri: &str,
    config: &Config,
    crypto: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Vec<u8>, String> {
    let parsed: http::Uri = uri.parse().map_err(|e| format!("{uri}: {e}"))?;
    let tls = match parsed.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{uri}: not http(s)")),
    };
    let host = parsed.host().ok_or_else(|| format!("{uri}: no host"))?;
    let port = parsed.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let address = match routing::resolve::service_host_endpoints(config, host, port)
        .first()
        .copied()
    {
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
    let request = http::Request::get(path)
        .header(
            http::header::HOST,
            parsed.authority().map_or(host, |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
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
        exchange(stream, request).await
    } else {
        exchange(stream, request).await
    }
}

async fn exchange<IO>(io: IO, request: http::Request<Empty<Bytes>>) -> Result<Vec<u8>, String>
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
    if response.status() != http::StatusCode::OK {
        return Err(format!("answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
