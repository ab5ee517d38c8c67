//! Envoy Gateway's `gateway.envoyproxy.io/v1alpha1` SecurityPolicy as written in Kubernetes
//! YAML (policy.md §3): unknown fields refused, so a typo is an error naming its field. The
//! `oidc` section's model is in [`super::oidc::model`].

use serde::{Deserialize, Serialize};

use routing::model::{BackendObjectReference, BackendRef, ObjectMeta, SecretObjectReference};

/// A SecurityPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: SecurityPolicySpec,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityPolicySpec {
    /// One target (the deprecated single form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, listeners (`sectionName`), HTTPRoutes, GRPCRoutes or their rules.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Targets by label: Gateways, HTTPRoutes or GRPCRoutes of the policy's namespace whose
    /// labels the selector matches.
    #[serde(default)]
    pub target_selectors: Vec<TargetSelector>,
    /// Cross-origin resource sharing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// HTTP basic authentication from an htpasswd Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthSpec>,
    /// API keys from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_auth: Option<ApiKeyAuthSpec>,
    /// Authorization rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,
    /// JWT authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// OpenID Connect: the authorization-code flow, sessions in cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<super::oidc::model::OidcSpec>,
    /// External authorization over HTTP or gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_auth: Option<ExtAuthSpec>,
    /// CSRF protection: origin checks on mutating methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<CsrfSpec>,
}

/// `targetSelectors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSelector {
    /// `gateway.networking.k8s.io` (the default).
    #[serde(default)]
    pub group: Option<String>,
    /// `Gateway`, `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    /// Labels the target must carry.
    #[serde(default)]
    pub match_labels: std::collections::BTreeMap<String, String>,
    /// Further requirements (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    #[serde(default)]
    pub match_expressions: Vec<routing::model::LabelSelectorRequirement>,
}

/// `targetRefs[]` (local: the policy's own namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// `gateway.networking.k8s.io`.
    #[serde(default)]
    pub group: String,
    /// `Gateway`, `HTTPRoute`, `GRPCRoute` (others are not served here).
    pub kind: String,
    /// The name.
    pub name: String,
    /// A listener of a Gateway, or a rule of a route (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `cors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsSpec {
    /// Origins: `*`, or `scheme://host[:port]` where `*` matches any run of characters.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Methods.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a preflight may be cached (a duration: `86400s`, `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// `basicAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuthSpec {
    /// The Secret whose `.htpasswd` key lists the users.
    pub users: SecretObjectReference,
    /// When set, the authenticated username is sent upstream in this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_username_header: Option<String>,
}

/// `apiKeyAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyAuthSpec {
    /// Secrets: each key is a client id, its value that client's API key.
    pub credential_refs: Vec<SecretObjectReference>,
    /// Where the key is looked for, in order; the first source that yields one is used.
    pub extract_from: Vec<ExtractFrom>,
    /// When set, the client id is sent upstream in this header.
    #[serde(
        default,
        rename = "forwardClientIDHeader",
        skip_serializing_if = "Option::is_none"
    )]
    pub forward_client_id_header: Option<String>,
    /// Remove the key from the request before it is forwarded.
    #[serde(default)]
    pub sanitize: bool,
}

/// One `extractFrom` entry: exactly one of its lists is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractFrom {
    /// Header names.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query parameter names.
    #[serde(default)]
    pub params: Vec<String>,
    /// Cookie names.
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// `jwt`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSpec {
    /// A request without a token passes (an invalid token is still refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// A request without a token or with an invalid one passes (valid tokens still count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
    /// Providers (1–16); a token any of them validates is accepted.
    pub providers: Vec<JwtProviderSpec>,
}

/// `jwt.providers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtProviderSpec {
    /// The provider's name (what authorization rules refer to).
    pub name: String,
    /// `iss` must equal it, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud` must contain one of them, when any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Keys fetched from a URL by the runtime.
    #[serde(
        default,
        rename = "remoteJWKS",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_jwks: Option<RemoteJwksSpec>,
    /// Keys in the configuration.
    #[serde(default, rename = "localJWKS", skip_serializing_if = "Option::is_none")]
    pub local_jwks: Option<LocalJwksSpec>,
    /// Claims copied into request headers.
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Select the route again after claims became headers (the authorization that follows
    /// is the re-selected rule's policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute_route: Option<bool>,
    /// Where the token is (default: `Authorization: Bearer`, then `access_token` in the query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_from: Option<JwtExtractFrom>,
}

/// `remoteJWKS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteJwksSpec {
    /// `http://` or `https://` URL; a host `name.namespace[.svc[.cluster.local]]` is resolved
    /// through the configuration's Services, as in-cluster DNS would.
    pub uri: String,
    /// How long fetched keys are used before they are fetched again (default 300 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<String>,
    /// Backends to reach the URL through (not supported: the policy fails closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<serde_yaml_ng::Value>,
    /// Connection settings for those backends (not supported: the policy fails closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_settings: Option<serde_yaml_ng::Value>,
}

/// `localJWKS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalJwksSpec {
    /// `Inline` (default) or `ValueRef`.
    #[serde(default = "inline", rename = "type")]
    pub jwks_type: String,
    /// The JWKS document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A ConfigMap holding it (key `jwks`, else its only key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_ref: Option<LocalObjectReference>,
}

fn inline() -> String {
    "Inline".to_owned()
}

/// A reference to an object in the policy's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Its group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Its kind (`ConfigMap`).
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// `claimToHeaders[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The header set.
    pub header: String,
    /// The claim (dots for nested claims).
    pub claim: String,
}

