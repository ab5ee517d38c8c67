//! Response override rules, sans-IO: which rule (the first that matches) replaces a
//! response, given its status, headers and whether the proxy made it; and the edits that
//! rule makes — status, `content-type`, body and headers. A replaced body's
//! `%RESPONSE_CODE%` becomes the original status, as in Envoy's local replies.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use regex::Regex;

use crate::traffic::header_format::FormatFacts;
use crate::traffic::headers::HeaderEdits;

/// Which responses a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseSource {
    /// Every response.
    #[default]
    All,
    /// Answers the proxy made itself (refusals, rate limits, unreachable backends).
    Local,
    /// Responses relayed from a backend.
    Backend,
}

/// A status condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCondition {
    /// This status.
    Value(u16),
    /// From the first to the last status, both included.
    Range(u16, u16),
}

impl StatusCondition {
    fn holds(self, status: u16) -> bool {
        match self {
            StatusCondition::Value(value) => status == value,
            StatusCondition::Range(start, end) => (start..=end).contains(&status),
        }
    }
}

/// A response header's value condition.
#[derive(Debug, Clone)]
pub enum ValueCondition {
    /// Equal to this.
    Exact(String),
    /// Wholly matched by this.
    Regex(Regex),
}

/// A response header condition: some value of the header satisfies it.
#[derive(Debug, Clone)]
pub struct HeaderCondition {
    /// The header.
    pub name: HeaderName,
    /// The condition on its value.
    pub value: ValueCondition,
}

impl HeaderCondition {
    fn holds(&self, headers: &HeaderMap) -> bool {
        headers.get_all(&self.name).iter().any(|value| {
            let Ok(value) = value.to_str() else {
                return false;
            };
            match &self.value {
                ValueCondition::Exact(expected) => value == expected,
                ValueCondition::Regex(regex) => regex.is_match(value),
            }
        })
    }
}

/// What an override changes.
#[derive(Debug, Clone, Default)]
pub struct ResponseEdits {
    /// The new `content-type`.
    pub content_type: Option<HeaderValue>,
    /// The new body (`None`: the original body stays).
    pub body: Option<Bytes>,
    /// The new status (`None`: the original status stays).
    pub status: Option<StatusCode>,
    /// Header changes, made last.
    pub headers: HeaderEdits,
}

/// One `responseOverride[]` rule.
#[derive(Debug, Clone)]
pub struct OverrideRule {
    /// Any of these statuses.
    pub statuses: Vec<StatusCondition>,
    /// Each of these headers.
    pub headers: Vec<HeaderCondition>,
    /// Which responses.
    pub source: ResponseSource,
    /// The changes.
    pub edits: ResponseEdits,
}

impl OverrideRule {
    /// Whether the rule applies to a response with `status` and `headers`, made by the
    /// proxy (`local`) or relayed.
    pub fn matches(&self, status: StatusCode, headers: &HeaderMap, local: bool) -> bool {
        let source = match self.source {
            ResponseSource::All => true,
            ResponseSource::Local => local,
            ResponseSource::Backend => !local,
        };
        source
            && self.statuses.iter().any(|s| s.holds(status.as_u16()))
            && self.headers.iter().all(|h| h.holds(headers))
    }
}

/// The first of `rules` that applies to the response, if any.
pub fn first_match<'a>(
    rules: &'a [OverrideRule],
    status: StatusCode,
    headers: &HeaderMap,
    local: bool,
) -> Option<&'a OverrideRule> {
    rules
        .iter()
        .find(|rule| rule.matches(status, headers, local))
}

