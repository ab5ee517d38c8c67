//! Active health check event logs (BackendTrafficPolicy `healthCheck.active.healthCheckLog`,
//! Envoy's health check event logger): each probe's outcome may become an event, written as
//! one JSON line — Envoy's `HealthCheckEvent` with its proto field names — to each file sink
//! (`/dev/stdout` by default). Which events are written is `matches`:
//!
//! - `Failure`: every failed probe; `FailureSeriesStart`: a failed probe after a pass (or
//!   the first probe) — `health_check_failure_event` with the failure type (`ACTIVE`: the
//!   endpoint answered unhealthy, `NETWORK`: no answer, `NETWORK_TIMEOUT`: none in time);
//! - `Success`: every passed probe (`successful_health_check_event`); `HealthyTransition`: a
//!   pass that makes the endpoint healthy again, or the first probe's pass
//!   (`add_healthy_event`, also written under `Success`);
//! - an endpoint taken out (`eject_unhealthy_event`) is always written.
//!
//! One of each pair must be chosen (Envoy cannot log successes or failures alone); without
//! `matches`, `FailureSeriesStart` and `HealthyTransition`, Envoy's own default events.
//! Building the lines is sans-IO; the runtime writes them
//! ([`ProbeEndpoints::log_health_event`](super::active::ProbeEndpoints)).
//!
//! ```
//! use mesh_policy::traffic::balance::health_log::{FailureType, HealthCheckLog, ProbeRecord};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let log = HealthCheckLog::default();
//! let record = ProbeRecord {
//!     failure: Some(FailureType::Network),
//!     first_check: false,
//!     after_pass: true,
//!     became: Some(true),
//! };
//! let at = UNIX_EPOCH + Duration::from_millis(1_234_567_890_123);
//! let lines = log.lines(&record, "HTTP", "10.0.0.1:80".parse()?, "httproute/default/shop/rule/0", at);
//! assert_eq!(lines.len(), 2, "the failure that starts a series, and the ejection");
//! assert!(lines[1].contains(r#""eject_unhealthy_event":{"failure_type":"NETWORK"}"#));
//! assert!(lines[1].ends_with(r#""timestamp":"2009-02-13T23:31:30.123Z"}"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Why a probe failed (Envoy's `HealthCheckFailureType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    /// The endpoint answered, unhealthy.
    Active,
    /// No answer (refused, reset, malformed).
    Network,
    /// No answer within the check's timeout.
    NetworkTimeout,
}

impl FailureType {
    fn name(self) -> &'static str {
        match self {
            FailureType::Active => "ACTIVE",
            FailureType::Network => "NETWORK",
            FailureType::NetworkTimeout => "NETWORK_TIMEOUT",
        }
    }
}

/// What one probe of one endpoint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRecord {
    /// Why it failed (`None`: it passed).
    pub failure: Option<FailureType>,
    /// Whether it was the endpoint's first probe.
    pub first_check: bool,
    /// Whether the probe before it passed.
    pub after_pass: bool,
    /// The endpoint's new verdict when this probe changed it (`Some(true)`: taken out).
    pub became: Option<bool>,
}

/// Which failed probes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureEvents {
    /// Every one (`Failure`).
    All,
    /// The first of a series (`FailureSeriesStart`).
    #[default]
    SeriesStart,
}

/// Which passed probes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuccessEvents {
    /// Every one (`Success`).
    All,
    /// The one that makes the endpoint healthy (`HealthyTransition`).
    #[default]
    Transition,
}

/// Compiled `healthCheckLog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckLog {
    /// Failed probes written.
    pub failures: FailureEvents,
    /// Passed probes written.
    pub successes: SuccessEvents,
    /// The files the lines are appended to.
    pub paths: Vec<String>,
}

/// The default file sink.
pub const DEFAULT_PATH: &str = "/dev/stdout";

impl Default for HealthCheckLog {
    fn default() -> Self {
        HealthCheckLog {
            failures: FailureEvents::default(),
            successes: SuccessEvents::default(),
            paths: vec![DEFAULT_PATH.to_owned()],
        }
    }
}

