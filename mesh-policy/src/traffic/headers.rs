//! ClientTrafficPolicy `headers` applied before routing (policy.md §1.7): the request id
//! (`requestID`: `Generate` — Envoy Gateway's default, a fresh UUIDv4 in `x-request-id`
//! whatever the client sent —, `PreserveOrGenerate`, `Preserve`, `Disable`; the deprecated
//! `preserveXRequestID: true` is `PreserveOrGenerate`) and `earlyRequestHeaders` edits (`set`,
//! `add`, `addIfAbsent`, `remove`, `removeOnMatch`) made before anything else reads the
//! request.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use super::client_tls::NameMatch;
use super::fault::Dice;
use super::header_format::{FormatFacts, HeaderValueTemplate};

/// `x-request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What happens to `x-request-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestIdPolicy {
    /// Always a new id (the client's is replaced).
    #[default]
    Generate,
    /// The client's id, else a new one.
    PreserveOrGenerate,
    /// The client's id if any; none is made.
    Preserve,
    /// Left as the client sent it, never generated.
    Disable,
}

/// Header edits with Envoy Gateway's `HTTPHeaderFilter` semantics: `set` overwrites, `add`
/// appends a value, `addIfAbsent` sets only a missing header, `remove` deletes, and
/// `removeOnMatch` deletes every header whose (lower-case) name matches. Values may hold
/// command operators ([`HeaderValueTemplate`]); one that comes out empty is not added.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderEdits {
    /// Overwritten.
    pub set: Vec<(HeaderName, HeaderValueTemplate)>,
    /// Appended.
    pub add: Vec<(HeaderName, HeaderValueTemplate)>,
    /// Set when absent.
    pub add_if_absent: Vec<(HeaderName, HeaderValueTemplate)>,
    /// Deleted.
    pub remove: Vec<HeaderName>,
    /// Deleted when their name matches one of these (literals are lower case).
    pub remove_matching: Vec<NameMatch>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.add_if_absent.is_empty()
            && self.remove.is_empty()
            && self.remove_matching.is_empty()
    }

    /// Applies the edits: remove (by name, then by match), then set, add, add if absent, with
    /// operators filled in from `facts`.
    pub fn apply(&self, headers: &mut HeaderMap, facts: &FormatFacts<'_>) {
        for name in &self.remove {
            headers.remove(name);
        }
        if !self.remove_matching.is_empty() {
            let matching: Vec<HeaderName> = headers
                .keys()
                .filter(|name| {
                    self.remove_matching
                        .iter()
                        .any(|pattern| pattern.matches(name.as_str()))
                })
                .cloned()
                .collect();
            for name in matching {
                headers.remove(name);
            }
        }
        for (name, value) in &self.set {
            if let Some(value) = value.render(facts) {
                headers.insert(name.clone(), value);
            }
        }
        for (name, value) in &self.add {
            if let Some(value) = value.render(facts) {
                headers.append(name.clone(), value);
            }
        }
        for (name, value) in &self.add_if_absent {
            if !headers.contains_key(name)
                && let Some(value) = value.render(facts)
            {
                headers.insert(name.clone(), value);
            }
        }
    }
}

/// Applies `policy` to the request's `x-request-id`, drawing new ids from `dice`.
pub fn apply_request_id(policy: RequestIdPolicy, headers: &mut HeaderMap, dice: &Dice) {
    let keep = match policy {
        RequestIdPolicy::Disable | RequestIdPolicy::Preserve => return,
        RequestIdPolicy::Generate => false,
        RequestIdPolicy::PreserveOrGenerate => headers.contains_key(&REQUEST_ID),
    };
    if !keep {
        headers.insert(REQUEST_ID, uuid_v4(dice.next(), dice.next()));
    }
}