impl ResponseEdits {
    /// Applies the status and header edits to a response whose status is `*status`, and
    /// returns the new body when it is replaced (its `content-length` already set; the
    /// caller swaps the body).
    pub fn apply(
        &self,
        status: &mut StatusCode,
        headers: &mut HeaderMap,
        facts: &FormatFacts<'_>,
    ) -> Option<Bytes> {
        let original = *status;
        if let Some(new) = self.status {
            *status = new;
        }
        let body = self
            .body
            .as_ref()
            .map(|body| with_response_code(body, original));
        if let Some(body) = &body {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            // The original encoding described the original body.
            headers.remove(http::header::CONTENT_ENCODING);
            headers.remove(http::header::TRANSFER_ENCODING);
            if self.content_type.is_none() {
                headers.remove(CONTENT_TYPE);
            }
        }
        if let Some(content_type) = &self.content_type {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        self.headers.apply(headers, facts);
        body
    }
}

/// `%RESPONSE_CODE%` in `body` replaced by `status`'s code.
fn with_response_code(body: &Bytes, status: StatusCode) -> Bytes {
    const OPERATOR: &[u8] = b"%RESPONSE_CODE%";
    if !body.windows(OPERATOR.len()).any(|w| w == OPERATOR) {
        return body.clone();
    }
    let code = status.as_str().as_bytes();
    let mut out = Vec::with_capacity(body.len());
    let mut rest = &body[..];
    while let Some(at) = rest.windows(OPERATOR.len()).position(|w| w == OPERATOR) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(code);
        rest = &rest[at + OPERATOR.len()..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(statuses: Vec<StatusCondition>, source: ResponseSource) -> OverrideRule {
        OverrideRule {
            statuses,
            headers: Vec::new(),
            source,
            edits: ResponseEdits::default(),
        }
    }

    #[test]
    fn the_first_rule_matching_status_and_source_applies() {
        let rules = vec![
            rule(vec![StatusCondition::Value(404)], ResponseSource::Local),
            rule(vec![StatusCondition::Range(400, 499)], ResponseSource::All),
        ];
        let headers = HeaderMap::new();
        let not_found = StatusCode::NOT_FOUND;
        assert!(std::ptr::eq(
            first_match(&rules, not_found, &headers, true).unwrap(),
            &rules[0]
        ));
        assert!(std::ptr::eq(
            first_match(&rules, not_found, &headers, false).unwrap(),
            &rules[1]
        ));
        assert!(first_match(&rules, StatusCode::OK, &headers, false).is_none());
        assert!(first_match(&rules, StatusCode::BAD_GATEWAY, &headers, true).is_none());
        let backend_only = [rule(
            vec![StatusCondition::Value(503)],
            ResponseSource::Backend,
        )];
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert!(first_match(&backend_only, unavailable, &headers, true).is_none());
        assert!(first_match(&backend_only, unavailable, &headers, false).is_some());
    }

    #[test]
    fn header_conditions_must_all_hold() {
        let mut with_headers = rule(vec![StatusCondition::Value(500)], ResponseSource::All);
        with_headers.headers = vec![
            HeaderCondition {
                name: HeaderName::from_static("x-kind"),
                value: ValueCondition::Exact("db".into()),
            },
            HeaderCondition {
                name: HeaderName::from_static("x-shard"),
                value: ValueCondition::Regex(Regex::new("^(?:[0-9]+)$").unwrap()),
            },
        ];
        let mut headers = HeaderMap::new();
        headers.append("x-kind", HeaderValue::from_static("cache"));
        headers.append("x-kind", HeaderValue::from_static("db"));
        headers.insert("x-shard", HeaderValue::from_static("12"));
        let error = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(with_headers.matches(error, &headers, false));
        headers.insert("x-shard", HeaderValue::from_static("12a"));
        assert!(!with_headers.matches(error, &headers, false));
    }

    #[test]
    fn edits_replace_status_body_and_type() {
        let edits = ResponseEdits {
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Some(Bytes::from_static(b"{\"code\": %RESPONSE_CODE%}")),
            status: Some(StatusCode::OK),
            headers: HeaderEdits {
                set: vec![(
                    HeaderName::from_static("x-overridden"),
                    HeaderValue::from_static("yes").into(),
                )],
                ..HeaderEdits::default()
            },
        };
        let mut status = StatusCode::NOT_FOUND;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("9000"));
        headers.insert("content-encoding", HeaderValue::from_static("gzip"));
        let body = edits
            .apply(&mut status, &mut headers, &FormatFacts::default())
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"{\"code\": 404}");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[CONTENT_LENGTH], "13");
        assert_eq!(headers["x-overridden"], "yes");
        assert!(!headers.contains_key("content-encoding"));
        // No new body: the original body, type and length stay.
        let mut status = StatusCode::NOT_FOUND;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(
            ResponseEdits::default()
                .apply(&mut status, &mut headers, &FormatFacts::default())
                .is_none()
        );
        assert_eq!(headers[CONTENT_LENGTH], "5");
    }
}
