//! Regular expressions for `RegularExpression` path, header and query matches
//! (implementation-specific in the API; Envoy uses RE2). The `regex` crate's syntax is close to
//! RE2's and matches in linear time; a pattern must match the whole value, and its compiled
//! size is bounded so that configuration cannot exhaust memory.

use std::hash::{Hash, Hasher};

/// The largest compiled program a pattern may have.
const MAX_COMPILED_BYTES: usize = 1 << 20;

/// A compiled whole-value regular expression, compared and hashed by its source.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression `{source_text}`: {message}")]
pub struct PatternError {
    source_text: String,
    message: String,
}

impl Pattern {
    /// Compiles `source` to match whole values.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(MAX_COMPILED_BYTES)
            .dfa_size_limit(MAX_COMPILED_BYTES)
            .build()
            .map_err(|error| PatternError {
                source_text: source.to_owned(),
                message: error.to_string(),
            })?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_values_and_refuse_invalid_or_huge_ones() {
        let pattern = Pattern::new("/v[0-9]+/.*").unwrap();
        assert!(pattern.is_match("/v2/users"));
        assert!(!pattern.is_match("/api/v2/users"), "anchored at the start");
        assert!(Pattern::new("[a-z").is_err());
        assert!(
            Pattern::new("(a{1000}){1000}").is_err(),
            "bounded compiled size"
        );
    }
}
