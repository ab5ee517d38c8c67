//! Backend utilization balancing (BackendTrafficPolicy `loadBalancer.type: BackendUtilization`,
//! Envoy's client-side weighted round robin): each endpoint reports its load in its answers'
//! ORCA header (`endpoint-load-metrics`: `TEXT k=v, …` or `JSON {…}`; or
//! `endpoint-load-metrics-bin`, a base64 `OrcaLoadReport`), and takes tries in proportion to
//! `rps / (utilization + eps / rps × errorPenalty)`, where the utilization is the reported
//! application utilization, else the largest of `metricNamesForComputingUtilization`, else
//! the CPU utilization. A weight counts once the endpoint has reported for `blackoutPeriod`
//! and until its last report is older than `weightExpirationPeriod`; endpoints without one
//! take the mean of the others' (all of them equal when none has one). Weights are
//! recomputed every `weightUpdatePeriod`. The ORCA headers are removed from answers unless
//! `keepResponseHeaders`. With `outOfBand`, reports come instead from a gRPC stream to each
//! endpoint ([`orca_oob`](super::orca_oob)), and answers' headers are not read.
//!
//! ```
//! use mesh_policy::traffic::balance::utilization::{parse_orca, OrcaLoad};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("endpoint-load-metrics", "TEXT cpu_utilization=0.5, rps_fractional=100".parse().unwrap());
//! let load = parse_orca(&headers).unwrap();
//! assert_eq!((load.cpu, load.rps), (0.5, 100.0));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

/// The text or JSON load report header.
pub const ORCA_HEADER: &str = "endpoint-load-metrics";
/// The binary (base64 protobuf) load report header.
pub const ORCA_BIN_HEADER: &str = "endpoint-load-metrics-bin";

/// The largest weight a report gives (far above any real `rps / utilization`).
const MAX_WEIGHT: f64 = 1e12;

/// Compiled `backendUtilization`, with Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UtilizationParams {
    /// How long an endpoint reports before its weight counts (10 s).
    pub blackout: Duration,
    /// How old a report may be before its weight stops counting (3 min).
    pub expiration: Duration,
    /// How often the weights are recomputed (1 s).
    pub update_period: Duration,
    /// The error penalty, in percent of `eps / rps` added to the utilization (100).
    pub error_penalty_percent: u32,
    /// Named metrics whose largest value is the utilization when no application
    /// utilization is reported.
    pub metric_names: Vec<String>,
    /// Whether the ORCA headers reach the client.
    pub keep_headers: bool,
    /// Reports come from each endpoint's out-of-band stream instead of its answers
    /// (`outOfBand`).
    pub out_of_band: Option<super::orca_oob::OutOfBand>,
}

impl Default for UtilizationParams {
    fn default() -> Self {
        UtilizationParams {
            blackout: Duration::from_secs(10),
            expiration: Duration::from_secs(180),
            update_period: Duration::from_secs(1),
            error_penalty_percent: 100,
            metric_names: Vec::new(),
            keep_headers: false,
            out_of_band: None,
        }
    }
}

/// One ORCA load report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrcaLoad {
    /// `cpu_utilization`.
    pub cpu: f64,
    /// `application_utilization`.
    pub application: f64,
    /// `rps_fractional` (queries per second).
    pub rps: f64,
    /// `eps` (errors per second).
    pub eps: f64,
    /// `named_metrics.*`.
    pub named: Vec<(String, f64)>,
}

/// The `OrcaLoadReport` fields read from the binary header.
#[derive(Clone, PartialEq, prost::Message)]
struct OrcaLoadReport {
    #[prost(double, tag = "1")]
    cpu_utilization: f64,
    #[prost(double, tag = "6")]
    rps_fractional: f64,
    #[prost(double, tag = "7")]
    eps: f64,
    /// Ordered by name, so that the metrics kept (at most 64) do not depend on a hash seed.
    #[prost(btree_map = "string, double", tag = "8")]
    named_metrics: std::collections::BTreeMap<String, f64>,
    #[prost(double, tag = "9")]
    application_utilization: f64,
}

