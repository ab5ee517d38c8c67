//! What a consistent-hash load balancer hashes (BackendTrafficPolicy
//! `loadBalancer.consistentHash.type`): the client's address, headers, a cookie or query
//! parameters — with xxHash64, as Envoy hashes them. A request without the key is spread at
//! random; a request without the session cookie gets one generated (when a `ttl` is set), so
//! that it and every later request carrying it land on the same endpoint.

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{COOKIE, HeaderName, HeaderValue};
use routing::router::RequestHead;
use twox_hash::XxHash64;

use crate::traffic::facts::client_address_in;

/// The key of a consistent hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's address (detected, else the peer's).
    SourceIp,
    /// The values of these headers, all of them.
    Headers(Vec<HeaderName>),
    /// A session cookie.
    Cookie(SessionCookie),
    /// The values of these query parameters, all of them.
    QueryParams(Vec<String>),
}

/// The session cookie of [`HashKey::Cookie`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The cookie's name.
    pub name: String,
    /// When set, a request without the cookie gets one with this `Max-Age`.
    pub ttl: Option<Duration>,
    /// Attributes added to a generated cookie (`SameSite=Strict`, …), in order.
    pub attributes: Vec<(String, String)>,
}

/// A request's hash, and the cookie to set when one was generated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyHash {
    /// The hash, `None` when the request has no key.
    pub hash: Option<u64>,
    /// A generated session cookie for the response.
    pub set_cookie: Option<HeaderValue>,
}

/// Envoy's combination of several hashed values.
fn combine(hash: Option<u64>, next: u64) -> u64 {
    match hash {
        None => next,
        Some(hash) => hash.rotate_left(1) ^ next,
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    XxHash64::oneshot(0, bytes)
}

impl HashKey {
    /// The hash of `request`.
    pub fn hash(&self, request: &RequestHead<'_>) -> KeyHash {
        match self {
            HashKey::SourceIp => KeyHash {
                hash: client_address_in(request.extensions).map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => hash_bytes(&v4.octets()),
                    std::net::IpAddr::V6(v6) => hash_bytes(&v6.octets()),
                }),
                set_cookie: None,
            },
            HashKey::Headers(names) => {
                let mut hash = None;
                for name in names {
                    let mut values: Vec<&[u8]> = request
                        .headers
                        .get_all(name)
                        .iter()
                        .map(HeaderValue::as_bytes)
                        .collect();
                    if values.is_empty() {
                        continue;
                    }
                    values.sort_unstable();
                    let joined = values.join(&b","[..]);
                    hash = Some(combine(hash, hash_bytes(&joined)));
                }
                KeyHash {
                    hash,
                    set_cookie: None,
                }
            }
            HashKey::QueryParams(names) => {
                let query = request.uri.query().unwrap_or("");
                let mut hash = None;
                for name in names {
                    let value = query.split('&').find_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        (key == name).then_some(value)
                    });
                    if let Some(value) = value {
                        hash = Some(combine(hash, hash_bytes(value.as_bytes())));
                    }
                }
                KeyHash {
                    hash,
                    set_cookie: None,
                }
            }
            HashKey::Cookie(cookie) => cookie.hash(request),
        }
    }
}

impl SessionCookie {
    fn hash(&self, request: &RequestHead<'_>) -> KeyHash {
        if let Some(value) = cookie_value(request.headers, &self.name) {
            return KeyHash {
                hash: Some(hash_bytes(value.as_bytes())),
                set_cookie: None,
            };
        }
        let Some(ttl) = self.ttl else {
            return KeyHash::default();
        };
        // As Envoy does, the generated value comes from the client's address: a client that
        // drops the cookie still lands on its endpoint.
        let seed = match client_address_in(request.extensions) {
            Some(std::net::IpAddr::V4(v4)) => hash_bytes(&v4.octets()),
            Some(std::net::IpAddr::V6(v6)) => hash_bytes(&v6.octets()),
            None => hash_bytes(request.uri.path().as_bytes()),
        };
        let value = format!("{seed:016x}");
        KeyHash {
            hash: Some(hash_bytes(value.as_bytes())),
            set_cookie: self.set_cookie(&value, ttl),
        }
    }

