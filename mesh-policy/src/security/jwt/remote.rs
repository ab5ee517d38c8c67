//! Remote JWKS (`remoteJWKS`, policy.md §3.5): the keys a provider fetches from a URL, kept in
//! a [`RemoteJwks`] handle that the runtime refreshes every `cacheDuration` (Envoy Gateway's
//! asynchronous retrieval: the request path never waits for a fetch). Until the first fetch
//! succeeds the provider has no keys and its tokens are refused. [`JwksRegistry`] hands out one
//! handle per URL, so keys survive configuration reloads; this module does no I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::jwks::{Jwks, JwksError};

/// Envoy Gateway's default `cacheDuration`.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(300);
/// How soon a failed fetch is tried again (`failedRefetchDuration`'s default).
pub const FAILED_REFETCH: Duration = Duration::from_secs(1);

/// The keys behind one URL.
#[derive(Debug)]
pub struct RemoteJwks {
    /// Where they are fetched from.
    pub uri: String,
    refresh: Mutex<Refresh>,
    keys: RwLock<Option<Arc<Jwks>>>,
    state: Mutex<FetchState>,
}

/// How often to fetch, as the configuration being built asks.
#[derive(Debug, Clone, Copy)]
struct Refresh {
    interval: Duration,
    /// The registry's configuration round that last asked for this URL.
    round: u64,
}

#[derive(Debug, Default)]
struct FetchState {
    next_due: Option<Instant>,
    last_error: Option<String>,
}

impl RemoteJwks {
    fn new(uri: &str, interval: Duration, round: u64) -> Self {
        RemoteJwks {
            uri: uri.to_owned(),
            refresh: Mutex::new(Refresh { interval, round }),
            keys: RwLock::new(None),
            state: Mutex::new(FetchState::default()),
        }
    }

    /// The keys fetched last, if any fetch has succeeded.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        self.keys.read().ok().and_then(|keys| keys.clone())
    }

    /// Whether a fetch is due at `now` (never fetched, or its time has come).
    pub fn is_due(&self, now: Instant) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.next_due.is_none_or(|due| due <= now))
    }

    /// Records a fetched document: new keys when it is a valid JWKS (the old ones stay
    /// otherwise); the next fetch is scheduled either way.
    pub fn fetched(&self, document: Result<Vec<u8>, String>, now: Instant) -> Result<(), String> {
        let parsed = document
            .and_then(|bytes| Jwks::parse(&bytes).map_err(|error: JwksError| error.to_string()));
        let refresh = self
            .refresh
            .lock()
            .map_or(DEFAULT_CACHE_DURATION, |r| r.interval);
        let outcome = match parsed {
            Ok(jwks) => {
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Some(Arc::new(jwks));
                }
                Ok(())
            }
            Err(reason) => Err(reason),
        };
        if let Ok(mut state) = self.state.lock() {
            state.next_due = Some(
                now + if outcome.is_ok() {
                    refresh
                } else {
                    FAILED_REFETCH
                },
            );
            state.last_error = outcome.as_ref().err().cloned();
        }
        outcome
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_error.clone())
    }
}

/// One [`RemoteJwks`] per URL, shared by every configuration that names it. Each
/// configuration is a round: [`begin`](Self::begin), a [`handle`](Self::handle) per use,
/// [`finish`](Self::finish), which forgets the URLs that round did not ask for.
#[derive(Debug, Default)]
pub struct JwksRegistry {
    handles: Mutex<HashMap<String, Arc<RemoteJwks>>>,
    round: AtomicU64,
}

impl JwksRegistry {
    /// Starts a configuration's round.
    pub fn begin(&self) {
        self.round.fetch_add(1, Ordering::Relaxed);
    }

    /// The handle for `uri` (created on first use; keys kept across rounds), refreshed every
    /// `interval` — the shortest this round asks for.
    pub fn handle(&self, uri: &str, interval: Duration) -> Option<Arc<RemoteJwks>> {
        let round = self.round.load(Ordering::Relaxed);
        let mut handles = self.handles.lock().ok()?;
        let handle = handles
            .entry(uri.to_owned())
            .or_insert_with(|| Arc::new(RemoteJwks::new(uri, interval, round)));
        if let Ok(mut refresh) = handle.refresh.lock() {
            let asked_before = refresh.round == round;
            refresh.interval = if asked_before {
                refresh.interval.min(interval)
            } else {
                interval
            };
            refresh.round = round;
        }
        Some(Arc::clone(handle))
    }

    /// Ends the round: the URLs it did not ask for are forgotten.
    pub fn finish(&self) {
        let round = self.round.load(Ordering::Relaxed);
        if let Ok(mut handles) = self.handles.lock() {
            handles.retain(|_, handle| handle.refresh.lock().is_ok_and(|r| r.round == round));
        }
    }

    /// Every handle.
    pub fn all(&self) -> Vec<Arc<RemoteJwks>> {
        self.handles
            .lock()
            .map(|handles| handles.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &[u8] = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn fetches_are_scheduled_and_failures_keep_the_old_keys() {
        let registry = JwksRegistry::default();
        registry.begin();
        let handle = registry
            .handle("http://idp/jwks", Duration::from_secs(60))
            .unwrap();
        let now = Instant::now();
        assert!(handle.is_due(now) && handle.current().is_none());
        handle.fetched(Ok(JWKS.to_vec()), now).unwrap();
        assert!(handle.current().is_some() && !handle.is_due(now));
        assert!(handle.is_due(now + Duration::from_secs(60)));
        assert!(handle.fetched(Ok(b"{}".to_vec()), now).is_err());
        assert!(handle.current().is_some(), "the old keys stay");
        assert!(
            handle.is_due(now + FAILED_REFETCH),
            "a failure is retried soon"
        );
        assert!(handle.last_error().is_some());
        registry.finish();
        registry.begin();
        let same = registry
            .handle("http://idp/jwks", Duration::from_secs(5))
            .unwrap();
        assert!(
            Arc::ptr_eq(&same, &handle),
            "one handle per URL: keys survive reloads"
        );
        registry.finish();
        // A later configuration asking for a longer interval gets it (not the old minimum).
        registry.begin();
        registry
            .handle("http://idp/jwks", Duration::from_secs(300))
            .unwrap();
        registry.finish();
        handle.fetched(Ok(JWKS.to_vec()), now).unwrap();
        assert!(!handle.is_due(now + Duration::from_secs(60)));
        // A configuration that no longer names the URL forgets it.
        registry.begin();
        registry.finish();
        assert!(registry.all().is_empty());
    }
}
