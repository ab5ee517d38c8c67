//! Weighted backend choice and its error codes (gateway-api spec §1.5), sans-IO.
//!
//! A rule's traffic is split over *all* its `backendRefs` by weight. An invalid reference keeps
//! its weight and its share is answered with 500; a valid one without ready endpoints gets 503
//! for its share; all weights 0 (or no references) is 500. The random source is the caller's, so
//! the choice is deterministic under test. The choice is typed ([`BackendChoice`]); the embedder
//! turns `Invalid` and `NoEndpoints` into those statuses. Fallback backends (Envoy Gateway
//! `Backend.spec.fallback`) form a second level, which takes the traffic the primary level's
//! health cannot ([`priority`]).

pub mod priority;

pub use priority::{LevelHealth, PriorityLoad, priority_load};

/// The largest weight the API accepts.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One entry of a rule's `backendRefs`, as resolved by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend<B> {
    /// The weight (0 means no traffic to this entry).
    pub weight: u32,
    /// What the reference resolved to.
    pub state: BackendState<B>,
    /// A fallback backend (Envoy Gateway `Backend.spec.fallback`): it takes traffic only as
    /// the primary backends' endpoints become unhealthy ([`priority`]).
    pub fallback: bool,
}

impl<B> WeightedBackend<B> {
    /// A primary entry.
    pub fn primary(weight: u32, state: BackendState<B>) -> Self {
        WeightedBackend {
            weight,
            state,
            fallback: false,
        }
    }
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

impl<B> BackendState<B> {
    /// The backend, when it is ready.
    pub fn ready(&self) -> Option<&B> {
        match self {
            BackendState::Ready(ready) => Some(ready),
            BackendState::NoEndpoints | BackendState::Invalid => None,
        }
    }
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

/// A rule's backends with their cumulative weights, built once per configuration: the
/// primary entries first, then the fallback ones.
#[derive(Debug, Clone)]
pub struct WeightedBackends<B> {
    backends: Vec<WeightedBackend<B>>,
    /// Cumulative weights within each level, for a binary search.
    cumulative: Vec<u64>,
    /// Where the fallback entries start.
    fallback_start: usize,
}

impl<B> WeightedBackends<B> {
    /// The rule's backends; weights above [`MAX_WEIGHT`] are clamped to it.
    pub fn new(backends: Vec<WeightedBackend<B>>) -> Self {
        let (mut backends, fallbacks): (Vec<_>, Vec<_>) =
            backends.into_iter().partition(|backend| !backend.fallback);
        let fallback_start = backends.len();
        backends.extend(fallbacks);
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(backends.len());
        for (index, backend) in backends.iter_mut().enumerate() {
            if index == fallback_start {
                total = 0;
            }
            backend.weight = backend.weight.min(MAX_WEIGHT);
            total += u64::from(backend.weight);
            cumulative.push(total);
        }
        WeightedBackends {
            backends,
            cumulative,
            fallback_start,
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

    /// The ready backends, whatever their weight or level.
    pub fn ready(&self) -> impl Iterator<Item = &B> {
        self.backends
            .iter()
            .filter_map(|backend| backend.state.ready())
    }

    /// How many backends the rule names (ready or not).
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the rule names no backend.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Whether some entry is a fallback backend.
    pub fn has_fallback(&self) -> bool {
        self.fallback_start < self.backends.len()
    }

    /// The sum of the primary entries' weights.
    pub fn total_weight(&self) -> u64 {
        self.level_total(false)
    }

    fn level(&self, fallback: bool) -> std::ops::Range<usize> {
        match fallback {
            false => 0..self.fallback_start,
            true => self.fallback_start..self.backends.len(),
        }
    }

    fn level_total(&self, fallback: bool) -> u64 {
        let range = self.level(fallback);
        match range.is_empty() {
            true => 0,
            false => self.cumulative.get(range.end - 1).copied().unwrap_or(0),
        }
    }

    /// Chooses by `random`, a value drawn uniformly from `0..u64::MAX` by the caller: a backend
    /// with probability weight / total, never one of weight 0; 500 for an invalid reference's
    /// share or when the total weight is 0; 503 for the share of a backend without endpoints.
    /// With fallback backends, the primary ones are taken to be healthy: the fallback ones
    /// take traffic only when no primary backend has endpoints.
    pub fn choose(&self, random: u64) -> BackendChoice<'_, B> {
        if !self.has_fallback() {
            return self.choose_in(false, random);
        }
        self.choose_by_priority(random, 0, [false, false], |_| LevelHealth {
            endpoints: 1,
            healthy: 1,
        })
        .choice
    }

    /// Chooses a level as [`priority`] splits the traffic, from the health `health` reports for
    /// each ready backend and the panic threshold (percent), then a backend of that level by
    /// weight as [`choose`](Self::choose) does; the choice says whether its level is in panic.
    /// Levels `excluded` (primary, fallback) by a retry take no traffic while another level
    /// has health; when none has, the exclusion is ignored and the choice says so.
    pub fn choose_by_priority(
        &self,
        random: u64,
        panic_threshold: u32,
        excluded: [bool; 2],
        health: impl Fn(&B) -> LevelHealth,
    ) -> PriorityChoice<'_, B> {
        if !self.has_fallback() {
            return PriorityChoice {
                choice: self.choose_in(false, random),
                panic: None,
                fallback: false,
                exclusion_ignored: false,
            };
        }
        let level_health = |fallback: bool| {
            self.backends
                .get(self.level(fallback))
                .unwrap_or_default()
                .iter()
                .filter(|backend| backend.weight > 0)
                .filter_map(|backend| backend.state.ready())
                .fold(LevelHealth::default(), |sum, ready| sum.plus(health(ready)))
        };
        let levels = [level_health(false), level_health(true)];
        let load = priority_load(levels[0], levels[1], panic_threshold);
        let (adjusted, exclusion_ignored) = match load.excluding(excluded, levels) {
            Some(adjusted) => (adjusted, false),
            None => (load, excluded != [false, false]),
        };
        let fallback = adjusted.falls_back((random % 100) as u32);
        PriorityChoice {
            choice: self.choose_in(fallback, random / 100),
            panic: Some(load.panic[usize::from(fallback)]),
            fallback,
            exclusion_ignored,
        }
    }

