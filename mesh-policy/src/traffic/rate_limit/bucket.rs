//! The token bucket of Envoy's local rate limit as Envoy Gateway configures it: `requests`
//! tokens, all refilled at once every `unit` (a fixed window, not a smooth GCRA). One atomic
//! word holds the window and the tokens taken in it, so a check is one compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fixed-window token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    limit: u32,
    window: Duration,
    start: Instant,
    /// Window index (high 32 bits) and tokens taken in it (low 32 bits).
    state: AtomicU64,
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCheck {
    /// Whether the tokens were granted.
    pub allowed: bool,
    /// The bucket's size (`x-ratelimit-limit`).
    pub limit: u32,
    /// Tokens left in this window (`x-ratelimit-remaining`).
    pub remaining: u32,
    /// Time until the bucket refills (`x-ratelimit-reset`).
    pub reset: Duration,
}

impl TokenBucket {
    /// `limit` tokens every `window` (at least a millisecond), the first window starting at
    /// `start`.
    pub fn new(limit: u32, window: Duration, start: Instant) -> Self {
        TokenBucket {
            limit,
            window: window.max(Duration::from_millis(1)),
            start,
            state: AtomicU64::new(0),
        }
    }

    /// The bucket's size.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes `cost` tokens at `now` (0 checks without taking); refused when fewer are left.
    pub fn take(&self, cost: u32, now: Instant) -> BucketCheck {
        let elapsed = now.saturating_duration_since(self.start);
        let window_nanos = self.window.as_nanos();
        let index = elapsed.as_nanos() / window_nanos;
        let into = elapsed.as_nanos() % window_nanos;
        let reset = Duration::from_nanos(u64::try_from(window_nanos - into).unwrap_or(u64::MAX));
        // Window indexes wrap after 2^32 windows; only equality with the stored one matters.
        let window = (index & u128::from(u32::MAX)) as u64;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let taken = if current >> 32 == window {
                current & u64::from(u32::MAX)
            } else {
                0
            };
            let wanted = taken + u64::from(cost);
            let left = u64::from(self.limit).saturating_sub(taken);
            if wanted > u64::from(self.limit) {
                return BucketCheck {
                    allowed: false,
                    limit: self.limit,
                    remaining: u32::try_from(left).unwrap_or(u32::MAX),
                    reset,
                };
            }
            let next = (window << 32) | wanted;
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return BucketCheck {
                        allowed: true,
                        limit: self.limit,
                        remaining: u32::try_from(u64::from(self.limit) - wanted)
                            .unwrap_or(u32::MAX),
                        reset,
                    };
                }
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_empties_and_refills_at_once_each_window() {
        let start = Instant::now();
        let bucket = TokenBucket::new(3, Duration::from_secs(1), start);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(bucket.take(1, at(0)).remaining, 2);
        assert!(bucket.take(1, at(100)).allowed);
        let last = bucket.take(1, at(900));
        assert_eq!((last.allowed, last.remaining), (true, 0));
        assert_eq!(last.reset, Duration::from_millis(100));
        assert!(!bucket.take(1, at(999)).allowed);
        let refilled = bucket.take(1, at(1000));
        assert_eq!((refilled.allowed, refilled.remaining), (true, 2));
        assert!(bucket.take(2, at(1500)).allowed);
        assert!(!bucket.take(1, at(1999)).allowed);
        // Idle windows do not accumulate tokens.
        assert_eq!(bucket.take(0, at(10_000)).remaining, 3);
        assert!(!bucket.take(4, at(10_000)).allowed);
    }

    #[test]
    fn a_zero_limit_refuses_everything_and_zero_cost_only_looks() {
        let start = Instant::now();
        let closed = TokenBucket::new(0, Duration::from_secs(1), start);
        assert!(!closed.take(1, start).allowed);
        let open = TokenBucket::new(1, Duration::from_secs(1), start);
        assert!(open.take(0, start).allowed);
        assert!(open.take(0, start).allowed);
        assert_eq!(open.take(1, start).remaining, 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let bucket = std::sync::Arc::new(TokenBucket::new(
            1000,
            Duration::from_secs(3600),
            Instant::now(),
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = std::sync::Arc::clone(&bucket);
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|_| bucket.take(1, Instant::now()).allowed)
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000);
    }
}
