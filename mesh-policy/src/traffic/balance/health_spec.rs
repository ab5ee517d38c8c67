//! BackendTrafficPolicy `healthCheck` as written in YAML, compiled with the CRD's rules and
//! Envoy Gateway's defaults (with `active.healthCheckLog`, see [`health_log`](super::health_log)).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::Method;
use routing::resolve::parse_duration;
use serde::{Deserialize, Serialize};

use super::active::{ActiveCheck, GrpcProbe, HttpProbe, Probe, TcpProbe};
use super::health::HealthPolicy;
use super::outlier::OutlierDetection;

/// `healthCheck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Active checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveSpec>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveSpec>,
    /// Below this healthy percentage health is ignored (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold: Option<u32>,
}

/// `healthCheck.active`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActiveSpec {
    /// `HTTP`, `TCP` or `GRPC`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Default 3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<String>,
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// The HTTP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    /// The TCP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbeSpec>,
    /// The gRPC probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcProbeSpec>,
    /// `{port}`: probe another port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<OverridesSpec>,
    /// Event logs of the probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_log: Option<super::health_log::HealthCheckLogSpec>,
}

/// `healthCheck.active.overrides`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverridesSpec {
    /// The port probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `healthCheck.active.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbeSpec {
    /// The path (required).
    pub path: String,
    /// The Host sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Default: 200 only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<u16>,
    /// What the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_response: Option<PayloadSpec>,
    /// The body sent (POST or PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<PayloadSpec>,
    /// Statuses that fail without taking the endpoint out at once (default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_statuses: Vec<u16>,
}

/// `healthCheck.active.grpc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcProbeSpec {
    /// The service asked about (default: the server as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// `healthCheck.active.tcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbeSpec {
    /// Sent once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<PayloadSpec>,
    /// Expected in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<PayloadSpec>,
}

/// A payload: `{type: Text, text: …}` or `{type: Binary, binary: <base64>}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayloadSpec {
    /// `Text` or `Binary`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// `healthCheck.passive`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PassiveSpec {
    /// Count local failures apart (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Default 3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Default 5 (when split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Default: not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Default 5.
    #[serde(
        default,
        rename = "consecutive5XxErrors",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx_errors: Option<u32>,
    /// Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Default: not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage_threshold: Option<u32>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_eject_one_endpoint: Option<bool>,
}

impl HealthCheckSpec {
    /// Compiles the spec (errors name the field).
    pub fn compile(&self) -> Result<HealthPolicy, String> {
        let at = |e: String| format!("spec.healthCheck.{e}");
        let panic_threshold = self.panic_threshold.unwrap_or(50);
        if panic_threshold > 100 {
            return Err(at("panicThreshold: within 0–100".into()));
        }
        Ok(HealthPolicy {
            panic_threshold,
            passive: self
                .passive
                .as_ref()
                .map(PassiveSpec::compile)
                .transpose()
                .map_err(|e| at(format!("passive.{e}")))?,
            active: self
                .active
                .as_ref()
                .map(|a| a.compile().map(Arc::new))
                .transpose()
                .map_err(|e| at(format!("active.{e}")))?,
        })
    }
}

fn duration(text: &Option<String>, field: &str, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => {
            parse_duration(text).ok_or_else(|| format!("{field}: {text:?} is not a duration"))
        }
    }
}

impl PassiveSpec {
    fn compile(&self) -> Result<OutlierDetection, String> {
        let defaults = OutlierDetection::default();
        let max_ejection_percent = self.max_ejection_percent.unwrap_or(10);
        if !(0..=100).contains(&max_ejection_percent) {
            return Err("maxEjectionPercent: within 0–100".into());
        }
        if self.failure_percentage_threshold.is_some_and(|t| t > 100) {
            return Err("failurePercentageThreshold: within 0–100".into());
        }
        let interval = duration(&self.interval, "interval", defaults.interval)?;
        if interval.is_zero() {
            return Err("interval: must be positive".into());
        }
        Ok(OutlierDetection {
            interval,
            consecutive_5xx: self
                .consecutive_5xx_errors
                .or(defaults.consecutive_5xx)
                .filter(|&n| n > 0),
            consecutive_gateway_errors: self.consecutive_gateway_errors.filter(|&n| n > 0),
            split_local_origin: self.split_external_local_origin_errors.unwrap_or(false),
            consecutive_local_origin: self
                .consecutive_local_origin_failures
                .unwrap_or(defaults.consecutive_local_origin)
                .max(1),
            base_ejection_time: duration(
                &self.base_ejection_time,
                "baseEjectionTime",
                defaults.base_ejection_time,
            )?,
            max_ejection_percent: max_ejection_percent as u32,
            always_eject_one: self.always_eject_one_endpoint.unwrap_or(false),
            failure_percentage: self.failure_percentage_threshold,
        })
    }
}

