//! Load balancing (policy.md §2.3, BackendTrafficPolicy `loadBalancer`): which endpoint of the
//! chosen backend takes each try — round robin, random, least request (the better of two random
//! endpoints by requests in flight, as Envoy does with equal weights) or a consistent hash
//! ([`hash_key`]) over a [`maglev`] table — among the endpoints that are healthy ([`health`]:
//! outlier detection, active checks, the panic threshold). A [`Balancer`] keeps the state of
//! one route rule's backends and is usable by any forwarder: call [`BalanceEndpoints::pick`]
//! with the backend and the request head, and report the try's outcome through the pick's
//! ticket; on a gateway, the route's policy hands it to `routing`'s dispatch loop as a
//! [`PolicyBalancer`](routing::router::PolicyBalancer).
//!
//! ```
//! use std::sync::Arc;
//! use mesh_policy::traffic::balance::{Balancer, LoadBalancing};
//! use routing::compiled::{Backend, BackendProtocol, Endpoint};
//! use routing::router::{BalanceEndpoints, RequestHead};
//!
//! let backend = Backend {
//!     service: routing::model::ObjectKey::new("shop", "cart"),
//!     port: 80,
//!     endpoints: vec![
//!         Endpoint { address: ([10, 0, 0, 1], 8080).into(), pod: None, zone: None },
//!         Endpoint { address: ([10, 0, 0, 2], 8080).into(), pod: None, zone: None },
//!     ]
//!     .into(),
//!     protocol: BackendProtocol::Http1,
//!     tls: None,
//!     filters: Vec::new(),
//!     policy: Default::default(),
//!     cluster_address: None,
//!     names: None,
//! };
//! let balancer = Balancer::new(LoadBalancing::RoundRobin, [&backend]);
//! let request = http::Request::new(());
//! let first = balancer.pick(&backend, &RequestHead::of(&request)).unwrap().endpoint;
//! let second = balancer.pick(&backend, &RequestHead::of(&request)).unwrap().endpoint;
//! assert_ne!(first, second);
//! ```

pub mod active;
pub mod grpc_health;
pub mod hash_key;
pub mod health;
pub mod health_log;
pub mod health_spec;
pub mod maglev;
pub mod orca_oob;
pub mod outlier;
pub mod ring;
pub mod slow_start;
pub mod spec;
pub mod utilization;
pub mod zones;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use routing::backends::LevelHealth;
use routing::compiled::{Backend, Endpoint};
use routing::router::{
    BalanceEndpoints, EndpointPick, ObserveTries, RequestHead, TryOutcome, TryTicket,
};

pub use active::{ActiveCheck, ProbeEndpoints, ProbeOutcome, VerdictMemory};
pub use hash_key::{HashKey, SessionCookie};
pub use health::{Eligible, EndpointHealth, HealthPolicy, RememberedHealth};
pub use maglev::{MaglevEntry, MaglevTable};
pub use outlier::EjectionMemory;
pub use slow_start::{EndpointAges, SlowStart};
pub use zones::{ZoneIndex, ZoneRouting};

use super::fault::Dice;

/// How endpoints are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancing {
    /// In turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The one with fewer requests in flight of two chosen at random (Envoy's default).
    LeastRequest,
    /// In proportion to weights from the endpoints' ORCA load reports.
    BackendUtilization(Arc<utilization::UtilizationParams>),
    /// By a hash of the request over a Maglev table of `table_size` slots (a prime).
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// The Maglev table's size.
        table_size: u32,
    },
}

/// The state of one backend's endpoints: whose turn it is, requests in flight, the Maglev
/// table (built on first use), their health.
#[derive(Debug)]
pub struct BackendEndpoints {
    endpoints: Arc<[Endpoint]>,
    turn: AtomicUsize,
    in_flight: Box<[AtomicU32]>,
    maglev: OnceLock<Option<MaglevTable>>,
    /// Health, when the policy checks it.
    pub health: Option<EndpointHealth>,
    /// The ramp of endpoints new to the gateway, when the policy has a slow start.
    slow_start: Option<SlowStart>,
    /// The endpoints' zones, when the policy routes by zone.
    zones: Option<ZoneIndex>,
    /// The Maglev weight of each endpoint (weighted zones), else 1 each.
    maglev_weights: Option<Vec<u32>>,
    /// The endpoints' weights from their load reports (`BackendUtilization`).
    weights: Option<Arc<utilization::EndpointWeights>>,
}

