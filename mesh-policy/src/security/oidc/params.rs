//! `oidc` compiled: the client's credentials read from Secrets, the endpoints (given, or to be
//! discovered from the issuer), the cookie names and attributes, the lifetimes, and the
//! policy's session keys.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use http::HeaderMap;
use http::header::HeaderName;
use regex::Regex;
use routing::model::{Config, ObjectKey};
use routing::resolve::parse_duration;

use super::IdentityProviderClient;
use super::model::{OidcHeaderMatch, OidcSpec};
use super::session::{SessionKeys, SessionSecret};

/// Where the configuration may keep the secret sessions are derived from, as Envoy Gateway
/// keeps it: Secret `envoy-gateway-system/envoy-oidc-hmac`, key `hmac-secret`.
pub const HMAC_SECRET: (&str, &str, &str) =
    ("envoy-gateway-system", "envoy-oidc-hmac", "hmac-secret");

const DEFAULT_REDIRECT_URL: &str = "%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback";
const DEFAULT_LOGOUT_PATH: &str = "/logout";
const DEFAULT_REFRESH_TTL: u64 = 7 * 24 * 3600;
const DEFAULT_CSRF_TTL: u64 = 600;

/// What the runtime lends OIDC: the client that talks to providers and the secret sessions
/// are derived from when the configuration has none (sessions then last as long as the
/// process).
#[derive(Debug, Clone)]
pub struct OidcRuntime {
    /// Performs discovery, code and refresh exchanges.
    pub client: Arc<dyn IdentityProviderClient>,
    /// The process's session secret.
    pub secret: SessionSecret,
}

/// The provider's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where browsers log in.
    pub authorization: String,
    /// Where codes and refresh tokens are exchanged.
    pub token: String,
    /// Where browsers are sent after logout, when the provider has one.
    pub end_session: Option<String>,
}

/// The names of the session's cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieNames {
    /// The access token.
    pub access: String,
    /// The ID token.
    pub id: String,
    /// The refresh token.
    pub refresh: String,
    /// The HMAC over the session cookies.
    pub hmac: String,
    /// When the access token expires (Unix seconds).
    pub expires: String,
    /// The login's nonce (also its CSRF token).
    pub nonce: String,
    /// The login's PKCE verifier (sealed).
    pub verifier: String,
}

impl CookieNames {
    fn all(&self) -> [&str; 7] {
        [
            &self.access,
            &self.id,
            &self.refresh,
            &self.hmac,
            &self.expires,
            &self.nonce,
            &self.verifier,
        ]
    }

    /// Whether `name` is one of the session's cookies.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.all().iter().any(|ours| ours.as_bytes() == name)
    }
}

/// A compiled `oidc`.
pub struct Oidc {
    /// The policy, named in refusals.
    pub policy: String,
    pub(super) issuer: String,
    pub(super) configured: (Option<String>, Option<String>, Option<String>),
    /// The endpoints once known: set at compile time when all are configured, else by the
    /// first successful discovery.
    pub(super) known: OnceLock<Arc<Endpoints>>,
    pub(super) last_discovery_failure: Mutex<Option<Instant>>,
    /// A discovery is under way (one at a time, whatever the number of requests waiting).
    pub(super) discovering: AtomicBool,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) scope: String,
    pub(super) resources: Vec<String>,
    pub(super) redirect_url: String,
    /// The path of the redirect URL: the callback.
    pub callback_path: String,
    /// The path that ends the session.
    pub logout_path: String,
    pub(super) deny_redirect: Vec<(HeaderName, HeaderValueMatch)>,
    pub(super) forward_access_token: bool,
    pub(super) forward_id_token: Option<HeaderName>,
    pub(super) default_token_ttl: Option<u64>,
    pub(super) refresh: bool,
    pub(super) refresh_ttl: u64,
    pub(super) csrf_ttl: u64,
    pub(super) pass_through_auth_header: bool,
    pub(super) encrypt: bool,
    /// The session's cookie names.
    pub cookies: CookieNames,
    pub(super) cookie_domain: Option<String>,
    pub(super) same_site: Option<&'static str>,
    pub(super) keys: SessionKeys,
    pub(super) client: Arc<dyn IdentityProviderClient>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client secret and keys are never printed.
        f.debug_struct("Oidc")
            .field("policy", &self.policy)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("callback_path", &self.callback_path)
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

/// Reads a key of the Secret a reference names (applying ReferenceGrants): its bytes, or why
/// not.
pub type SecretReader<'a> =
    dyn Fn(&routing::model::SecretObjectReference, &str) -> Result<Vec<u8>, String> + 'a;

/// How a `denyRedirect` header value is matched.
#[derive(Debug, Clone)]
pub(super) enum HeaderValueMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