    fn choose_in(&self, fallback: bool, random: u64) -> BackendChoice<'_, B> {
        let total = self.level_total(fallback);
        if total == 0 {
            return BackendChoice::Invalid;
        }
        let range = self.level(fallback);
        let point = random % total;
        let level = self.cumulative.get(range.clone()).unwrap_or_default();
        let index = range.start + level.partition_point(|&end| end <= point);
        match self.backends.get(index).map(|backend| &backend.state) {
            Some(BackendState::Ready(backend)) => BackendChoice::Forward(backend),
            Some(BackendState::NoEndpoints) => BackendChoice::NoEndpoints,
            Some(BackendState::Invalid) | None => BackendChoice::Invalid,
        }
    }
}

/// A backend chosen among priority levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityChoice<'a, B> {
    /// The backend.
    pub choice: BackendChoice<'a, B>,
    /// With fallback backends, whether the chosen level is in panic (its endpoints take
    /// traffic whatever their health); `None` without them (each backend judges for itself).
    pub panic: Option<bool>,
    /// Whether the backend is of the fallback level.
    pub fallback: bool,
    /// Whether the levels excluded by a retry were all without health, so the exclusion was
    /// ignored (Envoy then forgets the levels attempted).
    pub exclusion_ignored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(weight: u32, state: BackendState<&'static str>) -> WeightedBackend<&'static str> {
        WeightedBackend::primary(weight, state)
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

    fn fallback(weight: u32, state: BackendState<&'static str>) -> WeightedBackend<&'static str> {
        WeightedBackend {
            fallback: true,
            ..backend(weight, state)
        }
    }

    #[test]
    fn fallback_backends_wait_until_the_primary_ones_lack_health() {
        let backends = WeightedBackends::new(vec![
            fallback(1, BackendState::Ready("spare")),
            backend(3, BackendState::Ready("a")),
            backend(1, BackendState::Ready("b")),
        ]);
        assert!(backends.has_fallback());
        assert_eq!(backends.total_weight(), 4);
        assert_eq!(backends.ready().count(), 3);
        // Health unknown: the primary backends take everything, by weight.
        let counts = shares(&backends, 40_000);
        assert!(!counts.contains_key("spare"));
        let a = counts["a"] as f64 / 40_000.0;
        assert!((a - 0.75).abs() < 0.01, "a got {a}");
        // Each primary backend has 2 endpoints; "b"'s are both unhealthy.
        let health = |healthy_a: u64| {
            move |name: &&str| match *name {
                "a" => LevelHealth {
                    endpoints: 2,
                    healthy: healthy_a,
                },
                "b" => LevelHealth {
                    endpoints: 2,
                    healthy: 0,
                },
                _ => LevelHealth {
                    endpoints: 1,
                    healthy: 1,
                },
            }
        };
        let mut spare = 0;
        for random in uniform(40_000) {
            let chosen = backends.choose_by_priority(random, 50, [false, false], health(2));
            assert_eq!(chosen.panic, Some(false));
            if chosen.choice == BackendChoice::Forward(&"spare") {
                spare += 1;
            }
        }
        // 2 of 4 healthy: 70 % primary, so 30 % falls back.
        let share = spare as f64 / 40_000.0;
        assert!((share - 0.30).abs() < 0.01, "spare got {share}");
        // None healthy: everything to the fallback backend.
        let all = uniform(1_000).all(|r| {
            backends
                .choose_by_priority(r, 50, [false, false], health(0))
                .choice
                == BackendChoice::Forward(&"spare")
        });
        assert!(all);
    }

    #[test]
    fn without_primary_endpoints_plain_choice_falls_back() {
        let backends = WeightedBackends::new(vec![
            backend(1, BackendState::NoEndpoints),
            fallback(1, BackendState::Ready("spare")),
        ]);
        assert_eq!(backends.choose(12_345), BackendChoice::Forward(&"spare"));
        let without_fallback = WeightedBackends::new(vec![backend(1, BackendState::NoEndpoints)]);
        assert_eq!(without_fallback.choose(12_345), BackendChoice::NoEndpoints);
        let chosen = without_fallback
            .choose_by_priority(12_345, 50, [true, false], |_| LevelHealth::default());
        assert_eq!(chosen.panic, None);
    }
}
