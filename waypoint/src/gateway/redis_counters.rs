//! [`RedisCounters`]: global rate limits counted in Redis, as Envoy Gateway's rate-limit
//! service counts them — per counter one `INCRBY` and one `EXPIRE` (the rule's window),
//! pipelined in one round trip for all the counters a request charges. Every gateway pointed at
//! the same Redis shares the counts. The connection is opened on first use and re-opened after
//! a failure; an answer slower than the timeout (Envoy Gateway's default: 20 ms) is a failure,
//! on which requests pass unless the gateway fails closed.

use std::sync::Arc;
use std::time::Duration;

use mesh_policy::traffic::rate_limit::global::{
    CounterError, CounterHit, CountsFuture, SharedCounters,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// Where the counters are and how failures are handled (Envoy Gateway's `rateLimit` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitBackend {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// The longest a request waits for its counts.
    pub timeout: Duration,
    /// Refuse requests (500) when Redis fails, instead of letting them pass.
    pub fail_closed: bool,
}

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisCounters {
    client: redis::Client,
    timeout: Duration,
    fail_closed: bool,
    connection: Arc<Mutex<Option<ConnectionManager>>>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("timeout", &self.timeout)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters at `backend.url` (not connected until first used).
    pub fn new(backend: &RateLimitBackend) -> Result<Self, redis::RedisError> {
        Ok(RedisCounters {
            client: redis::Client::open(backend.url.as_str())?,
            timeout: backend.timeout,
            fail_closed: backend.fail_closed,
            connection: Arc::new(Mutex::new(None)),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let connection = self
            .client
            .get_connection_manager_with_config(config)
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn add_now(&self, hits: Vec<CounterHit>) -> Result<Vec<u64>, CounterError> {
        let failed = |e: redis::RedisError| CounterError(e.to_string());
        let mut connection = self.connection().await.map_err(failed)?;
        let mut pipeline = redis::pipe();
        for hit in &hits {
            pipeline
                .cmd("INCRBY")
                .arg(&hit.key)
                .arg(hit.cost)
                .cmd("EXPIRE")
                .arg(&hit.key)
                .arg(hit.window.as_secs().max(1))
                .ignore();
        }
        match pipeline.query_async::<Vec<u64>>(&mut connection).await {
            Ok(counts) if counts.len() == hits.len() => Ok(counts),
            Ok(counts) => Err(CounterError(format!(
                "{} counts for {} counters",
                counts.len(),
                hits.len()
            ))),
            Err(error) => {
                if error.is_unrecoverable_error() || error.is_io_error() {
                    // Open a fresh connection next time.
                    self.connection.lock().await.take();
                }
                Err(failed(error))
            }
        }
    }
}

impl SharedCounters for RedisCounters {
    fn add(&self, hits: Vec<CounterHit>) -> CountsFuture {
        let counters = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(counters.timeout, counters.add_now(hits)).await {
                Ok(result) => result,
                Err(_) => Err(CounterError(format!(
                    "no answer within {:?}",
                    counters.timeout
                ))),
            }
        })
    }

    fn fail_closed(&self) -> bool {
        self.fail_closed
    }
}
