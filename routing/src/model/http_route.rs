//! HTTPRoute, with the CRD defaults applied on deserialization.

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::refs::{BackendObjectReference, HttpBackendRef, ParentReference};

/// An HTTPRoute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways (listeners) or Services (GAMMA) to attach to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names (ORed); none: every host the listener accepts.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Default: one rule with the default match and no backends.
    #[serde(default = "default_rules")]
    pub rules: Vec<HttpRouteRule>,
}

impl Default for HttpRouteSpec {
    fn default() -> Self {
        HttpRouteSpec {
            parent_refs: Vec::new(),
            hostnames: Vec::new(),
            rules: default_rules(),
        }
    }
}

fn default_rules() -> Vec<HttpRouteRule> {
    vec![HttpRouteRule::default()]
}

/// One rule: matches (ORed), filters, backends, timeouts, retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The rule's optional name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default: one match of `PathPrefix /`.
    #[serde(default = "default_matches")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters, applied in list order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends; none and no filters: 500.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Request and backend-request timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retries (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRetry>,
}

impl Default for HttpRouteRule {
    fn default() -> Self {
        HttpRouteRule {
            name: None,
            matches: default_matches(),
            filters: Vec::new(),
            backend_refs: Vec::new(),
            timeouts: None,
            retry: None,
        }
    }
}

fn default_matches() -> Vec<HttpRouteMatch> {
    vec![HttpRouteMatch::default()]
}

/// One match: path AND headers AND query parameters AND method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteMatch {
    /// Default `PathPrefix /`.
    pub path: HttpPathMatch,
    /// Header conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query-parameter conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpQueryParamMatch>,
    /// A method condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `match.path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpPathMatch {
    /// Default `PathPrefix`.
    #[serde(rename = "type")]
    pub match_type: PathMatchType,
    /// Default `/`.
    pub value: String,
}

impl Default for HttpPathMatch {
    fn default() -> Self {
        HttpPathMatch {
            match_type: PathMatchType::PathPrefix,
            value: "/".to_owned(),
        }
    }
}

/// The type of a path match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// Segment-wise prefix.
    PathPrefix,
    /// A regular expression (implementation-specific; not supported yet).
    RegularExpression,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// The type of a header or query-parameter match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderMatchType {
    /// Equal value (the default).
    #[default]
    Exact,
    /// A regular expression (implementation-specific; not supported yet).
    RegularExpression,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// A header condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeaderMatch {
    /// Default `Exact`.
    #[serde(default, rename = "type")]
    pub match_type: HeaderMatchType,
    /// Case-insensitive name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A query-parameter condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpQueryParamMatch {
    /// Default `Exact`.
    #[serde(default, rename = "type")]
    pub match_type: HeaderMatchType,
    /// Case-sensitive name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// One filter; `type` says which of the fields applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// The filter type.
    #[serde(rename = "type")]
    pub filter_type: HttpRouteFilterType,
    /// For `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HttpHeaderFilter>,
    /// For `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HttpHeaderFilter>,
    /// For `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<HttpRequestRedirect>,
    /// For `URLRewrite`.
    #[serde(
        default,
        rename = "urlRewrite",
        skip_serializing_if = "Option::is_none"
    )]
    pub url_rewrite: Option<HttpUrlRewrite>,
    /// For `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<HttpRequestMirror>,
    /// For `CORS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

/// The type of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpRouteFilterType {
    /// Edit request headers.
    RequestHeaderModifier,
    /// Edit response headers.
    ResponseHeaderModifier,
    /// Answer with a redirect.
    RequestRedirect,
    /// Rewrite host and path.
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// Copy requests to another backend.
    RequestMirror,
    /// Answer CORS preflights and decorate responses.
    #[serde(rename = "CORS")]
    Cors,
    /// An implementation-specific filter (unresolvable here: 500).
    ExtensionRef,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// `set`, `add`, `remove` header edits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeaderFilter {
    /// Overwrite.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Append.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// `requestRedirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestRedirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host of `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path of `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
    /// The port of `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default 302.
    #[serde(default = "found")]
    pub status_code: u16,
}

fn found() -> u16 {
    302
}

/// `path` of a redirect or rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// Which of the two values applies.
    #[serde(rename = "type")]
    pub modifier_type: PathModifierType,
    /// For `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// For `ReplacePrefixMatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// The type of a path modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the matched prefix.
    ReplacePrefixMatch,
    /// A value this implementation does not know.
    #[serde(other)]
    Unsupported,
}

/// `urlRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpUrlRewrite {
    /// Replaces `Host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Replaces the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
}

/// `requestMirror`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestMirror {
    /// Where copies go.
    pub backend_ref: BackendObjectReference,
    /// 0–100; neither this nor `fraction`: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// A fraction of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

/// `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    /// The numerator.
    pub numerator: u32,
    /// Default 100.
    #[serde(default = "hundred")]
    pub denominator: u32,
}

fn hundred() -> u32 {
    100
}

/// `cors` (GEP-1767).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Allowed origins (`*` alone, or with a wildcard host part).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Allowed methods (`*` alone).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a preflight may be cached; default 5.
    #[serde(default = "five")]
    pub max_age: u32,
}

fn five() -> u32 {
    5
}

/// `timeouts` (GEP-1742 durations such as `10s`, `1m30s`, `500ms`; `0s` disables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteTimeouts {
    /// The whole client transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// One attempt to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `retry` (GEP-1731): `attempts` counts retries after the first try.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRetry {
    /// Statuses to retry (400–599).
    pub codes: Vec<u16>,
    /// Retries after the first try.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Minimum wait between tries (a GEP-2257 duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}
