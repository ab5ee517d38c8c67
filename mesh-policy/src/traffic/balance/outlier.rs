//! Passive health checking — outlier detection (policy.md §2.5, BackendTrafficPolicy
//! `healthCheck.passive`), sans-IO: every try's outcome is counted per endpoint, and an
//! endpoint with too many consecutive failures is ejected for `baseEjectionTime` times the
//! number of times it has been ejected (capped at 300 s, Envoy's `max_ejection_time`), unless
//! that would eject more than `maxEjectionPercent` of the endpoints. Counting as Envoy counts:
//!
//! - without `splitExternalLocalOriginErrors`, a local failure (connect, reset, timeout) is a
//!   5xx and a gateway error (Envoy answers it 503 or 504);
//! - with it, local failures count only towards `consecutiveLocalOriginFailures`;
//! - any answer below 500 ends a run of failures.
//!
//! Every `interval`, an endpoint that stayed in takes one ejection off its count, and with
//! `failurePercentageThreshold`, an endpoint with at least 50 tries in the interval (among at
//! least 5 endpoints) whose failures reached the threshold is ejected. The interval's work is
//! done by the first report after it ends; an ejected endpoint is back as soon as its time is
//! up (Envoy waits for the next interval).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use routing::router::TryOutcome;

/// Envoy's cap on one ejection.
pub const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// Envoy's minimum tries in an interval for the failure-percentage rule.
pub const FAILURE_PERCENTAGE_REQUEST_VOLUME: u32 = 50;
/// Envoy's minimum endpoints for the failure-percentage rule.
pub const FAILURE_PERCENTAGE_MINIMUM_HOSTS: usize = 5;

/// The detector's settings, with Envoy Gateway's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// How often ejection counts decay and failure percentages are judged (3 s).
    pub interval: Duration,
    /// Consecutive 5xx that eject (5); `None`: not judged.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors (502, 503, 504) that eject; `None` (the default): not judged.
    pub consecutive_gateway_errors: Option<u32>,
    /// Whether local failures are counted apart from the backend's answers.
    pub split_local_origin: bool,
    /// Consecutive local failures that eject when split (5).
    pub consecutive_local_origin: u32,
    /// The first ejection's length (30 s).
    pub base_ejection_time: Duration,
    /// The most endpoints ejected at once, in percent (10).
    pub max_ejection_percent: u32,
    /// Eject one endpoint even when that exceeds `max_ejection_percent`.
    pub always_eject_one: bool,
    /// Failure percentage in an interval that ejects; `None`: not judged.
    pub failure_percentage: Option<u32>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            interval: Duration::from_secs(3),
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: None,
            split_local_origin: false,
            consecutive_local_origin: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
            always_eject_one: false,
            failure_percentage: None,
        }
    }
}

/// The ejections of each backend's endpoints, kept across configurations by the runtime that
/// builds them (keyed by the route and the detector's settings), as Envoy keeps a host's
/// ejection across endpoint updates.
#[derive(Debug, Default)]
pub struct EjectionMemory {
    ejected: std::sync::Mutex<std::collections::HashMap<EjectedKey, Ejected>>,
}

/// A backend's key (route and settings) and an endpoint's address.
type EjectedKey = (Arc<str>, SocketAddr);
/// Until when an endpoint is ejected, and how many times it was.
type Ejected = (std::time::Instant, u32);

/// The most ejections remembered; past it the memory starts over.
const MAX_REMEMBERED: usize = 1 << 16;

impl EjectionMemory {
    /// Remembers that `address` (under `key`) is ejected until `until`, its `ejections`th time.
    pub fn remember(
        &self,
        key: &Arc<str>,
        address: SocketAddr,
        until: std::time::Instant,
        ejections: u32,
    ) {
        if let Ok(mut map) = self.ejected.lock() {
            if map.len() >= MAX_REMEMBERED {
                map.retain(|_, (until, _)| *until > std::time::Instant::now());
                if map.len() >= MAX_REMEMBERED {
                    map.clear();
                }
            }
            map.insert((Arc::clone(key), address), (until, ejections));
        }
    }