/// `extractFrom` of a JWT provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtExtractFrom {
    /// Headers, with the prefix before the token (`"Bearer "`).
    #[serde(default)]
    pub headers: Vec<JwtHeaderSource>,
    /// Cookies.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// Query parameters.
    #[serde(default)]
    pub params: Vec<String>,
}

/// `extractFrom.headers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeaderSource {
    /// The header.
    pub name: String,
    /// What precedes the token in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_prefix: Option<String>,
}

/// `authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationSpec {
    /// What happens when no rule matches (default `Deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<AuthorizationAction>,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<AuthorizationRuleSpec>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizationAction {
    /// Let the request through.
    Allow,
    /// Answer 403.
    Deny,
}

/// `authorization.rules[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRuleSpec {
    /// The rule's name (reported when it decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a match does.
    pub action: AuthorizationAction,
    /// Which requests (methods, path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationSpec>,
    /// Who sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalSpec>,
    /// A CEL expression over Envoy's request attributes; the rule matches only where it
    /// yields `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
}

/// `operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationSpec {
    /// Any of these methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchSpec>,
}

/// `operation.path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatchSpec {
    /// `PathPrefix` (default), `Exact` or `RegularExpression`.
    #[serde(default = "path_prefix", rename = "type")]
    pub match_type: String,
    /// The value.
    pub value: String,
    /// Match the paths that do not match.
    #[serde(default)]
    pub invert: bool,
}

fn path_prefix() -> String {
    "PathPrefix".to_owned()
}

/// `principal`: every kind given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalSpec {
    /// The (detected) client address is in any of these blocks.
    #[serde(default, rename = "clientCIDRs")]
    pub client_cidrs: Vec<String>,
    /// Headers: all must match, each with any of its values.
    #[serde(default)]
    pub headers: Vec<HeaderPrincipal>,
    /// JWT claims and scopes (of a token the policy's `jwt` verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtPrincipal>,
    /// Geolocation (not supported: fails closed).
    #[serde(
        default,
        rename = "clientIPGeoLocations",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_ip_geo_locations: Option<serde_yaml_ng::Value>,
}

/// `principal.headers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderPrincipal {
    /// The header.
    pub name: String,
    /// Any of these exact values.
    pub values: Vec<String>,
}

/// `principal.jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtPrincipal {
    /// The provider that must have verified the token.
    pub provider: String,
    /// Claims: all must match.
    #[serde(default)]
    pub claims: Vec<JwtClaimMatch>,
    /// Scopes: all must be in `scope` (or `scp`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `principal.jwt.claims[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtClaimMatch {
    /// The claim (dots for nested claims).
    pub name: String,
    /// `String` (default) or `StringArray`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    /// Any of these values.
    pub values: Vec<String>,
}

/// `extAuth`: ask an external service (HTTP, or gRPC `envoy.service.auth.v3.Authorization`)
/// whether a request may go on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthSpec {
    /// The gRPC authorizer (exactly one of `grpc` and `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcExtAuthSpec>,
    /// The HTTP authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpExtAuthSpec>,
    /// Client request headers sent to the authorizer (gRPC default: all; HTTP: these beside
    /// `Host`, `Method`, `Path`, `Content-Length` and `Authorization`).
    #[serde(default)]
    pub headers_to_ext_auth: Vec<String>,
    /// Buffer the request body (up to `maxRequestBytes`) and send it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_to_ext_auth: Option<BodyToExtAuthSpec>,
    /// Let requests through when the authorizer cannot answer (default false).
    #[serde(default)]
    pub fail_open: bool,
    /// The status answered when the authorizer cannot answer (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_on_error: Option<u16>,
    /// How long the authorizer may take (Gateway API duration, default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Select the route again after the authorizer's headers are added (the checks that
    /// follow are the re-selected rule's policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute_route: Option<bool>,
    /// Name/value pairs passed to a gRPC authorizer (`context_extensions`).
    #[serde(default)]
    pub context_extensions: Vec<ContextExtensionSpec>,
}

/// `extAuth.grpc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcExtAuthSpec {
    /// The authorizer (the deprecated single form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendObjectReference>,
    /// The authorizer's Service.
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
    /// Connection settings towards the authorizer (read, not applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_settings: Option<serde_yaml_ng::Value>,
}

/// `extAuth.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpExtAuthSpec {
    /// The authorizer (the deprecated single form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendObjectReference>,
    /// The authorizer's Service.
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
    /// Connection settings towards the authorizer (read, not applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_settings: Option<serde_yaml_ng::Value>,
    /// A prefix put before the request's path in the check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Headers of the authorizer's 2xx answer copied onto the forwarded request.
    #[serde(default)]
    pub headers_to_backend: Vec<String>,
}

/// `extAuth.bodyToExtAuth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyToExtAuthSpec {
    /// The most bytes buffered; a larger body is answered 413.
    pub max_request_bytes: u32,
}

/// `extAuth.contextExtensions[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextExtensionSpec {
    /// The key.
    pub name: String,
    /// `Value` (default) or `ValueRef`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value (`type: Value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A ConfigMap or Secret key in the policy's namespace (`type: ValueRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_ref: Option<ValueRefSpec>,
}

/// A key of a ConfigMap or Secret in the policy's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueRefSpec {
    /// `""` (core).
    #[serde(default)]
    pub group: String,
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

/// `csrf`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsrfSpec {
    /// Origins accepted beside the request's own host: `https://app.example.com[:port]`,
    /// `*.example.com` (subdomains) or `*` (every origin); schemes are ignored.
    #[serde(default)]
    pub additional_origins: Vec<String>,
    /// Percent of requests (0–100) only judged, never refused (a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_fraction: Option<f64>,
}