impl HeaderValueMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            HeaderValueMatch::Exact(v) => value == v,
            HeaderValueMatch::Prefix(v) => value.starts_with(v.as_str()),
            HeaderValueMatch::Suffix(v) => value.ends_with(v.as_str()),
            HeaderValueMatch::Regex(r) => r.is_match(value),
        }
    }
}

impl Oidc {
    /// Compiles `spec` of `policy`; Secrets are read through `secret` (which applies
    /// ReferenceGrants), the session secret from the configuration or else `runtime`.
    pub fn compile(
        spec: &OidcSpec,
        policy: &ObjectKey,
        config: &Config,
        runtime: Option<&OidcRuntime>,
        secret: &SecretReader<'_>,
    ) -> Result<Oidc, String> {
        let runtime = runtime.ok_or("oidc: this runtime cannot talk to OpenID providers")?;
        if spec.provider.backend_ref.is_some() || !spec.provider.backend_refs.is_empty() {
            return Err("oidc.provider.backendRefs is not supported yet".to_owned());
        }
        let text = |bytes: Vec<u8>, field: &str| {
            String::from_utf8(bytes)
                .map(|s| s.trim().to_owned())
                .map_err(|_| format!("{field} is not UTF-8"))
        };
        let client_id = match (&spec.client_id, &spec.client_id_ref) {
            (Some(id), None) => id.clone(),
            (None, Some(reference)) => text(secret(reference, "client-id")?, "oidc.clientIDRef")?,
            _ => return Err("oidc: exactly one of clientID and clientIDRef".to_owned()),
        };
        let client_secret = text(
            secret(&spec.client_secret, "client-secret")?,
            "oidc.clientSecret",
        )?;
        for (field, url) in [
            ("provider.issuer", Some(&spec.provider.issuer)),
            (
                "provider.authorizationEndpoint",
                spec.provider.authorization_endpoint.as_ref(),
            ),
            (
                "provider.tokenEndpoint",
                spec.provider.token_endpoint.as_ref(),
            ),
            (
                "provider.endSessionEndpoint",
                spec.provider.end_session_endpoint.as_ref(),
            ),
        ] {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(format!("oidc.{field} {url:?} is not an http(s) URL"));
            }
        }
        let duration = |field: &str, value: &Option<String>, default: Option<u64>| {
            value
                .as_deref()
                .map(|text| {
                    parse_duration(text)
                        .map(|d| d.as_secs())
                        .ok_or_else(|| format!("oidc.{field} {text:?} is not a duration"))
                })
                .transpose()
                .map(|d| d.or(default))
        };
        let redirect_url = spec
            .redirect_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIRECT_URL.to_owned());
        let callback_path = url_path(&redirect_url)
            .ok_or_else(|| format!("oidc.redirectURL {redirect_url:?} is not a URL"))?;
        let logout_path = spec
            .logout_path
            .clone()
            .unwrap_or_else(|| DEFAULT_LOGOUT_PATH.to_owned());
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(spec.scopes.iter().filter(|s| *s != "openid").cloned());
        let suffix = spec.cookie_suffix.clone().unwrap_or_else(|| {
            let digest = ring::digest::digest(&ring::digest::SHA256, policy.to_string().as_bytes());
            digest.as_ref()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let names = spec.cookie_names.clone().unwrap_or_default();
        let cookies = CookieNames {
            access: names
                .access_token
                .unwrap_or_else(|| format!("AccessToken-{suffix}")),
            id: names
                .id_token
                .unwrap_or_else(|| format!("IdToken-{suffix}")),
            refresh: format!("RefreshToken-{suffix}"),
            hmac: format!("OauthHMAC-{suffix}"),
            expires: format!("OauthExpires-{suffix}"),
            nonce: format!("OauthNonce-{suffix}"),
            verifier: format!("CodeVerifier-{suffix}"),
        };
        for name in cookies.all() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                return Err(format!("oidc: {name:?} is not a cookie name"));
            }
        }
        let same_site = match spec
            .cookie_config
            .as_ref()
            .and_then(|c| c.same_site.as_deref())
        {
            None => None,
            Some("Lax") => Some("Lax"),
            Some("Strict") => Some("Strict"),
            Some("None") => Some("None"),
            Some(other) => {
                return Err(format!(
                    "oidc.cookieConfig.sameSite {other:?} is not Lax, Strict or None"
                ));
            }
        };
        let deny_redirect = spec
            .deny_redirect
            .iter()
            .flat_map(|d| &d.headers)
            .map(header_match)
            .collect::<Result<Vec<_>, _>>()?;
        let forward_id_token = spec
            .forward_id_token
            .as_ref()
            .map(|f| {
                HeaderName::try_from(f.header.as_str()).map_err(|_| {
                    format!(
                        "oidc.forwardIDToken.header {:?} is not a header name",
                        f.header
                    )
                })
            })
            .transpose()?;
        let session_secret = config
            .secrets
            .iter()
            .find(|s| s.metadata.namespace == HMAC_SECRET.0 && s.metadata.name == HMAC_SECRET.1)
            .and_then(|s| s.value(HMAC_SECRET.2))
            .and_then(|bytes| SessionSecret::new(&bytes))
            .unwrap_or_else(|| runtime.secret.clone());
        let keys = SessionKeys::derive(&session_secret, &policy.to_string())
            .map_err(|e| format!("oidc: {e}"))?;
        Ok(Oidc {
            policy: format!("SecurityPolicy {policy}"),
            issuer: spec.provider.issuer.trim_end_matches('/').to_owned(),
            configured: (
                spec.provider.authorization_endpoint.clone(),
                spec.provider.token_endpoint.clone(),
                spec.provider.end_session_endpoint.clone(),
            ),
            known: configured_endpoints(spec),
            last_discovery_failure: Mutex::new(None),
            discovering: AtomicBool::new(false),
            client_id,
            client_secret,
            scope: scopes.join(" "),
            resources: spec.resources.clone(),
            redirect_url,
            callback_path,
            logout_path,
            deny_redirect,
            forward_access_token: spec.forward_access_token.unwrap_or(false),
            forward_id_token,
            default_token_ttl: duration("defaultTokenTTL", &spec.default_token_ttl, None)?,
            refresh: spec.refresh_token.unwrap_or(true),
            refresh_ttl: duration(
                "defaultRefreshTokenTTL",
                &spec.default_refresh_token_ttl,
                Some(DEFAULT_REFRESH_TTL),
            )?
            .unwrap_or(DEFAULT_REFRESH_TTL),
            csrf_ttl: duration("csrfTokenTTL", &spec.csrf_token_ttl, Some(DEFAULT_CSRF_TTL))?
                .unwrap_or(DEFAULT_CSRF_TTL),
            pass_through_auth_header: spec.pass_through_auth_header.unwrap_or(false),
            encrypt: !spec.disable_token_encryption.unwrap_or(false),
            cookies,
            cookie_domain: spec.cookie_domain.clone(),
            same_site,
            keys,
            client: Arc::clone(&runtime.client),
        })
    }

    /// The endpoints, when known: all configured, or discovered.
    pub fn endpoints(&self) -> Option<Arc<Endpoints>> {
        self.known.get().cloned()
    }

    /// Whether a request carrying a bearer token skips OIDC (`passThroughAuthHeader`): only
    /// then does the caller need to look for one.
    pub fn passes_bearer_through(&self) -> bool {
        self.pass_through_auth_header
    }

    /// The issuer's discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Whether the request matches `denyRedirect`.
    pub(super) fn deny_redirect(&self, headers: &HeaderMap) -> bool {
        self.deny_redirect.iter().any(|(name, matcher)| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| matcher.matches(v))
        })
    }
}