impl BackendEndpoints {
    fn new(
        endpoints: &Arc<[Endpoint]>,
        health: Option<&HealthPolicy>,
        memory: RememberedHealth<'_>,
    ) -> Self {
        let addresses: Vec<std::net::SocketAddr> = endpoints.iter().map(|e| e.address).collect();
        BackendEndpoints {
            endpoints: Arc::clone(endpoints),
            turn: AtomicUsize::new(0),
            in_flight: endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            maglev: OnceLock::new(),
            health: health.map(|policy| EndpointHealth::remembered(policy, &addresses, memory)),
            slow_start: None,
            zones: None,
            maglev_weights: None,
            weights: None,
        }
    }

    /// Requests in flight on endpoint `index` (least-request balancing only counts them).
    pub fn in_flight(&self, index: usize) -> u32 {
        self.in_flight
            .get(index)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    fn maglev(&self, size: u32) -> Option<&MaglevTable> {
        self.maglev
            .get_or_init(|| {
                let names: Vec<String> = self
                    .endpoints
                    .iter()
                    .map(|e| e.address.to_string())
                    .collect();
                let weights = self.maglev_weights.as_deref().unwrap_or(&[]);
                let entries: Vec<MaglevEntry<'_>> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| MaglevEntry {
                        name: name.as_bytes(),
                        weight: weights.get(i).copied().unwrap_or(1),
                    })
                    .collect();
                MaglevTable::build(&entries, size).ok()
            })
            .as_ref()
    }
}

impl ObserveTries for BackendEndpoints {
    fn finished(&self, endpoint: usize, outcome: Option<TryOutcome>) {
        if let Some(count) = self.in_flight.get(endpoint) {
            // Never below zero, whatever the order of reports.
            let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        if let (Some(health), Some(outcome)) = (&self.health, outcome) {
            health.report(endpoint, outcome);
        }
    }

    fn answered(&self, endpoint: usize, headers: &mut http::HeaderMap) {
        let Some(weights) = &self.weights else {
            return;
        };
        if weights.reads_answers()
            && let Some(load) = utilization::parse_orca(headers)
        {
            weights.report(endpoint, &load);
        }
        if !weights.keeps_headers() {
            utilization::strip_orca(headers);
        }
    }
}

/// The endpoints a try may go to: all of them, or the healthy ones.
#[derive(Debug, Clone, Copy)]
enum Candidates<'a> {
    All(usize),
    Only(&'a [usize]),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Candidates::All(count) => *count,
            Candidates::Only(list) => list.len(),
        }
    }

    /// The `i`-th candidate's endpoint index.
    fn nth(&self, i: usize) -> usize {
        match self {
            Candidates::All(_) => i,
            Candidates::Only(list) => list.get(i).copied().unwrap_or(0),
        }
    }

    fn contains(&self, endpoint: usize) -> bool {
        match self {
            Candidates::All(count) => endpoint < *count,
            Candidates::Only(list) => list.contains(&endpoint),
        }
    }
}

/// A load balancer over one route rule's backends.
#[derive(Debug)]
pub struct Balancer {
    policy: LoadBalancing,
    dice: Dice,
    backends: Vec<Arc<BackendEndpoints>>,
    /// Headers naming the endpoint a request asks for (`endpointOverride`).
    overrides: Vec<http::HeaderName>,
    /// Zone-aware routing and the process's own zone (`zoneAware`).
    zones: Option<(ZoneRouting, Option<Arc<str>>)>,
    /// Predict the next try's endpoint for preconnecting (`predictivePercent` over 100).
    predicts: bool,
}

