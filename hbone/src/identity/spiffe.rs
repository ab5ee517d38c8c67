//! SPIFFE identities in Istio's form: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
//!
//! Parsing follows ztunnel exactly (hbone spec §1.3): the text must start with `spiffe://`, and the
//! rest, split on `/`, must give exactly five segments `<td>`, `ns`, `<ns>`, `sa`, `<sa>`. Empty
//! namespace or service-account segments are accepted (`spiffe://td/ns//sa/`), a trailing `/` or a
//! missing `sa` part is rejected, dots are allowed anywhere. An empty trust domain is accepted too,
//! as ztunnel does; a verifier compares trust domains, so such an identity only matches its like.

use std::fmt;
use std::str::FromStr;

/// The scheme prefix of every SPIFFE ID.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// A SPIFFE identity of an Istio workload.
///
/// Cheap to compare and hash (the canonical text is stored once); accessors return slices of it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: std::sync::Arc<str>,
    trust_domain_end: usize,
    namespace_start: usize,
    namespace_end: usize,
    service_account_start: usize,
}

/// Why a text is not an Istio SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The text does not start with `spiffe://`.
    #[error("SPIFFE ID must start with `spiffe://`")]
    MissingScheme,
    /// The path does not have exactly the five segments `<td>/ns/<ns>/sa/<sa>`.
    #[error("SPIFFE ID must have the form spiffe://<td>/ns/<ns>/sa/<sa> ({found} segments found)")]
    WrongSegmentCount {
        /// How many `/`-separated segments followed the scheme.
        found: usize,
    },
    /// The second segment is not `ns`.
    #[error("SPIFFE ID must have `ns` as its second segment")]
    MissingNamespaceMarker,
    /// The fourth segment is not `sa`.
    #[error("SPIFFE ID must have `sa` as its fourth segment")]
    MissingServiceAccountMarker,
}

impl SpiffeId {
    /// Builds an identity from its parts; fails if a part contains `/`.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        format!("{SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.uri[SPIFFE_SCHEME.len()..self.trust_domain_end]
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.uri[self.namespace_start..self.namespace_end]
    }

    /// The Kubernetes service account.
    pub fn service_account(&self) -> &str {
        &self.uri[self.service_account_start..]
    }

    /// The whole URI, `spiffe://td/ns/ns/sa/sa`.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The identity without its `spiffe://` scheme, the form AuthorizationPolicy principals use.
    pub fn principal(&self) -> &str {
        &self.uri[SPIFFE_SCHEME.len()..]
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix(SPIFFE_SCHEME)
            .ok_or(SpiffeIdError::MissingScheme)?;
        let mut segments = rest.split('/');
        let (Some(td), Some(ns_marker), Some(ns), Some(sa_marker), Some(_sa), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(SpiffeIdError::WrongSegmentCount {
                found: rest.split('/').count(),
            });
        };
        if ns_marker != "ns" {
            return Err(SpiffeIdError::MissingNamespaceMarker);
        }
        if sa_marker != "sa" {
            return Err(SpiffeIdError::MissingServiceAccountMarker);
        }
        let trust_domain_end = SPIFFE_SCHEME.len() + td.len();
        let namespace_start = trust_domain_end + "/ns/".len();
        let namespace_end = namespace_start + ns.len();
        Ok(SpiffeId {
            uri: text.into(),
            trust_domain_end,
            namespace_start,
            namespace_end,
            service_account_start: namespace_end + "/sa/".len(),
        })
    }
}

impl TryFrom<&[u8]> for SpiffeId {
    type Error = SpiffeIdError;

    /// Parses an identity from bytes, e.g. the value of the PROXY protocol TLV 0xD0.
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        std::str::from_utf8(bytes)
            .map_err(|_| SpiffeIdError::MissingScheme)?
            .parse()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per parsing rule of hbone spec §1.3 (checklist item 4).
    #[test]
    fn parsing_rules() {
        let accepted = [
            ("spiffe://td/ns/a/sa/b", "td", "a", "b"),
            (
                "spiffe://td.with.dots/ns/a.b/sa/c.d",
                "td.with.dots",
                "a.b",
                "c.d",
            ),
            ("spiffe://td/ns//sa/", "td", "", ""),
            ("spiffe:///ns/a/sa/b", "", "a", "b"),
            (
                "spiffe://cluster.local/ns/default/sa/client",
                "cluster.local",
                "default",
                "client",
            ),
        ];
        for (text, td, ns, sa) in accepted {
            let id: SpiffeId = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (id.trust_domain(), id.namespace(), id.service_account()),
                (td, ns, sa)
            );
            assert_eq!(id.to_string(), text, "display is the canonical text");
            assert_eq!(id.principal(), &text["spiffe://".len()..]);
        }
        let rejected = [
            ("td/ns/a/sa/b", SpiffeIdError::MissingScheme),
            ("SPIFFE://td/ns/a/sa/b", SpiffeIdError::MissingScheme),
            (
                "spiffe://td/ns/a/sa",
                SpiffeIdError::WrongSegmentCount { found: 4 },
            ),
            (
                "spiffe://td/ns/a/sa/b/",
                SpiffeIdError::WrongSegmentCount { found: 6 },
            ),
            (
                "spiffe://td/ns/a",
                SpiffeIdError::WrongSegmentCount { found: 3 },
            ),
            (
                "spiffe://td/nx/a/sa/b",
                SpiffeIdError::MissingNamespaceMarker,
            ),
            (
                "spiffe://td/ns/a/sx/b",
                SpiffeIdError::MissingServiceAccountMarker,
            ),
            ("spiffe://", SpiffeIdError::WrongSegmentCount { found: 1 }),
        ];
        for (text, error) in rejected {
            assert_eq!(text.parse::<SpiffeId>(), Err(error), "{text}");
        }
    }

    #[test]
    fn new_builds_the_canonical_form_and_rejects_slashes() {
        let id = SpiffeId::new("cluster.local", "ns1", "sa1").unwrap();
        assert_eq!(id.as_str(), "spiffe://cluster.local/ns/ns1/sa/sa1");
        assert!(SpiffeId::new("cluster.local", "a/b", "sa").is_err());
    }

    #[test]
    fn from_bytes_rejects_invalid_utf8() {
        assert!(SpiffeId::try_from(&b"spiffe://td/ns/\xff/sa/b"[..]).is_err());
        assert!(SpiffeId::try_from(&b"spiffe://td/ns/a/sa/b"[..]).is_ok());
    }
}
