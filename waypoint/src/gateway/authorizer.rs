//! The exchanges of `extAuth` (mesh-policy's [`AuthorizerClient`]): HTTP/1.1 to an HTTP
//! authorizer, HTTP/2 with prior knowledge to a gRPC one, each over pooled connections to one
//! of the authorizer Service's ready endpoints (taken in turn), within the policy's timeout,
//! the answer read up to [`MAX_AUTHORIZER_ANSWER_BYTES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh_policy::security::ext_auth::{
    AuthorizerClient, AuthorizerFuture, AuthorizerProtocol, AuthorizerRequest, AuthorizerResponse,
    MAX_AUTHORIZER_ANSWER_BYTES,
};

/// The most idle connections kept to one authorizer endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// Pooled clients to authorizers.
#[derive(Debug, Clone)]
pub struct PooledAuthorizers {
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
    turn: Arc<AtomicUsize>,
}

impl Default for PooledAuthorizers {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        // Idle connections are capped per endpoint and closed after 90 s.
        builder
            .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
            .pool_idle_timeout(std::time::Duration::from_secs(90));
        PooledAuthorizers {
            http1: builder.build(connector.clone()),
            http2: builder.http2_only(true).build(connector),
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl AuthorizerClient for PooledAuthorizers {
    fn exchange(&self, call: AuthorizerRequest) -> AuthorizerFuture {
        let this = self.clone();
        Box::pin(async move {
            let timeout = call.timeout;
            tokio::time::timeout(timeout, this.exchange_now(call))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        })
    }
}

impl PooledAuthorizers {
    async fn exchange_now(self, call: AuthorizerRequest) -> Result<AuthorizerResponse, String> {
        let endpoints = &call.target.endpoints;
        if endpoints.is_empty() {
            return Err(format!("{}: no ready endpoints", call.target.authority));
        }
        let endpoint = endpoints[self.turn.fetch_add(1, Ordering::Relaxed) % endpoints.len()];
        let (mut parts, body) = call.request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("http://{endpoint}{path}")
            .parse()
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let client = match call.protocol {
            AuthorizerProtocol::Http => &self.http1,
            AuthorizerProtocol::Grpc => {
                // `:authority` is the endpoint the pool connects to.
                parts.headers.remove(http::header::HOST);
                parts.version = http::Version::HTTP_2;
                &self.http2
            }
        };
        let response = client
            .request(http::Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| format!("{} ({endpoint}): {e}", call.target.authority))?;
        let (head, body) = response.into_parts();
        let collected = Limited::new(body, MAX_AUTHORIZER_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{} answer: {e}", call.target.authority))?;
        let trailers = collected.trailers().cloned();
        Ok(AuthorizerResponse {
            status: head.status,
            headers: head.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }
}
