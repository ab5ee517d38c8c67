//! The token bucket of Envoy's local rate limit as Envoy Gateway configures it: `requests`
//! tokens, all refilled at once every `unit` (a fixed window, not a smooth GCRA). One atomic
//! word holds the window and the tokens taken in it, so a check is one compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A fixed-window token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    limit: u32,
    window_nanos: u64,
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
    /// Nanoseconds until the bucket refills.
    pub reset_nanos: u64,
}

impl BucketCheck {
    /// Whether this check (of a rule that `refuses` the request, or not) is the one to report
    /// in the headers rather than `seen`: a refusing rule first, then the one with the fewest
    /// tokens left (local and global limits alike).
    pub fn reports_before(
        refuses: bool,
        check: &BucketCheck,
        seen: Option<(bool, &BucketCheck)>,
    ) -> bool {
        seen.is_none_or(|(refused, seen)| {
            (refuses, std::cmp::Reverse(check.remaining))
                > (refused, std::cmp::Reverse(seen.remaining))
        })
    }

    /// Time until the bucket refills (`x-ratelimit-reset`).
    pub fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset_nanos)
    }
}

impl TokenBucket {
    /// `limit` tokens every `window` (at least a millisecond); windows are counted from the
    /// caller's epoch.
    pub fn new(limit: u32, window: Duration) -> Self {
        TokenBucket {
            limit,
            window_nanos: u64::try_from(window.max(Duration::from_millis(1)).as_nanos())
                .unwrap_or(u64::MAX),
            state: AtomicU64::new(0),
        }
    }

    /// The bucket's size.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes `cost` tokens `elapsed` nanoseconds after the epoch (0 checks without taking);
    /// refused when fewer are left.
    #[inline]
    pub fn take(&self, cost: u32, elapsed: u64) -> BucketCheck {
        self.take_in(&self.state, cost, elapsed)
    }

    /// [`take`](Self::take) from a state word kept elsewhere (a fresh one is 0) with this
    /// bucket's size and window: the buckets of a rule's distinct values share its shape. A
    /// refused check writes nothing.
    #[inline]
    pub fn take_in(&self, state: &AtomicU64, cost: u32, elapsed: u64) -> BucketCheck {
        let mut current = state.load(Ordering::Relaxed);
        let (window, reset_nanos) = self.window_of(current, elapsed);
        loop {
            let (check, next) = self.judge(current, window, reset_nanos, cost);
            let Some(next) = next else {
                return check;
            };
            match state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return check,
                Err(seen) => current = seen,
            }
        }
    }

    /// [`take`](Self::take) for a bucket no other thread can reach (one held behind a lock):
    /// the same answer without an atomic read-modify-write.
    #[inline]
    pub fn take_exclusive(&mut self, cost: u32, elapsed: u64) -> BucketCheck {
        let state = self.state.get_mut();
        let (window, reset_nanos) = Self::window_in(self.window_nanos, *state, elapsed);
        let (check, next) = Self::decide(self.limit, *state, window, reset_nanos, cost);
        if let Some(next) = next {
            *state = next;
        }
        check
    }

    /// The window `elapsed` falls in, and the nanoseconds left of it, given the stored state.
    #[inline]
    fn window_of(&self, current: u64, elapsed: u64) -> (u64, u64) {
        Self::window_in(self.window_nanos, current, elapsed)
    }

    #[inline]
    fn window_in(window_nanos: u64, current: u64, elapsed: u64) -> (u64, u64) {
        // The stored window, when `elapsed` is still in it, spares a division; window indexes
        // wrap after 2^32 windows, and a wrapped one simply fails this check.
        let stored_start = (current >> 32).wrapping_mul(window_nanos);
        let (window, into) = match elapsed.checked_sub(stored_start) {
            Some(into) if into < window_nanos => (current >> 32, into),
            _ => (
                (elapsed / window_nanos) & u64::from(u32::MAX),
                elapsed % window_nanos,
            ),
        };
        (window, window_nanos - into)
    }

    /// The answer to taking `cost` from state `current` in `window`, and the state to store
    /// when the tokens are granted.
    #[inline]
    fn judge(
        &self,
        current: u64,
        window: u64,
        reset_nanos: u64,
        cost: u32,
    ) -> (BucketCheck, Option<u64>) {
        Self::decide(self.limit, current, window, reset_nanos, cost)
    }

    #[inline]
    fn decide(
        limit: u32,
        current: u64,
        window: u64,
        reset_nanos: u64,
        cost: u32,
    ) -> (BucketCheck, Option<u64>) {
        let taken = if current >> 32 == window {
            current & u64::from(u32::MAX)
        } else {
            0
        };
        let wanted = taken + u64::from(cost);
        if wanted > u64::from(limit) {
            let left = u64::from(limit).saturating_sub(taken);
            let check = BucketCheck {
                allowed: false,
                limit,
                remaining: u32::try_from(left).unwrap_or(u32::MAX),
                reset_nanos,
            };
            return (check, None);
        }
        let check = BucketCheck {
            allowed: true,
            limit,
            remaining: u32::try_from(u64::from(limit) - wanted).unwrap_or(u32::MAX),
            reset_nanos,
        };
        (check, Some((window << 32) | wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_empties_and_refills_at_once_each_window() {
        let bucket = TokenBucket::new(3, Duration::from_secs(1));
        let at = |ms: u64| ms * 1_000_000;
        assert_eq!(bucket.take(1, at(0)).remaining, 2);
        assert!(bucket.take(1, at(100)).allowed);
        let last = bucket.take(1, at(900));
        assert_eq!((last.allowed, last.remaining), (true, 0));
        assert_eq!(last.reset(), Duration::from_millis(100));
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
        let closed = TokenBucket::new(0, Duration::from_secs(1));
        assert!(!closed.take(1, 0).allowed);
        let open = TokenBucket::new(1, Duration::from_secs(1));
        assert!(open.take(0, 0).allowed);
        assert!(open.take(0, 0).allowed);
        assert_eq!(open.take(1, 0).remaining, 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let bucket = std::sync::Arc::new(TokenBucket::new(1000, Duration::from_secs(3600)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = std::sync::Arc::clone(&bucket);
                std::thread::spawn(move || (0..500).filter(|n| bucket.take(1, *n).allowed).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000);
    }

    #[test]
    fn an_exclusive_take_answers_as_a_shared_one() {
        let shared = TokenBucket::new(3, Duration::from_millis(100));
        let mut exclusive = TokenBucket::new(3, Duration::from_millis(100));
        // Costs and times across windows, one skipped, and a zero-cost look.
        let steps = [
            (1, 0),
            (2, 5),
            (1, 6),
            (0, 7),
            (1, 120),
            (3, 130),
            (1, 450),
            (2, 99_999),
        ];
        for (cost, ms) in steps {
            let at = ms * 1_000_000;
            assert_eq!(
                exclusive.take_exclusive(cost, at),
                shared.take(cost, at),
                "{cost} at {ms} ms"
            );
        }
    }
}
