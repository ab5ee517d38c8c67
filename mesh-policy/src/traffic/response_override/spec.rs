//! BackendTrafficPolicy `responseOverride[]` as written in YAML, compiled with the CRD's
//! rules: at least one status code to match, ranges with `start ≤ end`, status codes in
//! 100–599, a body either inline or from a ConfigMap (key `response.body`), `source` one of
//! `All`, `Local` and `Backend`. A `redirect` (Envoy's internal redirect to another route)
//! is not enforced yet and makes the policy invalid.

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use regex::Regex;
use routing::model::Config;
use serde::{Deserialize, Serialize};

use super::rules::{
    HeaderCondition, OverrideRule, ResponseEdits, ResponseSource, StatusCondition, ValueCondition,
};
use crate::traffic::compile::header_edits;
use crate::traffic::model::{HeaderFilterSpec, NotYet};

/// One `responseOverride[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseOverrideSpec {
    /// Which responses.
    #[serde(rename = "match")]
    pub matches: OverrideMatchSpec,
    /// `All` (default), `Local` (answers the proxy made) or `Backend` (relayed responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The response sent instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<CustomResponseSpec>,
    /// Not enforced yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: NotYet,
}

/// `match`: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverrideMatchSpec {
    /// Any of these statuses.
    #[serde(default)]
    pub status_codes: Vec<StatusCodeMatchSpec>,
    /// Each of these response headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<ResponseHeaderMatchSpec>,
}

/// `match.statusCodes[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCodeMatchSpec {
    /// `Value` (default) or `Range`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The status of `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u16>,
    /// The statuses of `Range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<StatusRangeSpec>,
}

/// `match.statusCodes[].range`, both ends included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusRangeSpec {
    /// The first status.
    pub start: u16,
    /// The last status.
    pub end: u16,
}

/// `match.responseHeaders[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseHeaderMatchSpec {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The header.
    pub name: String,
    /// The value.
    pub value: String,
}

/// `response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomResponseSpec {
    /// The `content-type` of the new body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The new body (absent: the original body is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<CustomBodySpec>,
    /// The new status (absent: the original status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderFilterSpec>,
}

/// `response.body`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomBodySpec {
    /// `Inline` (default) or `ValueRef`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The body of `Inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// The ConfigMap of `ValueRef` (key `response.body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_ref: Option<LocalObjectRefSpec>,
}

/// A reference to an object in the policy's namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectRefSpec {
    /// The group (`""` for a ConfigMap).
    #[serde(default)]
    pub group: String,
    /// `ConfigMap`.
    pub kind: String,
    /// The name.
    pub name: String,
}

/// The ConfigMap key a `ValueRef` body is read from.
const BODY_KEY: &str = "response.body";

/// Compiles `responseOverride` of a policy in `namespace`, each error naming its field.
pub fn compile_overrides(
    specs: &[ResponseOverrideSpec],
    namespace: &str,
    config: &Config,
) -> Result<Vec<OverrideRule>, String> {
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            compile_one(spec, namespace, config)
                .map_err(|e| format!("spec.responseOverride[{index}].{e}"))
        })
        .collect()
}

fn compile_one(
    spec: &ResponseOverrideSpec,
    namespace: &str,
    config: &Config,
) -> Result<OverrideRule, String> {
    if spec.redirect.is_some() {
        return Err("redirect: not enforced by this data plane yet".into());
    }
    if spec.matches.status_codes.is_empty() {
        return Err("match.statusCodes: at least one status code".into());
    }
    let statuses = spec
        .matches
        .status_codes
        .iter()
        .enumerate()
        .map(|(i, s)| status_condition(s).map_err(|e| format!("match.statusCodes[{i}]: {e}")))
        .collect::<Result<_, _>>()?;
    let headers = spec
        .matches
        .response_headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_condition(h).map_err(|e| format!("match.responseHeaders[{i}]: {e}")))
        .collect::<Result<_, _>>()?;
    let source = match spec.source.as_deref().unwrap_or("All") {
        "All" => ResponseSource::All,
        "Local" => ResponseSource::Local,
        "Backend" => ResponseSource::Backend,
        other => return Err(format!("source: unsupported value {other:?}")),
    };
    let Some(response) = &spec.response else {
        return Err("response: required (redirect is not enforced yet)".into());
    };
    Ok(OverrideRule {
        statuses,
        headers,
        source,
        edits: response_edits(response, namespace, config)?,
    })
}

