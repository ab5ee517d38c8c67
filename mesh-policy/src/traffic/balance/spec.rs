//! BackendTrafficPolicy `loadBalancer` as written in YAML, and compiled with the CRD's
//! validation rules (a consistent hash needs its key's field; the table size is a prime up to
//! 5 000 011), `slowStart`'s window, `endpointOverride`'s headers, `zoneAware` and
//! `backendUtilization` (with its `outOfBand` reporting period and port).

use std::collections::BTreeMap;

use http::header::HeaderName;
use routing::resolve::parse_duration;
use serde::{Deserialize, Serialize};

use super::LoadBalancing;
use super::hash_key::{HashKey, SessionCookie};
use super::maglev::{DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, is_prime};
use super::orca_oob::{DEFAULT_REPORTING_PERIOD, OutOfBand};
use super::utilization::UtilizationParams;
use super::zones::{PreferLocal, ZoneRouting};
use std::time::Duration;

/// `loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// `RoundRobin`, `Random`, `LeastRequest` or `ConsistentHash` (required).
    #[serde(rename = "type")]
    pub kind: String,
    /// The consistent hash's key and table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashSpec>,
    /// Ramp up endpoints new to the gateway over `window` (round robin, least request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartSpec>,
    /// Route by zone: prefer the gateway's own, or split by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_aware: Option<ZoneAwareSpec>,
    /// Headers naming the endpoint a request asks for (`IP:Port[,IP:Port…]`); the policy's
    /// balancing when none of them names a usable endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_override: Option<EndpointOverrideSpec>,
    /// Weights from the endpoints' ORCA load reports (type `BackendUtilization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_utilization: Option<BackendUtilizationSpec>,
}

/// `loadBalancer.backendUtilization`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendUtilizationSpec {
    /// How long an endpoint reports before its weight counts (10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackout_period: Option<String>,
    /// How old a report may be before its weight stops counting (3m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_expiration_period: Option<String>,
    /// How often weights are recomputed (1s; at least 100ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_update_period: Option<String>,
    /// The error penalty in percent (100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_utilization_penalty_percent: Option<u32>,
    /// Named metrics used as the utilization when none is reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_names_for_computing_utilization: Vec<String>,
    /// Pass the ORCA headers on to the client (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_response_headers: Option<bool>,
    /// Reports over a gRPC stream to each endpoint instead of in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_band: Option<OutOfBandSpec>,
}

/// `backendUtilization.outOfBand`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutOfBandSpec {
    /// How often each endpoint is asked to report (10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_period: Option<String>,
    /// The port reports are asked on instead of the endpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// `loadBalancer.consistentHash`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashSpec {
    /// `SourceIP`, `Header`, `Headers`, `Cookie` or `QueryParams`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The header of `Header` (deprecated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<NamedSpec>,
    /// The headers of `Headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NamedSpec>,
    /// The cookie of `Cookie`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieSpec>,
    /// The parameters of `QueryParams`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NamedSpec>,
    /// The Maglev table's size (a prime; default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u32>,
}

/// `loadBalancer.zoneAware`: one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneAwareSpec {
    /// Prefer endpoints in the gateway's own zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_local: Option<PreferLocalSpec>,
    /// Split requests between zones by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted_zones: Vec<WeightedZoneSpec>,
}

/// `zoneAware.preferLocal`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferLocalSpec {
    /// Fewer usable endpoints than this: zones are ignored (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_endpoints_threshold: Option<u64>,
    /// The percentage of requests routed by zone (0–100, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_enabled: Option<u32>,
    /// Keep every request in the local zone while it has enough endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<ForceLocalZoneSpec>,
}

/// `preferLocal.force`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForceLocalZoneSpec {
    /// The usable endpoints the local zone needs for forcing (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_endpoints_in_zone_threshold: Option<u32>,
}

/// `zoneAware.weightedZones[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedZoneSpec {
    /// The zone (`topology.kubernetes.io/zone`).
    pub zone: String,
    /// Its weight (zones not listed get none).
    pub weight: u32,
}

/// `loadBalancer.slowStart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowStartSpec {
    /// How long a new endpoint's weight takes to grow to full (required).
    pub window: String,
}

/// `loadBalancer.endpointOverride`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointOverrideSpec {
    /// Where to read the endpoints from (1 to 10 sources).
    pub extract_from: Vec<ExtractFromSpec>,
}

