//! Header values with Envoy command operators (`%TLS_JA3_FINGERPRINT%`,
//! `%TLS_JA4_FINGERPRINT%`), as Envoy Gateway passes header modifier values to Envoy: a value
//! holding one is filled in per request, and a value that comes out empty is not added (Envoy's
//! `keep_empty_value: false`). Text that does not have the form `%NAME%` (upper-case letters,
//! digits and `_`) stays literal, so `50%` and `100% / 2%` are plain values; an operator this
//! data plane does not fill is refused when the policy is read.
//!
//! ```
//! use mesh_policy::traffic::header_format::{FormatFacts, HeaderValueTemplate};
//! use mesh_policy::traffic::tls_fingerprint::TlsFingerprints;
//!
//! let template = HeaderValueTemplate::parse("ja4=%TLS_JA4_FINGERPRINT%").unwrap();
//! let prints = TlsFingerprints { ja3: None, ja4: Some("t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3".into()) };
//! let facts = FormatFacts { fingerprints: Some(&prints) };
//! assert_eq!(template.render(&facts).unwrap(), "ja4=t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3");
//! assert!(HeaderValueTemplate::parse("%UPSTREAM_HOST%").is_err());
//! ```

use http::HeaderValue;

use super::tls_fingerprint::TlsFingerprints;

/// A command operator this data plane fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `%TLS_JA3_FINGERPRINT%`: the connection's JA3 hash (empty unless the listener's policy
    /// lists `JA3` in `tls.fingerprints`).
    TlsJa3Fingerprint,
    /// `%TLS_JA4_FINGERPRINT%`: the connection's JA4 fingerprint (likewise with `JA4`).
    TlsJa4Fingerprint,
}

/// What operators read about the request's connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatFacts<'a> {
    /// The TLS client's fingerprints, on a TLS listener that computes them.
    pub fingerprints: Option<&'a TlsFingerprints>,
}

/// One piece of a formatted value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Operator(Operator),
}

/// A header value with at least one command operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormattedValue(Vec<Piece>);

/// Why a header value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderFormatError {
    /// An operator this data plane does not fill in.
    #[error(
        "the command operator %{0}% is not supported (TLS_JA3_FINGERPRINT, TLS_JA4_FINGERPRINT)"
    )]
    UnknownOperator(String),
    /// The value is not a valid header value.
    #[error("not a valid header value")]
    InvalidValue,
}

/// A header value as written in a policy: literal, or with operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValueTemplate {
    /// Sent as written.
    Literal(HeaderValue),
    /// Filled in per request.
    Formatted(FormattedValue),
}

impl HeaderValueTemplate {
    /// Reads `text`: literal unless it holds a `%NAME%` operator.
    pub fn parse(text: &str) -> Result<Self, HeaderFormatError> {
        let pieces = pieces(text)?;
        if !pieces
            .iter()
            .any(|piece| matches!(piece, Piece::Operator(_)))
        {
            return HeaderValue::try_from(text)
                .map(Self::Literal)
                .map_err(|_| HeaderFormatError::InvalidValue);
        }
        for piece in &pieces {
            if let Piece::Text(text) = piece {
                HeaderValue::try_from(text.as_str())
                    .map_err(|_| HeaderFormatError::InvalidValue)?;
            }
        }
        Ok(Self::Formatted(FormattedValue(pieces)))
    }

    /// The value for one request; `None` when a formatted value comes out empty.
    pub fn render(&self, facts: &FormatFacts<'_>) -> Option<HeaderValue> {
        match self {
            Self::Literal(value) => Some(value.clone()),
            Self::Formatted(FormattedValue(pieces)) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Operator(operator) => {
                            if let Some(value) = operator.value(facts) {
                                out.push_str(value);
                            }
                        }
                    }
                }
                if out.is_empty() {
                    return None;
                }
                HeaderValue::try_from(out).ok()
            }
        }
    }
}

impl From<HeaderValue> for HeaderValueTemplate {
    fn from(value: HeaderValue) -> Self {
        Self::Literal(value)
    }
}

impl Operator {
    fn named(name: &str) -> Option<Self> {
        match name {
            "TLS_JA3_FINGERPRINT" => Some(Self::TlsJa3Fingerprint),
            "TLS_JA4_FINGERPRINT" => Some(Self::TlsJa4Fingerprint),
            _ => None,
        }
    }

    fn value<'a>(self, facts: &FormatFacts<'a>) -> Option<&'a str> {
        let prints = facts.fingerprints?;
        match self {
            Self::TlsJa3Fingerprint => prints.ja3.as_deref(),
            Self::TlsJa4Fingerprint => prints.ja4.as_deref(),
        }
    }
}

/// Splits `text` into literal text and `%NAME%` operators.
fn pieces(text: &str) -> Result<Vec<Piece>, HeaderFormatError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if name_len == 0 || after.as_bytes().get(name_len) != Some(&b'%') {
            literal.push_str(&rest[..=start]);
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let operator = Operator::named(name)
            .ok_or_else(|| HeaderFormatError::UnknownOperator(name.to_owned()))?;
        literal.push_str(&rest[..start]);
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Operator(operator));
        rest = &after[name_len + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prints() -> TlsFingerprints {
        TlsFingerprints {
            ja3: Some("ada70206e40642a3e4461f35503241d5".into()),
            ja4: None,
        }
    }

    #[test]
    fn values_without_operators_stay_literal() {
        for text in ["plain", "50%", "100% / 2%", "%lower%", "%%", "% A%", ""] {
            let template = HeaderValueTemplate::parse(text).unwrap();
            assert_eq!(
                template,
                HeaderValueTemplate::Literal(HeaderValue::try_from(text).unwrap()),
                "{text}"
            );
            assert_eq!(
                template.render(&FormatFacts::default()).unwrap(),
                text,
                "literal values are sent even when empty"
            );
        }
    }

    #[test]
    fn operators_are_filled_in_from_the_connection() {
        let prints = prints();
        let facts = FormatFacts {
            fingerprints: Some(&prints),
        };
        let template = HeaderValueTemplate::parse("ja3=%TLS_JA3_FINGERPRINT%;v=1").unwrap();
        assert_eq!(
            template.render(&facts).unwrap(),
            "ja3=ada70206e40642a3e4461f35503241d5;v=1"
        );
        assert_eq!(
            template.render(&FormatFacts::default()).unwrap(),
            "ja3=;v=1"
        );
    }

    #[test]
    fn a_value_that_comes_out_empty_is_not_added() {
        let prints = prints();
        let facts = FormatFacts {
            fingerprints: Some(&prints),
        };
        let ja4 = HeaderValueTemplate::parse("%TLS_JA4_FINGERPRINT%").unwrap();
        assert_eq!(ja4.render(&facts), None, "JA4 was not asked for");
        assert_eq!(ja4.render(&FormatFacts::default()), None, "not TLS");
    }

    #[test]
    fn unknown_operators_and_bad_text_are_refused() {
        assert_eq!(
            HeaderValueTemplate::parse("%DOWNSTREAM_PEER_URI_SAN%"),
            Err(HeaderFormatError::UnknownOperator(
                "DOWNSTREAM_PEER_URI_SAN".into()
            ))
        );
        assert_eq!(
            HeaderValueTemplate::parse("a\nb %TLS_JA3_FINGERPRINT%"),
            Err(HeaderFormatError::InvalidValue)
        );
        assert_eq!(
            HeaderValueTemplate::parse("a\nb"),
            Err(HeaderFormatError::InvalidValue)
        );
    }
}