impl Balancer {
    /// A balancer choosing endpoints of `backends` by `policy`.
    pub fn new<'a>(policy: LoadBalancing, backends: impl IntoIterator<Item = &'a Backend>) -> Self {
        Balancer::with_health(policy, None, None, backends)
    }

    /// A balancer choosing healthy endpoints of `backends` by `policy`; with active checks,
    /// `prober` probes every endpoint on the current tokio runtime until the balancer is
    /// dropped.
    pub fn with_health<'a>(
        policy: LoadBalancing,
        health: Option<&HealthPolicy>,
        prober: Option<&Arc<dyn ProbeEndpoints>>,
        backends: impl IntoIterator<Item = &'a Backend>,
    ) -> Self {
        let verdicts = Arc::new(VerdictMemory::default());
        let ejections = Arc::new(EjectionMemory::default());
        let memory = RememberedHealth {
            verdicts: &verdicts,
            ejections: &ejections,
            scope: "",
        };
        Balancer::with_remembered_health(policy, health, prober, memory, backends)
    }

    /// [`Balancer::with_health`], the active checks' verdicts and the ejections starting
    /// from, and kept in, `memory` (shared by the configurations a runtime builds, so that a
    /// reload keeps them).
    pub fn with_remembered_health<'a>(
        policy: LoadBalancing,
        health: Option<&HealthPolicy>,
        prober: Option<&Arc<dyn ProbeEndpoints>>,
        memory: RememberedHealth<'_>,
        backends: impl IntoIterator<Item = &'a Backend>,
    ) -> Self {
        let dice = Dice::from_clock();
        let backends: Vec<Arc<BackendEndpoints>> = backends
            .into_iter()
            .map(|backend| {
                let mut state = BackendEndpoints::new(&backend.endpoints, health, memory);
                if let LoadBalancing::BackendUtilization(params) = &policy {
                    let weights = Arc::new(utilization::EndpointWeights::new(
                        Arc::clone(params),
                        backend.endpoints.len(),
                    ));
                    if let (Some(out_of_band), Some(prober)) = (params.out_of_band, prober) {
                        let addresses: Vec<std::net::SocketAddr> =
                            backend.endpoints.iter().map(|e| e.address).collect();
                        orca_oob::start_streams(out_of_band, prober, &addresses, &weights);
                    }
                    state.weights = Some(weights);
                }
                Arc::new(state)
            })
            .collect();
        if let (Some(check), Some(prober)) = (health.and_then(|h| h.active.as_ref()), prober) {
            for state in &backends {
                if let Some(verdicts) = state.health.as_ref().and_then(|h| h.active.as_ref()) {
                    let addresses: Vec<std::net::SocketAddr> =
                        state.endpoints.iter().map(|e| e.address).collect();
                    active::start_checks(
                        Arc::clone(check),
                        Arc::clone(prober),
                        &addresses,
                        verdicts,
                        memory.verdicts,
                        dice.next(),
                        memory.scope,
                    );
                }
            }
        }
        Balancer {
            policy,
            dice,
            backends,
            overrides: Vec::new(),
            zones: None,
            predicts: false,
        }
    }

    /// The balancer, also naming the endpoint the next try will likely take when
    /// `percent` (Envoy Gateway's `preconnect.predictivePercent`, Envoy's predictive
    /// preconnect ratio × 100) anticipates more tries than are in flight: round robin's next
    /// turn, or a random draw.
    pub fn with_prediction(mut self, percent: u32) -> Self {
        self.predicts = percent > 100
            && matches!(
                self.policy,
                LoadBalancing::RoundRobin | LoadBalancing::Random
            );
        self
    }

    /// The endpoint the next try will likely take among `candidates`.
    fn predict(&self, state: &BackendEndpoints, candidates: Candidates<'_>) -> Option<usize> {
        if !self.predicts || candidates.len() < 2 {
            return None;
        }
        Some(match self.policy {
            LoadBalancing::RoundRobin => {
                candidates.nth(state.turn.load(Ordering::Relaxed) % candidates.len())
            }
            _ => candidates.nth(self.random_index(candidates.len())),
        })
    }

    /// The balancer, first narrowing each try to a zone by `routing`, this process being in
    /// `local_zone` (Envoy Gateway's `zoneAware`; see [`zones`]).
    pub fn with_zones(mut self, routing: ZoneRouting, local_zone: Option<Arc<str>>) -> Self {
        for state in &mut self.backends {
            let index = ZoneIndex::new(state.endpoints.iter().map(|e| e.zone.as_deref()));
            let weights = match &routing {
                ZoneRouting::Weighted(weights) => Some(zones::maglev_weights(&index, weights)),
                ZoneRouting::PreferLocal(_) => None,
            };
            if let Some(state) = Arc::get_mut(state) {
                state.zones = Some(index);
                state.maglev_weights = weights;
            }
        }
        self.zones = Some((routing, local_zone));
        self
    }

    /// The candidates of the zone a try goes to, when zones narrow them (a consistent hash
    /// weighs zones in its table instead).
    fn zoned(&self, state: &BackendEndpoints, candidates: Candidates<'_>) -> Option<Vec<usize>> {
        let (routing, local) = self.zones.as_ref()?;
        if matches!(self.policy, LoadBalancing::ConsistentHash { .. }) {
            return None;
        }
        let index = state.zones.as_ref()?;
        let listed: Vec<usize>;
        let candidates = match candidates {
            Candidates::All(count) => {
                listed = (0..count).collect();
                &listed
            }
            Candidates::Only(list) => list,
        };
        routing.narrow(index, local.as_deref(), candidates, &mut || {
            self.dice.next()
        })
    }

    /// The balancer, sending a request to the endpoint its first `headers` value that names
    /// a usable (healthy) endpoint of the backend asks for — `IP:Port`, or a comma-separated
    /// list tried in order — and balancing the others as before (Envoy Gateway's
    /// `endpointOverride`).
    pub fn with_endpoint_override(mut self, headers: Vec<http::HeaderName>) -> Self {
        self.overrides = headers;
        self
    }

    /// The balancer, ramping up endpoints first seen (by `ages`) less than `window` ago
    /// (Envoy Gateway's `slowStart`, for round robin and least request).
    pub fn with_slow_start(mut self, window: Duration, ages: &EndpointAges) -> Self {
        let now = tokio::time::Instant::now();
        for state in &mut self.backends {
            let born: Box<[tokio::time::Instant]> = state
                .endpoints
                .iter()
                .map(|endpoint| ages.first_seen(endpoint.address, now))
                .collect();
            if let Some(state) = Arc::get_mut(state) {
                state.slow_start = Some(SlowStart::new(window, born));
            }
        }
        self
    }

    /// The `i`-th of `candidates` drawn in proportion to the ramp's weights at `now`.
    fn weighted(
        &self,
        ramp: &SlowStart,
        candidates: Candidates<'_>,
        now: tokio::time::Instant,
    ) -> usize {
        let total: f64 = (0..candidates.len())
            .map(|i| ramp.weight(candidates.nth(i), now))
            .sum();
        // A uniform draw in [0, total).
        let mut draw = (self.dice.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for i in 0..candidates.len() {
            draw -= ramp.weight(candidates.nth(i), now);
            if draw < 0.0 {
                return i;
            }
        }
        candidates.len() - 1
    }

    /// The endpoint the request's override headers name, if one is a candidate.
    fn overridden(
        &self,
        state: &BackendEndpoints,
        request: &RequestHead<'_>,
        candidates: Candidates<'_>,
    ) -> Option<usize> {
        self.overrides
            .iter()
            .flat_map(|name| request.headers.get_all(name))
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|address| address.trim().parse::<std::net::SocketAddr>().ok())
            .find_map(|address| {
                state
                    .endpoints
                    .iter()
                    .position(|endpoint| endpoint.address == address)
                    .filter(|&index| candidates.contains(index))
            })
    }

    /// The policy.
    pub fn policy(&self) -> &LoadBalancing {
        &self.policy
    }

    /// The state kept for `backend`'s endpoints.
    pub fn state_of(&self, backend: &Backend) -> Option<&Arc<BackendEndpoints>> {
        self.backends
            .iter()
            .find(|state| Arc::ptr_eq(&state.endpoints, &backend.endpoints))
    }

    fn random_index(&self, count: usize) -> usize {
        (self.dice.next() % count as u64) as usize
    }
}

