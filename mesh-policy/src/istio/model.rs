//! Istio's `security.istio.io/v1` AuthorizationPolicy as written in Kubernetes YAML
//! (policy.md §4.1): unknown spec fields refused, so a typo is an error naming its field.

use serde::{Deserialize, Serialize};

use routing::model::ObjectMeta;

/// An AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationPolicy {
    /// Metadata (`istio.io/dry-run: "true"` makes it report-only).
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: AuthorizationPolicySpec,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// Workloads by labels (ztunnel and sidecars; ignored by waypoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<serde_yaml_ng::Value>,
    /// A single target (deprecated form of `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways (waypoints), GatewayClasses or Services the policy applies to.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// What a match does.
    #[serde(default)]
    pub action: PolicyAction,
    /// The external authorizer of a CUSTOM policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<serde_yaml_ng::Value>,
    /// OR over rules; absent or empty never matches, `{}` always does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// `targetRefs[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// `gateway.networking.k8s.io`, `""` for Services.
    #[serde(default)]
    pub group: String,
    /// `Gateway`, `GatewayClass`, `Service`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// Must be the policy's own when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyAction {
    /// Requests must match some ALLOW policy, when there is one.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// A matching request is refused.
    #[serde(rename = "DENY")]
    Deny,
    /// Matching requests are marked for audit; never changes the decision.
    #[serde(rename = "AUDIT")]
    Audit,
    /// An external authorizer decides.
    #[serde(rename = "CUSTOM")]
    Custom,
}

/// One rule: `from` (OR), `to` (OR) and `when` (AND), all three ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Sources.
    #[serde(default)]
    pub from: Vec<RuleFrom>,
    /// Operations.
    #[serde(default)]
    pub to: Vec<RuleTo>,
    /// Conditions.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// `from[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFrom {
    /// The source.
    #[serde(default)]
    pub source: Source,
}

/// `to[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTo {
    /// The operation.
    #[serde(default)]
    pub operation: Operation,
}

/// Who sends the request (fields ANDed, values ORed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct Source {
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
    pub request_principals: Vec<String>,
    pub not_request_principals: Vec<String>,
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
    pub service_accounts: Vec<String>,
    pub not_service_accounts: Vec<String>,
    pub ip_blocks: Vec<String>,
    pub not_ip_blocks: Vec<String>,
    pub remote_ip_blocks: Vec<String>,
    pub not_remote_ip_blocks: Vec<String>,
}

/// What is asked (fields ANDed, values ORed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct Operation {
    pub hosts: Vec<String>,
    pub not_hosts: Vec<String>,
    pub ports: Vec<String>,
    pub not_ports: Vec<String>,
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
}

/// `when[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// `request.headers[name]`, `source.ip`, `source.namespace`, `source.principal`,
    /// `remote.ip`, `request.auth.principal`, `destination.ip`, `destination.port`,
    /// `connection.sni` (unknown keys are ignored: the condition holds).
    pub key: String,
    /// Any must match.
    #[serde(default)]
    pub values: Vec<String>,
    /// None may match.
    #[serde(default)]
    pub not_values: Vec<String>,
}

impl AuthorizationPolicy {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Whether the `istio.io/dry-run` annotation makes it report-only.
    pub fn dry_run(&self) -> bool {
        self.metadata
            .annotations
            .get("istio.io/dry-run")
            .is_some_and(|v| v == "true")
    }

    /// Its targets (`targetRefs`, plus the deprecated `targetRef`).
    pub fn targets(&self) -> impl Iterator<Item = &PolicyTargetReference> {
        self.spec
            .target_refs
            .iter()
            .chain(self.spec.target_ref.as_ref())
    }
}
