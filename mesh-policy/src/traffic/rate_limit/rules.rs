//! Rate-limit rules (policy.md §2.1): which requests a rule counts, and under which key.
//! A rule matches when every client selector matches; a selector matches when all its
//! conditions hold (headers and query parameters ANDed, methods ORed). `Distinct` conditions
//! give each distinct value (a header's, a query parameter's, the client's address within a
//! block) its own bucket, named by the values a request brings ([`DistinctValues`]).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

use crate::l4::Cidr;

/// How a header or query parameter value is matched.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Equal to this.
    Exact(String),
    /// Matched whole by this expression.
    Regex(Regex),
    /// Present; each value its own bucket.
    Distinct,
}

/// A header (lower case) or query parameter name; as a header name it is parsed once, so
/// that a check looks the header up without reading the name again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldName {
    text: String,
    /// `text` as a header name (`None` when it is not one: then no header matches it).
    header: Option<HeaderName>,
}

impl FieldName {
    /// The name `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let header = HeaderName::from_bytes(text.as_bytes()).ok();
        FieldName { text, header }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<&str> for FieldName {
    fn from(text: &str) -> Self {
        FieldName::new(text)
    }
}

impl From<String> for FieldName {
    fn from(text: String) -> Self {
        FieldName::new(text)
    }
}

/// One header (or query parameter) condition.
#[derive(Debug, Clone)]
pub struct ValueCondition {
    /// The header (lower case) or parameter name.
    pub name: FieldName,
    /// How the value matches.
    pub matcher: ValueMatch,
    /// Match when the condition does not hold (not allowed with `Distinct`).
    pub invert: bool,
}

/// The path condition.
#[derive(Debug, Clone)]
pub enum PathCondition {
    /// Segment-aware prefix: `/api` matches `/api` and `/api/x`, not `/apix`.
    Prefix(String),
    /// The whole path.
    Exact(String),
    /// Matched whole by this expression.
    Regex(Regex),
}

/// The source address condition.
#[derive(Debug, Clone, Copy)]
pub struct SourceCondition {
    /// The block the client's address must be in.
    pub block: Cidr,
    /// One bucket per address (`Distinct`) rather than one for the block.
    pub distinct: bool,
    /// Match addresses outside the block.
    pub invert: bool,
}

/// A client selector: every present condition must hold.
#[derive(Debug, Clone, Default)]
pub struct ClientSelector {
    /// Headers, ANDed.
    pub headers: Vec<ValueCondition>,
    /// Query parameters, ANDed.
    pub query_params: Vec<ValueCondition>,
    /// Methods, ORed (`invert`: any method but these); all share one bucket.
    pub methods: Option<(Vec<Method>, bool)>,
    /// The path (`invert` beside).
    pub path: Option<(PathCondition, bool)>,
    /// The client's address.
    pub source: Option<SourceCondition>,
    /// The peer's SPIFFE identity (Istio's form, `trust-domain/ns/…/sa/…`), as the mesh
    /// authenticated it (`sourcePrincipal`, beyond Envoy Gateway: per-workload limits in a
    /// waypoint). A request without an authenticated peer does not match.
    pub principal: Option<(ValueMatch, bool)>,
}

/// What a request offers the rules.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The detected client address.
    pub client: Option<IpAddr>,
    /// The authenticated peer's identity (`trust-domain/ns/…/sa/…`).
    pub principal: Option<&'a str>,
}

/// Receives the distinct values a request brings to a rule, in the rule's order (none
/// without `Distinct` conditions).
pub trait DistinctValues {
    /// One value.
    fn value(&mut self, value: &[u8]);
}

/// The values as text, in order (for tests and logs).
impl DistinctValues for Vec<String> {
    fn value(&mut self, value: &[u8]) {
        self.push(String::from_utf8_lossy(value).into_owned());
    }
}

/// The values hashed into one key (a keyed hash: clients cannot aim at another's bucket).
#[derive(Debug)]
pub struct HashedValues<H>(pub H);