/// `endpointOverride.extractFrom[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractFromSpec {
    /// A request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// `{name: …}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedSpec {
    /// The name.
    pub name: String,
}

/// `consistentHash.cookie`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieSpec {
    /// The cookie's name.
    pub name: String,
    /// The generated cookie's lifetime; without it no cookie is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Attributes of the generated cookie.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl LoadBalancerSpec {
    /// Compiles the spec (errors name the field).
    pub fn compile(&self) -> Result<LoadBalancing, String> {
        let at = |e: String| format!("spec.loadBalancer.{e}");
        let policy = match self.kind.as_str() {
            "RoundRobin" => LoadBalancing::RoundRobin,
            "Random" => LoadBalancing::Random,
            "LeastRequest" => LoadBalancing::LeastRequest,
            "ConsistentHash" => {
                let hash = self.consistent_hash.as_ref().ok_or_else(|| {
                    at("consistentHash: required when type is ConsistentHash".into())
                })?;
                hash.compile()
                    .map_err(|e| at(format!("consistentHash.{e}")))?
            }
            "BackendUtilization" => {
                let spec = self.backend_utilization.clone().unwrap_or_default();
                LoadBalancing::BackendUtilization(std::sync::Arc::new(
                    spec.compile()
                        .map_err(|e| at(format!("backendUtilization.{e}")))?,
                ))
            }
            other => return Err(at(format!("type: unsupported value {other:?}"))),
        };
        if self.backend_utilization.is_some()
            && !matches!(policy, LoadBalancing::BackendUtilization(_))
        {
            return Err(at(
                "backendUtilization: only with type BackendUtilization".into()
            ));
        }
        if self.consistent_hash.is_some() && !matches!(policy, LoadBalancing::ConsistentHash { .. })
        {
            return Err(at("consistentHash: only with type ConsistentHash".into()));
        }
        Ok(policy)
    }
}

impl LoadBalancerSpec {
    /// `zoneAware` (none without it), checked as the CRD does: exactly one of its modes,
    /// `preferLocal` not with a consistent hash, distinct zones.
    pub fn zones(&self) -> Result<Option<ZoneRouting>, String> {
        let Some(spec) = &self.zone_aware else {
            return Ok(None);
        };
        let at = "spec.loadBalancer.zoneAware";
        match (&spec.prefer_local, spec.weighted_zones.is_empty()) {
            (Some(_), false) | (None, true) => Err(format!(
                "{at}: exactly one of preferLocal and weightedZones"
            )),
            (Some(prefer), true) => {
                if matches!(self.kind.as_str(), "ConsistentHash" | "BackendUtilization") {
                    return Err(format!(
                        "{at}.preferLocal: not with {} (use weightedZones)",
                        self.kind
                    ));
                }
                let percentage = prefer.percentage_enabled.unwrap_or(100);
                if percentage > 100 {
                    return Err(format!(
                        "{at}.preferLocal.percentageEnabled: {percentage} is over 100"
                    ));
                }
                Ok(Some(ZoneRouting::PreferLocal(PreferLocal {
                    min_endpoints: prefer.min_endpoints_threshold.unwrap_or(6),
                    percentage: f64::from(percentage),
                    force_min_in_zone: prefer
                        .force
                        .as_ref()
                        .map(|force| force.min_endpoints_in_zone_threshold.unwrap_or(1)),
                })))
            }
            (None, false) => {
                let mut weights: Vec<(std::sync::Arc<str>, u32)> = Vec::new();
                for (i, zone) in spec.weighted_zones.iter().enumerate() {
                    if zone.zone.is_empty() {
                        return Err(format!("{at}.weightedZones[{i}].zone: empty"));
                    }
                    if weights.iter().any(|(name, _)| **name == *zone.zone) {
                        return Err(format!(
                            "{at}.weightedZones[{i}].zone: {:?} is listed twice",
                            zone.zone
                        ));
                    }
                    weights.push((zone.zone.as_str().into(), zone.weight));
                }
                Ok(Some(ZoneRouting::Weighted(weights)))
            }
        }
    }

