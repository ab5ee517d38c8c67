//! CSRF protection (`csrf`, policy.md §3.2), as Envoy's CSRF filter judges: a request with a
//! mutating method (POST, PUT, DELETE, PATCH) must come from an origin — its `Origin`, else its
//! `Referer` — whose `host[:port]` is the request's own host or one of `additionalOrigins`
//! (schemes ignored; `*.x.com` matches subdomains, not `x.com`; `*` matches every origin).
//! Anything else — no origin at all included — is refused 403 `Invalid origin`. GET, HEAD
//! and other safe methods always pass. With `shadowFraction`, that share of requests is only
//! judged, never refused.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method, header};

/// Envoy's local-reply text for a refused origin.
pub const CSRF_FAILURE_TEXT: &str = "Invalid origin";

/// An accepted origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Every origin.
    Any,
    /// This `host[:port]` exactly (ASCII case-insensitive).
    Exact(String),
    /// `*.suffix`: any host ending in `.suffix` (with any port when the pattern has none).
    Subdomains(String),
}

impl OriginPattern {
    /// Reads `*`, `*.example.com`, `https://app.example.com[:port]` or `app.example.com`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        let authority = host_and_port(text)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("{text:?} is not an origin"))?;
        Ok(match authority.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
                OriginPattern::Subdomains(suffix.to_ascii_lowercase())
            }
            _ if authority.contains('*') => {
                return Err(format!("{text:?}: `*` is only allowed as a leading label"));
            }
            _ => OriginPattern::Exact(authority.to_ascii_lowercase()),
        })
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(expected) => expected.eq_ignore_ascii_case(origin),
            OriginPattern::Subdomains(suffix) => {
                let host = if suffix.contains(':') {
                    origin
                } else {
                    strip_port(origin)
                };
                host.len() > suffix.len() + 1
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// A compiled `csrf` section.
#[derive(Debug)]
pub struct CsrfPolicy {
    additional_origins: Vec<OriginPattern>,
    /// Percent of requests only judged (0–100).
    shadow_percent: u64,
    judged: AtomicU64,
}

impl Clone for CsrfPolicy {
    fn clone(&self) -> Self {
        CsrfPolicy {
            additional_origins: self.additional_origins.clone(),
            shadow_percent: self.shadow_percent,
            judged: AtomicU64::new(0),
        }
    }
}

/// Why a request's origin was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfFailure {
    /// Neither `Origin` nor `Referer` (or one that is not a URL).
    #[error("the request has no source origin")]
    MissingOrigin,
    /// The origin is neither the request's host nor an additional origin.
    #[error("the request's origin is not accepted")]
    InvalidOrigin,
}

impl CsrfPolicy {
    /// A policy accepting `additional_origins` beside the request's own host, refusing
    /// nothing for `shadow_percent` percent of requests.
    pub fn new(additional_origins: Vec<OriginPattern>, shadow_percent: u8) -> Self {
        CsrfPolicy {
            additional_origins,
            shadow_percent: u64::from(shadow_percent.min(100)),
            judged: AtomicU64::new(0),
        }
    }

    /// Judges a request: `Err` when it must be refused (shadowed refusals are `Ok`).
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), CsrfFailure> {
        let verdict = self.judge(method, headers);
        if verdict.is_err() && self.shadow_percent > 0 {
            // Every request in a cycle of 100 has its turn; the first `shadow_percent` pass.
            let turn = self.judged.fetch_add(1, Ordering::Relaxed) % 100;
            if turn < self.shadow_percent {
                return Ok(());
            }
        }
        verdict
    }

    /// Judges a request without shadowing.
    pub fn judge(&self, method: &Method, headers: &HeaderMap) -> Result<(), CsrfFailure> {
        if !matches!(
            *method,
            Method::POST | Method::PUT | Method::DELETE | Method::PATCH
        ) {
            return Ok(());
        }
        let source = [header::ORIGIN, header::REFERER]
            .iter()
            .filter_map(|name| headers.get(name)?.to_str().ok())
            .find(|value| !value.is_empty() && *value != "null")
            .and_then(host_and_port)
            .filter(|origin| !origin.is_empty())
            .ok_or(CsrfFailure::MissingOrigin)?;
        let target = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if source.eq_ignore_ascii_case(target)
            || self.additional_origins.iter().any(|p| p.matches(source))
        {
            Ok(())
        } else {
            Err(CsrfFailure::InvalidOrigin)
        }
    }
}

