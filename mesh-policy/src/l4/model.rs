//! ztunnel's authorization policy model, as its local configuration spells it (§5.1–§5.4):
//! every policy key required and unknown keys rejected; match objects lenient (unknown keys
//! ignored, every field defaulting to empty); string matches as YAML tags.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::engine::EngineRules;

/// One authorization policy.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    /// The policy's name.
    pub name: String,
    /// Its namespace (the namespace a `Namespace`-scoped policy applies to).
    pub namespace: String,
    /// Which workloads it applies to.
    pub scope: Scope,
    /// Allow or Deny.
    pub action: Action,
    /// OR over rules; a rule is an AND over clauses; a clause an OR over match objects
    /// (read with [`rules`](Self::rules); fixed once made, as the engine's translation is
    /// kept).
    rules: Vec<Vec<Vec<RbacMatch>>>,
    /// Evaluated and reported only, never enforced.
    pub dry_run: bool,
    /// The rules in the authorization engine's terms, translated on first use.
    #[serde(skip)]
    pub(crate) engine: OnceLock<EngineRules>,
}

impl Authorization {
    /// A policy (its rules translated for the engine on first use).
    pub fn new(
        name: String,
        namespace: String,
        scope: Scope,
        action: Action,
        rules: Vec<Vec<Vec<RbacMatch>>>,
        dry_run: bool,
    ) -> Self {
        Authorization {
            name,
            namespace,
            scope,
            action,
            rules,
            dry_run,
            engine: OnceLock::new(),
        }
    }

    /// OR over rules; a rule is an AND over clauses; a clause an OR over match objects.
    pub fn rules(&self) -> &[Vec<Vec<RbacMatch>>] {
        &self.rules
    }
}

/// Equal policies: the same fields (the engine's translation is a cache).
impl PartialEq for Authorization {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.namespace == other.namespace
            && self.scope == other.scope
            && self.action == other.action
            && self.rules == other.rules
            && self.dry_run == other.dry_run
    }
}

impl Eq for Authorization {}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The engine's translation is a cache: not shown.
        f.debug_struct("Authorization")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("scope", &self.scope)
            .field("action", &self.action)
            .field("rules", &self.rules)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Which workloads a policy applies to (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Every workload.
    Global,
    /// Workloads in the policy's namespace.
    Namespace,
    /// Only workloads that list it in `authorizationPolicies`.
    WorkloadSelector,
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Connections must match some enforced Allow policy, when there is one.
    Allow,
    /// A matching connection is rejected.
    Deny,
}

/// One match object: positive lists need any element to match, negative lists none; all
/// fields ANDed; an object with every field empty never matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RbacMatch {
    /// Peer identity without `spiffe://` (`cluster.local/ns/N/sa/S`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<StringMatch>,
    /// Negated `principals`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<StringMatch>,
    /// The peer identity's namespace (`""` without an identity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<StringMatch>,
    /// Negated `namespaces`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<StringMatch>,
    /// Exact namespace and service account of the peer identity.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountMatch>,
    /// Negated `serviceAccounts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<ServiceAccountMatch>,
    /// The connection's TCP peer address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<Cidr>,
    /// Negated `sourceIps`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_source_ips: Vec<Cidr>,
    /// The destination address the client connected to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_ips: Vec<Cidr>,
    /// Negated `destinationIps`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_destination_ips: Vec<Cidr>,
    /// The final upstream port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_ports: Vec<u16>,
    /// Negated `destinationPorts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_destination_ports: Vec<u16>,
}

impl RbacMatch {
    /// Whether every field is empty (such an object is skipped: it never matches).
    pub fn is_empty(&self) -> bool {
        *self == RbacMatch::default()
    }
}

/// A namespace and service account pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountMatch {
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
}

/// A string condition, written as a YAML tag: `!Exact v`, `!Prefix v`, `!Suffix v`,
/// `!Presence []`. No `*` globbing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StringMatch {
    /// Equal to the value.
    Exact(String),
    /// Starts with the value (`""` matches anything, even an empty value).
    Prefix(String),
    /// Ends with the value.
    Suffix(String),
    /// Not empty.
    Presence(Presence),
}

impl StringMatch {
    /// Whether `value` satisfies the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => value == expected,
            StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatch::Suffix(suffix) => value.ends_with(suffix.as_str()),
            StringMatch::Presence(_) => !value.is_empty(),
        }
    }
}

/// The argument of `!Presence`: nothing (`!Presence []`, or a bare `!Presence`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence;

impl Serialize for Presence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        serializer.serialize_seq(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for Presence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Nothing;
        impl<'de> serde::de::Visitor<'de> for Nothing {
            type Value = Presence;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an empty list")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Presence, E> {
                Ok(Presence)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Presence, E> {
                Ok(Presence)
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Presence, E> {
                if value.is_empty() {
                    Ok(Presence)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(value), &self))
                }
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Presence, A::Error> {
                match seq.next_element::<serde::de::IgnoredAny>()? {
                    None => Ok(Presence),
                    Some(_) => Err(serde::de::Error::invalid_length(1, &self)),
                }
            }
        }
        deserializer.deserialize_any(Nothing)
    }
}
