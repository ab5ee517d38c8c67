//! The health of one backend's endpoints as the balancer sees it: ejected by outlier detection
//! ([`outlier`](super::outlier)) or failing active checks ([`active`](super::active)) — and
//! Envoy's panic threshold (`healthCheck.panicThreshold`, 50 % by default): when fewer than
//! that share of the endpoints is healthy, health is ignored and every endpoint takes traffic;
//! with 0, a backend whose endpoints are all unhealthy answers 503.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use routing::router::TryOutcome;

use super::active::{ActiveCheck, ActiveVerdicts, VerdictMemory};
use super::outlier::{EjectionMemory, OutlierDetection, Outliers};
use crate::traffic::rate_limit::clock::Epoch;

/// `healthCheck`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Below this healthy percentage, health is ignored (50; 0 disables panic mode).
    pub panic_threshold: u32,
    /// Outlier detection.
    pub passive: Option<OutlierDetection>,
    /// Active checks.
    pub active: Option<Arc<ActiveCheck>>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            panic_threshold: 50,
            passive: None,
            active: None,
        }
    }
}

/// Which endpoints may take a try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligible {
    /// Every endpoint (all healthy, or panic mode).
    All,
    /// Only these.
    Only(Vec<usize>),
    /// None: the try is answered 503.
    None,
}

/// One backend's endpoint health.
#[derive(Debug)]
pub struct EndpointHealth {
    panic_threshold: u32,
    epoch: Epoch,
    outliers: Option<Mutex<Outliers>>,
    /// Each endpoint's ejection end (nanoseconds on `epoch`), readable without the lock.
    ejected_until: Box<[AtomicU64]>,
    /// The active checks' verdicts.
    pub active: Option<Arc<ActiveVerdicts>>,
    /// Where ejections are remembered across configurations.
    remembered: Option<EjectionsKept>,
}

/// The memory ejections are kept in, this backend's key in it, the endpoints' addresses.
#[derive(Debug)]
struct EjectionsKept {
    memory: Arc<EjectionMemory>,
    key: Arc<str>,
    addresses: Box<[SocketAddr]>,
}

/// What a runtime's balancers remember across configurations, and under which scope (the
/// route) this one's ejections are kept.
#[derive(Debug, Clone, Copy)]
pub struct RememberedHealth<'a> {
    /// The active checks' last verdicts.
    pub verdicts: &'a Arc<VerdictMemory>,
    /// Outlier detection's ejections.
    pub ejections: &'a Arc<EjectionMemory>,
    /// The route the balancer serves.
    pub scope: &'a str,
}

impl EndpointHealth {
    /// Health state for `endpoints` endpoints under `policy` (active verdicts start passing;
    /// the checks are started by the balancer).
    pub fn new(policy: &HealthPolicy, endpoints: usize) -> Self {
        let active = policy
            .active
            .as_ref()
            .map(|_| Arc::new(ActiveVerdicts::new(endpoints)));
        EndpointHealth::with_verdicts(policy, endpoints, active)
    }

    /// Health state for `endpoints` under `policy`, the active verdicts and the ejections
    /// starting from what `memory` remembers of earlier configurations.
    pub fn remembered(
        policy: &HealthPolicy,
        endpoints: &[SocketAddr],
        memory: RememberedHealth<'_>,
    ) -> Self {
        let active = policy.active.as_ref().map(|check| {
            Arc::new(ActiveVerdicts::remembered(
                memory.verdicts,
                check,
                endpoints,
            ))
        });
        let mut health = EndpointHealth::with_verdicts(policy, endpoints.len(), active);
        if let (Some(settings), Some(outliers)) = (&policy.passive, &health.outliers) {
            let key: Arc<str> = Arc::from(format!("{}|{settings:?}", memory.scope));
            let now = health.epoch.elapsed_nanos();
            if let Ok(mut outliers) = outliers.lock() {
                for (index, &address) in endpoints.iter().enumerate() {
                    if let Some((left, ejections)) = memory.ejections.recall(&key, address) {
                        let until = now.saturating_add(left.as_nanos() as u64).max(1);
                        outliers.restore(index, ejections, until);
                        if let Some(slot) = health.ejected_until.get(index) {
                            slot.store(until, Ordering::Relaxed);
                        }
                    }
                }
            }
            health.remembered = Some(EjectionsKept {
                memory: Arc::clone(memory.ejections),
                key,
                addresses: endpoints.into(),
            });
        }
        health
    }

    fn with_verdicts(
        policy: &HealthPolicy,
        endpoints: usize,
        active: Option<Arc<ActiveVerdicts>>,
    ) -> Self {
        let epoch = Epoch::now();
        EndpointHealth {
            panic_threshold: policy.panic_threshold,
            outliers: policy
                .passive
                .clone()
                .map(|settings| Mutex::new(Outliers::new(settings, endpoints, 0))),
            epoch,
            ejected_until: (0..endpoints).map(|_| AtomicU64::new(0)).collect(),
            active,
            remembered: None,
        }
    }

    /// Whether outlier detection wants to hear how tries end.
    pub fn counts_outcomes(&self) -> bool {
        self.outliers.is_some()
    }

    fn healthy(&self, endpoint: usize, now: u64) -> bool {
        let ejected = self
            .ejected_until
            .get(endpoint)
            .is_some_and(|until| until.load(Ordering::Relaxed) > now);
        let failing = self.active.as_ref().is_some_and(|a| a.failing(endpoint));
        !ejected && !failing
    }