/// `host[:port]` of a URL or bare authority (scheme, path, query and userinfo dropped).
fn host_and_port(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    )
}

fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    fn policy(origins: &[&str]) -> CsrfPolicy {
        CsrfPolicy::new(
            origins
                .iter()
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            0,
        )
    }

    #[test]
    fn safe_methods_always_pass() {
        let p = policy(&[]);
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(
                p.judge(&method, &headers(&[("origin", "https://evil")])),
                Ok(())
            );
        }
    }

    #[test]
    fn mutating_methods_need_the_hosts_own_origin() {
        let p = policy(&[]);
        let host = ("host", "shop.example:8080");
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let same = headers(&[host, ("origin", "https://shop.example:8080")]);
            assert_eq!(p.judge(&method, &same), Ok(()), "{method}");
            let other = headers(&[host, ("origin", "https://evil.example")]);
            assert_eq!(p.judge(&method, &other), Err(CsrfFailure::InvalidOrigin));
            let other_port = headers(&[host, ("origin", "https://shop.example")]);
            assert_eq!(
                p.judge(&method, &other_port),
                Err(CsrfFailure::InvalidOrigin)
            );
        }
        let missing = headers(&[host]);
        assert_eq!(
            p.judge(&Method::POST, &missing),
            Err(CsrfFailure::MissingOrigin)
        );
        let null = headers(&[host, ("origin", "null")]);
        assert_eq!(
            p.judge(&Method::POST, &null),
            Err(CsrfFailure::MissingOrigin)
        );
        let referer = headers(&[host, ("referer", "http://u@shop.example:8080/cart?x=1")]);
        assert_eq!(
            p.judge(&Method::POST, &referer),
            Ok(()),
            "Referer when no Origin"
        );
    }

    #[test]
    fn additional_origins_match_as_envoy_gateway_documents() {
        let p = policy(&["https://partner.example", "*.trusted.example"]);
        let post = |origin: &str| {
            p.judge(
                &Method::POST,
                &headers(&[("host", "shop.example"), ("origin", origin)]),
            )
        };
        assert_eq!(post("http://partner.example"), Ok(()), "scheme ignored");
        assert_eq!(
            post("https://partner.example:444"),
            Err(CsrfFailure::InvalidOrigin)
        );
        assert_eq!(post("https://a.trusted.example"), Ok(()));
        assert_eq!(post("https://a.b.trusted.example:8443"), Ok(()));
        assert_eq!(
            post("https://trusted.example"),
            Err(CsrfFailure::InvalidOrigin),
            "not the apex"
        );
        assert_eq!(
            post("https://eviltrusted.example"),
            Err(CsrfFailure::InvalidOrigin)
        );
        let any = policy(&["*"]);
        assert_eq!(
            any.judge(
                &Method::POST,
                &headers(&[("host", "a"), ("origin", "https://b")])
            ),
            Ok(())
        );
        assert!(OriginPattern::parse("https://a.*.example").is_err());
        assert!(OriginPattern::parse("https://").is_err());
    }

    #[test]
    fn a_shadow_fraction_lets_that_share_through() {
        let p = CsrfPolicy::new(Vec::new(), 30);
        let evil = headers(&[("host", "shop.example"), ("origin", "https://evil")]);
        let passed = (0..200)
            .filter(|_| p.check(&Method::POST, &evil).is_ok())
            .count();
        assert_eq!(passed, 60);
        let full = CsrfPolicy::new(Vec::new(), 100);
        assert!((0..50).all(|_| full.check(&Method::POST, &evil).is_ok()));
    }
}
