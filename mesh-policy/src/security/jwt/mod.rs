//! `jwt` (policy.md §3.5): tokens looked for where each provider says (default
//! `Authorization: Bearer …`, then the `access_token` query parameter), accepted when any
//! provider verifies one ([`token::verify`]); claims copied into headers; the verified claims
//! put into the request as [`VerifiedJwt`] for authorization rules. A missing token is a 401
//! unless `optional`; an invalid one is a 401 (403 for audiences), unless `failOpen`.

pub mod cache;
pub mod jwks;
pub mod remote;
pub mod token;

use std::sync::Arc;

use http::Uri;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::cookies::cookie;
pub use cache::VerifiedTokenCache;
pub use jwks::{Jwks, JwksError};
pub use remote::{JwksRegistry, RemoteJwks};
pub use token::{ClaimRequirements, JwtError};

/// Where a provider looks for its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header, with the prefix before the token (`Bearer `).
    Header {
        /// The header.
        name: HeaderName,
        /// The prefix (matched case-insensitively).
        prefix: String,
    },
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Param(String),
}

impl TokenSource {
    /// Envoy's default: `Authorization: Bearer <token>`, then `?access_token=<token>`.
    pub fn defaults() -> Vec<TokenSource> {
        vec![
            TokenSource::Header {
                name: header::AUTHORIZATION,
                prefix: "Bearer ".to_owned(),
            },
            TokenSource::Param("access_token".to_owned()),
        ]
    }
}

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// The configuration (`localJWKS`).
    Local(Arc<Jwks>),
    /// A URL the runtime fetches (`remoteJWKS`); no keys until the first fetch succeeds.
    Remote(Arc<RemoteJwks>),
}

impl JwksSource {
    /// The keys to verify with now.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        match self {
            JwksSource::Local(jwks) => Some(Arc::clone(jwks)),
            JwksSource::Remote(remote) => remote.current(),
        }
    }
}

/// One provider.
#[derive(Debug, Clone)]
pub struct JwtProvider {
    /// Its name.
    pub name: Arc<str>,
    /// Its keys.
    pub jwks: JwksSource,
    /// Its issuer and audiences.
    pub requirements: ClaimRequirements,
    /// Where its tokens are.
    pub sources: Vec<TokenSource>,
    /// Claims (dot paths) copied into headers.
    pub claim_to_headers: Vec<(HeaderName, String)>,
    /// Select the route again once its token's claims became headers (`recomputeRoute`).
    pub recompute_route: bool,
}

/// A token a provider verified, as a request extension.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// The provider.
    pub provider: Arc<str>,
    /// The token's claims (shared with the verified-token cache).
    pub claims: Arc<Map<String, Value>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFailure {
    /// No provider found a token (401 `Jwt is missing`).
    Missing,
    /// A token was found and none verified it.
    Invalid(JwtError),
}

impl JwtFailure {
    /// Envoy's local-reply text.
    pub fn text(self) -> &'static str {
        match self {
            JwtFailure::Missing => "Jwt is missing",
            JwtFailure::Invalid(error) => error.text(),
        }
    }

    /// Whether Envoy answers 403 rather than 401 (audiences not allowed).
    pub fn is_forbidden(self) -> bool {
        self == JwtFailure::Invalid(JwtError::AudienceNotAllowed)
    }
}

/// A compiled `jwt`.
#[derive(Debug, Clone)]
pub struct JwtAuthentication {
    /// Providers, in order.
    pub providers: Vec<JwtProvider>,
    /// A missing token passes.
    pub optional: bool,
    /// A missing or invalid token passes.
    pub fail_open: bool,
    /// Tokens already verified (shared by clones).
    cache: Arc<VerifiedTokenCache>,
}

impl JwtAuthentication {
    /// Authentication by `providers`, with an empty verified-token cache.
    pub fn new(providers: Vec<JwtProvider>, optional: bool, fail_open: bool) -> Self {
        JwtAuthentication {
            providers,
            optional,
            fail_open,
            cache: Arc::default(),
        }
    }

    /// Whether the provider named `provider` asks for the route to be selected again after
    /// its claims became headers.
    pub fn recomputes_route(&self, provider: &str) -> bool {
        self.providers
            .iter()
            .any(|p| p.recompute_route && *p.name == *provider)
    }

    /// Whether the request carries a token where one of the providers looks.
    pub fn finds_token(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.providers.iter().any(|provider| {
            provider
                .sources
                .iter()
                .any(|source| extract(source, uri, headers).is_some())
        })
    }

