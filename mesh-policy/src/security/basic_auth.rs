//! `basicAuth` at request time (policy.md §3.3, Envoy's basic-auth filter): the
//! `Authorization: Basic` credentials checked against the htpasswd users; every failure is a
//! 401 with `WWW-Authenticate: Basic realm="<the request's URL>"`; the `Authorization` header
//! goes upstream unchanged, the username too when `forwardUsernameHeader` names a header.

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::htpasswd::Htpasswd;

/// A compiled `basicAuth`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    users: Htpasswd,
    forward_username: Option<HeaderName>,
}

/// Why credentials were refused, with Envoy's local-reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Another scheme than `Basic`.
    NotBasic,
    /// Not base64, or no `:` after decoding.
    Malformed,
    /// Unknown user or wrong password.
    Invalid,
}

impl BasicAuthFailure {
    /// The local-reply text.
    pub fn text(self) -> &'static str {
        match self {
            BasicAuthFailure::Missing => {
                "User authentication failed. Missing username and password."
            }
            BasicAuthFailure::NotBasic => {
                "User authentication failed. Expected 'Basic' authentication scheme."
            }
            BasicAuthFailure::Malformed => {
                "User authentication failed. Invalid basic credential format."
            }
            BasicAuthFailure::Invalid => {
                "User authentication failed. Invalid username/password combination."
            }
        }
    }
}

impl std::fmt::Display for BasicAuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for BasicAuthFailure {}

impl BasicAuth {
    /// Checks `users`' passwords, forwarding the username in `forward_username` if given.
    pub fn new(users: Htpasswd, forward_username: Option<HeaderName>) -> Self {
        BasicAuth {
            users,
            forward_username,
        }
    }

    /// Checks the request's credentials; on success adds the username header if configured.
    pub fn check(&self, headers: &mut HeaderMap) -> Result<(), BasicAuthFailure> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(BasicAuthFailure::Missing)?;
        let bytes = value.as_bytes();
        let encoded = bytes
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
            .and_then(|_| bytes.get(6..))
            .ok_or(BasicAuthFailure::NotBasic)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .map_err(|_| BasicAuthFailure::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| BasicAuthFailure::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(BasicAuthFailure::Malformed)?;
        if !self.users.verify(user, password) {
            return Err(BasicAuthFailure::Invalid);
        }
        if let Some(name) = &self.forward_username
            && let Ok(value) = HeaderValue::try_from(user)
        {
            headers.insert(name.clone(), value);
        }
        Ok(())
    }
}

/// The challenge Envoy sends: `Basic realm="scheme://host/path"`, at most 256 characters of
/// URL (without the query).
pub fn basic_challenge(scheme: &str, host: &str, path: &str) -> Option<HeaderValue> {
    let path = path.split('?').next().unwrap_or_default();
    let mut url = format!("{scheme}://{host}{path}");
    if url.len() > 256 {
        let mut cut = 256;
        while !url.is_char_boundary(cut) {
            cut -= 1;
        }
        url.truncate(cut);
    }
    let url = url.replace(['"', '\\'], "");
    HeaderValue::try_from(format!("Basic realm=\"{url}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> BasicAuth {
        let users = Htpasswd::parse("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=").unwrap();
        BasicAuth::new(users, Some(HeaderName::from_static("x-user")))
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::try_from(value).unwrap());
        headers
    }

    #[test]
    fn each_failure_is_told_apart_and_success_forwards_the_user() {
        let auth = auth();
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            auth.check(&mut HeaderMap::new()),
            Err(BasicAuthFailure::Missing)
        );
        assert_eq!(
            auth.check(&mut with("Bearer x")),
            Err(BasicAuthFailure::NotBasic)
        );
        assert_eq!(
            auth.check(&mut with("Basic !!!")),
            Err(BasicAuthFailure::Malformed)
        );
        let no_colon = format!("Basic {}", encode("alice"));
        assert_eq!(
            auth.check(&mut with(&no_colon)),
            Err(BasicAuthFailure::Malformed)
        );
        let wrong = format!("Basic {}", encode("alice:nope"));
        assert_eq!(
            auth.check(&mut with(&wrong)),
            Err(BasicAuthFailure::Invalid)
        );
        let mut good = with(&format!("basic {}", encode("alice:password")));
        assert_eq!(auth.check(&mut good), Ok(()));
        assert_eq!(good["x-user"], "alice");
        assert!(
            good.contains_key(header::AUTHORIZATION),
            "forwarded unchanged"
        );
    }

    #[test]
    fn the_realm_is_the_url_without_query_capped() {
        let challenge = basic_challenge("http", "a.example", "/x?y=1").unwrap();
        assert_eq!(challenge, "Basic realm=\"http://a.example/x\"");
        let long = basic_challenge("http", "a", &"/p".repeat(300)).unwrap();
        assert_eq!(long.len(), "Basic realm=\"\"".len() + 256);
    }
}
