//! A token bucket of bytes, shared by the streams it paces.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Envoy's refill interval: a paced stream waits for at least this much worth of tokens, so
/// bytes move in chunks of a 20th of a second rather than one by one.
const FILL_INTERVAL: Duration = Duration::from_millis(50);

/// What a stream may send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// This many bytes (at least one).
    Bytes(usize),
    /// Nothing yet: ask again after this long.
    Wait(Duration),
}

/// Bytes per second, at most one second's worth stored; refilled continuously.
#[derive(Debug)]
pub struct ByteBucket {
    rate: u64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl ByteBucket {
    /// A full bucket of `rate` bytes per second (at least 1).
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        ByteBucket {
            rate,
            state: Mutex::new(BucketState {
                tokens: rate as f64,
                last: now,
            }),
        }
    }

    /// The rate, in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes up to `wanted` bytes' worth of tokens at `now`. When fewer than a fill
    /// interval's worth (or `wanted`, if smaller) are there, nothing is taken and the wait
    /// until they are is returned.
    pub fn take(&self, wanted: usize, now: Instant) -> Grant {
        if wanted == 0 {
            return Grant::Bytes(0);
        }
        let rate = self.rate as f64;
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock cannot pace: let the bytes through rather than stall.
            return Grant::Bytes(wanted);
        };
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(rate);
        state.last = now;
        let chunk = (rate * FILL_INTERVAL.as_secs_f64()).max(1.0);
        let needed = chunk.min(wanted as f64);
        if state.tokens >= needed {
            let granted = state.tokens.min(wanted as f64).floor().max(1.0);
            state.tokens -= granted;
            // `granted` ≤ `wanted`, a usize.
            Grant::Bytes(granted as usize)
        } else {
            let missing = needed - state.tokens;
            Grant::Wait(Duration::from_secs_f64(missing / rate).max(Duration::from_millis(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_grants_one_second_then_paces() {
        let start = Instant::now();
        let bucket = ByteBucket::new(1000, start);
        assert_eq!(bucket.take(5000, start), Grant::Bytes(1000));
        // Empty: a fill interval's worth (50 bytes) takes 50 ms.
        assert_eq!(
            bucket.take(5000, start),
            Grant::Wait(Duration::from_millis(50))
        );
        let later = start + Duration::from_millis(50);
        assert_eq!(bucket.take(5000, later), Grant::Bytes(50));
        // At most one second's worth is stored.
        let idle = later + Duration::from_secs(10);
        assert_eq!(bucket.take(5000, idle), Grant::Bytes(1000));
    }

    #[test]
    fn small_writes_need_only_their_own_size() {
        let start = Instant::now();
        let bucket = ByteBucket::new(1000, start);
        assert_eq!(bucket.take(990, start), Grant::Bytes(990));
        assert_eq!(bucket.take(10, start), Grant::Bytes(10));
        assert!(matches!(bucket.take(10, start), Grant::Wait(_)));
        assert_eq!(bucket.take(0, start), Grant::Bytes(0));
    }

    #[test]
    fn over_time_the_rate_is_kept() {
        let start = Instant::now();
        let bucket = ByteBucket::new(10_000, start);
        let mut now = start;
        let mut sent = 0usize;
        while now - start < Duration::from_secs(5) {
            match bucket.take(4096, now) {
                Grant::Bytes(n) => sent += n,
                Grant::Wait(wait) => now += wait,
            }
        }
        // One second's burst plus five seconds at the rate.
        assert!((59_000..=61_000).contains(&sent), "{sent}");
    }
}