    /// `name="value"; Max-Age=ttl; attributes…; HttpOnly`, as Envoy writes it.
    fn set_cookie(&self, value: &str, ttl: Duration) -> Option<HeaderValue> {
        let mut text = format!("{}=\"{value}\"", self.name);
        if !ttl.is_zero() {
            let _ = write!(text, "; Max-Age={}", ttl.as_secs());
        }
        for (name, attribute) in &self.attributes {
            if attribute.is_empty() {
                let _ = write!(text, "; {name}");
            } else {
                let _ = write!(text, "; {name}={attribute}");
            }
        }
        text.push_str("; HttpOnly");
        HeaderValue::try_from(text).ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (quotes removed).
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| {
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value)
            })
        })
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::traffic::client_ip::ClientAddress;

    fn hash_of(key: &HashKey, request: &Request<()>) -> KeyHash {
        key.hash(&RequestHead::of(request))
    }

    #[test]
    fn source_addresses_hash_apart_and_alike() {
        let mut a = Request::new(());
        a.extensions_mut()
            .insert(ClientAddress([10, 0, 0, 1].into()));
        let mut b = Request::new(());
        b.extensions_mut()
            .insert(ClientAddress([10, 0, 0, 2].into()));
        let key = HashKey::SourceIp;
        assert!(hash_of(&key, &a).hash.is_some());
        assert_eq!(hash_of(&key, &a), hash_of(&key, &a));
        assert_ne!(hash_of(&key, &a).hash, hash_of(&key, &b).hash);
        assert_eq!(hash_of(&key, &Request::new(())).hash, None);
    }

    #[test]
    fn headers_and_query_parameters_are_all_hashed() {
        let key = HashKey::Headers(vec![
            HeaderName::from_static("x-user"),
            HeaderName::from_static("x-team"),
        ]);
        let request = |user: &str, team: Option<&str>| {
            let mut builder = Request::builder().header("x-user", user);
            if let Some(team) = team {
                builder = builder.header("x-team", team);
            }
            builder.body(()).unwrap()
        };
        let alice = hash_of(&key, &request("alice", Some("red"))).hash;
        assert!(alice.is_some());
        assert_ne!(alice, hash_of(&key, &request("alice", Some("blue"))).hash);
        assert_ne!(alice, hash_of(&key, &request("alice", None)).hash);
        assert_eq!(hash_of(&key, &Request::new(())).hash, None);

        let key = HashKey::QueryParams(vec!["user".into()]);
        let with = |uri: &str| Request::builder().uri(uri).body(()).unwrap();
        let one = hash_of(&key, &with("/a?x=1&user=alice")).hash;
        assert!(one.is_some());
        assert_eq!(one, hash_of(&key, &with("/b?user=alice")).hash);
        assert_ne!(one, hash_of(&key, &with("/b?user=bob")).hash);
        assert_eq!(hash_of(&key, &with("/b?username=alice")).hash, None);
    }

    #[test]
    fn a_missing_cookie_is_generated_and_then_sticks() {
        let cookie = SessionCookie {
            name: "session".into(),
            ttl: Some(Duration::from_secs(60)),
            attributes: vec![("SameSite".into(), "Strict".into())],
        };
        let key = HashKey::Cookie(cookie.clone());
        let mut first = Request::new(());
        first
            .extensions_mut()
            .insert(ClientAddress([10, 0, 0, 1].into()));
        let generated = hash_of(&key, &first);
        let set = generated.set_cookie.clone().unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("session=\""), "{set}");
        assert!(
            set.ends_with("\"; Max-Age=60; SameSite=Strict; HttpOnly"),
            "{set}"
        );
        let value = set.split('"').nth(1).unwrap();
        let again = Request::builder()
            .header("cookie", format!("other=1; session=\"{value}\""))
            .body(())
            .unwrap();
        let sticky = hash_of(&key, &again);
        assert_eq!(sticky.hash, generated.hash);
        assert_eq!(sticky.set_cookie, None);
        let unquoted = Request::builder()
            .header("cookie", format!("session={value}"))
            .body(())
            .unwrap();
        assert_eq!(hash_of(&key, &unquoted).hash, generated.hash);
        // Without a ttl nothing is generated and the request has no key.
        let no_ttl = HashKey::Cookie(SessionCookie {
            ttl: None,
            ..cookie
        });
        assert_eq!(hash_of(&no_ttl, &first), KeyHash::default());
    }
}