impl HealthCheckLog {
    /// The JSON lines `record` makes, for an endpoint `host` of `cluster` checked by a
    /// `checker` (`HTTP`, `TCP`, `GRPC`) at `at`.
    pub fn lines(
        &self,
        record: &ProbeRecord,
        checker: &str,
        host: SocketAddr,
        cluster: &str,
        at: SystemTime,
    ) -> Vec<String> {
        let mut events = Vec::new();
        match record.failure {
            Some(failure) => {
                let series_start = record.first_check || record.after_pass;
                if self.failures == FailureEvents::All || series_start {
                    events.push(json!({"health_check_failure_event": {
                        "failure_type": failure.name(),
                        "first_check": record.first_check,
                    }}));
                }
                if record.became == Some(true) {
                    events.push(json!({"eject_unhealthy_event": {"failure_type": failure.name()}}));
                }
            }
            None => {
                if self.successes == SuccessEvents::All {
                    events.push(json!({"successful_health_check_event": {}}));
                }
                if record.became == Some(false) || record.first_check {
                    events.push(json!({"add_healthy_event": {"first_check": record.first_check}}));
                }
            }
        }
        let timestamp = rfc3339_millis(at);
        events
            .into_iter()
            .map(|event| {
                // Field order as Envoy writes them: checker, host, cluster, the event, time.
                let (name, body) = event
                    .as_object()
                    .and_then(|object| object.iter().next())
                    .map(|(name, body)| (name.clone(), body.clone()))
                    .unwrap_or_default();
                format!(
                    "{{\"health_checker_type\":{},\"host\":{},\"cluster_name\":{},\"{name}\":{body},\"timestamp\":\"{timestamp}\"}}",
                    json!(checker),
                    json!({"socket_address": {
                        "protocol": "TCP",
                        "address": host.ip().to_string(),
                        "port_value": host.port(),
                    }}),
                    json!(cluster),
                )
            })
            .collect()
    }
}

/// `2009-02-13T23:31:30.123Z`.
fn rfc3339_millis(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Envoy Gateway's cluster name of a rule named `Kind/namespace/name/index`
/// (`httproute/namespace/name/rule/index`).
pub fn cluster_name(rule: &str) -> String {
    let mut parts = rule.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(namespace), Some(name), Some(index)) => format!(
            "{}/{namespace}/{name}/rule/{index}",
            kind.to_ascii_lowercase()
        ),
        _ => rule.to_owned(),
    }
}

/// `healthCheck.active.healthCheckLog` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckLogSpec {
    /// The events written (`Failure` or `FailureSeriesStart`, and `Success` or
    /// `HealthyTransition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
    /// Where they are written (`/dev/stdout` by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<HealthCheckLogSinkSpec>,
}

/// One sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckLogSinkSpec {
    /// `File`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSinkSpec>,
}

/// A file sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSinkSpec {
    /// The file's path.
    pub path: String,
}

/// The most sinks one check writes to.
const MAX_SINKS: usize = 8;

