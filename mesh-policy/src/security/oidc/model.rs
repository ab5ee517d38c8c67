//! `oidc` of a SecurityPolicy as written in Kubernetes YAML (policy.md §3.6): the field names
//! are Envoy Gateway's (`clientID`, `redirectURL`, `defaultTokenTTL`…), unknown fields refused.

use serde::{Deserialize, Serialize};

use routing::model::{BackendRef, SecretObjectReference};

/// `oidc`: log users in at an OpenID provider (authorization-code flow) and keep their session
/// in cookies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcSpec {
    /// The OpenID provider.
    pub provider: OidcProviderSpec,
    /// The client's ID (or `clientIDRef`).
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A Secret holding the client's ID under `client-id`.
    #[serde(
        default,
        rename = "clientIDRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id_ref: Option<SecretObjectReference>,
    /// A Secret holding the client's secret under `client-secret`.
    pub client_secret: SecretObjectReference,
    /// What the cookies' names end with (default: derived from the policy's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_suffix: Option<String>,
    /// Other names for the access-token and ID-token cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_names: Option<OidcCookieNames>,
    /// The cookies' `Domain` (default: none, the request's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// The cookies' `SameSite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_config: Option<OidcCookieConfig>,
    /// Scopes asked for (`openid` is always added).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Resource indicators (RFC 8707) sent with the authorization request.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Where the provider sends the browser back (default
    /// `%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback`).
    #[serde(
        default,
        rename = "redirectURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub redirect_url: Option<String>,
    /// Requests matching these headers get 401 instead of a redirect (scripts, XHR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_redirect: Option<OidcDenyRedirect>,
    /// The path that ends the session (default `/logout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_path: Option<String>,
    /// Send the access token upstream as `Authorization: Bearer` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_access_token: Option<bool>,
    /// Send the ID token upstream in this header.
    #[serde(
        default,
        rename = "forwardIDToken",
        skip_serializing_if = "Option::is_none"
    )]
    pub forward_id_token: Option<OidcForwardIdToken>,
    /// The access token's lifetime when the provider gives none (default: it must give one).
    #[serde(
        default,
        rename = "defaultTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_token_ttl: Option<String>,
    /// Refresh expired access tokens with the refresh token (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<bool>,
    /// The refresh token cookie's lifetime (default a week).
    #[serde(
        default,
        rename = "defaultRefreshTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_refresh_token_ttl: Option<String>,
    /// How long a login may take: the lifetime of the state and PKCE cookies (default 10 min).
    #[serde(
        default,
        rename = "csrfTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub csrf_token_ttl: Option<String>,
    /// Skip OIDC for requests carrying a bearer token (the `jwt` section judges it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_through_auth_header: Option<bool>,
    /// Keep the tokens readable in the cookies (default false: encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_token_encryption: Option<bool>,
}

/// `oidc.provider`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcProviderSpec {
    /// The issuer URL (its `/.well-known/openid-configuration` names the endpoints not given).
    pub issuer: String,
    /// Where browsers are sent to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Where browsers are sent after logout (RP-initiated logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// Backends to reach the provider through (not supported: the policy fails closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<serde_yaml_ng::Value>,
    /// Backends to reach the provider through (not supported: the policy fails closed).
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
    /// Connection settings towards the provider (read, not applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_settings: Option<serde_yaml_ng::Value>,
}

/// `oidc.cookieNames`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcCookieNames {
    /// The access-token cookie's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The ID-token cookie's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// `oidc.cookieConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcCookieConfig {
    /// `Lax`, `Strict` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
}

/// `oidc.denyRedirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcDenyRedirect {
    /// A request matching any of them is refused (401) instead of redirected.
    #[serde(default)]
    pub headers: Vec<OidcHeaderMatch>,
}

/// `oidc.denyRedirect.headers[]`: a header name and Envoy Gateway's StringMatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcHeaderMatch {
    /// The header.
    pub name: String,
    /// `Exact` (default), `Prefix`, `Suffix` or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// The value matched.
    pub value: String,
}

/// `oidc.forwardIDToken`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcForwardIdToken {
    /// The header (`Authorization` gets `Bearer <token>`, others the bare token).
    pub header: String,
}