impl BalanceEndpoints for Balancer {
    fn backend_seed(&self, request: &RequestHead<'_>) -> Option<u64> {
        match &self.policy {
            LoadBalancing::ConsistentHash { key, .. } => key.hash(request).hash,
            _ => None,
        }
    }

    fn pick(&self, backend: &Backend, request: &RequestHead<'_>) -> Option<EndpointPick> {
        self.pick_in_level(backend, request, None)
    }

    fn endpoint_health(&self, backend: &Backend) -> Option<LevelHealth> {
        let health = self.state_of(backend)?.health.as_ref()?;
        let endpoints = backend.endpoints.len();
        Some(LevelHealth {
            endpoints: endpoints as u64,
            healthy: health.healthy_count(endpoints) as u64,
        })
    }

    fn panic_threshold(&self) -> u32 {
        self.backends
            .iter()
            .find_map(|state| state.health.as_ref())
            .map_or(50, EndpointHealth::panic_threshold)
    }

    /// The endpoint of `backend` for a try, among the endpoints its health allows: as the
    /// backend's own panic threshold decides, or `level_panic` when its priority level's
    /// panic was decided for it.
    fn pick_in_level(
        &self,
        backend: &Backend,
        request: &RequestHead<'_>,
        level_panic: Option<bool>,
    ) -> Option<EndpointPick> {
        let count = backend.endpoints.len();
        if count == 0 {
            return None;
        }
        let Some(state) = self.state_of(backend) else {
            // A backend this balancer was not built for: spread at random.
            return Some(EndpointPick {
                endpoint: self.random_index(count),
                set_cookie: None,
                ticket: None,
                predicted: None,
            });
        };
        let eligible = match &state.health {
            Some(health) => health.judge(count, level_panic),
            None => Eligible::All,
        };
        let candidates = match &eligible {
            Eligible::All => Candidates::All(count),
            Eligible::Only(list) => Candidates::Only(list),
            Eligible::None => return None,
        };
        let mut set_cookie = None;
        let overridden = match self.overrides.is_empty() {
            true => None,
            false => self.overridden(state, request, candidates),
        };
        let endpoint = match overridden {
            Some(endpoint) => endpoint,
            None => {
                let zoned = self.zoned(state, candidates);
                let candidates = zoned.as_deref().map_or(candidates, Candidates::Only);
                self.by_policy(state, request, candidates, &mut set_cookie)
            }
        };
        // Least request counts tries in flight; outlier detection counts how they end.
        let tracked = matches!(
            self.policy,
            LoadBalancing::LeastRequest | LoadBalancing::BackendUtilization(_)
        ) || state
            .health
            .as_ref()
            .is_some_and(EndpointHealth::counts_outcomes);
        let ticket = tracked.then(|| {
            if let Some(counter) = state.in_flight.get(endpoint) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            let observer: Arc<dyn ObserveTries> = state.clone();
            TryTicket::new(observer, endpoint)
        });
        let predicted = self
            .predict(state, candidates)
            .filter(|&next| next != endpoint);
        Some(EndpointPick {
            endpoint,
            set_cookie,
            ticket,
            predicted,
        })
    }
}

