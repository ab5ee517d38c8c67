//! The exchanges of `oidc` (mesh-policy's [`IdentityProviderClient`]): discovery documents and
//! token requests over HTTP/1.1 or HTTPS ([`super::fetch`]), within each request's timeout,
//! answers read up to [`MAX_PROVIDER_ANSWER_BYTES`]. Service hosts resolve through the
//! configuration being served.

use std::fmt;
use std::sync::{Arc, OnceLock};

use mesh_policy::security::oidc::{
    IdentityProviderClient, MAX_PROVIDER_ANSWER_BYTES, ProviderFuture, ProviderRequest,
    ProviderResponse,
};

use super::fetch::{Fetch, fetch};
use crate::config::Snapshot;

/// How the client finds the configuration being served (set once the runtime has one).
type ServedConfig = Arc<OnceLock<Box<dyn Fn() -> Arc<Snapshot> + Send + Sync>>>;

/// Talks to OpenID providers.
#[derive(Clone)]
pub struct ProviderClient {
    served: ServedConfig,
    crypto: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderClient")
    }
}

impl ProviderClient {
    /// A client verifying providers' certificates with `crypto` against the webpki roots.
    pub fn new(crypto: Arc<rustls::crypto::CryptoProvider>) -> Self {
        ProviderClient {
            served: Arc::default(),
            crypto,
        }
    }

    /// Resolves Service hosts in the configuration `served()` returns from now on.
    pub fn serve_from(&self, served: impl Fn() -> Arc<Snapshot> + Send + Sync + 'static) {
        let _ = self.served.set(Box::new(served));
    }
}

impl IdentityProviderClient for ProviderClient {
    fn send(&self, request: ProviderRequest) -> ProviderFuture {
        let this = self.clone();
        Box::pin(async move {
            let snapshot = this.served.get().map(|served| served());
            let timeout = request.timeout;
            let exchange = fetch(
                Fetch {
                    method: request.method,
                    uri: &request.url,
                    headers: request.headers,
                    body: request.body,
                    cap: MAX_PROVIDER_ANSWER_BYTES,
                },
                snapshot.as_ref().map(|s| &s.config),
                &this.crypto,
            );
            let (status, body) = tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))?;
            Ok(ProviderResponse { status, body })
        })
    }
}
