//! `HTTPHeaderFilter`: RequestHeaderModifier and ResponseHeaderModifier (gateway-api spec §1.4).

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The most entries each of `set`, `add` and `remove` may have.
pub const MAX_ENTRIES: usize = 16;

/// Header edits: `set` overwrites, `add` appends after any existing value (`existing,added`),
/// `remove` deletes. Names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

/// Why a header modifier is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderModifierError {
    /// More than 16 entries in one list.
    #[error("more than {MAX_ENTRIES} entries in `{0}`")]
    TooManyEntries(&'static str),
    /// A header name appears in more than one action (or twice in one).
    #[error("header `{0}` has more than one action")]
    DuplicateName(HeaderName),
}

impl HeaderModifier {
    /// A validated modifier: at most 16 entries per list and one action per header name.
    pub fn new(
        set: Vec<(HeaderName, HeaderValue)>,
        add: Vec<(HeaderName, HeaderValue)>,
        remove: Vec<HeaderName>,
    ) -> Result<Self, HeaderModifierError> {
        for (list, len) in [
            ("set", set.len()),
            ("add", add.len()),
            ("remove", remove.len()),
        ] {
            if len > MAX_ENTRIES {
                return Err(HeaderModifierError::TooManyEntries(list));
            }
        }
        let mut seen: Vec<&HeaderName> = Vec::new();
        let names = set
            .iter()
            .map(|(n, _)| n)
            .chain(add.iter().map(|(n, _)| n))
            .chain(remove.iter());
        for name in names {
            if seen.contains(&name) {
                return Err(HeaderModifierError::DuplicateName(name.clone()));
            }
            seen.push(name);
        }
        Ok(HeaderModifier { set, add, remove })
    }

    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            let joined = match headers.get(name) {
                Some(existing) => {
                    let mut bytes = existing.as_bytes().to_vec();
                    bytes.push(b',');
                    bytes.extend_from_slice(value.as_bytes());
                    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| value.clone())
                }
                None => value.clone(),
            };
            headers.insert(name.clone(), joined);
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> HeaderName {
        HeaderName::from_bytes(text.as_bytes()).unwrap()
    }

    fn value(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn set_add_remove_are_case_insensitive_and_add_appends() {
        let modifier = HeaderModifier::new(
            vec![(name("X-Header-Set"), value("set-overwrites"))],
            vec![(name("X-Header-Add"), value("added"))],
            vec![name("X-Header-Remove")],
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(name("x-header-set"), value("original"));
        headers.insert(name("x-header-add"), value("existing"));
        headers.insert(name("x-header-remove"), value("gone"));
        modifier.apply(&mut headers);
        assert_eq!(headers.get_all("x-header-set").iter().count(), 1);
        assert_eq!(headers["x-header-set"], "set-overwrites");
        assert_eq!(headers["x-header-add"], "existing,added");
        assert!(headers.get("x-header-remove").is_none());

        let mut empty = HeaderMap::new();
        modifier.apply(&mut empty);
        assert_eq!(
            empty["x-header-add"], "added",
            "add on an absent header sets it"
        );
    }

    #[test]
    fn one_action_per_name_and_sixteen_entries() {
        let duplicate = HeaderModifier::new(vec![(name("a"), value("1"))], vec![], vec![name("A")]);
        assert_eq!(
            duplicate,
            Err(HeaderModifierError::DuplicateName(name("a")))
        );
        let many = (0..17)
            .map(|i| (name(&format!("h{i}")), value("v")))
            .collect();
        assert_eq!(
            HeaderModifier::new(many, vec![], vec![]),
            Err(HeaderModifierError::TooManyEntries("set"))
        );
    }
}