    /// The window of `slowStart` (none without it), checked as the CRD does: a positive
    /// duration, with round robin or least request only.
    pub fn slow_start(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(spec) = &self.slow_start else {
            return Ok(None);
        };
        if !matches!(self.kind.as_str(), "RoundRobin" | "LeastRequest") {
            return Err(
                "spec.loadBalancer.slowStart: only with RoundRobin and LeastRequest".into(),
            );
        }
        parse_duration(&spec.window)
            .filter(|window| !window.is_zero())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "spec.loadBalancer.slowStart.window: {:?} is not a positive duration",
                    spec.window
                )
            })
    }

    /// The headers of `endpointOverride` (none without it), checked as the CRD does.
    pub fn endpoint_override(&self) -> Result<Vec<HeaderName>, String> {
        let Some(spec) = &self.endpoint_override else {
            return Ok(Vec::new());
        };
        let at = "spec.loadBalancer.endpointOverride.extractFrom";
        if spec.extract_from.is_empty() || spec.extract_from.len() > 10 {
            return Err(format!("{at}: 1 to 10 sources"));
        }
        spec.extract_from
            .iter()
            .enumerate()
            .map(|(i, source)| match &source.header {
                Some(name) => header_name(name, &format!("{at}[{i}].header")),
                None => Err(format!("{at}[{i}]: a header is required")),
            })
            .collect()
    }
}

fn header_name(name: &str, field: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(name.to_ascii_lowercase())
        .map_err(|_| format!("{field}: {name:?} is not a header name"))
}

impl BackendUtilizationSpec {
    /// Compiles the spec with Envoy's defaults (errors name the field).
    pub fn compile(&self) -> Result<UtilizationParams, String> {
        let defaults = UtilizationParams::default();
        let duration = |value: &Option<String>, field: &str, default: Duration| match value {
            None => Ok(default),
            Some(text) => {
                parse_duration(text).ok_or_else(|| format!("{field}: {text:?} is not a duration"))
            }
        };
        let update_period = duration(
            &self.weight_update_period,
            "weightUpdatePeriod",
            defaults.update_period,
        )?;
        if update_period < Duration::from_millis(100) {
            return Err("weightUpdatePeriod: at least 100ms".into());
        }
        Ok(UtilizationParams {
            blackout: duration(&self.blackout_period, "blackoutPeriod", defaults.blackout)?,
            expiration: duration(
                &self.weight_expiration_period,
                "weightExpirationPeriod",
                defaults.expiration,
            )?,
            update_period,
            error_penalty_percent: self
                .error_utilization_penalty_percent
                .unwrap_or(defaults.error_penalty_percent),
            metric_names: self.metric_names_for_computing_utilization.clone(),
            keep_headers: self.keep_response_headers == Some(true),
            out_of_band: self
                .out_of_band
                .as_ref()
                .map(|spec| spec.compile().map_err(|e| format!("outOfBand.{e}")))
                .transpose()?,
        })
    }
}

impl OutOfBandSpec {
    fn compile(&self) -> Result<OutOfBand, String> {
        let period = match &self.reporting_period {
            None => DEFAULT_REPORTING_PERIOD,
            Some(text) => parse_duration(text)
                .filter(|period| !period.is_zero())
                .ok_or_else(|| format!("reportingPeriod: {text:?} is not a positive duration"))?,
        };
        let port = self
            .port
            .map(|port| {
                u16::try_from(port)
                    .ok()
                    .filter(|port| *port > 0)
                    .ok_or_else(|| format!("port: {port} is not a port number"))
            })
            .transpose()?;
        Ok(OutOfBand { period, port })
    }
}