/// The load report in `headers`, if one parses (the text or JSON header first).
pub fn parse_orca(headers: &HeaderMap) -> Option<OrcaLoad> {
    if let Some(value) = headers.get(ORCA_HEADER).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(text) = value.strip_prefix("TEXT ") {
            return parse_text(text);
        }
        if let Some(json) = value.strip_prefix("JSON ") {
            return parse_json(json);
        }
        return None;
    }
    let encoded = headers.get(ORCA_BIN_HEADER)?.as_bytes();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    decode_report(&bytes)
}

/// The load of a serialized `xds.data.orca.v3.OrcaLoadReport` (the binary header's, or an
/// out-of-band stream message), if it decodes with usable values.
pub fn decode_report(bytes: &[u8]) -> Option<OrcaLoad> {
    let report = <OrcaLoadReport as prost::Message>::decode(bytes).ok()?;
    let mut load = OrcaLoad::default();
    let fields = [
        ("cpu_utilization", report.cpu_utilization),
        ("application_utilization", report.application_utilization),
        ("rps_fractional", report.rps_fractional),
        ("eps", report.eps),
    ];
    for (name, value) in fields {
        if !set_field(&mut load, name, value) {
            return None;
        }
    }
    load.named = report
        .named_metrics
        .into_iter()
        .filter(|(_, value)| value.is_finite() && *value >= 0.0)
        .take(64)
        .collect();
    Some(load)
}

/// Records one `name` = `value` of a report; `false` for an unusable value.
fn set_field(load: &mut OrcaLoad, name: &str, value: f64) -> bool {
    if !value.is_finite() || value < 0.0 {
        return false;
    }
    match name {
        "cpu_utilization" => load.cpu = value,
        "application_utilization" => load.application = value,
        "rps_fractional" => load.rps = value,
        "eps" => load.eps = value,
        other => {
            if let Some(metric) = other.strip_prefix("named_metrics.")
                && load.named.len() < 64
            {
                load.named.push((metric.to_owned(), value));
            }
        }
    }
    true
}

/// `k=v, k=v` (at most 64 fields).
fn parse_text(text: &str) -> Option<OrcaLoad> {
    let mut load = OrcaLoad::default();
    for field in text.split(',').take(64) {
        let (name, value) = field.trim().split_once('=')?;
        let value: f64 = value.trim().parse().ok()?;
        if !set_field(&mut load, name.trim(), value) {
            return None;
        }
    }
    Some(load)
}

/// `{"cpu_utilization": …, "named_metrics": {…}}` (camelCase names too).
fn parse_json(json: &str) -> Option<OrcaLoad> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let object = value.as_object()?;
    let mut load = OrcaLoad::default();
    for (name, value) in object {
        let name = match name.as_str() {
            "cpuUtilization" => "cpu_utilization",
            "applicationUtilization" => "application_utilization",
            "rpsFractional" => "rps_fractional",
            "namedMetrics" => "named_metrics",
            other => other,
        };
        if name == "named_metrics" {
            for (metric, value) in value.as_object()?.iter().take(64) {
                let value = value.as_f64().filter(|v| v.is_finite() && *v >= 0.0)?;
                load.named.push((metric.clone(), value));
            }
        } else if let Some(number) = value.as_f64()
            && !set_field(&mut load, name, number)
        {
            return None;
        }
    }
    Some(load)
}

/// Removes the load report headers from an answer.
pub fn strip_orca(headers: &mut HeaderMap) {
    headers.remove(ORCA_HEADER);
    headers.remove(ORCA_BIN_HEADER);
}

/// One endpoint's last weight and when it was reported.
#[derive(Debug, Default)]
struct Slot {
    /// The weight's `f64` bits (0: none).
    weight: AtomicU64,
    /// Nanoseconds since the epoch of the last report, plus one (0: never).
    last_update: AtomicU64,
    /// Nanoseconds since the epoch since which the weight has been valid, plus one (0: not).
    valid_since: AtomicU64,
}

