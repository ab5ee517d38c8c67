//! One `HTTPRouteMatch`: path AND every header AND every query parameter AND method.

use http::{HeaderName, Method};

use super::path::PathMatch;
use super::pattern::Pattern;
use super::request::RequestView;

/// How a header or query-parameter value must look.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueMatch {
    /// Byte-for-byte equal (the API's default).
    Exact(String),
    /// A regular expression over the whole value (implementation-specific).
    RegularExpression(Pattern),
}

impl ValueMatch {
    /// Whether `value` matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueMatch::Exact(expected) => expected.as_bytes() == value,
            ValueMatch::RegularExpression(pattern) => {
                std::str::from_utf8(value).is_ok_and(|text| pattern.is_match(text))
            }
        }
    }
}

impl From<&str> for ValueMatch {
    fn from(value: &str) -> Self {
        ValueMatch::Exact(value.to_owned())
    }
}

impl From<String> for ValueMatch {
    fn from(value: String) -> Self {
        ValueMatch::Exact(value)
    }
}

/// A header match (the name is case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderMatch {
    /// The header name.
    pub name: HeaderName,
    /// The value condition.
    pub value: ValueMatch,
}

/// A query-parameter match (the name is case-sensitive; the first value of a repeated
/// parameter is the one compared).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryParamMatch {
    /// The parameter name.
    pub name: String,
    /// The value condition.
    pub value: ValueMatch,
}

/// One match of an HTTPRoute rule; all of its conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpRouteMatch {
    path: PathMatch,
    headers: Vec<HeaderMatch>,
    query_params: Vec<QueryParamMatch>,
    method: Option<Method>,
}

impl HttpRouteMatch {
    /// A match; a header or query name listed twice counts once (the first entry wins), as the
    /// API specifies.
    pub fn new(
        path: PathMatch,
        headers: Vec<HeaderMatch>,
        query_params: Vec<QueryParamMatch>,
        method: Option<Method>,
    ) -> Self {
        let mut unique_headers: Vec<HeaderMatch> = Vec::with_capacity(headers.len());
        for header in headers {
            if !unique_headers.iter().any(|seen| seen.name == header.name) {
                unique_headers.push(header);
            }
        }
        let mut unique_params: Vec<QueryParamMatch> = Vec::with_capacity(query_params.len());
        for param in query_params {
            if !unique_params.iter().any(|seen| seen.name == param.name) {
                unique_params.push(param);
            }
        }
        HttpRouteMatch {
            path,
            headers: unique_headers,
            query_params: unique_params,
            method,
        }
    }

    /// A match on a path only.
    pub fn path(path: PathMatch) -> Self {
        Self::new(path, Vec::new(), Vec::new(), None)
    }

    /// The path condition.
    pub fn path_match(&self) -> &PathMatch {
        &self.path
    }

    /// How many header conditions (after de-duplication).
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// How many query-parameter conditions (after de-duplication).
    pub fn query_param_count(&self) -> usize {
        self.query_params.len()
    }

    /// Whether a method condition is present.
    pub fn has_method(&self) -> bool {
        self.method.is_some()
    }

    /// Whether every condition holds for `request`.
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        self.path.matches(request.path)
            && self
                .method
                .as_ref()
                .is_none_or(|method| method == request.method)
            && self.headers.iter().all(|header| {
                request
                    .headers
                    .get_all(&header.name)
                    .iter()
                    .any(|value| header.value.matches(value.as_bytes()))
            })
            && self.query_params.iter().all(|param| {
                request
                    .first_query_value(&param.name)
                    .is_some_and(|value| param.value.matches(value.as_bytes()))
            })
    }
}
