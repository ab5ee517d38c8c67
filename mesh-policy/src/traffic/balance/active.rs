//! Active health checking (policy.md §2.5, BackendTrafficPolicy `healthCheck.active`): every
//! `interval`, each endpoint of a backend is probed — an HTTP request whose status (and
//! optionally body) must be as expected, a TCP exchange, or a gRPC `grpc.health.v1` check —
//! within `timeout`. As in Envoy, a probe that gets no answer (refused, reset, timed out) or
//! an HTTP status listed in `retriableStatuses` counts towards `unhealthyThreshold` failures in
//! a row, while an answer saying the endpoint is unhealthy (another status, the wrong body, a
//! gRPC status other than `SERVING`) takes it out at once; `healthyThreshold` successes in a
//! row bring it back. The probes themselves are the embedder's ([`ProbeEndpoints`]: the
//! gateway probes through the same connector it forwards with); this module schedules them and
//! keeps the verdicts.
//!
//! An endpoint counts as healthy until its first verdict, unless [`VerdictMemory`] remembers
//! one: the last verdict of the same check on the same address is kept across configuration
//! reloads, as Envoy keeps a host's health across endpoint updates, so that a reload neither
//! takes every endpoint out nor brings a failing one back while the new checks start.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::Method;

/// What one probe sends and expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP/1.1 request.
    Http(HttpProbe),
    /// A TCP connection, optionally with an exchange.
    Tcp(TcpProbe),
    /// A gRPC `grpc.health.v1.Health/Check` call over HTTP/2 (cleartext, or the backend's TLS).
    Grpc(GrpcProbe),
}

impl Probe {
    /// Envoy's name of the checker (`HTTP`, `TCP`, `GRPC`).
    pub fn checker_type(&self) -> &'static str {
        match self {
            Probe::Http(_) => "HTTP",
            Probe::Tcp(_) => "TCP",
            Probe::Grpc(_) => "GRPC",
        }
    }
}

/// `healthCheck.active.grpc`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcProbe {
    /// The service whose health is asked (empty: the server's overall health).
    pub service: String,
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The endpoint answered as expected.
    Passed,
    /// No answer (connection refused or reset, timeout), or a retriable status: counts
    /// towards the unhealthy threshold.
    Failed,
    /// An answer saying the endpoint is unhealthy: out at once, whatever the threshold.
    Unhealthy,
}

/// `healthCheck.active.http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The path requested.
    pub path: String,
    /// The `Host` sent (default: the endpoint's address).
    pub hostname: Option<String>,
    /// The method (GET by default).
    pub method: Method,
    /// Statuses that pass (200 by default).
    pub expected_statuses: Vec<u16>,
    /// Statuses that fail without taking the endpoint out at once (`retriableStatuses`).
    pub retriable_statuses: Vec<u16>,
    /// Bytes the first 1 024 bytes of the body must contain.
    pub expected_body: Option<Vec<u8>>,
    /// The request's body (`requestBody`, with POST or PUT).
    pub request_body: Option<Vec<u8>>,
}

/// `healthCheck.active.tcp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpProbe {
    /// Bytes sent once connected.
    pub send: Option<Vec<u8>>,
    /// Bytes the answer must contain.
    pub receive: Option<Vec<u8>>,
}

/// The first bytes of an HTTP probe's body that are searched (Envoy's `response_buffer_size`).
pub const RESPONSE_BUFFER_SIZE: usize = 1024;

/// `healthCheck.active`, with Envoy Gateway's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCheck {
    /// A probe's time limit (1 s).
    pub timeout: Duration,
    /// Time between probes of one endpoint (3 s).
    pub interval: Duration,
    /// The first probe waits a random time up to this.
    pub initial_jitter: Duration,
    /// Failures in a row that take an endpoint out (3).
    pub unhealthy_threshold: u32,
    /// Successes in a row that bring it back (1).
    pub healthy_threshold: u32,
    /// Probe this port instead of the endpoint's (`overrides.port`).
    pub port: Option<u16>,
    /// The probe.
    pub probe: Probe,
    /// The probes' event log (`healthCheckLog`).
    pub log: Option<super::health_log::HealthCheckLog>,
}

/// A probe in flight.
pub type ProbeFuture = Pin<Box<dyn Future<Output = ProbeOutcome> + Send>>;

/// Probes endpoints and streams their load reports (the embedder's I/O).
pub trait ProbeEndpoints: Send + Sync + std::fmt::Debug {
    /// Probes `address` as `check` says; the future is given `check.timeout` by the caller.
    fn probe(&self, address: SocketAddr, check: Arc<ActiveCheck>) -> ProbeFuture;