impl<H: std::hash::Hasher> DistinctValues for HashedValues<H> {
    fn value(&mut self, value: &[u8]) {
        // Each value after its length: values (header bytes may be any but control
        // characters) cannot run together.
        self.0
            .write_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.0.write(value);
    }
}

impl ClientSelector {
    /// Whether the selector matches; the distinct values it keyed on are pushed onto `key`.
    pub fn matches<K: DistinctValues + ?Sized>(
        &self,
        facts: &RequestFacts<'_>,
        key: &mut K,
    ) -> bool {
        for condition in &self.headers {
            let value = condition
                .name
                .header
                .as_ref()
                .and_then(|name| facts.headers.get(name));
            if !condition.holds_header(value, key) {
                return false;
            }
        }
        for condition in &self.query_params {
            let value = facts
                .query
                .and_then(|q| crate::security::percent::query_param(q, condition.name.as_str()));
            if !condition.holds(value.as_deref(), key) {
                return false;
            }
        }
        if let Some((methods, invert)) = &self.methods
            && methods.contains(facts.method) == *invert
        {
            return false;
        }
        if let Some((path, invert)) = &self.path
            && path.matches(facts.path) == *invert
        {
            return false;
        }
        if let Some((matcher, invert)) = &self.principal {
            let Some(principal) = facts.principal else {
                return false;
            };
            let holds = match matcher {
                ValueMatch::Exact(expected) => principal == expected,
                ValueMatch::Regex(regex) => regex.is_match(principal),
                ValueMatch::Distinct => {
                    key.value(principal.as_bytes());
                    true
                }
            };
            if holds == *invert {
                return false;
            }
        }
        if let Some(source) = &self.source {
            let Some(client) = facts.client else {
                return false;
            };
            if source.block.contains(client) == source.invert {
                return false;
            }
            if source.distinct {
                match client {
                    IpAddr::V4(v4) => key.value(&v4.octets()),
                    IpAddr::V6(v6) => key.value(&v6.octets()),
                }
            }
        }
        true
    }
}

impl ValueCondition {
    /// [`holds`](Self::holds) for a header value: a distinct value is keyed on its bytes as
    /// they came (as Envoy's descriptor takes them), others are matched as text.
    #[inline]
    fn holds_header<K: DistinctValues + ?Sized>(
        &self,
        value: Option<&http::HeaderValue>,
        key: &mut K,
    ) -> bool {
        match (&self.matcher, value) {
            (ValueMatch::Distinct, Some(value)) => {
                key.value(value.as_bytes());
                true
            }
            (ValueMatch::Distinct, None) => false,
            _ => self.holds(value.and_then(|v| v.to_str().ok()), key),
        }
    }

    fn holds<K: DistinctValues + ?Sized>(&self, value: Option<&str>, key: &mut K) -> bool {
        match (&self.matcher, value) {
            (ValueMatch::Distinct, Some(value)) => {
                key.value(value.as_bytes());
                true
            }
            (ValueMatch::Distinct, None) => false,
            (ValueMatch::Exact(expected), value) => {
                (value == Some(expected.as_str())) != self.invert
            }
            (ValueMatch::Regex(regex), value) => {
                value.is_some_and(|v| regex.is_match(v)) != self.invert
            }
        }
    }
}

