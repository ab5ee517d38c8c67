//! The HBONE connection pool (hbone spec §2).
//!
//! Connections are keyed by (source identity, expected identities, next hop, client IP). A
//! connection is handed out until it carries `max_streams` concurrent streams: the checkout of
//! its `max`-th stream takes it out of the pool, so the next caller dials a new one. Concurrent
//! first requests for one key wait for a single dial. A connection not checked out for
//! `idle_timeout` leaves the pool; it closes once its last stream ends. Connections whose
//! driver has ended (GOAWAY, error, keepalive failure) are skipped and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::dial::Dialled;
use super::target::PoolKey;

/// One stream's claim on a pooled connection; released when the stream is dropped.
#[derive(Debug)]
pub(crate) struct ActiveStream(Arc<AtomicUsize>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection handed out for one new stream.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) claim: ActiveStream,
    pub(crate) dialled: Dialled,
}

#[derive(Debug)]
struct PooledConnection {
    dialled: Dialled,
    active: Arc<AtomicUsize>,
    last_checkout: Instant,
}

#[derive(Debug, Default)]
struct KeyState {
    connections: Vec<PooledConnection>,
    dial_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The pool's shared state.
#[derive(Debug)]
pub(crate) struct Pool {
    keys: Mutex<HashMap<PoolKey, KeyState>>,
    max_streams: usize,
    idle_timeout: Duration,
    dials: AtomicU64,
    reaper_started: std::sync::atomic::AtomicBool,
}

impl Pool {
    pub(crate) fn new(max_streams: usize, idle_timeout: Duration) -> Self {
        Pool {
            keys: Mutex::new(HashMap::new()),
            max_streams: max_streams.max(1),
            idle_timeout,
            dials: AtomicU64::new(0),
            reaper_started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// How many connections have been dialled so far.
    pub(crate) fn dials(&self) -> u64 {
        self.dials.load(Ordering::Relaxed)
    }

    /// How many connections are in the pool (available for new streams).
    pub(crate) fn pooled_connections(&self) -> usize {
        self.lock()
            .values()
            .map(|state| state.connections.len())
            .sum()
    }

    /// A pooled connection with room for one more stream, if any.
    pub(crate) fn try_checkout(&self, key: &PoolKey) -> Option<Checkout> {
        let mut keys = self.lock();
        let state = keys.get_mut(key)?;
        state
            .connections
            .retain(|connection| connection.dialled.is_alive());
        let position = state
            .connections
            .iter()
            .position(|connection| connection.active.load(Ordering::Acquire) < self.max_streams)?;
        let connection = &mut state.connections[position];
        connection.last_checkout = Instant::now();
        let active = connection.active.fetch_add(1, Ordering::AcqRel) + 1;
        let checkout = Checkout {
            claim: ActiveStream(connection.active.clone()),
            dialled: connection.dialled.clone(),
        };
        if active >= self.max_streams {
            state.connections.remove(position);
        }
        Some(checkout)
    }

    /// The lock that serialises dials for `key`.
    pub(crate) fn dial_lock(&self, key: &PoolKey) -> Arc<tokio::sync::Mutex<()>> {
        self.lock()
            .entry(key.clone())
            .or_default()
            .dial_lock
            .clone()
    }

    /// Adds a freshly dialled connection and checks out its first stream.
    pub(crate) fn insert(self: &Arc<Self>, key: PoolKey, dialled: Dialled) -> Checkout {
        self.dials.fetch_add(1, Ordering::Relaxed);
        self.start_reaper();
        let active = Arc::new(AtomicUsize::new(1));
        let checkout = Checkout {
            claim: ActiveStream(active.clone()),
            dialled: dialled.clone(),
        };
        if self.max_streams > 1 {
            let connection = PooledConnection {
                dialled,
                active,
                last_checkout: Instant::now(),
            };
            self.lock()
                .entry(key)
                .or_default()
                .connections
                .push(connection);
        }
        checkout
    }

    /// Forgets a connection that failed to open a stream (e.g. after GOAWAY).
    pub(crate) fn discard(&self, key: &PoolKey, dialled: &Dialled) {
        dialled.mark_dead();
        if let Some(state) = self.lock().get_mut(key) {
            state
                .connections
                .retain(|connection| connection.dialled.is_alive());
        }
    }

    /// Drops connections not checked out within the idle timeout, and empty keys.
    pub(crate) fn evict_idle(&self) {
        let now = Instant::now();
        self.lock().retain(|_, state| {
            state.connections.retain(|connection| {
                connection.dialled.is_alive()
                    && now.duration_since(connection.last_checkout) < self.idle_timeout
            });
            !state.connections.is_empty() || Arc::strong_count(&state.dial_lock) > 1
        });
    }

    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(self);
        let period =
            (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = pool.upgrade() else { return };
                pool.evict_idle();
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, KeyState>> {
        // A panic while holding the lock cannot leave the map inconsistent: recover it.
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ActiveStream {
    /// A claim on no pool (for unpooled inner double-HBONE connections).
    pub(crate) fn unpooled() -> Self {
        ActiveStream(Arc::new(AtomicUsize::new(1)))
    }
}
