//! ReferenceGrant and BackendTLSPolicy.

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;

/// A ReferenceGrant, in the namespace of the objects it lets others refer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrant {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: ReferenceGrantSpec,
}

/// `ReferenceGrant.spec`: every `from` may refer to every `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    pub from: Vec<ReferenceGrantFrom>,
    /// To what.
    pub to: Vec<ReferenceGrantTo>,
}

/// A `from` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrantFrom {
    /// The referring object's group.
    #[serde(default)]
    pub group: String,
    /// The referring object's kind.
    pub kind: String,
    /// The referring object's namespace.
    pub namespace: String,
}

/// A `to` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrantTo {
    /// The target's group (`""` for Services and Secrets).
    #[serde(default)]
    pub group: String,
    /// The target's kind.
    pub kind: String,
    /// One object; none: every object of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A BackendTLSPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendTlsPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: BackendTlsPolicySpec,
}

/// `BackendTLSPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendTlsPolicySpec {
    /// The Services (and ports) it applies to.
    pub target_refs: Vec<PolicyTargetRef>,
    /// How to verify the backend.
    pub validation: BackendTlsValidation,
}

/// A policy target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyTargetRef {
    /// The target's group.
    pub group: String,
    /// The target's kind.
    pub kind: String,
    /// The target's name.
    pub name: String,
    /// A port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `validation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendTlsValidation {
    /// ConfigMaps with `ca.crt` (by name).
    pub ca_certificate_refs: Vec<PolicyTargetRef>,
    /// `System`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub well_known_ca_certificates: Option<String>,
    /// SNI and verified name.
    pub hostname: String,
    /// Names the backend's certificate must carry instead of `hostname` (one of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A `subjectAltNames` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type")]
    pub san_type: String,
    /// The DNS name (type `Hostname`; a leading `*.` wildcard allowed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The URI (type `URI`, e.g. a SPIFFE ID).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uri: String,
}