    /// How much longer `address` (under `key`) stays ejected, and how many times it was, when
    /// it still is.
    pub fn recall(&self, key: &Arc<str>, address: SocketAddr) -> Option<(Duration, u32)> {
        let map = self.ejected.lock().ok()?;
        let (until, ejections) = *map.get(&(Arc::clone(key), address))?;
        let left = until.checked_duration_since(std::time::Instant::now())?;
        (!left.is_zero()).then_some((left, ejections))
    }
}

/// One endpoint's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRecord {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    /// Times ejected, less one per interval spent in.
    pub ejections: u32,
    /// Until when (nanoseconds on the detector's clock) it is ejected; 0: not ejected.
    pub ejected_until: u64,
    tries: u32,
    failures: u32,
}

/// The detector over one backend's endpoints.
#[derive(Debug, Clone)]
pub struct Outliers {
    settings: OutlierDetection,
    records: Vec<EndpointRecord>,
    interval_started: u64,
}

impl Outliers {
    /// A detector over `endpoints` endpoints, all in, at time `now` (nanoseconds).
    pub fn new(settings: OutlierDetection, endpoints: usize, now: u64) -> Self {
        Outliers {
            settings,
            records: vec![EndpointRecord::default(); endpoints],
            interval_started: now,
        }
    }

    /// Puts `endpoint` back under an ejection that began in an earlier configuration.
    pub fn restore(&mut self, endpoint: usize, ejections: u32, ejected_until: u64) {
        if let Some(record) = self.records.get_mut(endpoint) {
            record.ejections = ejections;
            record.ejected_until = ejected_until;
        }
    }

    /// The endpoint's counts.
    pub fn record(&self, endpoint: usize) -> Option<&EndpointRecord> {
        self.records.get(endpoint)
    }

    /// Whether `endpoint` is ejected at `now`.
    pub fn ejected(&self, endpoint: usize, now: u64) -> bool {
        self.records
            .get(endpoint)
            .is_some_and(|r| r.ejected_until > now)
    }

    /// Counts a try's outcome on `endpoint` at `now`; returns the endpoints it ejected (this
    /// one, or others judged at an interval's end).
    pub fn report(&mut self, endpoint: usize, outcome: TryOutcome, now: u64) -> Vec<usize> {
        let mut ejected = self.end_intervals(now);
        let settings = &self.settings;
        let Some(record) = self.records.get_mut(endpoint) else {
            return ejected;
        };
        let (five_xx, gateway, local) = match outcome {
            TryOutcome::Answered(status) if status >= 500 => {
                (true, (502..=504).contains(&status), false)
            }
            TryOutcome::Answered(_) => (false, false, false),
            TryOutcome::LocalFailure(_) if settings.split_local_origin => (false, false, true),
            TryOutcome::LocalFailure(_) => (true, true, false),
        };
        record.tries = record.tries.saturating_add(1);
        if five_xx || gateway || local {
            record.failures = record.failures.saturating_add(1);
        }
        let bump = |count: &mut u32, hit: bool| {
            *count = if hit { count.saturating_add(1) } else { 0 };
        };
        if !local {
            bump(&mut record.consecutive_5xx, five_xx);
            bump(&mut record.consecutive_gateway, gateway);
        }
        bump(&mut record.consecutive_local, local);
        let tripped = settings
            .consecutive_5xx
            .is_some_and(|limit| record.consecutive_5xx >= limit)
            || settings
                .consecutive_gateway_errors
                .is_some_and(|limit| record.consecutive_gateway >= limit)
            || (settings.split_local_origin
                && record.consecutive_local >= settings.consecutive_local_origin);
        if tripped && record.ejected_until <= now && self.eject(endpoint, now) {
            ejected.push(endpoint);
        }
        ejected
    }

    /// Ejects `endpoint` if the ejection cap allows it.
    fn eject(&mut self, endpoint: usize, now: u64) -> bool {
        let total = self.records.len();
        let active = self
            .records
            .iter()
            .filter(|r| r.ejected_until > now)
            .count();
        let within_cap = (active + 1) * 100 <= total * self.settings.max_ejection_percent as usize;
        let one_must_go = self.settings.always_eject_one && active == 0;
        if !(within_cap || one_must_go) {
            return false;
        }
        let base = self.settings.base_ejection_time;
        let Some(record) = self.records.get_mut(endpoint) else {
            return false;
        };
        record.ejections = record.ejections.saturating_add(1);
        let length = base
            .saturating_mul(record.ejections)
            .min(MAX_EJECTION_TIME.max(base));
        record.ejected_until = now.saturating_add(length.as_nanos() as u64).max(1);
        record.consecutive_5xx = 0;
        record.consecutive_gateway = 0;
        record.consecutive_local = 0;
        true
    }

