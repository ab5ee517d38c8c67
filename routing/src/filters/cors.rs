//! One CORS engine for both APIs that configure it: the Gateway API's `HTTPCORSFilter`
//! (GEP-1767, gateway-api spec §1.4) and Envoy Gateway's SecurityPolicy `cors` (policy.md §3.1,
//! Envoy's runtime behaviour): preflights answered by the proxy, and CORS headers on the
//! responses to allowed origins. The two differ only where [`CorsSemantics`] says.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::http_route::hostname_covers;
use crate::model::Cors;

/// Whose rules a [`CorsPolicy`] follows where the two APIs differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsSemantics {
    /// GEP-1767: origins `scheme://host[:port]` with a `*.` host prefix; a refused preflight
    /// is 403; `*` answered literally when credentials are off.
    GatewayApi,
    /// Envoy Gateway: origins are globs over the whole origin (`*` matches any run of
    /// characters, so `https://*.x.com` also covers `https://a.b.x.com`); a refused preflight
    /// is still 200, without `access-control-allow-origin`; the origin is always echoed, and a
    /// `*` method or header list echoes what the preflight asked for.
    EnvoyGateway,
}

/// Envoy Gateway's SecurityPolicy `cors`, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyCorsParams {
    /// `allowOrigins`: `*`, or globs over `scheme://host[:port]`.
    pub allow_origins: Vec<String>,
    /// `allowMethods` (`*` anywhere: any).
    pub allow_methods: Vec<String>,
    /// `allowHeaders` (`*` anywhere: any).
    pub allow_headers: Vec<String>,
    /// `exposeHeaders`.
    pub expose_headers: Vec<String>,
    /// `maxAge` in seconds, when set.
    pub max_age: Option<u32>,
    /// `allowCredentials`.
    pub allow_credentials: bool,
}

/// A compiled CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    semantics: CorsSemantics,
    origins: Vec<OriginPattern>,
    origin_globs: Vec<String>,
    any_origin: bool,
    methods: Vec<String>,
    any_method: bool,
    headers: Vec<String>,
    any_header: bool,
    expose_headers: Vec<String>,
    allow_credentials: bool,
    max_age: Option<u32>,
}

/// One `allowOrigins` entry: scheme, host (optionally `*.`-prefixed or `*`), port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginPattern {
    scheme: String,
    host: String,
    port: u16,
}

/// What a request's `Origin` is, parsed.
struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
}

/// What the proxy answers to a CORS preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightAnswer {
    /// 200 for an allowed origin (as Envoy answers; the API allows 200 or 204), 403 otherwise.
    pub status: StatusCode,
    /// The CORS headers (none when refused).
    pub headers: HeaderMap,
}

/// Why a CORS filter is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CORS: {0}")]
pub struct CorsError(String);