    /// The endpoints that may take a try now, of `count` (in panic mode, all of them).
    pub fn eligible(&self, count: usize) -> Eligible {
        self.judge(count, None)
    }

    /// How many of `count` endpoints are healthy now.
    pub fn healthy_count(&self, count: usize) -> usize {
        let now = self.epoch.elapsed_nanos();
        (0..count).filter(|&e| self.healthy(e, now)).count()
    }

    /// The healthy percentage under which health is ignored (0: never).
    pub fn panic_threshold(&self) -> u32 {
        self.panic_threshold
    }

    /// The endpoints that may take a try now, of `count`, in a priority level whose panic the
    /// caller decided (primary and fallback backends): in panic all, else the healthy ones.
    pub fn eligible_in_level(&self, count: usize, panic: bool) -> Eligible {
        self.judge(count, Some(panic))
    }

    /// The endpoints that may take a try: all when all are healthy or in panic — `panic`, or,
    /// when not given, too few healthy endpoints for the threshold —, else the healthy ones.
    pub(super) fn judge(&self, count: usize, panic: Option<bool>) -> Eligible {
        if panic == Some(true) {
            return Eligible::All;
        }
        let now = self.epoch.elapsed_nanos();
        if (0..count).all(|e| self.healthy(e, now)) {
            return Eligible::All;
        }
        let healthy: Vec<usize> = (0..count).filter(|&e| self.healthy(e, now)).collect();
        let panic = panic.unwrap_or_else(|| {
            (healthy.len() as u64) * 100 < u64::from(self.panic_threshold) * count as u64
        });
        match (panic, healthy.is_empty()) {
            (true, _) => Eligible::All,
            (false, true) => Eligible::None,
            (false, false) => Eligible::Only(healthy),
        }
    }

    /// Counts how a try on `endpoint` ended.
    pub fn report(&self, endpoint: usize, outcome: TryOutcome) {
        let Some(outliers) = &self.outliers else {
            return;
        };
        let now = self.epoch.elapsed_nanos();
        let Ok(mut outliers) = outliers.lock() else {
            return;
        };
        for ejected in outliers.report(endpoint, outcome, now) {
            if let (Some(slot), Some(record)) =
                (self.ejected_until.get(ejected), outliers.record(ejected))
            {
                slot.store(record.ejected_until, Ordering::Relaxed);
                if let Some(kept) = &self.remembered
                    && let Some(&address) = kept.addresses.get(ejected)
                {
                    let left =
                        std::time::Duration::from_nanos(record.ejected_until.saturating_sub(now));
                    kept.memory.remember(
                        &kept.key,
                        address,
                        std::time::Instant::now() + left,
                        record.ejections,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ejecting() -> HealthPolicy {
        HealthPolicy {
            panic_threshold: 50,
            passive: Some(OutlierDetection {
                consecutive_5xx: Some(1),
                max_ejection_percent: 100,
                ..OutlierDetection::default()
            }),
            active: None,
        }
    }

    #[test]
    fn ejected_endpoints_leave_until_panic_mode_brings_all_back() {
        let health = EndpointHealth::new(&ejecting(), 4);
        assert!(health.counts_outcomes());
        assert_eq!(health.eligible(4), Eligible::All);
        health.report(1, TryOutcome::Answered(503));
        assert_eq!(health.eligible(4), Eligible::Only(vec![0, 2, 3]));
        health.report(2, TryOutcome::Answered(500));
        assert_eq!(health.eligible(4), Eligible::Only(vec![0, 3]));
        // One healthy of four is under 50 %: panic, everyone takes traffic.
        health.report(3, TryOutcome::Answered(500));
        assert_eq!(health.eligible(4), Eligible::All);
    }

    #[test]
    fn without_panic_mode_an_all_unhealthy_backend_has_no_endpoint() {
        let policy = HealthPolicy {
            panic_threshold: 0,
            ..ejecting()
        };
        let health = EndpointHealth::new(&policy, 2);
        health.report(0, TryOutcome::Answered(500));
        assert_eq!(health.eligible(2), Eligible::Only(vec![1]));
        health.report(1, TryOutcome::Answered(500));
        assert_eq!(health.eligible(2), Eligible::None);
        let quiet = EndpointHealth::new(&HealthPolicy::default(), 2);
        assert!(!quiet.counts_outcomes());
        quiet.report(0, TryOutcome::Answered(500));
        assert_eq!(quiet.eligible(2), Eligible::All);
    }

    #[test]
    fn in_a_priority_level_the_caller_decides_panic() {
        let health = EndpointHealth::new(&ejecting(), 4);
        for endpoint in 1..4 {
            health.report(endpoint, TryOutcome::Answered(500));
        }
        assert_eq!(health.healthy_count(4), 1);
        assert_eq!(health.panic_threshold(), 50);
        // On its own the backend would be in panic; its level is not.
        assert_eq!(health.eligible(4), Eligible::All);
        assert_eq!(health.eligible_in_level(4, false), Eligible::Only(vec![0]));
        assert_eq!(health.eligible_in_level(4, true), Eligible::All);
        health.report(0, TryOutcome::Answered(500));
        assert_eq!(health.eligible_in_level(4, false), Eligible::None);
        let quiet = EndpointHealth::new(&ejecting(), 2);
        assert_eq!(quiet.eligible_in_level(2, false), Eligible::All);
    }
}