impl PayloadSpec {
    fn bytes(&self, field: &str) -> Result<Vec<u8>, String> {
        match (self.kind.as_str(), &self.text, &self.binary) {
            ("Text", Some(text), None) => Ok(text.as_bytes().to_vec()),
            ("Binary", None, Some(binary)) => base64::engine::general_purpose::STANDARD
                .decode(binary)
                .map_err(|e| format!("{field}.binary: {e}")),
            _ => Err(format!(
                "{field}: type Text with text, or type Binary with binary"
            )),
        }
    }
}

impl ActiveSpec {
    fn compile(&self) -> Result<ActiveCheck, String> {
        let timeout = duration(&self.timeout, "timeout", Duration::from_secs(1))?;
        let interval = duration(&self.interval, "interval", Duration::from_secs(3))?;
        if timeout.is_zero() || interval.is_zero() {
            return Err("timeout and interval must be positive".into());
        }
        let probe = match self.kind.as_str() {
            "HTTP" => {
                let http = self
                    .http
                    .as_ref()
                    .ok_or("http: required when type is HTTP")?;
                if !http.path.starts_with('/') || http.path.len() > 1024 {
                    return Err(format!("http.path: {:?} must start with /", http.path));
                }
                let method = http.method.as_deref().unwrap_or("GET");
                let method = match method {
                    "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "TRACE" | "PATCH" => {
                        Method::from_bytes(method.as_bytes())
                            .map_err(|e| format!("http.method: {e}"))?
                    }
                    other => return Err(format!("http.method: unsupported value {other:?}")),
                };
                let request_body = http
                    .request_body
                    .as_ref()
                    .map(|p| p.bytes("http.requestBody"))
                    .transpose()?;
                if request_body.is_some() && method != Method::POST && method != Method::PUT {
                    return Err("http.requestBody: only with method POST or PUT".into());
                }
                for (statuses, field) in [
                    (&http.expected_statuses, "expectedStatuses"),
                    (&http.retriable_statuses, "retriableStatuses"),
                ] {
                    if statuses.iter().any(|s| !(100..=599).contains(s)) {
                        return Err(format!("http.{field}: within 100–599"));
                    }
                }
                Probe::Http(HttpProbe {
                    path: http.path.clone(),
                    hostname: http.hostname.clone(),
                    method,
                    expected_statuses: if http.expected_statuses.is_empty() {
                        vec![200]
                    } else {
                        http.expected_statuses.clone()
                    },
                    retriable_statuses: http.retriable_statuses.clone(),
                    expected_body: http
                        .expected_response
                        .as_ref()
                        .map(|p| p.bytes("http.expectedResponse"))
                        .transpose()?,
                    request_body,
                })
            }
            "TCP" => {
                let tcp = self.tcp.as_ref().ok_or("tcp: required when type is TCP")?;
                Probe::Tcp(TcpProbe {
                    send: tcp.send.as_ref().map(|p| p.bytes("tcp.send")).transpose()?,
                    receive: tcp
                        .receive
                        .as_ref()
                        .map(|p| p.bytes("tcp.receive"))
                        .transpose()?,
                })
            }
            "GRPC" => {
                let service = self
                    .grpc
                    .as_ref()
                    .and_then(|g| g.service.clone())
                    .unwrap_or_default();
                if service.len() > 1024 {
                    return Err("grpc.service: at most 1024 bytes".into());
                }
                Probe::Grpc(GrpcProbe { service })
            }
            other => return Err(format!("type: unsupported value {other:?}")),
        };
        if self.http.is_some() && !matches!(probe, Probe::Http(_))
            || self.tcp.is_some() && !matches!(probe, Probe::Tcp(_))
            || self.grpc.is_some() && !matches!(probe, Probe::Grpc(_))
        {
            return Err("set only the probe of the type chosen".into());
        }
        Ok(ActiveCheck {
            timeout,
            interval,
            initial_jitter: duration(&self.initial_jitter, "initialJitter", Duration::ZERO)?,
            unhealthy_threshold: self.unhealthy_threshold.unwrap_or(3).max(1),
            healthy_threshold: self.healthy_threshold.unwrap_or(1).max(1),
            port: self.overrides.as_ref().and_then(|o| o.port),
            probe,
            log: self
                .health_check_log
                .as_ref()
                .map(|log| log.compile().map_err(|e| format!("healthCheckLog.{e}")))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<HealthPolicy, String> {
        serde_yaml_ng::from_str::<HealthCheckSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn defaults_and_fields_compile() {
        let policy = compile("passive: {}").unwrap();
        assert_eq!(policy.panic_threshold, 50);
        assert_eq!(policy.passive, Some(OutlierDetection::default()));
        let policy = compile(
            "panicThreshold: 0\npassive: {consecutive5XxErrors: 3, consecutiveGatewayErrors: 2, baseEjectionTime: 10s, maxEjectionPercent: 100, interval: 1s, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 4, failurePercentageThreshold: 90, alwaysEjectOneEndpoint: true}",
        )
        .unwrap();
        assert_eq!(policy.panic_threshold, 0);
        assert_eq!(
            policy.passive,
            Some(OutlierDetection {
                interval: Duration::from_secs(1),
                consecutive_5xx: Some(3),
                consecutive_gateway_errors: Some(2),
                split_local_origin: true,
                consecutive_local_origin: 4,
                base_ejection_time: Duration::from_secs(10),
                max_ejection_percent: 100,
                always_eject_one: true,
                failure_percentage: Some(90),
            })
        );
        let policy = compile(
            "active: {type: HTTP, interval: 1s, http: {path: /healthz, method: POST, expectedStatuses: [200, 204], expectedResponse: {type: Text, text: ok}, requestBody: {type: Binary, binary: aGk=}}, overrides: {port: 9090}}",
        )
        .unwrap();
        let active = policy.active.unwrap();
        assert_eq!(active.timeout, Duration::from_secs(1));
        assert_eq!(active.interval, Duration::from_secs(1));
        assert_eq!(
            (active.unhealthy_threshold, active.healthy_threshold),
            (3, 1)
        );
        assert_eq!(active.port, Some(9090));
        assert_eq!(
            active.probe,
            Probe::Http(HttpProbe {
                path: "/healthz".into(),
                hostname: None,
                method: Method::POST,
                expected_statuses: vec![200, 204],
                retriable_statuses: Vec::new(),
                expected_body: Some(b"ok".to_vec()),
                request_body: Some(b"hi".to_vec()),
            })
        );
        let tcp = compile("active: {type: TCP, tcp: {send: {type: Text, text: PING}, receive: {type: Text, text: PONG}}}")
            .unwrap()
            .active
            .unwrap();
        assert_eq!(
            tcp.probe,
            Probe::Tcp(TcpProbe {
                send: Some(b"PING".to_vec()),
                receive: Some(b"PONG".to_vec())
            })
        );
    }

    #[test]
    fn grpc_probes_and_retriable_statuses_compile() {
        let grpc = |yaml: &str| compile(yaml).unwrap().active.unwrap().probe.clone();
        assert_eq!(
            grpc("active: {type: GRPC, grpc: {service: shop}}"),
            Probe::Grpc(GrpcProbe {
                service: "shop".into()
            })
        );
        assert_eq!(
            grpc("active: {type: GRPC}"),
            Probe::Grpc(GrpcProbe::default()),
            "no service: the server's overall health"
        );
        let Probe::Http(http) =
            grpc("active: {type: HTTP, http: {path: /h, retriableStatuses: [503, 429]}}")
        else {
            panic!("an HTTP probe");
        };
        assert_eq!(http.retriable_statuses, vec![503, 429]);
        assert_eq!(http.expected_statuses, vec![200]);
    }

    #[test]
    fn the_crd_rules_are_enforced() {
        for (yaml, expected) in [
            ("panicThreshold: 101", "panicThreshold"),
            ("passive: {maxEjectionPercent: 101}", "maxEjectionPercent"),
            ("passive: {interval: 0s}", "interval"),
            ("passive: {baseEjectionTime: soon}", "baseEjectionTime"),
            ("active: {type: HTTP}", "http: required"),
            ("active: {type: TCP}", "tcp: required"),
            ("active: {type: UDP}", "unsupported value \"UDP\""),
            ("active: {type: HTTP, http: {path: healthz}}", "http.path"),
            (
                "active: {type: HTTP, http: {path: /h, method: CONNECT}}",
                "http.method",
            ),
            (
                "active: {type: HTTP, http: {path: /h, requestBody: {type: Text, text: x}}}",
                "only with method POST or PUT",
            ),
            (
                "active: {type: HTTP, http: {path: /h, expectedResponse: {type: Text}}}",
                "expectedResponse",
            ),
            (
                "active: {type: HTTP, http: {path: /h, expectedStatuses: [700]}}",
                "expectedStatuses",
            ),
            (
                "active: {type: HTTP, http: {path: /h, retriableStatuses: [99]}}",
                "retriableStatuses",
            ),
            (
                "active: {type: HTTP, http: {path: /h}, grpc: {}}",
                "only the probe",
            ),
            (
                "active: {type: TCP, tcp: {}, http: {path: /h}}",
                "only the probe",
            ),
            (
                "active: {type: HTTP, timeout: 0s, http: {path: /h}}",
                "positive",
            ),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
            assert!(error.starts_with("spec.healthCheck."), "{error}");
        }
        let logged =
            compile("active: {type: GRPC, grpc: {service: x}, healthCheckLog: {}}").unwrap();
        assert_eq!(
            logged.active.as_ref().and_then(|check| check.log.clone()),
            Some(super::super::health_log::HealthCheckLog::default())
        );
        let error = compile(
            "active: {type: GRPC, grpc: {service: x}, healthCheckLog: {matches: [Failure]}}",
        )
        .unwrap_err();
        assert!(
            error.starts_with("spec.healthCheck.active.healthCheckLog.matches"),
            "{error}"
        );
    }
}
