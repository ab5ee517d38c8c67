//! HTTPRoute path matches (gateway-api spec §1.2): `Exact`, segment-wise `PathPrefix`, and
//! whole-path `RegularExpression` (implementation-specific; ranked below every prefix).

use super::pattern::{Pattern, PatternError};

/// The longest path value the API accepts.
pub const MAX_PATH_LEN: usize = 1024;

/// A path match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathMatch {
    /// Case-sensitive, byte-exact: `/abc` matches neither `/abc/` nor `/abcd`.
    Exact(String),
    /// Element-wise on `/`-separated segments, case-sensitive; a trailing `/` on the value is
    /// ignored, so `/abc` and `/abc/` both match `/abc`, `/abc/` and `/abc/def`, not `/abcd`.
    PathPrefix(String),
    /// A regular expression over the whole path; less specific than any `PathPrefix`.
    RegularExpression(Pattern),
}

/// Why a path value is not acceptable (the API's validation rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathValueError {
    /// The value does not start with `/`.
    #[error("path `{0}` must start with `/`")]
    NotAbsolute(String),
    /// The value is longer than 1024 characters.
    #[error("path is longer than {MAX_PATH_LEN} characters")]
    TooLong,
    /// The value contains `//`, `/./`, `/../`, `%2f`, `#`, or ends in `/.` or `/..`.
    #[error(
        "path `{0}` is not normalized (no `//`, `/./`, `/../`, `%2f`, `#`, trailing `/.` or `/..`)"
    )]
    NotNormalized(String),
    /// The value contains characters that may not appear in a URI path.
    #[error("path `{0}` contains characters not allowed in a URI path")]
    InvalidCharacter(String),
    /// A `RegularExpression` value that does not compile (or is too large).
    #[error(transparent)]
    InvalidPattern(#[from] PatternError),
}

impl PathMatch {
    /// The API's default match: `PathPrefix /`.
    pub fn default_prefix() -> Self {
        PathMatch::PathPrefix("/".to_owned())
    }

    /// An `Exact` match, validated.
    pub fn exact(value: &str) -> Result<Self, PathValueError> {
        validate(value)?;
        Ok(PathMatch::Exact(value.to_owned()))
    }

    /// A `PathPrefix` match, validated.
    pub fn prefix(value: &str) -> Result<Self, PathValueError> {
        validate(value)?;
        Ok(PathMatch::PathPrefix(value.to_owned()))
    }

    /// A `RegularExpression` match over the whole path.
    pub fn regex(value: &str) -> Result<Self, PathValueError> {
        if value.len() > MAX_PATH_LEN {
            return Err(PathValueError::TooLong);
        }
        Ok(PathMatch::RegularExpression(Pattern::new(value)?))
    }

    /// Whether `path` (without its query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(value) => path == value,
            PathMatch::RegularExpression(pattern) => pattern.is_match(path),
            PathMatch::PathPrefix(value) => {
                let prefix = value.trim_end_matches('/');
                if prefix.is_empty() {
                    return true;
                }
                match path.strip_prefix(prefix) {
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
        }
    }
}

/// The API's validation of `Exact` and `PathPrefix` values.
fn validate(value: &str) -> Result<(), PathValueError> {
    if !value.starts_with('/') {
        return Err(PathValueError::NotAbsolute(value.to_owned()));
    }
    if value.len() > MAX_PATH_LEN {
        return Err(PathValueError::TooLong);
    }
    let lower = value.to_ascii_lowercase();
    let unnormalized = ["//", "/./", "/../", "%2f", "#"]
        .iter()
        .any(|bad| lower.contains(bad))
        || value.ends_with("/.")
        || value.ends_with("/..");
    if unnormalized {
        return Err(PathValueError::NotNormalized(value.to_owned()));
    }
    // RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/', and '%' escapes.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b);
    if !value.bytes().all(allowed) {
        return Err(PathValueError::InvalidCharacter(value.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per rule of spec §1.2 (and the trailing-slash pitfalls of §4).
    #[test]
    fn path_semantics() {
        let exact = PathMatch::exact("/abc").unwrap();
        let prefix = PathMatch::prefix("/abc").unwrap();
        let prefix_slash = PathMatch::prefix("/abc/").unwrap();
        let root = PathMatch::default_prefix();
        let rows: [(&PathMatch, &str, bool); 14] = [
            (&exact, "/abc", true),
            (&exact, "/abc/", false),
            (&exact, "/Abc", false),
            (&exact, "/abcd", false),
            (&prefix, "/abc", true),
            (&prefix, "/abc/", true),
            (&prefix, "/abc/def", true),
            (&prefix, "/abcd", false),
            (&prefix, "/ab", false),
            (&prefix_slash, "/abc", true),
            (&prefix_slash, "/abc/def", true),
            (&prefix_slash, "/abcd", false),
            (&root, "/anything/at/all", true),
            (&root, "/", true),
        ];
        for (matcher, path, expected) in rows {
            assert_eq!(matcher.matches(path), expected, "{matcher:?} on {path}");
        }
    }

    #[test]
    fn invalid_values_are_rejected() {
        for value in [
            "abc", "/a//b", "/a/./b", "/a/../b", "/a%2Fb", "/a#b", "/a/.", "/a/..", "/a b", "/a\"b",
        ] {
            assert!(PathMatch::prefix(value).is_err(), "{value}");
        }
        assert!(PathMatch::exact(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
        assert!(PathMatch::exact("/a-b_c.d~e/f:g@h;i=j%20").is_ok());
    }
}
