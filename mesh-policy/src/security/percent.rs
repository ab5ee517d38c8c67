//! Percent-decoding of query strings (`%XX`, and `+` as a space), for API keys in query
//! parameters and the admin's dry-run queries.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode(b"a%20b+c%zz%4"), b"a b c%zz%4");
        assert_eq!(percent_decode(b"%2F%2f"), b"//");
    }
}
