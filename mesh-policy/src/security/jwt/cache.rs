//! [`VerifiedTokenCache`]: tokens a provider verified, kept with their claims until they
//! expire, so a client that sends the same token again skips the signature check (the
//! expensive part: RSA, ECDSA, Ed25519). Only successes are kept; the time window
//! (`nbf`/`exp` with skew) is checked on every hit, and so is the key set: a token verified
//! with keys that have since been rotated out is verified again. Bounded: when full it starts
//! over.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::jwks::Jwks;
use super::token::CLOCK_SKEW_SECONDS;

/// How many tokens a cache holds at most.
pub const TOKEN_CACHE_CAPACITY: usize = 4096;

/// One verified token.
#[derive(Debug, Clone)]
struct CachedToken {
    token: Box<str>,
    provider: usize,
    keys: Arc<Jwks>,
    claims: Arc<Map<String, Value>>,
    valid_from: u64,
    valid_until: u64,
}

/// Verified tokens by a hash of their signature's tail.
#[derive(Debug, Default)]
pub struct VerifiedTokenCache {
    entries: Mutex<HashMap<u64, CachedToken, BuildHasherDefault<KeyHasher>>>,
}

/// The key is already a hash: passed through.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// FNV-1a over the last 32 bytes (the signature's tail: what differs between tokens).
fn key(token: &str) -> u64 {
    let bytes = token.as_bytes();
    bytes[bytes.len().saturating_sub(32)..]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

impl VerifiedTokenCache {
    /// The claims of `token` if `provider` verified it with `keys` (the set it has now) and
    /// it is valid at `now`.
    pub fn get(
        &self,
        token: &str,
        provider: usize,
        keys: &Arc<Jwks>,
        now: u64,
    ) -> Option<Arc<Map<String, Value>>> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&key(token))?;
        (*entry.token == *token
            && entry.provider == provider
            && Arc::ptr_eq(&entry.keys, keys)
            && entry.valid_from <= now
            && now <= entry.valid_until)
            .then(|| Arc::clone(&entry.claims))
    }

    /// Keeps a token `provider` verified with `keys`, with its claims.
    pub fn insert(
        &self,
        token: &str,
        provider: usize,
        keys: Arc<Jwks>,
        claims: Arc<Map<String, Value>>,
    ) {
        let seconds = |name: &str| claims.get(name).and_then(Value::as_f64);
        let valid_until = seconds("exp").map_or(u64::MAX, |exp| {
            (exp.max(0.0) as u64).saturating_add(CLOCK_SKEW_SECONDS)
        });
        let valid_from = seconds("nbf").map_or(0, |nbf| {
            (nbf.max(0.0) as u64).saturating_sub(CLOCK_SKEW_SECONDS)
        });
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(
            key(token),
            CachedToken {
                token: token.into(),
                provider,
                keys,
                claims,
                valid_from,
                valid_until,
            },
        );
    }

    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<Jwks> {
        Arc::new(
            Jwks::parse(
                br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
            )
            .unwrap(),
        )
    }

    #[test]
    fn hits_respect_the_time_window_the_whole_token_and_the_keys() {
        let cache = VerifiedTokenCache::default();
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"exp": 1000, "nbf": 500}"#).unwrap();
        let (keys, rotated) = (keys(), keys());
        cache.insert("aaa.bbb.sig", 1, Arc::clone(&keys), Arc::new(claims));
        assert!(cache.get("aaa.bbb.sig", 1, &keys, 700).is_some());
        assert!(
            cache.get("aaa.bbb.sig", 0, &keys, 700).is_none(),
            "another provider"
        );
        assert!(
            cache.get("aaa.bbb.sig", 1, &rotated, 700).is_none(),
            "keys rotated"
        );
        let late = 1000 + CLOCK_SKEW_SECONDS + 1;
        assert!(
            cache.get("aaa.bbb.sig", 1, &keys, late).is_none(),
            "expired"
        );
        let early = 500 - CLOCK_SKEW_SECONDS - 1;
        assert!(cache.get("aaa.bbb.sig", 1, &keys, early).is_none(), "early");
        // Same signature tail, other payload: the whole token is compared.
        assert!(cache.get("zzz.bbb.sig", 1, &keys, 700).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedTokenCache::default();
        let keys = keys();
        for i in 0..TOKEN_CACHE_CAPACITY + 10 {
            cache.insert(
                &format!("t.{i}"),
                0,
                Arc::clone(&keys),
                Arc::new(Map::new()),
            );
        }
        assert!(cache.len() <= TOKEN_CACHE_CAPACITY);
    }
}
