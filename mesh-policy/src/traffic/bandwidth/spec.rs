//! `bandwidthLimit` checked as the CRD does and compiled into a [`BandwidthLimit`].

use super::BandwidthLimit;
use crate::traffic::compile::quantity;
use crate::traffic::model::BandwidthLimitSpec;

/// The limit of `spec`: at least one direction, each a positive number of bytes per second
/// (the CRD's pattern `^[1-9]+[0-9]*([EPTGMK]i|[EPTGMk])?$`, or `{value, unit}`), and a
/// trailer prefix that makes header names.
pub(crate) fn compile_bandwidth(spec: &BandwidthLimitSpec) -> Result<BandwidthLimit, String> {
    if spec.request.is_none() && spec.response.is_none() {
        return Err(
            "spec.bandwidthLimit: at least one of request or response must be specified".into(),
        );
    }
    let request = spec
        .request
        .as_ref()
        .map(|r| bytes_per_second(&r.limit, "spec.bandwidthLimit.request.limit"))
        .transpose()?;
    let response = spec
        .response
        .as_ref()
        .map(|r| bytes_per_second(&r.limit, "spec.bandwidthLimit.response.limit"))
        .transpose()?;
    let trailer_prefix = spec
        .response
        .as_ref()
        .and_then(|r| r.response_trailers.as_ref())
        .map(|trailers| {
            let prefix = trailers.prefix.clone().unwrap_or_default();
            let probe = format!("{prefix}-bandwidth-request-delay-ms").to_ascii_lowercase();
            let probe = probe.trim_start_matches('-').to_owned();
            http::HeaderName::try_from(probe).map(|_| prefix.clone()).map_err(|_| {
                format!(
                    "spec.bandwidthLimit.response.responseTrailers.prefix: {prefix:?} does not make header names"
                )
            })
        })
        .transpose()?;
    Ok(BandwidthLimit {
        request,
        response,
        trailer_prefix,
    })
}

/// A limit as bytes per second.
fn bytes_per_second(limit: &serde_yaml_ng::Value, field: &str) -> Result<u64, String> {
    let (amount, seconds) = match limit.as_mapping() {
        Some(map) => {
            let value = map
                .get("value")
                .ok_or_else(|| format!("{field}.value: required"))?;
            let seconds = match map.get("unit").and_then(|u| u.as_str()) {
                None | Some("Second") => 1,
                Some("Minute") => 60,
                Some("Hour") => 3600,
                Some(other) => return Err(format!("{field}.unit: unsupported value {other:?}")),
            };
            (value, seconds)
        }
        None => (limit, 1),
    };
    let bytes = quantity(amount)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("{field}: {amount:?} is not a positive quantity"))?;
    Ok((bytes / seconds).max(1))
}
