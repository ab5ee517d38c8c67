//! Which SecurityPolicy covers what (policy.md §0.1): policies target Gateways (or one
//! listener by `sectionName`) and HTTPRoutes/GRPCRoutes (or one rule by name) in their own
//! namespace. The most specific wins as a whole — rule > route > listener > Gateway — and
//! between two policies on the same target the older (then the first by namespace/name) wins,
//! as Envoy Gateway resolves conflicts. [`SecurityPolicies`] is the
//! [`PolicyCompiler`] that puts the winner into the slots:
//! route-level policies into rule slots, Gateway-level ones into listener slots; the request
//! path reads the rule's first, then the listener's.

use std::collections::HashMap;
use std::sync::Arc;

use routing::loader::parse_foreign;
use routing::model::{Config, ForeignObject, ObjectKey};
use routing::slot::{ListenerTarget, PolicyCompiler, PolicySlot, RuleTarget};

use routing::resolve::ObjectStatus;

use super::compile::{CompiledSecurityPolicy, SecurityRuntime};
use super::model::{PolicyTargetReference, SecurityPolicy};
use crate::policy_status::{PolicyRecord, TargetOutcome};

/// Envoy Gateway's API group.
pub const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";

/// The SecurityPolicy attached to a listener or rule slot.
#[derive(Debug, Clone)]
pub struct AttachedSecurityPolicy(pub Arc<CompiledSecurityPolicy>);

type Section = Option<String>;

/// The SecurityPolicies of one configuration, by target.
#[derive(Debug, Default)]
pub struct SecurityPolicies {
    gateways: HashMap<(ObjectKey, Section), Arc<CompiledSecurityPolicy>>,
    routes: HashMap<(String, ObjectKey, Section), Arc<CompiledSecurityPolicy>>,
    problems: Vec<String>,
    runtime: SecurityRuntime,
    statuses: Vec<ObjectStatus>,
    istio: HashMap<ObjectKey, crate::istio::IstioGatewayPolicies>,
}

impl SecurityPolicies {
    /// A compiler whose configurations may use what `runtime` lends: `remoteJWKS` handles
    /// (refreshed by the runtime) and an authorizer client for `extAuth` (without them, such
    /// policies fail closed).
    pub fn with_runtime(runtime: SecurityRuntime) -> Self {
        SecurityPolicies {
            runtime,
            ..SecurityPolicies::default()
        }
    }

    /// Reads and compiles every SecurityPolicy of `config` (nothing lent by a runtime).
    pub fn build(config: &Config) -> Self {
        SecurityPolicies::build_with(config, &SecurityRuntime::default())
    }

