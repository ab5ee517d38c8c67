//! Weighted backend choice and its error codes (gateway-api spec §1.5), sans-IO.
//!
//! A rule's traffic is split over *all* its `backendRefs` by weight. An invalid reference keeps
//! its weight and its share is answered with 500; a valid one without ready endpoints gets 503
//! for its share; all weights 0 (or no references) is 500. The random source is the caller's, so
//! the choice is deterministic under test. The choice is typed ([`BackendChoice`]); the embedder
//! turns `Invalid` and `NoEndpoints` into those statuses.

/// The largest weight the API accepts.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One entry of a rule's `backendRefs`, as resolved by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend<B> {
    /// The weight (0 means no traffic to this entry).
    pub weight: u32,
    /// What the reference resolved to.
    pub state: BackendState<B>,
}

/// What a backend reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendState<B> {
    /// A usable backend with ready endpoints.
    Ready(B),
    /// A valid backend with no ready endpoints: its share gets 503.
    NoEndpoints,
    /// An invalid reference (unknown kind, missing object, not permitted by a ReferenceGrant,
    /// unsupported protocol): its share gets 500.
    Invalid,
}

/// The outcome of choosing a backend for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice<'a, B> {
    /// Forward to this backend.
    Forward(&'a B),
    /// The share of a valid backend without ready endpoints (answered 503).
    NoEndpoints,
    /// The share of an invalid reference, or a total weight of 0 (answered 500).
    Invalid,
}

/// A rule's backends with their cumulative weights, built once per configuration.
#[derive(Debug, Clone)]
pub struct WeightedBackends<B> {
    backends: Vec<WeightedBackend<B>>,
    /// Cumulative weights, for a binary search.
    cumulative: Vec<u64>,
}

impl<B> WeightedBackends<B> {
    /// The rule's backends; weights above [`MAX_WEIGHT`] are clamped to it.
    pub fn new(mut backends: Vec<WeightedBackend<B>>) -> Self {
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(backends.len());
        for backend in &mut backends {
            backend.weight = backend.weight.min(MAX_WEIGHT);
            total += u64::from(backend.weight);
            cumulative.push(total);
        }
        WeightedBackends {
            backends,
            cumulative,
        }
    }

    /// Changes every ready backend in place (e.g. to force a protocol).
    pub fn for_each_ready_mut(&mut self, mut change: impl FnMut(&mut B)) {
        for backend in &mut self.backends {
            if let BackendState::Ready(ready) = &mut backend.state {
                change(ready);
            }
        }
    }

    /// The ready backends, whatever their weight.
    pub fn ready(&self) -> impl Iterator<Item = &B> {
        self.backends
            .iter()
            .filter_map(|backend| match &backend.state {
                BackendState::Ready(ready) => Some(ready),
                BackendState::NoEndpoints | BackendState::Invalid => None,
            })
    }

    /// How many backends the rule names (ready or not).
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the rule names no backend.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Chooses by `random`, a value drawn uniformly from `0..u64::MAX` by the caller: a backend
    /// with probability weight / total, never one of weight 0; 500 for an invalid reference's
    /// share or when the total weight is 0; 503 for the share of a backend without endpoints.
    pub fn choose(&self, random: u64) -> BackendChoice<'_, B> {
        let total = self.total_weight();
        if total == 0 {
            return BackendChoice::Invalid;
        }
        let point = random % total;
        let index = self.cumulative.partition_point(|&end| end <= point);
        match self.backends.get(index).map(|backend| &backend.state) {
            Some(BackendState::Ready(backend)) => BackendChoice::Forward(backend),
            Some(BackendState::NoEndpoints) => BackendChoice::NoEndpoints,
            Some(BackendState::Invalid) | None => BackendChoice::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(weight: u32, state: BackendState<&'static str>) -> WeightedBackend<&'static str> {
        WeightedBackend { weight, state }
    }

    /// A deterministic uniform sequence for statistical checks (a 64-bit LCG's high bits).
    fn uniform(count: usize) -> impl Iterator<Item = u64> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..count).map(move |_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 11
        })
    }

    fn shares(
        backends: &WeightedBackends<&'static str>,
        draws: usize,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for random in uniform(draws) {
            let key = match backends.choose(random) {
                BackendChoice::Forward(name) => (*name).to_owned(),
                BackendChoice::NoEndpoints => "503".to_owned(),
                BackendChoice::Invalid => "500".to_owned(),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn traffic_is_split_by_weight_and_weight_zero_gets_nothing() {
        let backends = WeightedBackends::new(vec![
            backend(70, BackendState::Ready("a")),
            backend(30, BackendState::Ready("b")),
            backend(0, BackendState::Ready("never")),
        ]);
        let counts = shares(&backends, 100_000);
        assert!(!counts.contains_key("never"));
        let a = counts["a"] as f64 / 100_000.0;
        assert!((a - 0.7).abs() < 0.01, "a got {a}");
    }

    #[test]
    fn invalid_share_is_500_and_empty_share_is_503() {
        let backends = WeightedBackends::new(vec![
            backend(1, BackendState::Ready("ok")),
            backend(1, BackendState::Invalid),
            backend(2, BackendState::NoEndpoints),
        ]);
        let counts = shares(&backends, 100_000);
        for (key, expected) in [("ok", 0.25), ("500", 0.25), ("503", 0.5)] {
            let share = counts[key] as f64 / 100_000.0;
            assert!((share - expected).abs() < 0.01, "{key}: {share}");
        }
    }

    #[test]
    fn no_weight_at_all_is_500() {
        assert_eq!(
            WeightedBackends::<&str>::new(vec![]).choose(7),
            BackendChoice::Invalid
        );
        let zero = WeightedBackends::new(vec![backend(0, BackendState::Ready("a"))]);
        assert_eq!(zero.choose(7), BackendChoice::Invalid);
        let clamped = WeightedBackends::new(vec![backend(u32::MAX, BackendState::Ready("a"))]);
        assert_eq!(clamped.total_weight(), u64::from(MAX_WEIGHT));
    }
}
