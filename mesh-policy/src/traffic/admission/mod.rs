//! Admission control (policy.md §2.8, BackendTrafficPolicy `admissionControl`, Envoy's
//! admission control filter): requests are refused at random, more often as the success rate
//! of the rule's recent requests falls below `minSuccessRate`. Over the last `samplingWindow`
//! (whole seconds), with `n` requests of which `s` succeeded and the threshold `t`:
//!
//! `P(reject) = min(maxRejection, max(0, (n − s/t) / (n + 1)) ^ (1/aggression))`
//!
//! and nothing is refused while fewer than `minRequestRate` requests a second arrive. A refused
//! request is not counted. What succeeds: by default an HTTP status below 500, and for gRPC
//! (an answer with `grpc-status` in its head) any status but Aborted, DataLoss,
//! DeadlineExceeded, Internal, ResourceExhausted and Unavailable; `successCriteria` lists the
//! statuses instead. A gRPC status sent in trailers after messages is not seen (gRPC servers
//! send errors before any message as a trailers-only answer). Errors the gateway answers itself
//! count as failures when they are 5xx (no endpoint, upstream failures, timeouts, overflow).
//!
//! ```
//! use std::time::Duration;
//! use mesh_policy::traffic::admission::{AdmissionController, AdmissionParams};
//!
//! let control = AdmissionController::new(AdmissionParams {
//!     window: Duration::from_secs(30),
//!     ..AdmissionParams::default()
//! });
//! // All failures: the rejection probability climbs towards its cap (80 %).
//! for _ in 0..100 {
//!     control.record(false);
//! }
//! assert!((control.rejection_probability() - 0.8).abs() < 1e-9);
//! ```

pub mod layer;
pub mod spec;

pub use layer::{AdmissionControlLayer, AdmissionControlService};

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use routing::router::RouteError;
use tokio::time::Instant;

use super::fault::Dice;

/// Compiled `admissionControl`, with Envoy Gateway's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionParams {
    /// The sliding window (whole seconds; 30 s).
    pub window: Duration,
    /// The lowest success rate at which nothing is refused, as a fraction (0.95).
    pub success_rate: f64,
    /// How steeply refusals rise below it (1: linearly).
    pub aggression: f64,
    /// Requests a second below which nothing is refused (0).
    pub min_request_rate: u32,
    /// The most requests refused, as a fraction (0.8).
    pub max_rejection: f64,
    /// HTTP statuses that succeed (`None`: below 500).
    pub http_success: Option<Vec<u16>>,
    /// gRPC statuses that succeed (`None`: all but the server-side failures).
    pub grpc_success: Option<Vec<u8>>,
}

impl Default for AdmissionParams {
    fn default() -> Self {
        AdmissionParams {
            window: Duration::from_secs(30),
            success_rate: 0.95,
            aggression: 1.0,
            min_request_rate: 0,
            max_rejection: 0.8,
            http_success: None,
            grpc_success: None,
        }
    }
}

/// gRPC statuses counted as failures by default: Aborted, DataLoss, DeadlineExceeded,
/// Internal, ResourceExhausted, Unavailable.
const DEFAULT_GRPC_FAILURES: [u8; 6] = [10, 15, 4, 13, 8, 14];

/// The most buckets a window is counted in: a window longer than this many seconds counts
/// in buckets of several seconds, so that the history stays bounded whatever the window.
const MAX_BUCKETS: u64 = 3600;

/// Requests and successes per bucket (a second, or several for long windows) over the window.
#[derive(Debug, Default)]
struct History {
    /// (bucket, requests, successes), oldest first.
    seconds: VecDeque<(u64, u64, u64)>,
    requests: u64,
    successes: u64,
}

/// One rule's admission control: its parameters and recent history.
#[derive(Debug)]
pub struct AdmissionController {
    params: AdmissionParams,
    window_seconds: u64,
    /// Seconds per bucket.
    bucket_seconds: u64,
    epoch: Instant,
    history: Mutex<History>,
    dice: Dice,
}

impl AdmissionController {
    /// A controller with no history.
    pub fn new(params: AdmissionParams) -> Self {
        let window_seconds = params.window.as_secs().max(1);
        AdmissionController {
            window_seconds,
            bucket_seconds: window_seconds.div_ceil(MAX_BUCKETS),
            params,
            epoch: Instant::now(),
            history: Mutex::new(History::default()),
            dice: Dice::from_clock(),
        }
    }

    /// The bucket of now.
    fn now_bucket(&self) -> u64 {
        self.epoch.elapsed().as_secs() / self.bucket_seconds
    }

