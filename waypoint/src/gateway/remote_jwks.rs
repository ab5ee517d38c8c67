//! Fetches the remote JWKS that SecurityPolicies name (`remoteJWKS`): each URL when its handle
//! is due (first at once, then every `cacheDuration`, a failure again after a second), over
//! HTTP/1.1 or HTTPS ([`super::fetch`]), within a timeout and a size cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_policy::security::jwt::JwksRegistry;
use mesh_policy::security::jwt::jwks::MAX_JWKS_BYTES;
use routing::model::Config;

use super::fetch::Fetch;

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
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    let request = Fetch {
        method: http::Method::GET,
        uri,
        headers,
        body: Bytes::new(),
        cap: MAX_JWKS_BYTES,
    };
    let (status, body) = super::fetch::fetch(request, Some(config), crypto).await?;
    if status != http::StatusCode::OK {
        return Err(format!("answered {status}"));
    }
    Ok(body.to_vec())
}