impl PathCondition {
    /// Whether `path` (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathCondition::Exact(exact) => path == exact,
            PathCondition::Regex(regex) => regex.is_match(path),
            PathCondition::Prefix(prefix) => {
                let prefix = prefix.trim_end_matches('/');
                path.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// A regular expression that must match the whole value (RE2 semantics, as Envoy's).
pub fn whole_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(method: &'a Method, path: &'a str, headers: &'a HeaderMap) -> RequestFacts<'a> {
        RequestFacts {
            method,
            path,
            query: Some("tenant=acme&x=1"),
            headers,
            client: Some("192.0.2.7".parse().unwrap()),
            principal: Some("cluster.local/ns/shop/sa/web"),
        }
    }

    #[test]
    fn prefixes_are_segment_aware() {
        let prefix = PathCondition::Prefix("/api/v1".into());
        assert!(prefix.matches("/api/v1"));
        assert!(prefix.matches("/api/v1/users"));
        assert!(!prefix.matches("/api/v12"));
        assert!(PathCondition::Prefix("/".into()).matches("/anything"));
    }

    #[test]
    fn conditions_and_together_and_distinct_values_key_the_bucket() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "alice".parse().unwrap());
        headers.insert("x-plan", "free".parse().unwrap());
        let selector = ClientSelector {
            headers: vec![
                ValueCondition {
                    name: "x-user".into(),
                    matcher: ValueMatch::Distinct,
                    invert: false,
                },
                ValueCondition {
                    name: "x-plan".into(),
                    matcher: ValueMatch::Regex(whole_match("free|trial").unwrap()),
                    invert: false,
                },
            ],
            query_params: vec![ValueCondition {
                name: "tenant".into(),
                matcher: ValueMatch::Exact("acme".into()),
                invert: false,
            }],
            source: Some(SourceCondition {
                block: "192.0.2.0/24".parse().unwrap(),
                distinct: true,
                invert: false,
            }),
            ..ClientSelector::default()
        };
        let mut key: Vec<String> = Vec::new();
        assert!(selector.matches(&facts(&Method::GET, "/", &headers), &mut key));
        assert_eq!(key[0], "alice");
        assert_eq!(
            key[1],
            String::from_utf8_lossy(&[192, 0, 2, 7]),
            "the address's octets"
        );
        headers.insert("x-plan", "freemium".parse().unwrap());
        assert!(!selector.matches(
            &facts(&Method::GET, "/", &headers),
            &mut Vec::<String>::new()
        ));
    }

    #[test]
    fn peers_are_keyed_by_their_identity() {
        let headers = HeaderMap::new();
        let per_workload = ClientSelector {
            principal: Some((ValueMatch::Distinct, false)),
            ..ClientSelector::default()
        };
        let mut key: Vec<String> = Vec::new();
        assert!(per_workload.matches(&facts(&Method::GET, "/", &headers), &mut key));
        assert_eq!(key, ["cluster.local/ns/shop/sa/web"]);
        let anonymous = RequestFacts {
            principal: None,
            ..facts(&Method::GET, "/", &headers)
        };
        assert!(!per_workload.matches(&anonymous, &mut Vec::<String>::new()));
        let not_web = ClientSelector {
            principal: Some((
                ValueMatch::Exact("cluster.local/ns/shop/sa/web".into()),
                true,
            )),
            ..ClientSelector::default()
        };
        assert!(!not_web.matches(
            &facts(&Method::GET, "/", &headers),
            &mut Vec::<String>::new()
        ));
    }

    #[test]
    fn methods_or_and_inversions_flip() {
        let headers = HeaderMap::new();
        let writes = ClientSelector {
            methods: Some((vec![Method::POST, Method::DELETE], false)),
            ..ClientSelector::default()
        };
        assert!(writes.matches(
            &facts(&Method::DELETE, "/", &headers),
            &mut Vec::<String>::new()
        ));
        assert!(!writes.matches(
            &facts(&Method::GET, "/", &headers),
            &mut Vec::<String>::new()
        ));
        let not_admin = ClientSelector {
            path: Some((PathCondition::Prefix("/admin".into()), true)),
            headers: vec![ValueCondition {
                name: "x-debug".into(),
                matcher: ValueMatch::Exact("1".into()),
                invert: true,
            }],
            ..ClientSelector::default()
        };
        assert!(not_admin.matches(
            &facts(&Method::GET, "/shop", &headers),
            &mut Vec::<String>::new()
        ));
        assert!(!not_admin.matches(
            &facts(&Method::GET, "/admin/x", &headers),
            &mut Vec::<String>::new()
        ));
    }
}