    /// Reads and compiles every SecurityPolicy of `config` with what `runtime` lends (remote
    /// JWKS URLs no longer named are forgotten). A policy that cannot be read is still
    /// attached, as invalid, wherever its `targetRefs` can be made out.
    pub fn build_with(config: &Config, runtime: &SecurityRuntime) -> Self {
        let mut objects: Vec<&ForeignObject> = config
            .foreign
            .iter()
            .filter(|o| o.group() == ENVOY_GATEWAY_GROUP && o.kind == "SecurityPolicy")
            .collect();
        objects.sort_by(|a, b| {
            let age = |o: &ForeignObject| o.metadata.creation_timestamp.clone().unwrap_or_default();
            age(a)
                .cmp(&age(b))
                .then_with(|| a.metadata.key().cmp(&b.metadata.key()))
        });
        let mut policies = SecurityPolicies {
            runtime: runtime.clone(),
            ..SecurityPolicies::default()
        };
        let registry = runtime.remote_jwks.as_ref();
        if let Some(registry) = registry {
            registry.begin();
        }
        for object in objects {
            let key = object.metadata.key();
            let (compiled, targets) = match parse_foreign::<SecurityPolicy>(object) {
                Ok(mut policy) => {
                    // The loader's metadata has the namespace defaulted.
                    policy.metadata = object.metadata.clone();
                    let compiled = CompiledSecurityPolicy::compile(&policy, config, runtime);
                    let mut targets = policy.spec.target_refs.clone();
                    targets.extend(policy.spec.target_ref.clone());
                    targets.extend(selected_targets(
                        &policy.metadata.namespace,
                        &policy.spec.target_selectors,
                        config,
                    ));
                    (compiled, targets)
                }
                Err(error) => (
                    CompiledSecurityPolicy::invalid(key.clone(), error.to_string()),
                    raw_targets(object),
                ),
            };
            if let Err(reason) = &compiled.checks {
                policies.problems.push(format!(
                    "SecurityPolicy {key} cannot be enforced (its targets answer 500): {reason}"
                ));
            }
            let compiled = Arc::new(compiled);
            let mut record = PolicyRecord {
                key: key.clone(),
                invalid: compiled.checks.as_ref().err().cloned(),
                targets: Vec::new(),
                kind: "SecurityPolicy",
                extra: Vec::new(),
            };
            for target in targets {
                let outcome = policies.attach(&key, &target, &compiled);
                record.targets.push((target, outcome));
            }
            policies.statuses.push(record.status(config));
        }
        // Istio's AuthorizationPolicies and RequestAuthentications targeting a Gateway, in
        // the same remote-JWKS round.
        for gateway in &config.gateways {
            let key = gateway.metadata.key();
            let attached = match crate::istio::IstioGatewayPolicies::build(config, &key, runtime) {
                Ok(found) => found,
                Err(reason) => {
                    policies.problems.push(format!(
                        "the Istio policies of Gateway {key} cannot be read (its listeners refuse every request): {reason}"
                    ));
                    crate::istio::IstioGatewayPolicies::deny_all(&key)
                }
            };
            if let Some(attached) = attached {
                policies.istio.insert(key, attached);
            }
        }
        if let Some(registry) = registry {
            registry.finish();
        }
        policies
    }

    /// What this compiler lends each configuration's policies.
    pub fn runtime(&self) -> &SecurityRuntime {
        &self.runtime
    }

    fn attach(
        &mut self,
        policy: &ObjectKey,
        target: &PolicyTargetReference,
        compiled: &Arc<CompiledSecurityPolicy>,
    ) -> TargetOutcome {
        if !matches!(target.group.as_str(), "" | "gateway.networking.k8s.io") {
            self.problems.push(format!(
                "SecurityPolicy {policy}: target group {:?} is not served",
                target.group
            ));
            return TargetOutcome::NotServed;
        }
        let object = ObjectKey::new(policy.namespace.clone(), target.name.clone());
        let section = target.section_name.clone();
        let winner = match target.kind.as_str() {
            "Gateway" => insert_first(&mut self.gateways, (object, section), compiled),
            "HTTPRoute" | "GRPCRoute" => insert_first(
                &mut self.routes,
                (target.kind.clone(), object, section),
                compiled,
            ),
            other => {
                self.problems.push(format!(
                    "SecurityPolicy {policy}: target kind {other} is not served"
                ));
                return TargetOutcome::NotServed;
            }
        };
        match winner {
            Some(winner) => {
                self.problems.push(conflict(policy, &winner, target));
                TargetOutcome::Conflicted(winner)
            }
            None => TargetOutcome::Attached,
        }
    }

    /// What could not be enforced or attached, one line each (for logs and status).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The policy covering a Gateway's listener: its own, else the Gateway's.
    pub fn for_listener(
        &self,
        gateway: &ObjectKey,
        listener: &str,
    ) -> Option<&Arc<CompiledSecurityPolicy>> {
        self.gateways
            .get(&(gateway.clone(), Some(listener.to_owned())))
            .or_else(|| self.gateways.get(&(gateway.clone(), None)))
    }

    /// The policy covering a route rule: the rule's own (by name), else the route's.
    pub fn for_rule(
        &self,
        kind: &str,
        route: &ObjectKey,
        rule: Option<&str>,
    ) -> Option<&Arc<CompiledSecurityPolicy>> {
        let by_rule = rule.and_then(|name| {
            self.routes
                .get(&(kind.to_owned(), route.clone(), Some(name.to_owned())))
        });
        by_rule.or_else(|| self.routes.get(&(kind.to_owned(), route.clone(), None)))
    }
}

