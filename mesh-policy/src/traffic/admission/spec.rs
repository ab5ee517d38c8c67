//! BackendTrafficPolicy `admissionControl` as written in YAML, compiled with the CRD's rules
//! (a window of at least 1 s, `minSuccessRate` 1–100, `rejectionAggression` at least 1,
//! `maxRejectionPercent` 0–100, HTTP statuses 100–599, gRPC statuses by name) and Envoy
//! Gateway's defaults.

use serde::{Deserialize, Serialize};

use super::AdmissionParams;
use routing::resolve::parse_duration;

/// `admissionControl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmissionControlSpec {
    /// The window success rates are measured over (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_window: Option<String>,
    /// The success rate, in percent, at which nothing is refused (default 95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_success_rate: Option<u32>,
    /// How steeply refusals rise (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_aggression: Option<u32>,
    /// Requests a second below which nothing is refused (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_request_rate: Option<u32>,
    /// The most requests refused, in percent (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejection_percent: Option<u32>,
    /// What counts as a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_criteria: Option<SuccessCriteriaSpec>,
}

/// `admissionControl.successCriteria`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessCriteriaSpec {
    /// HTTP statuses that succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<StatusCodesSpec<i32>>,
    /// gRPC statuses that succeed, by name (`Ok`, `Cancelled`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<StatusCodesSpec<String>>,
}

/// `{statusCodes: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCodesSpec<T> {
    /// The statuses.
    #[serde(default)]
    pub status_codes: Vec<T>,
}

/// gRPC status names (as Envoy Gateway spells them) by code.
const GRPC_NAMES: [&str; 17] = [
    "Ok",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

impl AdmissionControlSpec {
    /// Compiles the spec (errors name the field under `spec.admissionControl`).
    pub fn compile(&self) -> Result<AdmissionParams, String> {
        let at = |field: &str, why: String| format!("spec.admissionControl.{field}: {why}");
        let defaults = AdmissionParams::default();
        let window = match &self.sampling_window {
            None => defaults.window,
            Some(text) => parse_duration(text)
                .filter(|window| window.as_secs() >= 1)
                .ok_or_else(|| at("samplingWindow", format!("{text:?} is not at least 1s")))?,
        };
        let success_rate = match self.min_success_rate {
            None => defaults.success_rate,
            Some(percent @ 1..=100) => f64::from(percent) / 100.0,
            Some(other) => return Err(at("minSuccessRate", format!("{other} is not 1 to 100"))),
        };
        let aggression = match self.rejection_aggression {
            None => defaults.aggression,
            Some(0) => return Err(at("rejectionAggression", "must be at least 1".into())),
            Some(value) => f64::from(value),
        };
        let max_rejection = match self.max_rejection_percent {
            None => defaults.max_rejection,
            Some(percent @ 0..=100) => f64::from(percent) / 100.0,
            Some(other) => {
                return Err(at("maxRejectionPercent", format!("{other} is over 100")));
            }
        };
        let criteria = self.success_criteria.clone().unwrap_or_default();
        let http_success = criteria
            .http
            .map(|http| {
                http.status_codes
                    .iter()
                    .map(|&code| {
                        u16::try_from(code)
                            .ok()
                            .filter(|code| (100..=599).contains(code))
                            .ok_or_else(|| {
                                at(
                                    "successCriteria.http.statusCodes",
                                    format!("{code} is not an HTTP status"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let grpc_success = criteria
            .grpc
            .map(|grpc| {
                grpc.status_codes
                    .iter()
                    .map(|name| {
                        GRPC_NAMES
                            .iter()
                            .position(|known| known == name)
                            .and_then(|code| u8::try_from(code).ok())
                            .ok_or_else(|| {
                                at(
                                    "successCriteria.grpc.statusCodes",
                                    format!("{name:?} is not a gRPC status"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(AdmissionParams {
            window,
            success_rate,
            aggression,
            min_request_rate: self.min_request_rate.unwrap_or(0),
            max_rejection,
            http_success,
            grpc_success,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn compile(yaml: &str) -> Result<AdmissionParams, String> {
        serde_yaml_ng::from_str::<AdmissionControlSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn defaults_and_the_crd_rules() {
        assert_eq!(compile("{}").unwrap(), AdmissionParams::default());
        let tuned = compile(
            "{samplingWindow: 5s, minSuccessRate: 90, rejectionAggression: 2, minRequestRate: 10, \
             maxRejectionPercent: 50, successCriteria: {http: {statusCodes: [200, 201]}, \
             grpc: {statusCodes: [Ok, NotFound]}}}",
        )
        .unwrap();
        assert_eq!(
            tuned,
            AdmissionParams {
                window: Duration::from_secs(5),
                success_rate: 0.9,
                aggression: 2.0,
                min_request_rate: 10,
                max_rejection: 0.5,
                http_success: Some(vec![200, 201]),
                grpc_success: Some(vec![0, 5]),
            }
        );
        for (yaml, expected) in [
            ("{samplingWindow: 500ms}", "samplingWindow"),
            ("{minSuccessRate: 0}", "minSuccessRate: 0 is not 1 to 100"),
            ("{rejectionAggression: 0}", "rejectionAggression"),
            ("{maxRejectionPercent: 101}", "maxRejectionPercent"),
            (
                "{successCriteria: {http: {statusCodes: [700]}}}",
                "700 is not an HTTP status",
            ),
            (
                "{successCriteria: {grpc: {statusCodes: [Fine]}}}",
                "\"Fine\" is not a gRPC status",
            ),
            ("{window: 5s}", "unknown field"),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