fn status_condition(spec: &StatusCodeMatchSpec) -> Result<StatusCondition, String> {
    let valid = |code: u16| {
        (100..=599)
            .contains(&code)
            .then_some(code)
            .ok_or_else(|| format!("{code} is not an HTTP status"))
    };
    match (
        spec.kind.as_deref().unwrap_or("Value"),
        spec.value,
        &spec.range,
    ) {
        ("Value", Some(value), None) => Ok(StatusCondition::Value(valid(value)?)),
        ("Range", None, Some(range)) => {
            let (start, end) = (valid(range.start)?, valid(range.end)?);
            if start > end {
                return Err(format!("range {start}–{end}: start after end"));
            }
            Ok(StatusCondition::Range(start, end))
        }
        ("Value", _, _) => Err("type Value needs value (and no range)".into()),
        ("Range", _, _) => Err("type Range needs range (and no value)".into()),
        (other, _, _) => Err(format!("type: unsupported value {other:?}")),
    }
}

fn header_condition(spec: &ResponseHeaderMatchSpec) -> Result<HeaderCondition, String> {
    let name = HeaderName::try_from(spec.name.as_str())
        .map_err(|_| format!("{:?} is not a header name", spec.name))?;
    let value = match spec.kind.as_deref().unwrap_or("Exact") {
        "Exact" => ValueCondition::Exact(spec.value.clone()),
        "RegularExpression" => ValueCondition::Regex(
            Regex::new(&format!("^(?:{})$", spec.value)).map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("type: unsupported value {other:?}")),
    };
    Ok(HeaderCondition { name, value })
}

fn response_edits(
    spec: &CustomResponseSpec,
    namespace: &str,
    config: &Config,
) -> Result<ResponseEdits, String> {
    let content_type = spec
        .content_type
        .as_deref()
        .map(|value| {
            HeaderValue::try_from(value)
                .map_err(|_| format!("response.contentType: {value:?} is not a header value"))
        })
        .transpose()?;
    let status = spec
        .status_code
        .map(|code| {
            StatusCode::from_u16(code)
                .ok()
                .filter(|status| (100..=599).contains(&status.as_u16()))
                .ok_or_else(|| format!("response.statusCode: {code} is not an HTTP status"))
        })
        .transpose()?;
    let body = spec
        .body
        .as_ref()
        .map(|body| custom_body(body, namespace, config))
        .transpose()?;
    let headers = spec
        .header
        .as_ref()
        .map(|filter| header_edits(filter).map_err(|e| format!("response.header.{e}")))
        .transpose()?
        .unwrap_or_default();
    Ok(ResponseEdits {
        content_type,
        body,
        status,
        headers,
    })
}

fn custom_body(spec: &CustomBodySpec, namespace: &str, config: &Config) -> Result<Bytes, String> {
    match (
        spec.kind.as_deref().unwrap_or("Inline"),
        &spec.inline,
        &spec.value_ref,
    ) {
        ("Inline", Some(inline), None) => Ok(Bytes::from(inline.clone())),
        ("ValueRef", None, Some(reference)) => {
            if reference.kind != "ConfigMap" || !reference.group.is_empty() {
                return Err(format!(
                    "response.body.valueRef: kind {} is not a ConfigMap",
                    reference.kind
                ));
            }
            let map = config
                .config_maps
                .iter()
                .find(|m| m.metadata.namespace == namespace && m.metadata.name == reference.name)
                .ok_or_else(|| {
                    format!(
                        "response.body.valueRef: ConfigMap {namespace}/{} not found",
                        reference.name
                    )
                })?;
            map.data
                .get(BODY_KEY)
                .map(|body| Bytes::from(body.clone()))
                .ok_or_else(|| {
                    format!(
                        "response.body.valueRef: ConfigMap {namespace}/{} has no {BODY_KEY} key",
                        reference.name
                    )
                })
        }
        ("Inline", _, _) => Err("response.body: type Inline needs inline (and no valueRef)".into()),
        ("ValueRef", _, _) => {
            Err("response.body: type ValueRef needs valueRef (and no inline)".into())
        }
        (other, _, _) => Err(format!("response.body.type: unsupported value {other:?}")),
    }
}