impl ConsistentHashSpec {
    fn compile(&self) -> Result<LoadBalancing, String> {
        let table_size = self.table_size.unwrap_or(DEFAULT_TABLE_SIZE);
        if !is_prime(table_size) || table_size > MAX_TABLE_SIZE {
            return Err(format!(
                "tableSize: {table_size} must be a prime no larger than {MAX_TABLE_SIZE}"
            ));
        }
        let key = match self.kind.as_str() {
            "SourceIP" => HashKey::SourceIp,
            "Header" => {
                let header = self
                    .header
                    .as_ref()
                    .ok_or("header: required when type is Header")?;
                HashKey::Headers(vec![header_name(&header.name, "header.name")?])
            }
            "Headers" => {
                if self.headers.is_empty() {
                    return Err("headers: required when type is Headers".into());
                }
                HashKey::Headers(
                    self.headers
                        .iter()
                        .enumerate()
                        .map(|(i, h)| header_name(&h.name, &format!("headers[{i}].name")))
                        .collect::<Result<_, _>>()?,
                )
            }
            "Cookie" => {
                let cookie = self
                    .cookie
                    .as_ref()
                    .ok_or("cookie: required when type is Cookie")?;
                let token = |text: &str| {
                    !text.is_empty()
                        && text
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                };
                if !token(&cookie.name) {
                    return Err(format!(
                        "cookie.name: {:?} is not a cookie name",
                        cookie.name
                    ));
                }
                let ttl = match &cookie.ttl {
                    None => None,
                    Some(text) => Some(
                        parse_duration(text)
                            .ok_or_else(|| format!("cookie.ttl: {text:?} is not a duration"))?,
                    ),
                };
                let mut attributes = Vec::new();
                for (name, value) in &cookie.attributes {
                    if !token(name) || value.bytes().any(|b| b == b';' || b.is_ascii_control()) {
                        return Err(format!(
                            "cookie.attributes: {name:?}={value:?} is not a cookie attribute"
                        ));
                    }
                    attributes.push((name.clone(), value.clone()));
                }
                HashKey::Cookie(SessionCookie {
                    name: cookie.name.clone(),
                    ttl,
                    attributes,
                })
            }
            "QueryParams" => {
                if self.query_params.is_empty() {
                    return Err("queryParams: required when type is QueryParams".into());
                }
                HashKey::QueryParams(self.query_params.iter().map(|q| q.name.clone()).collect())
            }
            other => return Err(format!("type: unsupported value {other:?}")),
        };
        Ok(LoadBalancing::ConsistentHash { key, table_size })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn compile(yaml: &str) -> Result<LoadBalancing, String> {
        serde_yaml_ng::from_str::<LoadBalancerSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn every_type_compiles_and_the_crd_rules_hold() {
        assert_eq!(compile("type: RoundRobin"), Ok(LoadBalancing::RoundRobin));
        assert_eq!(compile("type: Random"), Ok(LoadBalancing::Random));
        assert_eq!(
            compile("type: LeastRequest"),
            Ok(LoadBalancing::LeastRequest)
        );
        assert_eq!(
            compile("type: ConsistentHash\nconsistentHash: {type: SourceIP}"),
            Ok(LoadBalancing::ConsistentHash {
                key: HashKey::SourceIp,
                table_size: 65_537
            })
        );
        assert_eq!(
            compile(
                "type: ConsistentHash\nconsistentHash: {type: Header, header: {name: X-User}, tableSize: 251}"
            ),
            Ok(LoadBalancing::ConsistentHash {
                key: HashKey::Headers(vec![HeaderName::from_static("x-user")]),
                table_size: 251
            })
        );
        assert_eq!(
            compile(
                "type: ConsistentHash\nconsistentHash:\n  type: Cookie\n  cookie: {name: s, ttl: 60s, attributes: {SameSite: Strict}}"
            ),
            Ok(LoadBalancing::ConsistentHash {
                key: HashKey::Cookie(SessionCookie {
                    name: "s".into(),
                    ttl: Some(Duration::from_secs(60)),
                    attributes: vec![("SameSite".into(), "Strict".into())],
                }),
                table_size: 65_537
            })
        );
        for (yaml, expected) in [
            ("type: ConsistentHash", "consistentHash: required"),
            (
                "type: RoundRobin\nconsistentHash: {type: SourceIP}",
                "only with type ConsistentHash",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: SourceIP, tableSize: 65536}",
                "tableSize: 65536",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: SourceIP, tableSize: 5000081}",
                "tableSize",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: Header}",
                "header: required",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: Headers}",
                "headers: required",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: Cookie}",
                "cookie: required",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: Cookie, cookie: {name: 'a b'}}",
                "cookie.name",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: QueryParams}",
                "queryParams: required",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: Body}",
                "unsupported value \"Body\"",
            ),
            ("type: Fastest", "unsupported value \"Fastest\""),
            (
                "type: BackendUtilization\nbackendUtilization: {outOfBand: {reportingPeriod: 0s}}",
                "outOfBand.reportingPeriod",
            ),
            (
                "type: BackendUtilization\nbackendUtilization: {outOfBand: {port: 70000}}",
                "outOfBand.port: 70000",
            ),
            (
                "type: BackendUtilization\nbackendUtilization: {outOfBand: {interval: 1s}}",
                "unknown field",
            ),
            (
                "type: BackendUtilization\nbackendUtilization: {weightUpdatePeriod: 10ms}",
                "at least 100ms",
            ),
            (
                "type: Random\nbackendUtilization: {}",
                "only with type BackendUtilization",
            ),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        assert!(compile("type: RoundRobin\nbogus: 1").is_err());
        assert_eq!(
            compile(
                "type: BackendUtilization\nbackendUtilization: {blackoutPeriod: 1s, keepResponseHeaders: true}"
            ),
            Ok(LoadBalancing::BackendUtilization(std::sync::Arc::new(
                UtilizationParams {
                    blackout: Duration::from_secs(1),
                    keep_headers: true,
                    ..UtilizationParams::default()
                }
            )))
        );
        assert_eq!(
            compile("type: BackendUtilization"),
            Ok(LoadBalancing::BackendUtilization(std::sync::Arc::new(
                UtilizationParams::default()
            )))
        );
        // outOfBand: Envoy's 10 s period by default, the endpoint's port unless overridden.
        let out_of_band = |yaml: &str| match compile(yaml) {
            Ok(LoadBalancing::BackendUtilization(params)) => params.out_of_band,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            out_of_band("type: BackendUtilization\nbackendUtilization: {outOfBand: {}}"),
            Some(OutOfBand {
                period: Duration::from_secs(10),
                port: None
            })
        );
        assert_eq!(
            out_of_band(
                "type: BackendUtilization\nbackendUtilization: {outOfBand: {reportingPeriod: 500ms, port: 9090}}"
            ),
            Some(OutOfBand {
                period: Duration::from_millis(500),
                port: Some(9090)
            })
        );
        // zoneAware: one mode, defaults as Envoy Gateway's, preferLocal not with a hash.
        let zones = |yaml: &str| {
            serde_yaml_ng::from_str::<LoadBalancerSpec>(yaml)
                .unwrap()
                .zones()
        };
        assert_eq!(
            zones("type: RoundRobin\nzoneAware: {preferLocal: {}}").unwrap(),
            Some(ZoneRouting::PreferLocal(PreferLocal {
                min_endpoints: 6,
                percentage: 100.0,
                force_min_in_zone: None
            }))
        );
        assert_eq!(
            zones(
                "type: Random\nzoneAware: {preferLocal: {minEndpointsThreshold: 2, percentageEnabled: 40, force: {}}}"
            )
            .unwrap(),
            Some(ZoneRouting::PreferLocal(PreferLocal {
                min_endpoints: 2,
                percentage: 40.0,
                force_min_in_zone: Some(1)
            }))
        );
        assert_eq!(
            zones("type: ConsistentHash\nconsistentHash: {type: SourceIP}\nzoneAware: {weightedZones: [{zone: a, weight: 3}]}")
                .unwrap(),
            Some(ZoneRouting::Weighted(vec![("a".into(), 3)]))
        );
        for (yaml, expected) in [
            ("type: RoundRobin\nzoneAware: {}", "exactly one"),
            (
                "type: RoundRobin\nzoneAware: {preferLocal: {}, weightedZones: [{zone: a, weight: 1}]}",
                "exactly one",
            ),
            (
                "type: ConsistentHash\nconsistentHash: {type: SourceIP}\nzoneAware: {preferLocal: {}}",
                "not with ConsistentHash",
            ),
            (
                "type: RoundRobin\nzoneAware: {preferLocal: {percentageEnabled: 101}}",
                "over 100",
            ),
            (
                "type: RoundRobin\nzoneAware: {weightedZones: [{zone: a, weight: 1}, {zone: a, weight: 2}]}",
                "listed twice",
            ),
        ] {
            let error = zones(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        // slowStart: a positive window, with round robin or least request only.
        let slow = |yaml: &str| {
            serde_yaml_ng::from_str::<LoadBalancerSpec>(yaml)
                .unwrap()
                .slow_start()
        };
        assert_eq!(
            slow("type: RoundRobin\nslowStart: {window: 5s}").unwrap(),
            Some(std::time::Duration::from_secs(5))
        );
        assert!(slow("type: Random\nslowStart: {window: 5s}").is_err());
        assert!(slow("type: LeastRequest\nslowStart: {window: 0s}").is_err());
        // endpointOverride: 1 to 10 header sources.
        let overrides = |yaml: &str| {
            serde_yaml_ng::from_str::<LoadBalancerSpec>(yaml)
                .unwrap()
                .endpoint_override()
        };
        assert_eq!(
            overrides("type: Random\nendpointOverride: {extractFrom: [{header: X-Host}]}").unwrap(),
            vec![HeaderName::from_static("x-host")]
        );
        assert!(overrides("type: Random\nendpointOverride: {extractFrom: []}").is_err());
        assert!(overrides("type: Random\nendpointOverride: {extractFrom: [{}]}").is_err());
    }
}