    /// The work of every interval that ended by `now`: ejection counts decay, failure
    /// percentages are judged. Returns the endpoints ejected.
    fn end_intervals(&mut self, now: u64) -> Vec<usize> {
        let interval = self.settings.interval.as_nanos().max(1) as u64;
        if now.saturating_sub(self.interval_started) < interval {
            return Vec::new();
        }
        self.interval_started = now;
        let mut ejected = Vec::new();
        if let Some(threshold) = self.settings.failure_percentage
            && self.records.len() >= FAILURE_PERCENTAGE_MINIMUM_HOSTS
        {
            for endpoint in 0..self.records.len() {
                let record = &self.records[endpoint];
                let judged = record.tries >= FAILURE_PERCENTAGE_REQUEST_VOLUME
                    && u64::from(record.failures) * 100
                        >= u64::from(threshold) * u64::from(record.tries);
                if judged && record.ejected_until <= now && self.eject(endpoint, now) {
                    ejected.push(endpoint);
                }
            }
        }
        for record in &mut self.records {
            if record.ejected_until <= now {
                record.ejections = record.ejections.saturating_sub(1);
            }
            record.tries = 0;
            record.failures = 0;
        }
        ejected
    }
}

#[cfg(test)]
mod tests {
    use routing::router::LocalFailure;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn uncapped() -> OutlierDetection {
        OutlierDetection {
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        }
    }

    #[test]
    fn five_consecutive_5xx_eject_for_the_base_time_then_longer() {
        let mut outliers = Outliers::new(uncapped(), 4, 0);
        for _ in 0..4 {
            assert!(
                outliers
                    .report(1, TryOutcome::Answered(500), SECOND)
                    .is_empty()
            );
        }
        // A success ends the run.
        outliers.report(1, TryOutcome::Answered(404), SECOND);
        for _ in 0..4 {
            outliers.report(1, TryOutcome::Answered(503), SECOND);
        }
        assert!(!outliers.ejected(1, SECOND));
        assert_eq!(
            outliers.report(1, TryOutcome::Answered(500), SECOND),
            vec![1]
        );
        assert!(outliers.ejected(1, SECOND));
        assert!(outliers.ejected(1, 30 * SECOND));
        assert!(!outliers.ejected(1, 31 * SECOND + 1));
        // Back in, the interval's end took the ejection off its count: the next one is again
        // the base time.
        for _ in 0..5 {
            outliers.report(1, TryOutcome::Answered(500), 31 * SECOND + 2);
        }
        let record = outliers.record(1).unwrap();
        assert_eq!(record.ejections, 1);
        assert_eq!(record.ejected_until, 61 * SECOND + 2);
    }

    #[test]
    fn ejections_grow_with_repeats_and_are_capped() {
        let settings = OutlierDetection {
            interval: Duration::from_secs(3600),
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        };
        let mut outliers = Outliers::new(settings, 2, 0);
        let mut now = SECOND;
        let mut lengths = Vec::new();
        for _ in 0..12 {
            for _ in 0..5 {
                outliers.report(0, TryOutcome::Answered(502), now);
            }
            let until = outliers.record(0).unwrap().ejected_until;
            lengths.push((until - now) / SECOND);
            now = until + 1;
        }
        assert_eq!(&lengths[..3], &[30, 60, 90]);
        assert_eq!(*lengths.last().unwrap(), 300);
    }