/// The backend's ramp and the time, while some endpoint is still ramping.
fn ramping(state: &BackendEndpoints) -> Option<(&SlowStart, tokio::time::Instant)> {
    let ramp = state.slow_start.as_ref()?;
    let now = tokio::time::Instant::now();
    ramp.ramping(now).then_some((ramp, now))
}

impl Balancer {
    /// The endpoint the policy chooses among `candidates` (a consistent hash may ask for a
    /// cookie to be set).
    fn by_policy(
        &self,
        state: &BackendEndpoints,
        request: &RequestHead<'_>,
        candidates: Candidates<'_>,
        set_cookie: &mut Option<http::HeaderValue>,
    ) -> usize {
        match &self.policy {
            LoadBalancing::RoundRobin => match ramping(state) {
                Some((ramp, now)) => candidates.nth(self.weighted(ramp, candidates, now)),
                None => {
                    candidates.nth(state.turn.fetch_add(1, Ordering::Relaxed) % candidates.len())
                }
            },
            LoadBalancing::Random => candidates.nth(self.random_index(candidates.len())),
            LoadBalancing::LeastRequest => {
                let eligible = candidates.len();
                let ramp = ramping(state);
                let draw = |exclude: Option<usize>| match (ramp, exclude) {
                    (Some((ramp, now)), _) => self.weighted(ramp, candidates, now),
                    (None, None) => self.random_index(eligible),
                    // Another candidate than `first`.
                    (None, Some(first)) => (first + 1 + self.random_index(eligible - 1)) % eligible,
                };
                let first = draw(None);
                let chosen = if eligible == 1 {
                    first
                } else {
                    // A second candidate (while ramping, drawn by weight: it may repeat).
                    let second = draw(Some(first));
                    if state.in_flight(candidates.nth(second))
                        < state.in_flight(candidates.nth(first))
                    {
                        second
                    } else {
                        first
                    }
                };
                candidates.nth(chosen)
            }
            LoadBalancing::BackendUtilization(_) => match &state.weights {
                Some(weights) => {
                    let current = weights.current();
                    let weight = |i: usize| current.get(candidates.nth(i)).copied().unwrap_or(1.0);
                    let total: f64 = (0..candidates.len()).map(weight).sum();
                    let mut draw = (self.dice.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
                    let mut chosen = candidates.len() - 1;
                    for i in 0..candidates.len() {
                        draw -= weight(i);
                        if draw < 0.0 {
                            chosen = i;
                            break;
                        }
                    }
                    candidates.nth(chosen)
                }
                None => candidates.nth(self.random_index(candidates.len())),
            },
            LoadBalancing::ConsistentHash { key, table_size } => {
                let hashed = key.hash(request);
                *set_cookie = hashed.set_cookie;
                let hash = hashed.hash.unwrap_or_else(|| self.dice.next());
                self.hashed(state, *table_size, hash, candidates)
            }
        }
    }

    /// The endpoint of `hash` in the Maglev table; when that one is unhealthy, the next slots'
    /// (healthy keys keep their endpoint).
    fn hashed(
        &self,
        state: &BackendEndpoints,
        size: u32,
        hash: u64,
        candidates: Candidates<'_>,
    ) -> usize {
        let Some(table) = state.maglev(size) else {
            return candidates.nth((hash % candidates.len() as u64) as usize);
        };
        (0..table.size() as u64)
            .filter_map(|step| table.lookup(hash.wrapping_add(step)))
            .find(|&endpoint| candidates.contains(endpoint))
            .unwrap_or_else(|| candidates.nth(0))
    }
}

#[cfg(test)]
mod tests {
    use routing::compiled::BackendProtocol;
    use routing::model::ObjectKey;

