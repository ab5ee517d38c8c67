//! `apiKeyAuth` at request time (policy.md §3.4): the key is looked for in the configured
//! sources in order (headers, query parameters, cookies — the first source that yields one is
//! used), must be one of the Secrets' keys (401 otherwise), and may be stripped before the
//! request is forwarded; the client id it belongs to can be sent upstream in a header.

use std::collections::HashMap;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};

use super::cookies::{cookie, cookie_pairs};
use super::percent::percent_decode;

/// Where a key may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header.
    Header(HeaderName),
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Envoy's local-reply text for a missing or unknown key.
pub const API_KEY_FAILURE_TEXT: &str = "Client authentication failed.";

/// Why a request's key was refused (a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFailure {
    /// No source yielded a key.
    #[error("no API key in the request")]
    Missing,
    /// The key is not any client's.
    #[error("unknown API key")]
    Unknown,
}

/// A compiled `apiKeyAuth`.
#[derive(Debug, Clone)]
pub struct ApiKeyAuth {
    /// Key → client id.
    clients: HashMap<Vec<u8>, String>,
    sources: Vec<KeySource>,
    forward_client_id: Option<HeaderName>,
    sanitize: bool,
}

impl ApiKeyAuth {
    /// `clients` as (client id, key) in the Secrets' order: a key listed twice keeps its
    /// first client.
    pub fn new(
        clients: impl IntoIterator<Item = (String, Vec<u8>)>,
        sources: Vec<KeySource>,
        forward_client_id: Option<HeaderName>,
        sanitize: bool,
    ) -> Self {
        let mut by_key = HashMap::new();
        for (client, key) in clients {
            by_key.entry(key).or_insert(client);
        }
        ApiKeyAuth {
            clients: by_key,
            sources,
            forward_client_id,
            sanitize,
        }
    }

    /// Checks the request's key; on success forwards the client id and strips the key as
    /// configured.
    pub fn check(&self, uri: &mut Uri, headers: &mut HeaderMap) -> Result<(), ApiKeyFailure> {
        let (source, key) = self
            .sources
            .iter()
            .find_map(|source| extract(source, uri, headers).map(|key| (source, key)))
            .ok_or(ApiKeyFailure::Missing)?;
        let client = self.clients.get(&key).ok_or(ApiKeyFailure::Unknown)?;
        if self.sanitize {
            strip(source, uri, headers);
        }
        if let Some(name) = &self.forward_client_id
            && let Ok(value) = HeaderValue::try_from(client.as_str())
        {
            headers.insert(name.clone(), value);
        }
        Ok(())
    }
}

fn extract(source: &KeySource, uri: &Uri, headers: &HeaderMap) -> Option<Vec<u8>> {
    match source {
        KeySource::Header(name) => headers
            .get(name)
            .map(|v| v.as_bytes().to_vec())
            .filter(|v| !v.is_empty()),
        KeySource::Param(name) => query_pairs(uri.query()?)
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value)
            .filter(|v| !v.is_empty()),
        KeySource::Cookie(name) => cookie(headers, name)
            .map(<[u8]>::to_vec)
            .filter(|v| !v.is_empty()),
    }
}

fn strip(source: &KeySource, uri: &mut Uri, headers: &mut HeaderMap) {
    match source {
        KeySource::Header(name) => {
            headers.remove(name);
        }
        KeySource::Param(name) => {
            let Some(query) = uri.query() else { return };
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or_default();
                    percent_decode(key.as_bytes()) != name.as_bytes()
                })
                .collect();
            let path = uri.path();
            let rebuilt = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            let mut parts = uri.clone().into_parts();
            if let Ok(path_and_query) = PathAndQuery::try_from(rebuilt) {
                parts.path_and_query = Some(path_and_query);
                if let Ok(rebuilt) = Uri::from_parts(parts) {
                    *uri = rebuilt;
                }
            }
        }
        KeySource::Cookie(name) => {
            let kept: Vec<String> = headers
                .get_all(header::COOKIE)
                .iter()
                .flat_map(|value| cookie_pairs(value.as_bytes()))
                .filter(|(key, _)| *key != name.as_bytes())
                .map(|(key, value)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(value)
                    )
                })
                .collect();
            headers.remove(header::COOKIE);
            if !kept.is_empty()
                && let Ok(value) = HeaderValue::try_from(kept.join("; "))
            {
                headers.insert(header::COOKIE, value);
            }
        }
    }
}

/// `a=b&c=d` as decoded (name, value) pairs.
fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (
            percent_decode(key.as_bytes()),
            percent_decode(value.as_bytes()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(sanitize: bool) -> ApiKeyAuth {
        ApiKeyAuth::new(
            [
                ("client-a".to_owned(), b"key-a".to_vec()),
                ("client-b".to_owned(), b"key-b".to_vec()),
                ("dup".to_owned(), b"key-a".to_vec()),
            ],
            vec![
                KeySource::Header(HeaderName::from_static("x-api-key")),
                KeySource::Param("api_key".into()),
                KeySource::Cookie("session-key".into()),
            ],
            Some(HeaderName::from_static("x-client-id")),
            sanitize,
        )
    }

    #[test]
    fn keys_from_headers_params_and_cookies_in_order() {
        let auth = auth(false);
        let mut uri: Uri = "/x?a=1&api_key=key-b".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(auth.check(&mut uri, &mut headers), Ok(()));
        assert_eq!(headers["x-client-id"], "client-b");
        headers.insert("x-api-key", HeaderValue::from_static("key-a"));
        assert_eq!(auth.check(&mut uri, &mut headers), Ok(()));
        assert_eq!(
            headers["x-client-id"], "client-a",
            "header first; first client wins"
        );
        let mut cookie_only = HeaderMap::new();
        cookie_only.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; session-key=\"key-b\""),
        );
        let mut plain: Uri = "/".parse().unwrap();
        assert_eq!(auth.check(&mut plain, &mut cookie_only), Ok(()));
        let mut wrong = HeaderMap::new();
        wrong.insert("x-api-key", HeaderValue::from_static("nope"));
        assert_eq!(
            auth.check(&mut plain, &mut wrong),
            Err(ApiKeyFailure::Unknown)
        );
        assert_eq!(
            auth.check(&mut plain, &mut HeaderMap::new()),
            Err(ApiKeyFailure::Missing)
        );
    }

    #[test]
    fn sanitize_strips_the_key_it_used() {
        let auth = auth(true);
        let mut uri: Uri = "/x?a=1&api_key=key-b&c=2".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(auth.check(&mut uri, &mut headers), Ok(()));
        assert_eq!(uri, "/x?a=1&c=2");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; session-key=key-a"),
        );
        let mut plain: Uri = "/".parse().unwrap();
        assert_eq!(auth.check(&mut plain, &mut headers), Ok(()));
        assert_eq!(headers[header::COOKIE], "a=b");
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("key-a"));
        assert_eq!(auth.check(&mut plain, &mut headers), Ok(()));
        assert!(!headers.contains_key("x-api-key"));
    }
}