    #[test]
    fn local_failures_count_as_gateway_errors_unless_split() {
        let settings = OutlierDetection {
            consecutive_5xx: None,
            consecutive_gateway_errors: Some(3),
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        };
        let mut outliers = Outliers::new(settings.clone(), 2, 0);
        outliers.report(0, TryOutcome::LocalFailure(LocalFailure::Connect), 1);
        outliers.report(0, TryOutcome::Answered(504), 1);
        assert_eq!(
            outliers.report(0, TryOutcome::LocalFailure(LocalFailure::Timeout), 1),
            vec![0]
        );
        // 500 is a 5xx, not a gateway error: it ends the run.
        outliers.report(1, TryOutcome::Answered(502), 1);
        outliers.report(1, TryOutcome::Answered(500), 1);
        outliers.report(1, TryOutcome::Answered(502), 1);
        assert!(!outliers.ejected(1, 1));

        let split = OutlierDetection {
            split_local_origin: true,
            consecutive_local_origin: 2,
            ..settings
        };
        let mut outliers = Outliers::new(split, 2, 0);
        // Local failures do not break a run of gateway errors…
        outliers.report(0, TryOutcome::Answered(503), 1);
        outliers.report(0, TryOutcome::LocalFailure(LocalFailure::Reset), 1);
        outliers.report(0, TryOutcome::Answered(503), 1);
        assert!(!outliers.ejected(0, 1));
        assert_eq!(outliers.report(0, TryOutcome::Answered(502), 1), vec![0]);
        // …and an answer (the connection worked) breaks a run of local failures.
        outliers.report(1, TryOutcome::LocalFailure(LocalFailure::Connect), 1);
        outliers.report(1, TryOutcome::Answered(200), 1);
        outliers.report(1, TryOutcome::LocalFailure(LocalFailure::Connect), 1);
        assert!(!outliers.ejected(1, 1));
        assert_eq!(
            outliers.report(1, TryOutcome::LocalFailure(LocalFailure::Timeout), 1),
            vec![1]
        );
    }

    #[test]
    fn the_ejection_cap_holds_unless_one_must_go() {
        // Envoy Gateway's default 10 % of four endpoints: not even one may go.
        let mut outliers = Outliers::new(OutlierDetection::default(), 4, 0);
        for _ in 0..10 {
            outliers.report(0, TryOutcome::Answered(500), 1);
        }
        assert!(!outliers.ejected(0, 1));
        let one = OutlierDetection {
            always_eject_one: true,
            ..OutlierDetection::default()
        };
        let mut outliers = Outliers::new(one, 4, 0);
        for endpoint in [0, 1] {
            for _ in 0..5 {
                outliers.report(endpoint, TryOutcome::Answered(500), 1);
            }
        }
        assert!(outliers.ejected(0, 1));
        assert!(!outliers.ejected(1, 1));
        let half = OutlierDetection {
            max_ejection_percent: 50,
            ..OutlierDetection::default()
        };
        let mut outliers = Outliers::new(half, 4, 0);
        for endpoint in 0..4 {
            for _ in 0..5 {
                outliers.report(endpoint, TryOutcome::Answered(500), 1);
            }
        }
        let ejected = (0..4).filter(|&e| outliers.ejected(e, 1)).count();
        assert_eq!(ejected, 2);
    }

    #[test]
    fn failure_percentage_is_judged_per_interval() {
        let settings = OutlierDetection {
            consecutive_5xx: None,
            failure_percentage: Some(50),
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        };
        let mut outliers = Outliers::new(settings, 5, 0);
        // Endpoint 2 fails every other try: never five in a row, but half of them.
        for i in 0..60u32 {
            let status = if i % 2 == 0 { 500 } else { 200 };
            outliers.report(2, TryOutcome::Answered(status), SECOND);
            outliers.report(3, TryOutcome::Answered(200), SECOND);
        }
        assert!(!outliers.ejected(2, SECOND));
        let ejected = outliers.report(0, TryOutcome::Answered(200), 4 * SECOND);
        assert_eq!(ejected, vec![2]);
        assert!(outliers.ejected(2, 4 * SECOND));
        assert!(!outliers.ejected(3, 4 * SECOND));
        // Too few endpoints: the rule does not apply.
        let mut few = Outliers::new(
            OutlierDetection {
                consecutive_5xx: None,
                failure_percentage: Some(50),
                max_ejection_percent: 100,
                ..OutlierDetection::default()
            },
            4,
            0,
        );
        for _ in 0..60 {
            few.report(1, TryOutcome::Answered(500), SECOND);
        }
        assert!(
            few.report(0, TryOutcome::Answered(200), 4 * SECOND)
                .is_empty()
        );
    }
}