/// The weights of one backend's endpoints.
#[derive(Debug)]
pub struct EndpointWeights {
    params: Arc<UtilizationParams>,
    epoch: Instant,
    slots: Box<[Slot]>,
    /// The weights in use, recomputed every update period.
    schedule: RwLock<Arc<[f64]>>,
    /// When the schedule is next recomputed (nanoseconds since the epoch).
    next_update: AtomicU64,
}

impl EndpointWeights {
    /// No reports yet for `endpoints` endpoints: all equal.
    pub fn new(params: Arc<UtilizationParams>, endpoints: usize) -> Self {
        EndpointWeights {
            params,
            epoch: Instant::now(),
            slots: (0..endpoints).map(|_| Slot::default()).collect(),
            schedule: RwLock::new(vec![1.0; endpoints].into()),
            next_update: AtomicU64::new(0),
        }
    }

    /// Whether answers keep their ORCA headers.
    pub fn keeps_headers(&self) -> bool {
        self.params.keep_headers
    }

    /// Whether answers' reports count (not when reports come out of band, as in Envoy).
    pub fn reads_answers(&self) -> bool {
        self.params.out_of_band.is_none()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) + 1
    }

    /// The weight `load` gives: `rps / (utilization + eps / rps × penalty)`, 0 when unusable.
    pub fn weight_of(&self, load: &OrcaLoad) -> f64 {
        let named = self
            .params
            .metric_names
            .iter()
            .filter_map(|name| load.named.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .fold(0.0_f64, f64::max);
        let utilization = if load.application > 0.0 {
            load.application
        } else if named > 0.0 {
            named
        } else {
            load.cpu
        };
        if load.rps <= 0.0 || utilization <= 0.0 {
            return 0.0;
        }
        let penalty = f64::from(self.params.error_penalty_percent) / 100.0;
        let weight = load.rps / (utilization + load.eps / load.rps * penalty);
        // Bounded, so that the sum of a backend's weights stays finite.
        if weight.is_finite() {
            weight.min(MAX_WEIGHT)
        } else {
            0.0
        }
    }

    /// Takes `endpoint`'s report.
    pub fn report(&self, endpoint: usize, load: &OrcaLoad) {
        let Some(slot) = self.slots.get(endpoint) else {
            return;
        };
        let now = self.now();
        let weight = self.weight_of(load);
        slot.weight.store(weight.to_bits(), Ordering::Relaxed);
        slot.last_update.store(now, Ordering::Relaxed);
        if weight > 0.0 {
            let _ = slot
                .valid_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            // An unusable report starts the blackout over, as in Envoy.
            slot.valid_since.store(0, Ordering::Relaxed);
        }
    }

    /// The weights in use now (recomputed when the update period has passed).
    pub fn current(&self) -> Arc<[f64]> {
        let now = self.now();
        let due = self.next_update.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_update
                .compare_exchange(
                    due,
                    now.saturating_add(self.params.update_period.as_nanos() as u64),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let weights = self.recompute(now);
            if let Ok(mut schedule) = self.schedule.write() {
                *schedule = weights;
            }
        }
        self.schedule
            .read()
            .map(|schedule| Arc::clone(&schedule))
            .unwrap_or_else(|_| vec![1.0; self.slots.len()].into())
    }

    fn recompute(&self, now: u64) -> Arc<[f64]> {
        let blackout = self.params.blackout.as_nanos() as u64;
        let expiration = self.params.expiration.as_nanos() as u64;
        let mut weights: Vec<f64> = self
            .slots
            .iter()
            .map(|slot| {
                let last = slot.last_update.load(Ordering::Relaxed);
                if last == 0 {
                    return 0.0;
                }
                if now.saturating_sub(last) > expiration {
                    slot.valid_since.store(0, Ordering::Relaxed);
                    return 0.0;
                }
                let since = slot.valid_since.load(Ordering::Relaxed);
                if since == 0 || now.saturating_sub(since) < blackout {
                    return 0.0;
                }
                f64::from_bits(slot.weight.load(Ordering::Relaxed))
            })
            .collect();
        let known: Vec<f64> = weights.iter().copied().filter(|w| *w > 0.0).collect();
        let fill = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        for weight in &mut weights {
            if *weight <= 0.0 {
                *weight = fill;
            }
        }
        weights.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    }

    #[test]
    fn reports_parse_as_text_json_and_binary() {
        let text = parse_orca(&headers(
            ORCA_HEADER,
            "TEXT cpu_utilization=0.3, rps_fractional=50, eps=2, named_metrics.queue=0.7",
        ))
        .unwrap();
        assert_eq!(
            text,
            OrcaLoad {
                cpu: 0.3,
                application: 0.0,
                rps: 50.0,
                eps: 2.0,
                named: vec![("queue".into(), 0.7)],
            }
        );
        let json = parse_orca(&headers(
            ORCA_HEADER,
            r#"JSON {"cpu_utilization": 0.3, "rps_fractional": 50, "named_metrics": {"queue": 0.7}}"#,
        ))
        .unwrap();
        assert_eq!((json.cpu, json.rps, json.named.len()), (0.3, 50.0, 1));
        let report = OrcaLoadReport {
            cpu_utilization: 0.25,
            rps_fractional: 40.0,
            application_utilization: 0.5,
            ..OrcaLoadReport::default()
        };
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(prost::Message::encode_to_vec(&report));
        let binary = parse_orca(&headers(ORCA_BIN_HEADER, &encoded)).unwrap();
        assert_eq!(
            (binary.cpu, binary.application, binary.rps),
            (0.25, 0.5, 40.0)
        );
        for bad in [
            "cpu_utilization=0.3",
            "TEXT cpu_utilization",
            "TEXT cpu_utilization=-1",
            "JSON [1]",
        ] {
            assert_eq!(parse_orca(&headers(ORCA_HEADER, bad)), None, "{bad}");
        }
    }

    #[test]
    fn weights_follow_envoys_formula() {
        let weights = EndpointWeights::new(
            Arc::new(UtilizationParams {
                metric_names: vec!["queue".into()],
                ..UtilizationParams::default()
            }),
            1,
        );
        let load = |cpu: f64, application: f64, rps: f64, eps: f64| OrcaLoad {
            cpu,
            application,
            rps,
            eps,
            named: Vec::new(),
        };
        assert_eq!(weights.weight_of(&load(0.5, 0.0, 100.0, 0.0)), 200.0);
        // The application utilization comes first; errors add a penalty of eps/rps.
        assert_eq!(weights.weight_of(&load(0.5, 0.25, 100.0, 0.0)), 400.0);
        assert_eq!(weights.weight_of(&load(0.5, 0.0, 100.0, 50.0)), 100.0);
        // A named metric when no application utilization is reported.
        let mut named = load(0.5, 0.0, 100.0, 0.0);
        named.named.push(("queue".into(), 0.8));
        assert_eq!(weights.weight_of(&named), 125.0);
        // No rate or no utilization: no weight.
        assert_eq!(weights.weight_of(&load(0.5, 0.0, 0.0, 0.0)), 0.0);
        assert_eq!(weights.weight_of(&load(0.0, 0.0, 10.0, 0.0)), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn weights_count_after_the_blackout_and_until_they_expire() {
        let params = UtilizationParams {
            blackout: Duration::from_secs(2),
            expiration: Duration::from_secs(10),
            update_period: Duration::from_millis(100),
            ..UtilizationParams::default()
        };
        let weights = EndpointWeights::new(Arc::new(params), 3);
        let report = |cpu: f64| OrcaLoad {
            cpu,
            rps: 100.0,
            ..OrcaLoad::default()
        };
        assert_eq!(&*weights.current(), &[1.0, 1.0, 1.0]);
        weights.report(0, &report(0.5));
        weights.report(1, &report(0.1));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            &*weights.current(),
            &[1.0, 1.0, 1.0],
            "still in the blackout"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        // Endpoint 2 never reported: it takes the mean of the others.
        assert_eq!(&*weights.current(), &[200.0, 1000.0, 600.0]);
        // Reports stop: after the expiration, all equal again.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(&*weights.current(), &[1.0, 1.0, 1.0]);
    }
}