    /// Checks the request at `now` (Unix seconds). `Ok(Some)`: a verified token (its claim
    /// headers set); `Ok(None)`: let through without one.
    pub fn check(
        &self,
        uri: &Uri,
        headers: &mut HeaderMap,
        now: u64,
    ) -> Result<Option<VerifiedJwt>, JwtFailure> {
        let mut failure = JwtFailure::Missing;
        for (index, provider) in self.providers.iter().enumerate() {
            let Some(token) = provider
                .sources
                .iter()
                .find_map(|source| extract(source, uri, headers))
            else {
                continue;
            };
            // Local keys are borrowed; remote ones held for this check.
            let fetched;
            let keys = match &provider.jwks {
                JwksSource::Local(keys) => keys,
                JwksSource::Remote(remote) => {
                    fetched = remote.current();
                    let Some(keys) = &fetched else {
                        failure = JwtFailure::Invalid(JwtError::JwksUnavailable);
                        continue;
                    };
                    keys
                }
            };
            let verified = match self.cache.get(token, index, keys, now) {
                Some(claims) => Ok(claims),
                None => token::verify(token, keys, &provider.requirements, now).map(|claims| {
                    let claims = Arc::new(claims);
                    self.cache
                        .insert(token, index, Arc::clone(keys), Arc::clone(&claims));
                    claims
                }),
            };
            match verified {
                Ok(claims) => {
                    for (name, path) in &provider.claim_to_headers {
                        if let Some(value) = claim_text(&claims, path)
                            .and_then(|text| HeaderValue::try_from(text).ok())
                        {
                            headers.insert(name.clone(), value);
                        }
                    }
                    return Ok(Some(VerifiedJwt {
                        provider: Arc::clone(&provider.name),
                        claims,
                    }));
                }
                Err(error) => failure = JwtFailure::Invalid(error),
            }
        }
        match failure {
            _ if self.fail_open => Ok(None),
            JwtFailure::Missing if self.optional => Ok(None),
            failure => Err(failure),
        }
    }
}

/// The current time in Unix seconds, the clock tokens are checked against (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A scalar claim at a dot path, as text (strings, numbers, booleans).
pub fn claim_text(claims: &Map<String, Value>, path: &str) -> Option<String> {
    match claim(claims, path)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The claim at a dot path (`a.b` is `{"a": {"b": …}}`).
pub fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn extract<'a>(source: &TokenSource, uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let text = match source {
        TokenSource::Header { name, prefix } => {
            // UTF-8 (fast for ASCII) rather than to_str's byte-by-byte check: the token is
            // validated as base64url when it is verified.
            let value = std::str::from_utf8(headers.get(name)?.as_bytes()).ok()?;
            let head = value.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| value[prefix.len()..].trim())?
        }
        TokenSource::Param(name) => uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then_some(value)
        })?,
        TokenSource::Cookie(name) => std::str::from_utf8(cookie(headers, name)?).ok()?,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn provider(name: &str, pair: &Ed25519KeyPair, audiences: &[&str]) -> JwtProvider {
        let jwks = Jwks::parse(
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#,
                b64(pair.public_key().as_ref())
            )
            .as_bytes(),
        )
        .unwrap();
        JwtProvider {
            recompute_route: false,
            name: name.into(),
            jwks: JwksSource::Local(Arc::new(jwks)),
            requirements: ClaimRequirements {
                issuer: None,
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
            },
            sources: TokenSource::defaults(),
            claim_to_headers: vec![(HeaderName::from_static("x-org"), "org.name".into())],
        }
    }

    fn sign(pair: &Ed25519KeyPair, claims: &str) -> String {
        let signed = format!("{}.{}", b64(br#"{"alg":"EdDSA"}"#), b64(claims.as_bytes()));
        format!("{signed}.{}", b64(pair.sign(signed.as_bytes()).as_ref()))
    }

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn any_provider_may_verify_and_claims_become_headers() {
        let (first, second) = (key(), key());
        let auth = JwtAuthentication::new(
            vec![provider("a", &first, &[]), provider("b", &second, &[])],
            false,
            false,
        );
        let token = sign(&second, r#"{"org":{"name":"acme"}}"#);
        let mut headers = HeaderMap::new();
        let uri: Uri = format!("/x?access_token={token}").parse().unwrap();
        let verified = auth.check(&uri, &mut headers, 0).unwrap().unwrap();
        assert_eq!(&*verified.provider, "b");
        assert_eq!(headers["x-org"], "acme");
        // Again: from the cache, same answer.
        let mut again = HeaderMap::new();
        let cached = auth.check(&uri, &mut again, 0).unwrap().unwrap();
        assert_eq!(cached, verified);
        assert_eq!(again["x-org"], "acme");
        let plain: Uri = "/".parse().unwrap();
        assert_eq!(
            auth.check(&plain, &mut HeaderMap::new(), 0),
            Err(JwtFailure::Missing)
        );
        let mut bad = HeaderMap::new();
        bad.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert_eq!(
            auth.check(&plain, &mut bad, 0),
            Err(JwtFailure::Invalid(JwtError::Malformed))
        );
    }

    #[test]
    fn optional_fail_open_and_audiences() {
        let pair = key();
        let mut auth = JwtAuthentication::new(vec![provider("a", &pair, &["api"])], true, false);
        let plain: Uri = "/".parse().unwrap();
        assert_eq!(auth.check(&plain, &mut HeaderMap::new(), 0), Ok(None));
        let mut wrong_audience = HeaderMap::new();
        let token = sign(&pair, r#"{"aud":"web"}"#);
        wrong_audience.insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("bearer {token}")).unwrap(),
        );
        let failure = auth.check(&plain, &mut wrong_audience, 0).unwrap_err();
        assert!(failure.is_forbidden());
        auth.fail_open = true;
        assert_eq!(auth.check(&plain, &mut wrong_audience, 0), Ok(None));
    }
}