impl CorsPolicy {
    /// Compiles the API object: `*` must stand alone in each list; origins are
    /// `scheme://host[:port]` with an optional `*.` host prefix.
    pub fn new(cors: &Cors) -> Result<Self, CorsError> {
        let alone = |list: &[String], what: &str| {
            let star = list.iter().any(|v| v == "*");
            if star && list.len() > 1 {
                Err(CorsError(format!("`*` must be the only entry of {what}")))
            } else {
                Ok(star)
            }
        };
        let any_origin = alone(&cors.allow_origins, "allowOrigins")?;
        let any_method = alone(&cors.allow_methods, "allowMethods")?;
        let any_header = alone(&cors.allow_headers, "allowHeaders")?;
        let origins = if any_origin {
            Vec::new()
        } else {
            cors.allow_origins
                .iter()
                .map(|origin| {
                    parse_origin(origin)
                        .map(|o| OriginPattern {
                            scheme: o.scheme.to_ascii_lowercase(),
                            host: o.host.to_ascii_lowercase(),
                            port: o.port,
                        })
                        .ok_or_else(|| CorsError(format!("invalid origin {origin:?}")))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(CorsPolicy {
            semantics: CorsSemantics::GatewayApi,
            origins,
            origin_globs: Vec::new(),
            any_origin,
            methods: cors.allow_methods.clone(),
            any_method,
            headers: cors.allow_headers.clone(),
            any_header,
            expose_headers: cors.expose_headers.clone(),
            allow_credentials: cors.allow_credentials,
            max_age: Some(cors.max_age),
        })
    }

    /// Compiles Envoy Gateway's SecurityPolicy `cors` (every value is accepted: an origin
    /// glob that matches nothing simply allows nothing).
    pub fn envoy_gateway(params: &EnvoyCorsParams) -> Self {
        let star = |list: &[String]| list.iter().any(|v| v.contains('*'));
        CorsPolicy {
            semantics: CorsSemantics::EnvoyGateway,
            origins: Vec::new(),
            any_origin: params.allow_origins.iter().any(|o| o == "*"),
            origin_globs: params.allow_origins.clone(),
            any_method: star(&params.allow_methods),
            methods: params.allow_methods.clone(),
            any_header: star(&params.allow_headers),
            headers: params.allow_headers.clone(),
            expose_headers: params.expose_headers.clone(),
            allow_credentials: params.allow_credentials,
            max_age: params.max_age,
        }
    }

    /// Whose rules this policy follows.
    pub fn semantics(&self) -> CorsSemantics {
        self.semantics
    }

    /// Whether `origin` is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        if self.semantics == CorsSemantics::EnvoyGateway {
            return self
                .origin_globs
                .iter()
                .any(|glob| glob_matches(glob.as_bytes(), origin.as_bytes()));
        }
        let Some(origin) = parse_origin(origin) else {
            return false;
        };
        self.origins.iter().any(|pattern| {
            pattern.scheme.eq_ignore_ascii_case(origin.scheme)
                && pattern.port == origin.port
                && (pattern.host == "*" || hostname_covers(&pattern.host, origin.host))
        })
    }

    /// The proxy's own answer when `method` and `headers` make a preflight (OPTIONS with
    /// `Origin` and `Access-Control-Request-Method`); `None` for any other request.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<PreflightAnswer> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
        let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let envoy = self.semantics == CorsSemantics::EnvoyGateway;
        if !self.allows_origin(origin) {
            // Envoy answers 200 all the same; what browsers act on is the missing
            // access-control-allow-origin.
            let status = if envoy {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            return Some(PreflightAnswer {
                status,
                headers: HeaderMap::new(),
            });
        }
        let mut answer = HeaderMap::new();
        self.insert_origin(&mut answer, origin);
        let methods = if self.any_method {
            if self.allow_credentials || envoy {
                requested.to_str().unwrap_or_default().to_owned()
            } else {
                "*".to_owned()
            }
        } else {
            self.methods.join(", ")
        };
        insert(&mut answer, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
        let requested_headers = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let allowed_headers = if self.any_header {
            if self.allow_credentials || envoy || requested_headers.is_empty() {
                requested_headers.to_owned()
            } else {
                "*".to_owned()
            }
        } else {
            self.headers.join(", ")
        };
        if !allowed_headers.is_empty() {
            insert(
                &mut answer,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                &allowed_headers,
            );
        }
        // Envoy's preflight answer carries the exposed headers too.
        self.insert_expose_headers(&mut answer);
        if let Some(max_age) = self.max_age {
            insert(
                &mut answer,
                header::ACCESS_CONTROL_MAX_AGE,
                &max_age.to_string(),
            );
        }
        Some(PreflightAnswer {
            status: StatusCode::OK,
            headers: answer,
        })
    }

    /// Adds the CORS headers for a non-preflight request from `origin` (if allowed) to the
    /// response headers.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| o.to_str().ok()) else {
            return;
        };
        if !self.allows_origin(origin) {
            return;
        }
        self.insert_origin(response, origin);
        self.insert_expose_headers(response);
    }

    fn insert_expose_headers(&self, headers: &mut HeaderMap) {
        if !self.expose_headers.is_empty() {
            insert(
                headers,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &self.expose_headers.join(", "),
            );
        }
    }