    /// The history with buckets older than the window dropped.
    fn current(&self) -> std::sync::MutexGuard<'_, History> {
        let now = self.now_bucket();
        let window = self.window_seconds.div_ceil(self.bucket_seconds);
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(bucket, requests, successes)) = history.seconds.front() {
            if bucket + window > now {
                break;
            }
            history.seconds.pop_front();
            history.requests -= requests;
            history.successes -= successes;
        }
        history
    }

    /// Counts one request that went on, and whether it succeeded.
    pub fn record(&self, success: bool) {
        let now = self.now_bucket();
        let mut history = self.current();
        match history.seconds.back_mut() {
            Some(last) if last.0 == now => {
                last.1 += 1;
                last.2 += u64::from(success);
            }
            _ => history.seconds.push_back((now, 1, u64::from(success))),
        }
        history.requests += 1;
        history.successes += u64::from(success);
    }

    /// The probability that the next request is refused.
    pub fn rejection_probability(&self) -> f64 {
        let (requests, successes) = {
            let history = self.current();
            (history.requests, history.successes)
        };
        if requests == 0 || requests < u64::from(self.params.min_request_rate) * self.window_seconds
        {
            return 0.0;
        }
        let n = requests as f64;
        let s = successes as f64 / self.params.success_rate;
        let base = ((n - s) / (n + 1.0)).max(0.0);
        base.powf(1.0 / self.params.aggression)
            .min(self.params.max_rejection)
    }

    /// Whether the next request goes on (a random draw against the rejection probability).
    pub fn admit(&self) -> bool {
        let probability = self.rejection_probability();
        if probability <= 0.0 {
            return true;
        }
        let draw = (self.dice.next() >> 11) as f64 / (1u64 << 53) as f64;
        draw >= probability
    }

    /// Whether an answer with `status` and `headers` is a success.
    pub fn is_success(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let grpc_status = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u8>().ok());
        if let (true, Some(code)) = (grpc, grpc_status) {
            return match &self.params.grpc_success {
                Some(listed) => listed.contains(&code),
                None => !DEFAULT_GRPC_FAILURES.contains(&code),
            };
        }
        match &self.params.http_success {
            Some(listed) => listed.contains(&status.as_u16()),
            None => status.as_u16() < 500,
        }
    }

    /// Counts the outcome of a request that went on.
    pub fn record_outcome<B>(&self, outcome: &Result<http::Response<B>, RouteError>) {
        let success = match outcome {
            Ok(response) => self.is_success(response.status(), response.headers()),
            Err(error) => !is_server_failure(error),
        };
        self.record(success);
    }
}

/// Whether the gateway answers `error` with a 5xx.
fn is_server_failure(error: &RouteError) -> bool {
    matches!(
        error,
        RouteError::NoEndpoints
            | RouteError::Upstream(_)
            | RouteError::RequestTimeout
            | RouteError::BackendTimeout
            | RouteError::Overloaded { .. }
            | RouteError::InvalidBackend
            | RouteError::Misassembled(_)
            | RouteError::InvalidFilter(_)
            | RouteError::PolicyInvalid(_)
            | RouteError::RateLimitBackendFailed { .. }
            | RouteError::AdmissionRefused { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(params: AdmissionParams) -> AdmissionController {
        AdmissionController::new(params)
    }

    #[test]
    fn the_probability_follows_envoys_formula() {
        let control = controller(AdmissionParams::default());
        assert_eq!(control.rejection_probability(), 0.0);
        // 100 requests, 50 successes, threshold 0.95: (100 − 52.63) / 101 = 0.469.
        for i in 0..100 {
            control.record(i % 2 == 0);
        }
        let p = control.rejection_probability();
        assert!((p - (100.0 - 50.0 / 0.95) / 101.0).abs() < 1e-9, "{p}");
        // All successes: nothing refused.
        let healthy = controller(AdmissionParams::default());
        for _ in 0..100 {
            healthy.record(true);
        }
        assert_eq!(healthy.rejection_probability(), 0.0);
        // Aggression 2: the square root, higher for the same success rate.
        let aggressive = controller(AdmissionParams {
            aggression: 2.0,
            ..AdmissionParams::default()
        });
        for i in 0..100 {
            aggressive.record(i % 2 == 0);
        }
        assert!((aggressive.rejection_probability() - p.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn a_low_request_rate_refuses_nothing() {
        let control = controller(AdmissionParams {
            window: Duration::from_secs(10),
            min_request_rate: 5,
            ..AdmissionParams::default()
        });
        for _ in 0..49 {
            control.record(false);
        }
        assert_eq!(control.rejection_probability(), 0.0, "4.9 a second");
        control.record(false);
        assert!(control.rejection_probability() > 0.7);
    }

    #[tokio::test(start_paused = true)]
    async fn old_seconds_leave_the_window() {
        let control = controller(AdmissionParams {
            window: Duration::from_secs(2),
            ..AdmissionParams::default()
        });
        for _ in 0..20 {
            control.record(false);
        }
        assert!(control.rejection_probability() > 0.7);
        tokio::time::advance(Duration::from_millis(2100)).await;
        assert_eq!(control.rejection_probability(), 0.0);
        let mut admitted = 0;
        for _ in 0..100 {
            admitted += usize::from(control.admit());
        }
        assert_eq!(admitted, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_window_counts_in_a_bounded_number_of_buckets() {
        let control = controller(AdmissionParams {
            window: Duration::from_secs(30 * 86_400),
            ..AdmissionParams::default()
        });
        for _ in 0..10_000 {
            control.record(false);
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        let buckets = control.history.lock().unwrap().seconds.len() as u64;
        assert!(buckets <= MAX_BUCKETS + 1, "{buckets}");
        assert!(control.rejection_probability() > 0.7);
    }

    #[test]
    fn success_criteria_classify_http_and_grpc_answers() {
        let defaults = controller(AdmissionParams::default());
        let none = HeaderMap::new();
        assert!(defaults.is_success(StatusCode::NOT_FOUND, &none));
        assert!(!defaults.is_success(StatusCode::BAD_GATEWAY, &none));
        let mut grpc = HeaderMap::new();
        grpc.insert(
            http::header::CONTENT_TYPE,
            "application/grpc".parse().unwrap(),
        );
        grpc.insert("grpc-status", "14".parse().unwrap());
        assert!(!defaults.is_success(StatusCode::OK, &grpc));
        grpc.insert("grpc-status", "5".parse().unwrap());
        assert!(defaults.is_success(StatusCode::OK, &grpc));
        let listed = controller(AdmissionParams {
            http_success: Some(vec![200]),
            grpc_success: Some(vec![0]),
            ..AdmissionParams::default()
        });
        assert!(!listed.is_success(StatusCode::NOT_FOUND, &none));
        assert!(listed.is_success(StatusCode::OK, &none));
        assert!(!listed.is_success(StatusCode::OK, &grpc));
    }
}