    /// Asks `address` for a load report every `period` (ORCA's out-of-band stream, see
    /// [`orca_oob`](super::orca_oob)) and hands each to `sink` until the stream ends or
    /// `sink` answers that no more are wanted.
    fn stream_load_reports(
        &self,
        address: SocketAddr,
        period: Duration,
        sink: super::orca_oob::LoadSink,
    ) -> super::orca_oob::ReportStreamFuture;

    /// Appends the health check event `line` (one JSON object) to the file at `path`
    /// ([`health_log`](super::health_log)).
    fn log_health_event(&self, path: &str, line: String);
}

/// The verdicts of one backend's active checks, one per endpoint.
#[derive(Debug)]
pub struct ActiveVerdicts {
    failing: Box<[AtomicBool]>,
}

impl ActiveVerdicts {
    /// Verdicts for `endpoints` endpoints, all passing.
    pub fn new(endpoints: usize) -> Self {
        ActiveVerdicts {
            failing: (0..endpoints).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Verdicts starting from what `memory` remembers of `check` on each of `endpoints`
    /// (passing when nothing is remembered).
    pub fn remembered(
        memory: &VerdictMemory,
        check: &ActiveCheck,
        endpoints: &[SocketAddr],
    ) -> Self {
        let key = memory.check_key(check);
        ActiveVerdicts {
            failing: endpoints
                .iter()
                .map(|&address| {
                    AtomicBool::new(memory.failing(&key, probed_address(check, address)))
                })
                .collect(),
        }
    }

    /// Whether `endpoint` failed its checks.
    pub fn failing(&self, endpoint: usize) -> bool {
        self.failing
            .get(endpoint)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn set(&self, endpoint: usize, failing: bool) {
        if let Some(flag) = self.failing.get(endpoint) {
            flag.store(failing, Ordering::Relaxed);
        }
    }
}

/// The most verdicts remembered; past it the memory starts over (the checks give new
/// verdicts within an interval).
const MAX_REMEMBERED: usize = 1 << 16;

/// The last verdict of each check on each probed address, kept across configurations by the
/// runtime that builds them.
#[derive(Debug, Default)]
pub struct VerdictMemory {
    failing: Mutex<HashMap<(Arc<str>, SocketAddr), bool>>,
}

impl VerdictMemory {
    /// What identifies `check` in the memory: its whole settings (a changed check starts
    /// afresh).
    pub fn check_key(&self, check: &ActiveCheck) -> Arc<str> {
        Arc::from(format!("{check:?}"))
    }

    /// Whether `check` (by its key) last found `address` failing.
    pub fn failing(&self, check: &Arc<str>, address: SocketAddr) -> bool {
        self.failing
            .lock()
            .ok()
            .and_then(|map| map.get(&(Arc::clone(check), address)).copied())
            .unwrap_or(false)
    }

    /// Remembers the verdict of `check` (by its key) on `address`.
    pub fn remember(&self, check: &Arc<str>, address: SocketAddr, failing: bool) {
        if let Ok(mut map) = self.failing.lock() {
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
            map.insert((Arc::clone(check), address), failing);
        }
    }
}

/// The address `check` probes for `endpoint` (`overrides.port` applied).
fn probed_address(check: &ActiveCheck, endpoint: SocketAddr) -> SocketAddr {
    let mut address = endpoint;
    if let Some(port) = check.port {
        address.set_port(port);
    }
    address
}

/// One endpoint's run of results, turned into verdicts by the thresholds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    passes: u32,
    failures: u32,
}

impl Streak {
    /// Counts one result; returns the new verdict when the thresholds give one
    /// (`Some(true)`: failing).
    pub fn record(&mut self, outcome: ProbeOutcome, check: &ActiveCheck) -> Option<bool> {
        if outcome == ProbeOutcome::Passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            return (self.passes >= check.healthy_threshold.max(1)).then_some(false);
        }
        self.passes = 0;
        self.failures = self.failures.saturating_add(1);
        (outcome == ProbeOutcome::Unhealthy || self.failures >= check.unhealthy_threshold.max(1))
            .then_some(true)
    }
}

/// Starts probing every endpoint of `endpoints` on the current tokio runtime, one task each,
/// each verdict also kept in `memory`; the tasks end when `verdicts` is dropped. Without a
/// runtime nothing is probed.
pub fn start_checks(
    check: Arc<ActiveCheck>,
    prober: Arc<dyn ProbeEndpoints>,
    endpoints: &[SocketAddr],
    verdicts: &Arc<ActiveVerdicts>,
    memory: &Arc<VerdictMemory>,
    jitter_seed: u64,
    rule: &str,
) {
    let cluster: Arc<str> = Arc::from(super::health_log::cluster_name(rule));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let key = memory.check_key(&check);
    for (index, endpoint) in endpoints.iter().enumerate() {
        let address = probed_address(&check, *endpoint);
        let jitter_nanos = check.initial_jitter.as_nanos() as u64;
        let jitter = if jitter_nanos == 0 {
            Duration::ZERO
        } else {
            let spread = jitter_seed.wrapping_mul(index as u64 + 1) ^ (index as u64) << 17;
            Duration::from_nanos(spread % jitter_nanos)
        };
        runtime.spawn(check_endpoint(
            Arc::clone(&check),
            Arc::clone(&prober),
            address,
            index,
            Arc::downgrade(verdicts),
            (Arc::clone(memory), Arc::clone(&key)),
            jitter,
            Arc::clone(&cluster),
        ));
    }
}

#[allow(clippy::too_many_arguments)]
async fn check_endpoint(
    check: Arc<ActiveCheck>,
    prober: Arc<dyn ProbeEndpoints>,
    address: SocketAddr,
    index: usize,
    verdicts: Weak<ActiveVerdicts>,
    (memory, key): (Arc<VerdictMemory>, Arc<str>),
    jitter: Duration,
    cluster: Arc<str>,
) {
    tokio::time::sleep(jitter).await;
    let mut streak = Streak::default();
    let mut first_check = true;
    let mut after_pass = false;
    loop {
        if verdicts.strong_count() == 0 {
            return;
        }
        let probe = prober.probe(address, Arc::clone(&check));
        let (outcome, timed_out) = match tokio::time::timeout(check.timeout, probe).await {
            Ok(outcome) => (outcome, false),
            Err(_) => (ProbeOutcome::Failed, true),
        };
        let Some(verdicts) = verdicts.upgrade() else {
            return;
        };
        let was_failing = verdicts.failing(index);
        let verdict = streak.record(outcome, &check);
        if let Some(failing) = verdict {
            verdicts.set(index, failing);
            memory.remember(&key, address, failing);
        }
        drop(verdicts);
        if let Some(log) = &check.log {
            let record = super::health_log::ProbeRecord {
                failure: match (outcome, timed_out) {
                    (ProbeOutcome::Passed, _) => None,
                    (ProbeOutcome::Unhealthy, _) => Some(super::health_log::FailureType::Active),
                    (ProbeOutcome::Failed, true) => {
                        Some(super::health_log::FailureType::NetworkTimeout)
                    }
                    (ProbeOutcome::Failed, false) => Some(super::health_log::FailureType::Network),
                },
                first_check,
                after_pass,
                became: verdict.filter(|failing| *failing != was_failing),
            };
            let lines = log.lines(
                &record,
                check.probe.checker_type(),
                address,
                &cluster,
                std::time::SystemTime::now(),
            );
            for line in lines {
                for path in &log.paths {
                    prober.log_health_event(path, line.clone());
                }
            }
        }
        first_check = false;
        after_pass = outcome == ProbeOutcome::Passed;
        tokio::time::sleep(check.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn check(unhealthy: u32, healthy: u32) -> ActiveCheck {
        ActiveCheck {
            timeout: Duration::from_millis(100),
            interval: Duration::from_millis(10),
            initial_jitter: Duration::ZERO,
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            port: None,
            probe: Probe::Tcp(TcpProbe::default()),
            log: None,
        }
    }

    #[test]
    fn thresholds_turn_runs_into_verdicts() {
        use ProbeOutcome::{Failed, Passed, Unhealthy};
        let check = check(3, 2);
        let mut streak = Streak::default();
        assert_eq!(streak.record(Failed, &check), None);
        assert_eq!(streak.record(Failed, &check), None);
        assert_eq!(streak.record(Passed, &check), None);
        assert_eq!(streak.record(Failed, &check), None);
        assert_eq!(streak.record(Failed, &check), None);
        assert_eq!(streak.record(Failed, &check), Some(true));
        assert_eq!(streak.record(Passed, &check), None);
        assert_eq!(streak.record(Passed, &check), Some(false));
        // An unhealthy answer takes the endpoint out at once.
        assert_eq!(streak.record(Unhealthy, &check), Some(true));
        assert_eq!(streak.record(Passed, &check), None);
        assert_eq!(streak.record(Failed, &check), None);
        assert_eq!(streak.record(Unhealthy, &check), Some(true));
    }

    /// A prober whose answers the test sets, counting probes per address.
    #[derive(Debug, Default)]
    struct Scripted {
        down: Mutex<Vec<SocketAddr>>,
        probed: Mutex<Vec<SocketAddr>>,
        logged: Mutex<Vec<(String, String)>>,
    }

    impl ProbeEndpoints for Scripted {
        fn probe(&self, address: SocketAddr, _check: Arc<ActiveCheck>) -> ProbeFuture {
            self.probed.lock().unwrap().push(address);
            let outcome = if self.down.lock().unwrap().contains(&address) {
                ProbeOutcome::Failed
            } else {
                ProbeOutcome::Passed
            };
            Box::pin(async move { outcome })
        }

        fn stream_load_reports(
            &self,
            _address: SocketAddr,
            _period: Duration,
            _sink: crate::traffic::balance::orca_oob::LoadSink,
        ) -> crate::traffic::balance::orca_oob::ReportStreamFuture {
            Box::pin(async { crate::traffic::balance::orca_oob::ReportStreamEnd::Unimplemented })
        }

        fn log_health_event(&self, path: &str, line: String) {
            self.logged.lock().unwrap().push((path.to_owned(), line));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_go_out_and_come_back_and_probing_stops_with_the_verdicts() {
        let prober = Arc::new(Scripted::default());
        let endpoints: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        let verdicts = Arc::new(ActiveVerdicts::new(2));
        let mut check = check(2, 1);
        check.port = Some(8081);
        let memory = Arc::new(VerdictMemory::default());
        start_checks(
            Arc::new(check.clone()),
            prober.clone(),
            &endpoints,
            &verdicts,
            &memory,
            7,
            "HTTPRoute/default/checked/0",
        );
        let second: SocketAddr = "10.0.0.2:8081".parse().unwrap();
        prober.down.lock().unwrap().push(second);
        tokio::time::sleep(Duration::from_millis(35)).await;
        assert!(!verdicts.failing(0));
        assert!(verdicts.failing(1));
        // A configuration built now starts from the remembered verdicts; another check
        // starts afresh.
        let rebuilt = ActiveVerdicts::remembered(&memory, &check, &endpoints);
        assert!(!rebuilt.failing(0) && rebuilt.failing(1));
        let mut other = check.clone();
        other.unhealthy_threshold = 9;
        assert!(!ActiveVerdicts::remembered(&memory, &other, &endpoints).failing(1));
        prober.down.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(15)).await;
        assert!(!verdicts.failing(1));
        assert!(
            prober.probed.lock().unwrap().contains(&second),
            "the override port is probed"
        );
        drop(verdicts);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = prober.probed.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            prober.probed.lock().unwrap().len(),
            count,
            "no probe after the drop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn probes_are_logged_as_envoy_s_health_check_events() {
        let prober = Arc::new(Scripted::default());
        let endpoint: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let verdicts = Arc::new(ActiveVerdicts::new(1));
        let mut check = check(2, 1);
        check.log = Some(super::super::health_log::HealthCheckLog {
            paths: vec!["/var/log/hc".into()],
            ..Default::default()
        });
        start_checks(
            Arc::new(check),
            prober.clone(),
            &[endpoint],
            &verdicts,
            &Arc::new(VerdictMemory::default()),
            7,
            "HTTPRoute/default/checked/0",
        );
        // Passes, then three failures (out at the second), then passes again.
        tokio::time::sleep(Duration::from_millis(25)).await;
        prober.down.lock().unwrap().push(endpoint);
        tokio::time::sleep(Duration::from_millis(30)).await;
        prober.down.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let logged = prober.logged.lock().unwrap().clone();
        let events: Vec<String> = logged
            .iter()
            .map(|(path, line)| {
                assert_eq!(path, "/var/log/hc");
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["cluster_name"], "httproute/default/checked/rule/0");
                assert_eq!(value["health_checker_type"], "TCP");
                let object = value.as_object().unwrap();
                let event = object.keys().find(|key| key.ends_with("_event")).unwrap();
                format!("{event} {}", object[event])
            })
            .collect();
        assert_eq!(
            events,
            [
                r#"add_healthy_event {"first_check":true}"#,
                r#"health_check_failure_event {"failure_type":"NETWORK","first_check":false}"#,
                r#"eject_unhealthy_event {"failure_type":"NETWORK"}"#,
                r#"add_healthy_event {"first_check":false}"#,
            ]
        );
        drop(verdicts);
    }
}