    fn insert_origin(&self, headers: &mut HeaderMap, origin: &str) {
        // With credentials a wildcard is answered by echoing, never `*`; Envoy always echoes.
        let literal_star = self.any_origin
            && !self.allow_credentials
            && self.semantics == CorsSemantics::GatewayApi;
        insert(
            headers,
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            if literal_star { "*" } else { origin },
        );
        if self.allow_credentials {
            insert(headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if !literal_star {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// Whether `glob` (where `*` matches any run of bytes, possibly empty) matches all of `text`.
/// Greedy with one backtrack point: O(glob × text) at worst, no recursion.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g].eq_ignore_ascii_case(&text[t]) {
            g += 1;
            t += 1;
        } else if let Some((star_g, star_t)) = star {
            g = star_g + 1;
            t = star_t + 1;
            star = Some((star_g, star_t + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&b| b == b'*')
}

/// `scheme://host[:port]`; the default port of http (80) and https (443) when absent.
fn parse_origin(text: &str) -> Option<Origin<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
            (host, port.parse().ok()?)
        }
        _ => (rest, default_port),
    };
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envoy(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsPolicy {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        CorsPolicy::envoy_gateway(&EnvoyCorsParams {
            allow_origins: list(origins),
            allow_methods: list(methods),
            allow_headers: list(headers),
            expose_headers: vec!["x-total".into()],
            max_age: None,
            allow_credentials: false,
        })
    }

    #[test]
    fn envoy_gateway_origins_are_globs_over_the_whole_origin() {
        let cors = envoy(&["https://*.foobar.com", "http://exact.com:8080"], &[], &[]);
        assert!(cors.allows_origin("https://a.foobar.com"));
        assert!(cors.allows_origin("https://a.b.foobar.com"), "* spans dots");
        assert!(
            !cors.allows_origin("https://foobar.com"),
            "apex not covered"
        );
        assert!(!cors.allows_origin("http://a.foobar.com"));
        assert!(cors.allows_origin("http://exact.com:8080"));
        assert!(!cors.allows_origin("http://exact.com"));
        assert!(envoy(&["https://*"], &[], &[]).allows_origin("https://any.where"));
        assert!(glob_matches(b"a*b*c", b"aXXbYYc") && !glob_matches(b"a*b*c", b"aXXbYY"));
    }

    #[test]
    fn envoy_gateway_preflights_echo_and_refusals_are_200_without_allow_origin() {
        let cors = envoy(&["https://*.x.com"], &["*"], &["*"]);
        let mut headers = preflight_headers("https://app.x.com");
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-token"),
        );
        let answer = cors.preflight(&Method::OPTIONS, &headers).unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.x.com"
        );
        assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "x-token"
        );
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "x-total"
        );
        assert!(!answer.headers.contains_key(header::ACCESS_CONTROL_MAX_AGE));
        let refused = cors
            .preflight(&Method::OPTIONS, &preflight_headers("https://evil.com"))
            .unwrap();
        assert_eq!(refused.status, StatusCode::OK);
        assert!(
            !refused
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        // An allowed actual request gets the origin echoed even for a `*` list.
        let any = envoy(&["*"], &[], &[]);
        let mut response = HeaderMap::new();
        any.decorate(
            Some(&HeaderValue::from_static("https://b.com")),
            &mut response,
        );
        assert_eq!(
            response[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://b.com"
        );
    }

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::new(&Cors {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-a".into()],
            expose_headers: vec!["x-exposed".into()],
            allow_credentials: credentials,
            max_age: 5,
        })
        .unwrap()
    }

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::try_from(origin).unwrap());
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        headers
    }

    #[test]
    fn origins_match_scheme_host_wildcards_and_default_ports() {
        let p = policy(
            &[
                "https://www.foo.com",
                "https://*.bar.com",
                "http://local:8080",
            ],
            false,
        );
        assert!(p.allows_origin("https://www.foo.com"));
        assert!(
            p.allows_origin("https://www.foo.com:443"),
            "default port assumed"
        );
        assert!(!p.allows_origin("http://www.foo.com"));
        assert!(
            p.allows_origin("https://a.b.bar.com"),
            "wildcard covers several labels"
        );
        assert!(!p.allows_origin("https://bar.com"));
        assert!(p.allows_origin("http://local:8080"));
        assert!(!p.allows_origin("http://local"));
        assert!(!p.allows_origin("null"));
    }

    #[test]
    fn preflights_are_answered_or_refused_by_the_proxy() {
        let p = policy(&["https://*.bar.com"], true);
        let answer = p
            .preflight(&Method::OPTIONS, &preflight_headers("https://x.bar.com"))
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://x.bar.com"
        );
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, POST"
        );
        assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-a");
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
            "true"
        );
        assert_eq!(answer.headers[header::ACCESS_CONTROL_MAX_AGE], "5");
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "x-exposed",
            "the preflight answer names the exposed headers, as Envoy's does"
        );
        let refused = p
            .preflight(&Method::OPTIONS, &preflight_headers("https://evil.com"))
            .unwrap();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.headers.is_empty());
        assert!(
            p.preflight(&Method::GET, &preflight_headers("https://x.bar.com"))
                .is_none()
        );
    }

    #[test]
    fn wildcards_are_echoed_when_credentials_are_allowed() {
        let mut cors = Cors {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            expose_headers: vec![],
            allow_credentials: true,
            max_age: 5,
        };
        let p = CorsPolicy::new(&cors).unwrap();
        let mut headers = preflight_headers("https://a.com");
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-b"),
        );
        let answer = p.preflight(&Method::OPTIONS, &headers).unwrap();
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.com"
        );
        assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-b");
        cors.allow_credentials = false;
        let p = CorsPolicy::new(&cors).unwrap();
        let answer = p.preflight(&Method::OPTIONS, &headers).unwrap();
        assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        cors.allow_origins.push("https://b.com".into());
        assert!(CorsPolicy::new(&cors).is_err(), "`*` must stand alone");
    }

    #[test]
    fn responses_to_allowed_origins_are_decorated() {
        let p = policy(&["https://www.foo.com"], false);
        let mut response = HeaderMap::new();
        p.decorate(
            Some(&HeaderValue::from_static("https://www.foo.com")),
            &mut response,
        );
        assert_eq!(
            response[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://www.foo.com"
        );
        assert_eq!(response[header::ACCESS_CONTROL_EXPOSE_HEADERS], "x-exposed");
        let mut other = HeaderMap::new();
        p.decorate(
            Some(&HeaderValue::from_static("https://no.com")),
            &mut other,
        );
        assert!(other.is_empty());
    }
}