impl HealthCheckLogSpec {
    /// Compiles the spec (errors name the field under `healthCheckLog`).
    pub fn compile(&self) -> Result<HealthCheckLog, String> {
        let mut failures = None;
        let mut successes = None;
        for (index, name) in self.matches.iter().enumerate() {
            let clash = match name.as_str() {
                "Failure" => {
                    failures.replace(FailureEvents::All) == Some(FailureEvents::SeriesStart)
                }
                "FailureSeriesStart" => {
                    failures.replace(FailureEvents::SeriesStart) == Some(FailureEvents::All)
                }
                "Success" => {
                    successes.replace(SuccessEvents::All) == Some(SuccessEvents::Transition)
                }
                "HealthyTransition" => {
                    successes.replace(SuccessEvents::Transition) == Some(SuccessEvents::All)
                }
                other => return Err(format!("matches[{index}]: unsupported value {other:?}")),
            };
            if clash {
                return Err(format!(
                    "matches[{index}]: {name} excludes the other mode of its kind (Failure and \
                     FailureSeriesStart exclude each other, as do Success and HealthyTransition)"
                ));
            }
        }
        if !self.matches.is_empty() && (failures.is_none() || successes.is_none()) {
            return Err(
                "matches: one of Failure and FailureSeriesStart and one of Success and HealthyTransition are needed together"
                    .into(),
            );
        }
        if self.sinks.len() > MAX_SINKS {
            return Err(format!("sinks: at most {MAX_SINKS}"));
        }
        let mut paths = Vec::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            match (sink.kind.as_str(), &sink.file) {
                ("File", Some(file)) if !file.path.is_empty() => paths.push(file.path.clone()),
                ("File", _) => return Err(format!("sinks[{index}].file.path: required")),
                (other, _) => {
                    return Err(format!("sinks[{index}].type: unsupported value {other:?}"));
                }
            }
        }
        if paths.is_empty() {
            paths.push(DEFAULT_PATH.to_owned());
        }
        Ok(HealthCheckLog {
            failures: failures.unwrap_or_default(),
            successes: successes.unwrap_or_default(),
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn compile(yaml: &str) -> Result<HealthCheckLog, String> {
        serde_yaml_ng::from_str::<HealthCheckLogSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn matches_pair_up_and_sinks_default_to_stdout() {
        assert_eq!(compile("{}").unwrap(), HealthCheckLog::default());
        let log = compile(
            "{matches: [Failure, Success], sinks: [{type: File, file: {path: /tmp/hc.log}}]}",
        )
        .unwrap();
        assert_eq!(
            (log.failures, log.successes, log.paths),
            (
                FailureEvents::All,
                SuccessEvents::All,
                vec!["/tmp/hc.log".to_owned()]
            )
        );
        for (yaml, expected) in [
            ("{matches: [Failure]}", "needed together"),
            (
                "{matches: [Failure, FailureSeriesStart, Success]}",
                "exclude each other",
            ),
            ("{matches: [Sometimes]}", "unsupported value"),
            ("{sinks: [{type: File}]}", "sinks[0].file.path"),
            ("{sinks: [{type: OpenTelemetry}]}", "sinks[0].type"),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn probes_become_envoy_s_events() {
        let at = UNIX_EPOCH + Duration::from_millis(1_234_567_890_123);
        let host: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let record = |failure, first_check, after_pass, became| ProbeRecord {
            failure,
            first_check,
            after_pass,
            became,
        };
        let events = |log: &HealthCheckLog, record: ProbeRecord| -> Vec<String> {
            log.lines(&record, "TCP", host, "c", at)
                .iter()
                .map(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).unwrap();
                    let object = value.as_object().unwrap();
                    assert_eq!(object["health_checker_type"], "TCP");
                    assert_eq!(object["host"]["socket_address"]["port_value"], 8080);
                    assert_eq!(object["timestamp"], "2009-02-13T23:31:30.123Z");
                    object
                        .keys()
                        .find(|key| key.ends_with("_event"))
                        .unwrap()
                        .clone()
                })
                .collect()
        };
        let defaults = HealthCheckLog::default();
        let every = HealthCheckLog {
            failures: FailureEvents::All,
            successes: SuccessEvents::All,
            paths: Vec::new(),
        };
        let timeout = Some(FailureType::NetworkTimeout);
        // A failure in the middle of a series: written only when every failure is.
        assert!(events(&defaults, record(timeout, false, false, None)).is_empty());
        assert_eq!(
            events(&every, record(timeout, false, false, None)),
            ["health_check_failure_event"]
        );
        // The series' start, and the ejection.
        assert_eq!(
            events(&defaults, record(timeout, false, true, Some(true))),
            ["health_check_failure_event", "eject_unhealthy_event"]
        );
        // Passes: the transition, or every one.
        assert!(events(&defaults, record(None, false, true, None)).is_empty());
        assert_eq!(
            events(&defaults, record(None, false, false, Some(false))),
            ["add_healthy_event"]
        );
        assert_eq!(
            events(&every, record(None, false, true, None)),
            ["successful_health_check_event"]
        );
        assert_eq!(
            events(&defaults, record(None, true, false, None)),
            ["add_healthy_event"]
        );
    }

    #[test]
    fn rules_are_named_as_envoy_gateway_names_clusters() {
        assert_eq!(
            cluster_name("HTTPRoute/default/shop/0"),
            "httproute/default/shop/rule/0"
        );
        assert_eq!(cluster_name("odd"), "odd");
    }
}