/// The endpoints, already known when the policy names both the authorization and the token
/// endpoint (no discovery then).
fn configured_endpoints(spec: &OidcSpec) -> OnceLock<Arc<Endpoints>> {
    let known = OnceLock::new();
    let provider = &spec.provider;
    if let (Some(authorization), Some(token)) =
        (&provider.authorization_endpoint, &provider.token_endpoint)
    {
        let _ = known.set(Arc::new(Endpoints {
            authorization: authorization.clone(),
            token: token.clone(),
            end_session: provider.end_session_endpoint.clone(),
        }));
    }
    known
}

fn header_match(spec: &OidcHeaderMatch) -> Result<(HeaderName, HeaderValueMatch), String> {
    let name = HeaderName::try_from(spec.name.as_str()).map_err(|_| {
        format!(
            "oidc.denyRedirect.headers: {:?} is not a header name",
            spec.name
        )
    })?;
    let value = spec.value.clone();
    let matcher = match spec.match_type.as_deref().unwrap_or("Exact") {
        "Exact" => HeaderValueMatch::Exact(value),
        "Prefix" => HeaderValueMatch::Prefix(value),
        "Suffix" => HeaderValueMatch::Suffix(value),
        "RegularExpression" => HeaderValueMatch::Regex(
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("oidc.denyRedirect.headers {}: {e}", spec.name))?,
        ),
        other => {
            return Err(format!(
                "oidc.denyRedirect.headers {}: type {other:?} is not Exact, Prefix, Suffix or RegularExpression",
                spec.name
            ));
        }
    };
    Ok((name, matcher))
}

/// The path of an absolute URL (its template variables left in the authority), without its
/// query.
fn url_path(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Some(path.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_callback_path_is_the_redirect_urls_path() {
        assert_eq!(
            super::url_path(super::DEFAULT_REDIRECT_URL).as_deref(),
            Some("/oauth2/callback")
        );
        assert_eq!(
            super::url_path("https://app.example:8443/cb?x=1").as_deref(),
            Some("/cb")
        );
        assert_eq!(super::url_path("https://app.example"), None);
        assert_eq!(super::url_path("/relative"), None);
    }
}
