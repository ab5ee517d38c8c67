//! htpasswd files as Envoy Gateway's `basicAuth` reads them (policy.md §3.3): `user:{SHA}…`
//! (unsalted SHA-1, base64 — the only form Envoy accepts), and bcrypt (`$2y$`, `$2a$`, `$2b$`),
//! which users ask for and Envoy lacks. Passwords are compared in constant time.

use std::collections::HashMap;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The highest bcrypt cost accepted (`htpasswd -B` defaults to 5; 12 takes ~250 ms a check).
pub const MAX_BCRYPT_COST: u32 = 12;

/// One user's stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoredPassword {
    /// SHA-1 of the password.
    Sha1([u8; 20]),
    /// A bcrypt hash, verified by the `bcrypt` crate.
    Bcrypt(String),
}

/// Why an htpasswd file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdError {
    /// A line is not `user:hash`.
    #[error("line {line}: not `user:hash`")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A hash in a format that is not supported (crypt, MD5-apr1, plain text).
    #[error(
        "line {line}: user {user:?} has a password hash in an unsupported format (use {{SHA}} or bcrypt)"
    )]
    UnsupportedHash {
        /// 1-based line number.
        line: usize,
        /// The user.
        user: String,
    },
    /// No user at all.
    #[error("no users")]
    Empty,
}

/// The users of an htpasswd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Htpasswd {
    users: HashMap<String, StoredPassword>,
}

impl Htpasswd {
    /// Reads the file's text (blank lines and `#` comments skipped; a repeated user: the
    /// first entry wins).
    pub fn parse(text: &str) -> Result<Self, HtpasswdError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (user, hash) = entry
                .split_once(':')
                .filter(|(user, hash)| !user.is_empty() && !hash.is_empty())
                .ok_or(HtpasswdError::Malformed { line })?;
            let unsupported = || HtpasswdError::UnsupportedHash {
                line,
                user: user.to_owned(),
            };
            let stored = if let Some(encoded) = hash.strip_prefix("{SHA}") {
                let digest = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
                    .ok_or_else(unsupported)?;
                StoredPassword::Sha1(digest)
            } else if ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                // Every request pays the cost: 2^cost rounds, capped so that a check stays
                // within milliseconds.
                let cost: u32 = hash
                    .get(4..6)
                    .and_then(|digits| digits.parse().ok())
                    .ok_or_else(unsupported)?;
                if !(4..=MAX_BCRYPT_COST).contains(&cost) {
                    return Err(unsupported());
                }
                StoredPassword::Bcrypt(hash.to_owned())
            } else {
                return Err(unsupported());
            };
            users.entry(user.to_owned()).or_insert(stored);
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty);
        }
        Ok(Htpasswd { users })
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(StoredPassword::Sha1(digest)) => {
                constant_time_eq(&Sha1::digest(password.as_bytes()), digest)
            }
            Some(StoredPassword::Bcrypt(hash)) => bcrypt::verify(password, hash).unwrap_or(false),
            None => false,
        }
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Compares without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{SHA}` of "password", as `htpasswd -s` writes it.
    const SHA_PASSWORD: &str = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=";

    #[test]
    fn sha_entries_verify_and_wrong_passwords_do_not() {
        let file = Htpasswd::parse(&format!("# users\n\nalice:{SHA_PASSWORD}\n")).unwrap();
        assert!(file.verify("alice", "password"));
        assert!(!file.verify("alice", "Password"));
        assert!(!file.verify("bob", "password"));
    }

    #[test]
    fn bcrypt_entries_verify() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let file = Htpasswd::parse(&format!("carol:{hash}")).unwrap();
        assert!(file.verify("carol", "s3cret"));
        assert!(!file.verify("carol", "s3cre"));
    }

    #[test]
    fn unsupported_and_malformed_lines_are_refused_with_their_line() {
        assert_eq!(
            Htpasswd::parse("a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nb:$apr1$x$y"),
            Err(HtpasswdError::UnsupportedHash {
                line: 2,
                user: "b".into()
            })
        );
        assert_eq!(
            Htpasswd::parse("plain"),
            Err(HtpasswdError::Malformed { line: 1 })
        );
        assert_eq!(
            Htpasswd::parse("a:{SHA}dG9vc2hvcnQ="),
            Err(HtpasswdError::UnsupportedHash {
                line: 1,
                user: "a".into()
            })
        );
        assert_eq!(Htpasswd::parse("# none\n"), Err(HtpasswdError::Empty));
        let slow = "d:$2y$31$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        assert!(matches!(
            Htpasswd::parse(slow),
            Err(HtpasswdError::UnsupportedHash { line: 1, .. })
        ));
    }
}
