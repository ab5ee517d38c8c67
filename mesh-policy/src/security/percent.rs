//! Percent-decoding of query strings (`%XX`, and `+` as a space), for API keys in query
//! parameters and the admin's dry-run queries; percent-encoding of the query parameters and
//! form fields OIDC sends.

/// `%XX` and `+` (a space) decoded; malformed escapes kept as they are.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// `text` with every byte but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`) written
/// `%XX`: safe in a query parameter and in an `application/x-www-form-urlencoded` field.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `name=value` pairs joined by `&`, each side percent-encoded.
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The decoded value of parameter `name` in a query string (the first one).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key.as_bytes()) == name.as_bytes())
            .then(|| String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn encoding_round_trips_through_decoding() {
        let text = "https://app.example/a b?c=d&e=é+~";
        let encoded = super::percent_encode(text);
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        );
        assert_eq!(super::percent_decode(encoded.as_bytes()), text.as_bytes());
        let query = super::form_encode([("a b", "1&2"), ("state", "x=y")]);
        assert_eq!(query, "a%20b=1%262&state=x%3Dy");
        assert_eq!(super::query_param(&query, "state").as_deref(), Some("x=y"));
        assert_eq!(super::query_param(&query, "a b").as_deref(), Some("1&2"));
        assert_eq!(super::query_param(&query, "none"), None);
    }

    use super::*;

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode(b"a%20b+c%zz%4"), b"a b c%zz%4");
        assert_eq!(percent_decode(b"%2F%2f"), b"//");
    }
}
