//! `Cookie` header values read as (name, value) pairs, for credentials carried in cookies
//! (API keys, JWTs).

use http::header::{self, HeaderMap};

/// `a=b; c="d"` as (name, value) pairs, values unquoted; pairs without `=` skipped.
pub fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (&pair[..at], &pair[at + 1..]);
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some((key.trim_ascii(), value))
    })
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| cookie_pairs(value.as_bytes()))
        .find(|(key, _)| *key == name.as_bytes())
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_trimmed_and_unquoted() {
        let pairs: Vec<_> = cookie_pairs(b" a=1; b=\"two\" ;bare; c=").collect();
        assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (b"b", b"two"), (b"c", b"")]);
    }
}
