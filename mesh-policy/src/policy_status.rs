//! Envoy Gateway policy status (SecurityPolicy, ClientTrafficPolicy, BackendTrafficPolicy) as
//! Envoy Gateway writes it: one entry per ancestor — the Gateway (or Gateway listener) a
//! target takes effect on; for a route, each Gateway among its `parentRefs` — with an
//! `Accepted` condition: `True`/`Accepted`, or `False` with `Invalid` (the policy cannot be
//! enforced, or its target is not served here), `Conflicted` (an older policy holds the same
//! target) or `TargetNotFound`; and, where they apply, `Overridden` (a more specific policy
//! replaces this one on some targets) and `Merged` (a route policy merged into its Gateway's).

use routing::model::{Config, GATEWAY_GROUP, ObjectKey};
use routing::resolve::{Condition, ObjectStatus, ParentStatus};

use crate::security::model::PolicyTargetReference;

/// What became of one target of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetOutcome {
    /// Attached.
    Attached,
    /// An older policy holds it.
    Conflicted(ObjectKey),
    /// A group or kind not served here.
    NotServed,
    /// The target cannot take this policy (the reason says why).
    Refused(String),
}

/// A policy as compiled and attached, for its status.
#[derive(Debug, Clone)]
pub(crate) struct PolicyRecord {
    pub(crate) key: ObjectKey,
    pub(crate) invalid: Option<String>,
    pub(crate) targets: Vec<(PolicyTargetReference, TargetOutcome)>,
    /// `SecurityPolicy`, `ClientTrafficPolicy` or `BackendTrafficPolicy`.
    pub(crate) kind: &'static str,
    /// Conditions added to every ancestor whose target was attached (`Overridden`,
    /// `Merged`).
    pub(crate) extra: Vec<Condition>,
}

impl PolicyRecord {
    /// The policy's status against `config`.
    pub(crate) fn status(&self, config: &Config) -> ObjectStatus {
        let mut status = ObjectStatus::new(self.kind, self.key.clone());
        for (target, outcome) in &self.targets {
            let condition = match (&self.invalid, outcome) {
                (_, TargetOutcome::Refused(reason)) => {
                    Condition::failed("Accepted", "Invalid", reason.clone())
                }
                (_, TargetOutcome::NotServed) => Condition::failed(
                    "Accepted",
                    "Invalid",
                    format!("target {} {} is not served", target.group, target.kind),
                ),
                (Some(reason), _) => Condition::failed("Accepted", "Invalid", reason.clone()),
                (None, TargetOutcome::Conflicted(winner)) => Condition::failed(
                    "Accepted",
                    "Conflicted",
                    format!(
                        "{} {} is already covered by {} {winner}",
                        target.kind, target.name, self.kind
                    ),
                ),
                (None, TargetOutcome::Attached) => Condition {
                    message: "Policy has been accepted.".to_owned(),
                    ..Condition::ok("Accepted", "Accepted")
                },
            };
            let ancestors = ancestors(target, &self.key.namespace, config);
            if ancestors.is_empty() {
                status.ancestors.push(ParentStatus {
                    parent_ref: format!("{}/{}", self.key.namespace, target.name),
                    conditions: vec![Condition::failed(
                        "Accepted",
                        "TargetNotFound",
                        format!(
                            "{} {}/{} not found",
                            target.kind, self.key.namespace, target.name
                        ),
                    )],
                });
            }
            let attached = self.invalid.is_none() && *outcome == TargetOutcome::Attached;
            for ancestor in ancestors {
                let mut conditions = vec![condition.clone()];
                if attached {
                    conditions.extend(self.extra.iter().cloned());
                }
                status.ancestors.push(ParentStatus {
                    parent_ref: ancestor,
                    conditions,
                });
            }
        }
        status
    }
}

/// The Gateways (`namespace/name[/section]`) a target takes effect on.
fn ancestors(target: &PolicyTargetReference, namespace: &str, config: &Config) -> Vec<String> {
    let with_section = |gateway: String, section: Option<&String>| match section {
        Some(section) => format!("{gateway}/{section}"),
        None => gateway,
    };
    let parents = |refs: &[routing::model::ParentReference]| -> Vec<String> {
        refs.iter()
            .filter(|p| p.group == GATEWAY_GROUP && p.kind == "Gateway")
            .map(|p| {
                let ns = p.namespace.as_deref().unwrap_or(namespace);
                with_section(format!("{ns}/{}", p.name), p.section_name.as_ref())
            })
            .collect()
    };
    let named =
        |meta: &routing::model::ObjectMeta| meta.namespace == namespace && meta.name == target.name;
    match target.kind.as_str() {
        "Gateway" if config.gateways.iter().any(|g| named(&g.metadata)) => vec![with_section(
            format!("{namespace}/{}", target.name),
            target.section_name.as_ref(),
        )],
        "HTTPRoute" => config
            .http_routes
            .iter()
            .find(|r| named(&r.metadata))
            .map(|r| parents(&r.spec.parent_refs))
            .unwrap_or_default(),
        "GRPCRoute" => config
            .grpc_routes
            .iter()
            .find(|r| named(&r.metadata))
            .map(|r| parents(&r.spec.parent_refs))
            .unwrap_or_default(),
        "TCPRoute" | "TLSRoute" | "UDPRoute" => match target.kind.as_str() {
            "TCPRoute" => &config.tcp_routes,
            "TLSRoute" => &config.tls_routes,
            _ => &config.udp_routes,
        }
        .iter()
        .find(|r| named(&r.metadata))
        .map(|r| parents(&r.spec.parent_refs))
        .unwrap_or_default(),
        _ => Vec::new(),
    }
}
