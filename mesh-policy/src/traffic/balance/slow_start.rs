//! Slow start (BackendTrafficPolicy `loadBalancer.slowStart`, Envoy's linear slow start):
//! an endpoint first seen less than `window` ago gets a weight growing linearly with its age,
//! from Envoy's minimum of 10 % to full; round robin and least request then choose among the
//! candidates in proportion to those weights. [`EndpointAges`] remembers when each endpoint
//! was first seen, across configuration reloads, so only endpoints that are new to the
//! gateway ramp up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Envoy's `min_weight_percent` default: a new endpoint starts at a tenth of its weight.
const MIN_WEIGHT: f64 = 0.1;

/// The most endpoints remembered; past it the oldest entries are forgotten (they are past
/// any window by then, or the gateway sees more endpoints than it can ramp anyway).
const MAX_REMEMBERED: usize = 1 << 16;

/// When each endpoint was first seen, shared by every configuration a runtime builds.
#[derive(Debug, Default)]
pub struct EndpointAges {
    first_seen: Mutex<HashMap<SocketAddr, Instant>>,
}

impl EndpointAges {
    /// When `endpoint` was first seen (`now`, if this is the first time).
    pub fn first_seen(&self, endpoint: SocketAddr, now: Instant) -> Instant {
        let Ok(mut seen) = self.first_seen.lock() else {
            return now;
        };
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(&endpoint) {
            // Keep the newer half: those are the only ones that may still be ramping.
            let mut ages: Vec<Instant> = seen.values().copied().collect();
            ages.sort_unstable();
            if let Some(&cut) = ages.get(ages.len() / 2) {
                seen.retain(|_, &mut at| at >= cut);
            }
        }
        *seen.entry(endpoint).or_insert(now)
    }
}

/// The ramp of one backend's endpoints.
#[derive(Debug)]
pub struct SlowStart {
    window: Duration,
    born: Box<[Instant]>,
    /// When the last of them is past the window: weights are all full from then on.
    settled: Instant,
}

impl SlowStart {
    /// The ramp over `window` of endpoints first seen at `born`. Endpoints all first seen
    /// together (a gateway's first configuration) have equal weights throughout: nothing
    /// ramps relative to the others.
    pub fn new(window: Duration, born: Box<[Instant]>) -> Self {
        let first = born.iter().min().copied();
        let last = born.iter().max().copied();
        let settled = match (first, last) {
            (Some(first), Some(last)) if last > first => last + window,
            (Some(first), _) => first,
            _ => Instant::now(),
        };
        SlowStart {
            window,
            born,
            settled,
        }
    }

    /// Whether some endpoint is still ramping at `now`.
    pub fn ramping(&self, now: Instant) -> bool {
        now < self.settled
    }

    /// Endpoint `index`'s weight at `now`: its age over the window, at least 0.1, at most 1.
    pub fn weight(&self, index: usize, now: Instant) -> f64 {
        let Some(&born) = self.born.get(index) else {
            return 1.0;
        };
        let age = now.saturating_duration_since(born).as_secs_f64();
        (age / self.window.as_secs_f64()).clamp(MIN_WEIGHT, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_grow_linearly_from_a_tenth() {
        let start = Instant::now();
        let ramp = SlowStart::new(
            Duration::from_secs(10),
            vec![start, start + Duration::from_secs(10)].into(),
        );
        let later = start + Duration::from_secs(10);
        assert_eq!(ramp.weight(0, later), 1.0);
        assert_eq!(ramp.weight(1, later), 0.1);
        assert!((ramp.weight(1, later + Duration::from_secs(5)) - 0.5).abs() < 1e-9);
        assert!(ramp.ramping(later + Duration::from_secs(9)));
        assert!(!ramp.ramping(later + Duration::from_secs(10)));
        // Born together: never ramping.
        let together = SlowStart::new(Duration::from_secs(10), vec![start, start].into());
        assert!(!together.ramping(start));
    }

    #[test]
    fn an_endpoint_keeps_the_age_it_was_first_seen_with() {
        let ages = EndpointAges::default();
        let start = Instant::now();
        let endpoint: SocketAddr = ([10, 0, 0, 1], 80).into();
        assert_eq!(ages.first_seen(endpoint, start), start);
        assert_eq!(
            ages.first_seen(endpoint, start + Duration::from_secs(3)),
            start
        );
    }
}
