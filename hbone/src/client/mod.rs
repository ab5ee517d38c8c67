//! The HBONE client: a tower service that opens tunnels (HTTP/2 CONNECT streams over mTLS)
//! through a pool of connections (hbone spec §1.5, §2).

mod dial;
mod error;
mod pool;
mod target;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, Request, StatusCode};
use tower::Service;

pub use error::HboneClientError;
pub use target::HboneTarget;

use crate::connect_headers::{BAGGAGE, FORWARDED, TRACEPARENT, TraceParent, forwarded_value};
use crate::h2_settings::H2Settings;
use crate::h2_stream::H2Stream;
use crate::tls::HboneTls;
use pool::{Checkout, Pool};
use target::PoolKey;

/// Client settings with ztunnel's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HboneConnectorConfig {
    /// HTTP/2 settings; `max_concurrent_streams` is the most streams per pooled connection
    /// (`POOL_MAX_STREAMS_PER_CONNECTION`, 100).
    pub h2: H2Settings,
    /// TCP connect timeout to the next hop (10 s).
    pub connect_timeout: Duration,
    /// A connection not checked out for this long leaves the pool (5 min).
    pub idle_timeout: Duration,
    /// A firewall mark (`SO_MARK`) on every dialled socket (none by default; ztunnel
    /// uses [`ZTUNNEL_MARK`](crate::socket::ZTUNNEL_MARK)).
    pub mark: Option<u32>,
}

impl Default for HboneConnectorConfig {
    fn default() -> Self {
        HboneConnectorConfig {
            h2: H2Settings::client(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            mark: None,
        }
    }
}

/// Opens HBONE tunnels: `Service<HboneTarget>` answering a byte stream ([`H2Stream`]).
///
/// Clones share one pool.
#[derive(Debug, Clone)]
pub struct HboneConnector {
    tls: HboneTls,
    config: HboneConnectorConfig,
    pool: Arc<Pool>,
}

impl HboneConnector {
    /// A connector using `tls` (see [`HboneTls`]) and default settings.
    pub fn new(tls: HboneTls) -> Self {
        Self::with_config(tls, HboneConnectorConfig::default())
    }

    /// A connector with explicit settings.
    pub fn with_config(tls: HboneTls, config: HboneConnectorConfig) -> Self {
        let pool = Pool::new(
            config.h2.max_concurrent_streams as usize,
            config.idle_timeout,
        );
        HboneConnector {
            tls,
            config,
            pool: Arc::new(pool),
        }
    }

    /// How many connections this connector (and its clones) has dialled.
    pub fn dialled_connections(&self) -> u64 {
        self.pool.dials()
    }

    /// How many connections are pooled and available for new streams.
    pub fn pooled_connections(&self) -> usize {
        self.pool.pooled_connections()
    }

    /// Opens a tunnel: a pooled connection to the next hop (dialled if needed), then a CONNECT
    /// stream. Any status other than 200 is an error.
    pub async fn open(&self, target: &HboneTarget) -> Result<H2Stream, HboneClientError> {
        let key = target.pool_key();
        let mut retried = false;
        loop {
            let checkout = self.checkout(&key, target).await?;
            let dialled = checkout.dialled.clone();
            match send_connect(checkout, target).await {
                // The pooled connection went away (GOAWAY) between checkout and request: drop
                // it and try once more on a fresh one.
                Err(HboneClientError::Request(error)) if !retried && error.is_go_away() => {
                    self.pool.discard(&key, &dialled);
                    retried = true;
                }
                outcome => return outcome,
            }
        }
    }

    /// Opens a double-HBONE tunnel: `outer` (pooled) reaches an east-west gateway with a
    /// host-name authority; inside it, a second TLS handshake and an unpooled HTTP/2 connection
    /// carry `inner`'s CONNECT (whose identities are the final service's, and whose extra
    /// headers should carry `x-forwarded-network`).
    pub async fn open_double(
        &self,
        outer: &HboneTarget,
        inner: &HboneTarget,
    ) -> Result<H2Stream, HboneClientError> {
        let outer_stream = self.open(outer).await?;
        let dialled = dial::handshake(outer_stream, inner, &self.tls, &self.config).await?;
        let checkout = Checkout {
            claim: pool::ActiveStream::unpooled(),
            dialled,
        };
        send_connect(checkout, inner).await
    }

    async fn checkout(
        &self,
        key: &PoolKey,
        target: &HboneTarget,
    ) -> Result<Checkout, HboneClientError> {
        if let Some(checkout) = self.pool.try_checkout(key) {
            return Ok(checkout);
        }
        let dial_lock = self.pool.dial_lock(key);
        let _dialling = dial_lock.lock().await;
        if let Some(checkout) = self.pool.try_checkout(key) {
            return Ok(checkout);
        }
        let dialled = dial::dial(target, &self.tls, &self.config).await?;
        Ok(self.pool.insert(key.clone(), dialled))
    }
}

impl Service<HboneTarget> for HboneConnector {
    type Response = H2Stream;
    type Error = HboneClientError;
    type Future = Pin<Box<dyn Future<Output = Result<H2Stream, HboneClientError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: HboneTarget) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.open(&target).await })
    }
}

/// Sends the CONNECT on a checked-out connection and waits for its response.
async fn send_connect(
    checkout: Checkout,
    target: &HboneTarget,
) -> Result<H2Stream, HboneClientError> {
    let request = connect_request(target, checkout.dialled.local_address)?;
    let mut send = checkout
        .dialled
        .send
        .clone()
        .ready()
        .await
        .map_err(HboneClientError::Request)?;
    let (response, stream) = send
        .send_request(request, false)
        .map_err(HboneClientError::Request)?;
    let response = response.await.map_err(HboneClientError::Request)?;
    if response.status() != StatusCode::OK {
        return Err(HboneClientError::Status(response.status()));
    }
    let headers = response.headers().clone();
    let guard = (checkout.claim, checkout.dialled);
    Ok(H2Stream::new(stream, response.into_body())
        .with_guard(guard)
        .with_response_headers(headers))
}

/// The CONNECT request: `:method` and `:authority` only, plus `forwarded`, `baggage`,
/// `traceparent` and the target's extra headers (hbone spec §1.5).
fn connect_request(
    target: &HboneTarget,
    local_address: Option<std::net::SocketAddr>,
) -> Result<Request<()>, HboneClientError> {
    let invalid =
        |error: &dyn std::fmt::Display| HboneClientError::InvalidRequest(error.to_string());
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(target.authority.to_string())
        .body(())
        .map_err(|e| invalid(&e))?;
    let headers = request.headers_mut();
    if let Some(client) = target.client.or(local_address) {
        let value = forwarded_value(client, target.forwarded_host.as_deref());
        headers.insert(
            FORWARDED,
            HeaderValue::try_from(value).map_err(|e| invalid(&e))?,
        );
    }
    headers.insert(
        BAGGAGE,
        HeaderValue::try_from(&target.baggage).map_err(|e| invalid(&e))?,
    );
    let traceparent = TraceParent::random().to_string();
    headers.insert(
        TRACEPARENT,
        HeaderValue::try_from(traceparent).map_err(|e| invalid(&e))?,
    );
    for (name, value) in &target.extra_headers {
        headers.append(name, value.clone());
    }
    Ok(request)
}