/// Inserts `value` unless `key` is taken; the policy holding it when it is.
fn insert_first<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Arc<CompiledSecurityPolicy>>,
    key: K,
    value: &Arc<CompiledSecurityPolicy>,
) -> Option<ObjectKey> {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(taken) => Some(taken.get().policy.clone()),
        std::collections::hash_map::Entry::Vacant(free) => {
            free.insert(Arc::clone(value));
            None
        }
    }
}

fn conflict(policy: &ObjectKey, winner: &ObjectKey, target: &PolicyTargetReference) -> String {
    format!(
        "SecurityPolicy {policy}: {} {}{} is already covered by {winner} (older); not attached",
        target.kind,
        target.name,
        target
            .section_name
            .as_deref()
            .map(|s| format!(" section {s}"))
            .unwrap_or_default()
    )
}

/// The targets `spec.targetSelectors` select: Gateways, HTTPRoutes and GRPCRoutes of the
/// policy's namespace whose labels match (in name order, after the explicit `targetRefs`).
pub(crate) fn selected_targets(
    namespace: &str,
    selectors: &[super::model::TargetSelector],
    config: &Config,
) -> Vec<PolicyTargetReference> {
    let mut found = Vec::new();
    for selector in selectors {
        let group = selector
            .group
            .as_deref()
            .unwrap_or(routing::model::GATEWAY_GROUP);
        let labels = routing::model::LabelSelector {
            match_labels: selector.match_labels.clone(),
            match_expressions: selector.match_expressions.clone(),
        };
        let metas: Vec<&routing::model::ObjectMeta> = match selector.kind.as_str() {
            "Gateway" => config.gateways.iter().map(|g| &g.metadata).collect(),
            "HTTPRoute" => config.http_routes.iter().map(|r| &r.metadata).collect(),
            "GRPCRoute" => config.grpc_routes.iter().map(|r| &r.metadata).collect(),
            _ => Vec::new(),
        };
        let mut names: Vec<&str> = metas
            .into_iter()
            .filter(|m| m.namespace == namespace && labels.matches(&m.labels))
            .map(|m| m.name.as_str())
            .collect();
        names.sort_unstable();
        found.extend(names.into_iter().map(|name| PolicyTargetReference {
            group: group.to_owned(),
            kind: selector.kind.clone(),
            name: name.to_owned(),
            section_name: None,
        }));
    }
    found
}

/// `spec.targetRefs` / `spec.targetRef` read leniently from a policy that failed to parse.
pub(crate) fn raw_targets(object: &ForeignObject) -> Vec<PolicyTargetReference> {
    let spec = object.body.get("spec");
    let text = |value: &serde_yaml_ng::Value, field: &str| {
        value.get(field).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let read = |value: &serde_yaml_ng::Value| {
        Some(PolicyTargetReference {
            group: text(value, "group").unwrap_or_default(),
            kind: text(value, "kind")?,
            name: text(value, "name")?,
            section_name: text(value, "sectionName"),
        })
    };
    let many = spec
        .and_then(|s| s.get("targetRefs"))
        .and_then(|v| v.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(read);
    let one = spec.and_then(|s| s.get("targetRef")).and_then(read);
    many.chain(one).collect()
}

impl PolicyCompiler for SecurityPolicies {
    fn for_config(&self, config: &Config) -> Option<Arc<dyn PolicyCompiler>> {
        Some(Arc::new(SecurityPolicies::build_with(
            config,
            &self.runtime,
        )))
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    fn statuses(&self) -> Vec<ObjectStatus> {
        self.statuses.clone()
    }

    fn listener(&self, listener: &ListenerTarget<'_>, slot: &mut PolicySlot) {
        if let Some(policy) = self.for_listener(listener.gateway, listener.listener) {
            slot.insert(AttachedSecurityPolicy(Arc::clone(policy)));
        }
        if let Some(istio) = self.istio.get(listener.gateway) {
            slot.insert(istio.clone());
        }
    }

    fn rule(&self, rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
        if rule.mesh {
            return; // SecurityPolicy targets Gateway routing, not GAMMA parents
        }
        if let Some(policy) = self.for_rule(rule.kind, rule.route, rule.name) {
            slot.insert(AttachedSecurityPolicy(Arc::clone(policy)));
        }
    }
}