/// A version-4 UUID from 128 random bits, in its hyphenated lower-case form.
pub fn uuid_v4(high: u64, low: u64) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = u128::from(high) << 64 | u128::from(low);
    // Version 4, RFC 9562 variant.
    bits = (bits & !(0xF << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let mut text = [0u8; 36];
    let mut nibble = 32;
    for (at, slot) in text.iter_mut().enumerate() {
        if matches!(at, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        nibble -= 1;
        *slot = HEX[((bits >> (nibble * 4)) & 0xF) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let dice = Dice::new(7);
        let a = uuid_v4(dice.next(), dice.next());
        let b = uuid_v4(dice.next(), dice.next());
        assert_ne!(a, b);
        let text = a.to_str().unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        assert_eq!(
            uuid_v4(0, 0).to_str().unwrap(),
            "00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(
            uuid_v4(u64::MAX, u64::MAX).to_str().unwrap(),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn request_ids_follow_the_policy() {
        let dice = Dice::new(1);
        let sent = || {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_static("client-id"));
            headers
        };
        let mut headers = sent();
        apply_request_id(RequestIdPolicy::Generate, &mut headers, &dice);
        assert_ne!(headers[REQUEST_ID], "client-id");
        for (policy, kept) in [
            (RequestIdPolicy::PreserveOrGenerate, true),
            (RequestIdPolicy::Preserve, true),
            (RequestIdPolicy::Disable, true),
        ] {
            let mut headers = sent();
            apply_request_id(policy, &mut headers, &dice);
            assert_eq!(headers[REQUEST_ID] == "client-id", kept, "{policy:?}");
        }
        let mut none = HeaderMap::new();
        apply_request_id(RequestIdPolicy::PreserveOrGenerate, &mut none, &dice);
        assert!(none.contains_key(REQUEST_ID));
        let mut none = HeaderMap::new();
        apply_request_id(RequestIdPolicy::Preserve, &mut none, &dice);
        assert!(!none.contains_key(REQUEST_ID));
    }

    #[test]
    fn edits_remove_set_add_and_fill_in() {
        let edits = HeaderEdits {
            set: vec![(
                HeaderName::from_static("x-env"),
                HeaderValue::from_static("prod").into(),
            )],
            add: vec![(
                HeaderName::from_static("x-tag"),
                HeaderValue::from_static("edge").into(),
            )],
            add_if_absent: vec![(
                HeaderName::from_static("x-tenant"),
                HeaderValue::from_static("default").into(),
            )],
            remove: vec![HeaderName::from_static("x-debug")],
            remove_matching: vec![
                NameMatch::Prefix("x-internal-".into()),
                NameMatch::Regex(regex::Regex::new("^x-trace-[0-9]+$").unwrap()),
            ],
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-env", HeaderValue::from_static("dev"));
        headers.insert("x-tag", HeaderValue::from_static("client"));
        headers.insert("x-tenant", HeaderValue::from_static("acme"));
        headers.insert("x-debug", HeaderValue::from_static("1"));
        headers.insert("x-internal-user", HeaderValue::from_static("root"));
        headers.append("x-internal-user", HeaderValue::from_static("admin"));
        headers.insert("x-internal-role", HeaderValue::from_static("ops"));
        headers.insert("x-trace-7", HeaderValue::from_static("a"));
        headers.insert("x-trace-x", HeaderValue::from_static("kept"));
        edits.apply(&mut headers, &FormatFacts::default());
        assert!(!headers.contains_key("x-internal-user"));
        assert!(!headers.contains_key("x-internal-role"));
        assert!(!headers.contains_key("x-trace-7"));
        assert_eq!(headers["x-trace-x"], "kept");
        assert_eq!(headers["x-env"], "prod");
        assert_eq!(headers.get_all("x-tag").iter().count(), 2);
        assert_eq!(headers["x-tenant"], "acme");
        assert!(!headers.contains_key("x-debug"));
        let mut empty = HeaderMap::new();
        edits.apply(&mut empty, &FormatFacts::default());
        assert_eq!(empty["x-tenant"], "default");
        assert!(HeaderEdits::default().is_empty() && !edits.is_empty());
    }
}