    use super::*;
    use crate::traffic::client_ip::ClientAddress;

    fn backend(count: u8) -> Backend {
        Backend {
            service: ObjectKey::new("ns", "svc"),
            port: 80,
            endpoints: (0..count)
                .map(|i| Endpoint {
                    address: ([10, 0, 0, i], 80).into(),
                    pod: None,
                    zone: None,
                })
                .collect::<Vec<_>>()
                .into(),
            protocol: BackendProtocol::Http1,
            tls: None,
            filters: Vec::new(),
            policy: Default::default(),
            cluster_address: None,
            names: None,
        }
    }

    fn picks(
        balancer: &Balancer,
        backend: &Backend,
        request: &http::Request<()>,
        n: usize,
    ) -> Vec<usize> {
        (0..n)
            .map(|_| {
                balancer
                    .pick(backend, &RequestHead::of(request))
                    .unwrap()
                    .endpoint
            })
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_and_random_spreads() {
        let three = backend(3);
        let balancer = Balancer::new(LoadBalancing::RoundRobin, [&three]);
        let request = http::Request::new(());
        assert_eq!(picks(&balancer, &three, &request, 6), [0, 1, 2, 0, 1, 2]);
        let balancer = Balancer::new(LoadBalancing::Random, [&three]);
        let mut counts = [0usize; 3];
        for pick in picks(&balancer, &three, &request, 3_000) {
            counts[pick] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let two = backend(2);
        let balancer = Balancer::new(LoadBalancing::LeastRequest, [&two]);
        let request = http::Request::new(());
        // Hold one try on whichever endpoint is picked first: every later pick avoids it.
        let held = balancer.pick(&two, &RequestHead::of(&request)).unwrap();
        let busy = held.endpoint;
        let state = balancer.state_of(&two).unwrap();
        assert_eq!(state.in_flight(busy), 1);
        for _ in 0..20 {
            let pick = balancer.pick(&two, &RequestHead::of(&request)).unwrap();
            assert_ne!(pick.endpoint, busy);
            pick.ticket.unwrap().finish(Some(TryOutcome::Answered(200)));
        }
        drop(held);
        assert_eq!(state.in_flight(busy), 0);
        assert_eq!(state.in_flight(1 - busy), 0);
    }

    #[test]
    fn consistent_hash_keeps_a_client_on_one_endpoint() {
        let many = backend(10);
        let balancer = Balancer::new(
            LoadBalancing::ConsistentHash {
                key: HashKey::SourceIp,
                table_size: 251,
            },
            [&many],
        );
        let mut seen = std::collections::HashSet::new();
        for client in 0..50u8 {
            let mut request = http::Request::new(());
            request
                .extensions_mut()
                .insert(ClientAddress([192, 168, 0, client].into()));
            let chosen = picks(&balancer, &many, &request, 5);
            assert!(chosen.windows(2).all(|w| w[0] == w[1]), "{chosen:?}");
            assert_eq!(
                balancer.backend_seed(&RequestHead::of(&request)),
                balancer.backend_seed(&RequestHead::of(&request))
            );
            seen.insert(chosen[0]);
        }
        assert!(seen.len() >= 8, "50 clients reached only {seen:?}");
        // An unknown backend still gets an endpoint; an empty one none.
        let other = backend(2);
        assert!(
            balancer
                .pick(&other, &RequestHead::of(&http::Request::new(())))
                .is_some()
        );
        assert!(
            balancer
                .pick(&backend(0), &RequestHead::of(&http::Request::new(())))
                .is_none()
        );
    }
}
