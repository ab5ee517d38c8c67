//! Which ClientTrafficPolicy and BackendTrafficPolicy cover what (policy.md §0.1).
//!
//! - A ClientTrafficPolicy targets a Gateway, or one listener by `sectionName`; the
//!   listener's own policy replaces the Gateway's (which is then `Overridden` there). As in
//!   Envoy Gateway, a listener-scoped policy on an HTTP listener sharing its port with another
//!   HTTP listener is refused: one connection manager serves them all.
//! - A BackendTrafficPolicy targets a Gateway (or listener), an HTTPRoute or GRPCRoute (or one
//!   rule by name), or a TCPRoute, TLSRoute or UDPRoute (whose relayed connections and
//!   sessions take its connection settings and balancer).
//!   The most specific replaces the rest as a whole — rule > route > listener > Gateway —
//!   unless the route's policy has a `mergeType`: then it is merged (a JSON merge of the
//!   specs) into its Gateway's policy. Every route rule gets its own rate-limit buckets
//!   and circuit breaker (rules marked `shared` share the policy's buckets).
//! - Between two policies on the same target the older (then the first by namespace/name)
//!   wins; the other is `Conflicted`.
//!
//! [`TrafficPolicies`] is the [`PolicyCompiler`] that puts the effective policies into the
//! listener slots ([`AttachedClientTraffic`]) and rule slots ([`AttachedBackendTraffic`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::compile::TrafficRuntime;

use routing::loader::parse_foreign;
use routing::model::{Config, ForeignObject, GATEWAY_GROUP, ObjectKey};
use routing::resolve::{Condition, ObjectStatus};
use routing::slot::{ListenerTarget, PolicyCompiler, PolicySlot, RuleTarget};
use serde_yaml_ng::Value;

use super::compile::{CompiledBackendTraffic, CompiledClientTraffic, RouteTraffic};
use super::model::{BackendTrafficPolicy, BackendTrafficPolicySpec, ClientTrafficPolicy};
use super::rate_limit::clock::Epoch;
use crate::policy_status::{PolicyRecord, TargetOutcome};
use crate::security::attach::{ENVOY_GATEWAY_GROUP, raw_targets, selected_targets};
use crate::security::model::PolicyTargetReference;

/// The ClientTrafficPolicy covering a listener.
#[derive(Debug, Clone)]
pub struct AttachedClientTraffic(pub Arc<CompiledClientTraffic>);

/// The BackendTrafficPolicy state of a route rule, per Gateway (and listener) it is served
/// on: the most specific scope first; `None` matches any.
#[derive(Debug, Clone)]
pub struct AttachedBackendTraffic(pub Arc<Vec<ScopedTraffic>>);

/// A rule's BackendTrafficPolicy state on some Gateways or listeners.
#[derive(Debug, Clone)]
pub struct ScopedTraffic {
    /// The Gateway (`None`: any, or a mesh route).
    pub gateway: Option<ObjectKey>,
    /// The listener (`None`: any of the Gateway's).
    pub listener: Option<String>,
    /// The state.
    pub traffic: RouteTraffic,
}

impl AttachedBackendTraffic {
    /// The state for a request served on `gateway`'s `listener` (`None` for mesh routes).
    pub fn for_listener(&self, listener: Option<(&ObjectKey, &str)>) -> Option<&RouteTraffic> {
        self.0
            .iter()
            .find(|scoped| match (&scoped.gateway, listener) {
                (None, _) => true,
                (Some(gateway), Some((on, name))) => {
                    gateway == on && scoped.listener.as_deref().is_none_or(|l| l == name)
                }
                (Some(_), None) => false,
            })
            .map(|scoped| &scoped.traffic)
    }
}

type Section = Option<String>;

#[derive(Debug, Clone)]
struct BackendEntry {
    compiled: Arc<CompiledBackendTraffic>,
    spec: Value,
    merge: bool,
}

/// The traffic policies of one configuration, by target.
#[derive(Debug, Default)]
pub struct TrafficPolicies {
    client: HashMap<(ObjectKey, Section), Arc<CompiledClientTraffic>>,
    gateways: HashMap<(ObjectKey, Section), BackendEntry>,
    routes: HashMap<(String, ObjectKey, Section), BackendEntry>,
    parents: HashMap<(String, ObjectKey), BTreeSet<ObjectKey>>,
    /// Route policies with a `mergeType` merged into each Gateway (listener) policy, by
    /// (route policy, Gateway policy).
    merged: HashMap<(ObjectKey, ObjectKey), Arc<CompiledBackendTraffic>>,
    problems: Vec<String>,
    statuses: Vec<ObjectStatus>,
    epoch: Epoch,
    /// The process's prober and shared counters.
    runtime: TrafficRuntime,
}

fn oldest_first<'a>(config: &'a Config, kind: &str) -> Vec<&'a ForeignObject> {
    let mut objects: Vec<&ForeignObject> = config
        .foreign
        .iter()
        .filter(|o| o.group() == ENVOY_GATEWAY_GROUP && o.kind == kind)
        .collect();
    objects.sort_by(|a, b| {
        let age = |o: &ForeignObject| o.metadata.creation_timestamp.clone().unwrap_or_default();
        age(a)
            .cmp(&age(b))
            .then_with(|| a.metadata.key().cmp(&b.metadata.key()))
    });
    objects
}

fn served_group(target: &PolicyTargetReference) -> bool {
    matches!(target.group.as_str(), "" | GATEWAY_GROUP)
}

impl TrafficPolicies {
    /// A compiler whose policies use `runtime`: active health checks probe with its prober,
    /// global rate limits count in its shared counters (pass it as
    /// [`ResolveOptions::policies`](routing::resolve::ResolveOptions); each configuration's
    /// policies are built from it).
    pub fn with_runtime(runtime: TrafficRuntime) -> Self {
        TrafficPolicies {
            runtime,
            ..TrafficPolicies::default()
        }
    }

    /// Reads, compiles and attaches every ClientTrafficPolicy and BackendTrafficPolicy of
    /// `config`. A policy that cannot be read is reported, as invalid, wherever its
    /// `targetRefs` can be made out, and attached nowhere.
    pub fn build(config: &Config) -> Self {
        TrafficPolicies::build_with(config, &TrafficRuntime::default())
    }

    /// The same, for a process with `runtime`.
    pub fn build_with(config: &Config, runtime: &TrafficRuntime) -> Self {
        let mut policies = TrafficPolicies {
            runtime: runtime.clone(),
            ..TrafficPolicies::default()
        };
        for route in &config.http_routes {
            policies.add_parents("HTTPRoute", &route.metadata, &route.spec.parent_refs);
        }
        for route in &config.grpc_routes {
            policies.add_parents("GRPCRoute", &route.metadata, &route.spec.parent_refs);
        }
        for (kind, routes) in [
            ("TCPRoute", &config.tcp_routes),
            ("TLSRoute", &config.tls_routes),
            ("UDPRoute", &config.udp_routes),
        ] {
            for route in routes {
                policies.add_parents(kind, &route.metadata, &route.spec.parent_refs);
            }
        }
        let mut records = Vec::new();
        for object in oldest_first(config, "ClientTrafficPolicy") {
            records.push(policies.read_client(object, config));
        }
        for object in oldest_first(config, "BackendTrafficPolicy") {
            records.push(policies.read_backend(object, config));
        }
        policies.merge_route_policies(config);
        for record in &mut records {
            record.extra = policies.overrides(record);
        }
        policies.statuses = records.iter().map(|r| r.status(config)).collect();
        policies
    }

    fn add_parents(
        &mut self,
        kind: &str,
        meta: &routing::model::ObjectMeta,
        refs: &[routing::model::ParentReference],
    ) {
        let gateways = refs
            .iter()
            .filter(|p| p.group == GATEWAY_GROUP && p.kind == "Gateway")
            .map(|p| {
                ObjectKey::new(
                    p.namespace
                        .clone()
                        .unwrap_or_else(|| meta.namespace.clone()),
                    p.name.clone(),
                )
            });
        self.parents
            .entry((kind.to_owned(), meta.key()))
            .or_default()
            .extend(gateways);
    }

    fn read_client(&mut self, object: &ForeignObject, config: &Config) -> PolicyRecord {
        let key = object.metadata.key();
        let (compiled, targets) = match parse_foreign::<ClientTrafficPolicy>(object) {
            Ok(policy) => {
                let mut targets = policy.spec.target_refs.clone();
                targets.extend(policy.spec.target_ref.clone());
                targets.extend(selected_targets(
                    &key.namespace,
                    &policy.spec.target_selectors,
                    config,
                ));
                (policy.spec.compile(&key, config), targets)
            }
            Err(error) => (Err(error.to_string()), raw_targets(object)),
        };
        let mut record = record(&key, "ClientTrafficPolicy", compiled.as_ref().err());
        let Ok(compiled) = compiled else {
            self.problems.push(format!(
                "ClientTrafficPolicy {key} is not applied: {}",
                record.invalid.clone().unwrap_or_default()
            ));
            record.targets = targets
                .into_iter()
                .map(|t| (t, TargetOutcome::Attached))
                .collect();
            return record;
        };
        let compiled = Arc::new(compiled);
        for target in targets {
            let outcome = if !served_group(&target) || target.kind != "Gateway" {
                TargetOutcome::NotServed
            } else {
                let gateway = ObjectKey::new(key.namespace.clone(), target.name.clone());
                match shared_http_port(config, &gateway, target.section_name.as_deref()) {
                    Some(reason) => TargetOutcome::Refused(reason),
                    None => match self.client.entry((gateway, target.section_name.clone())) {
                        std::collections::hash_map::Entry::Occupied(taken) => {
                            TargetOutcome::Conflicted(taken.get().policy.clone())
                        }
                        std::collections::hash_map::Entry::Vacant(free) => {
                            free.insert(Arc::clone(&compiled));
                            TargetOutcome::Attached
                        }
                    },
                }
            };
            self.note(&key, "ClientTrafficPolicy", &target, &outcome);
            record.targets.push((target, outcome));
        }
        record
    }

    fn read_backend(&mut self, object: &ForeignObject, config: &Config) -> PolicyRecord {
        let key = object.metadata.key();
        let spec_value = object.body.get("spec").cloned().unwrap_or(Value::Null);
        let (compiled, targets, merge) = match parse_foreign::<BackendTrafficPolicy>(object) {
            Ok(policy) => {
                let mut targets = policy.spec.target_refs.clone();
                targets.extend(policy.spec.target_ref.clone());
                targets.extend(selected_targets(
                    &key.namespace,
                    &policy.spec.target_selectors,
                    config,
                ));
                let merge = policy.spec.merge_type.is_some();
                let compiled = policy.spec.compile(&key, config).and_then(|compiled| {
                    if compiled.global.is_some() && self.runtime.counters.is_none() {
                        Err("spec.rateLimit.global: no rate-limit backend is configured (the gateway's --rate-limit-redis)".into())
                    } else {
                        Ok(compiled)
                    }
                });
                (compiled, targets, merge)
            }
            Err(error) => (Err(error.to_string()), raw_targets(object), false),
        };
        let mut record = record(&key, "BackendTrafficPolicy", compiled.as_ref().err());
        let Ok(compiled) = compiled else {
            self.problems.push(format!(
                "BackendTrafficPolicy {key} is not applied: {}",
                record.invalid.clone().unwrap_or_default()
            ));
            record.targets = targets
                .into_iter()
                .map(|t| (t, TargetOutcome::Attached))
                .collect();
            return record;
        };
        let entry = BackendEntry {
            compiled: Arc::new(compiled),
            spec: spec_value,
            merge,
        };
        for target in targets {
            let object = ObjectKey::new(key.namespace.clone(), target.name.clone());
            let section = target.section_name.clone();
            let outcome = match (served_group(&target), target.kind.as_str()) {
                (true, "Gateway") => {
                    if merge {
                        TargetOutcome::Refused(
                            "mergeType is only allowed on policies targeting routes".into(),
                        )
                    } else {
                        insert_first(&mut self.gateways, (object, section), &entry)
                    }
                }
                (true, "HTTPRoute" | "GRPCRoute" | "TCPRoute" | "TLSRoute" | "UDPRoute") => {
                    insert_first(
                        &mut self.routes,
                        (target.kind.clone(), object, section),
                        &entry,
                    )
                }
                _ => TargetOutcome::NotServed,
            };
            self.note(&key, "BackendTrafficPolicy", &target, &outcome);
            record.targets.push((target, outcome));
        }
        record
    }

    fn note(
        &mut self,
        key: &ObjectKey,
        kind: &str,
        target: &PolicyTargetReference,
        outcome: &TargetOutcome,
    ) {
        let what = format!(
            "{kind} {key}: {} {}{}",
            target.kind,
            target.name,
            target
                .section_name
                .as_deref()
                .map(|s| format!(" section {s}"))
                .unwrap_or_default()
        );
        match outcome {
            TargetOutcome::Attached => {}
            TargetOutcome::Conflicted(winner) => self.problems.push(format!(
                "{what} is already covered by {winner} (older); not attached"
            )),
            TargetOutcome::NotServed => self
                .problems
                .push(format!("{what}: this target kind is not served")),
            TargetOutcome::Refused(reason) => self.problems.push(format!("{what}: {reason}")),
        }
    }

    /// `Overridden` for a Gateway-wide policy replaced on some listeners or routes;
    /// `Merged` for a route policy merged into its Gateways' policies.
    fn overrides(&self, record: &PolicyRecord) -> Vec<Condition> {
        let mut by: BTreeSet<String> = BTreeSet::new();
        let mut merged: BTreeSet<String> = BTreeSet::new();
        for (target, outcome) in &record.targets {
            if *outcome != TargetOutcome::Attached || record.invalid.is_some() {
                continue;
            }
            let gateway = ObjectKey::new(record.key.namespace.clone(), target.name.clone());
            match (record.kind, target.kind.as_str(), &target.section_name) {
                ("ClientTrafficPolicy", "Gateway", None) => {
                    for ((on, section), policy) in &self.client {
                        if *on == gateway && section.is_some() && policy.policy != record.key {
                            by.insert(format!("{on}/{}", section.as_deref().unwrap_or_default()));
                        }
                    }
                }
                ("BackendTrafficPolicy", "Gateway", _) => {
                    for ((kind, route, _), entry) in &self.routes {
                        let parented = self
                            .parents
                            .get(&(kind.clone(), route.clone()))
                            .is_some_and(|p| p.contains(&gateway));
                        if parented && !entry.merge {
                            by.insert(format!("{kind} {route}"));
                        }
                    }
                }
                (
                    "BackendTrafficPolicy",
                    kind @ ("HTTPRoute" | "GRPCRoute" | "TCPRoute" | "TLSRoute" | "UDPRoute"),
                    _,
                ) => {
                    let route = ObjectKey::new(record.key.namespace.clone(), target.name.clone());
                    let merges = self
                        .routes
                        .get(&(kind.to_owned(), route.clone(), target.section_name.clone()))
                        .is_some_and(|e| e.merge && e.compiled.policy == record.key);
                    if merges {
                        for parent in self
                            .parents
                            .get(&(kind.to_owned(), route))
                            .into_iter()
                            .flatten()
                        {
                            for ((on, _), entry) in &self.gateways {
                                if on == parent {
                                    merged.insert(entry.compiled.policy.to_string());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let mut conditions = Vec::new();
        if !by.is_empty() {
            let what = if record.kind == "ClientTrafficPolicy" {
                "listeners"
            } else {
                "routes"
            };
            conditions.push(Condition {
                message: format!(
                    "This policy is being overridden by other {}s for these {what}: [{}]",
                    record.kind,
                    by.into_iter().collect::<Vec<_>>().join(", ")
                ),
                ..Condition::ok("Overridden", "Overridden")
            });
        }
        if !merged.is_empty() {
            conditions.push(Condition {
                message: format!(
                    "Merged with policy [{}]",
                    merged.into_iter().collect::<Vec<_>>().join(", ")
                ),
                ..Condition::ok("Merged", "Merged")
            });
        }
        conditions
    }

    /// What could not be applied or attached, one line each.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The ClientTrafficPolicy covering a Gateway's listener: its own, else the Gateway's.
    pub fn client_for_listener(
        &self,
        gateway: &ObjectKey,
        listener: &str,
    ) -> Option<&Arc<CompiledClientTraffic>> {
        self.client
            .get(&(gateway.clone(), Some(listener.to_owned())))
            .or_else(|| self.client.get(&(gateway.clone(), None)))
    }

    fn route_entry(&self, rule: &RuleTarget<'_>) -> Option<&BackendEntry> {
        let by_rule = rule.name.and_then(|name| {
            self.routes.get(&(
                rule.kind.to_owned(),
                rule.route.clone(),
                Some(name.to_owned()),
            ))
        });
        by_rule.or_else(|| {
            self.routes
                .get(&(rule.kind.to_owned(), rule.route.clone(), None))
        })
    }

    /// Merges every route policy with a `mergeType` into the policies of its route's
    /// Gateways (a merge that does not compile is reported; the route policy then applies
    /// alone on that Gateway).
    fn merge_route_policies(&mut self, config: &Config) {
        for ((kind, route, _), own) in &self.routes {
            if !own.merge {
                continue;
            }
            let Some(parents) = self.parents.get(&(kind.clone(), route.clone())) else {
                continue;
            };
            for ((gateway, _), parent) in &self.gateways {
                let pair = (own.compiled.policy.clone(), parent.compiled.policy.clone());
                if !parents.contains(gateway) || self.merged.contains_key(&pair) {
                    continue;
                }
                match merged(parent, own, config) {
                    Ok(compiled) => {
                        self.merged.insert(pair, Arc::new(compiled));
                    }
                    Err(reason) => self.problems.push(format!(
                        "BackendTrafficPolicy {} cannot be merged into {}: {reason}; it applies alone",
                        pair.0, pair.1
                    )),
                }
            }
        }
    }

    /// The rule's scoped policies: the route's own (merged into each parent Gateway's when it
    /// asks for it), else each parent Gateway's (listener-scoped first).
    fn scoped(
        &self,
        rule: &RuleTarget<'_>,
    ) -> Vec<(Option<ObjectKey>, Section, Arc<CompiledBackendTraffic>)> {
        let own = self.route_entry(rule);
        let parents = if rule.mesh {
            None
        } else {
            self.parents
                .get(&(rule.kind.to_owned(), rule.route.clone()))
        };
        let mut gateway_entries: Vec<(&(ObjectKey, Section), &BackendEntry)> = self
            .gateways
            .iter()
            .filter(|((gateway, _), _)| parents.is_some_and(|p| p.contains(gateway)))
            .collect();
        gateway_entries.sort_by(|((ga, sa), _), ((gb, sb), _)| {
            (sa.is_none(), ga, sa).cmp(&(sb.is_none(), gb, sb))
        });
        let mut scoped = Vec::new();
        match own {
            Some(own) if own.merge => {
                for ((gateway, listener), parent) in gateway_entries {
                    let pair = (own.compiled.policy.clone(), parent.compiled.policy.clone());
                    if let Some(compiled) = self.merged.get(&pair) {
                        scoped.push((
                            Some(gateway.clone()),
                            listener.clone(),
                            Arc::clone(compiled),
                        ));
                    }
                }
                scoped.push((None, None, Arc::clone(&own.compiled)));
            }
            Some(own) => scoped.push((None, None, Arc::clone(&own.compiled))),
            None => {
                for ((gateway, listener), parent) in gateway_entries {
                    scoped.push((
                        Some(gateway.clone()),
                        listener.clone(),
                        Arc::clone(&parent.compiled),
                    ));
                }
            }
        }
        scoped
    }
}

fn record(key: &ObjectKey, kind: &'static str, invalid: Option<&String>) -> PolicyRecord {
    PolicyRecord {
        key: key.clone(),
        invalid: invalid.cloned(),
        targets: Vec::new(),
        kind,
        extra: Vec::new(),
    }
}

fn insert_first<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, BackendEntry>,
    key: K,
    entry: &BackendEntry,
) -> TargetOutcome {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(taken) => {
            TargetOutcome::Conflicted(taken.get().compiled.policy.clone())
        }
        std::collections::hash_map::Entry::Vacant(free) => {
            free.insert(entry.clone());
            TargetOutcome::Attached
        }
    }
}

/// Why a listener-scoped ClientTrafficPolicy cannot apply: its HTTP listener shares the port
/// with another HTTP listener (one connection manager serves both).
fn shared_http_port(config: &Config, gateway: &ObjectKey, section: Option<&str>) -> Option<String> {
    let section = section?;
    let found = config
        .gateways
        .iter()
        .find(|g| g.metadata.key() == *gateway)?;
    let listener = found.spec.listeners.iter().find(|l| l.name == section)?;
    if listener.protocol != "HTTP" {
        return None;
    }
    let others: Vec<&str> = found
        .spec
        .listeners
        .iter()
        .filter(|l| l.name != section && l.port == listener.port && l.protocol == "HTTP")
        .map(|l| l.name.as_str())
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "ClientTrafficPolicy is being applied to multiple http (non https) listeners ({section}, {}) on the same port, which is not allowed",
            others.join(", ")
        )
    })
}

/// RFC 7386 JSON merge patch: `patch` over `base`.
fn merge_patch(base: &mut Value, patch: &Value) {
    let Value::Mapping(patch) = patch else {
        *base = patch.clone();
        return;
    };
    if !matches!(base, Value::Mapping(_)) {
        *base = Value::Mapping(serde_yaml_ng::Mapping::new());
    }
    if let Value::Mapping(base) = base {
        for (key, value) in patch {
            if value.is_null() {
                base.remove(key);
            } else {
                merge_patch(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The route policy `own` merged into the Gateway policy `parent` (named as `own`).
fn merged(
    parent: &BackendEntry,
    own: &BackendEntry,
    config: &Config,
) -> Result<CompiledBackendTraffic, String> {
    let mut spec = parent.spec.clone();
    merge_patch(&mut spec, &own.spec);
    if let Value::Mapping(map) = &mut spec {
        for field in ["targetRef", "targetRefs", "targetSelectors", "mergeType"] {
            map.remove(field);
        }
    }
    let spec: BackendTrafficPolicySpec =
        serde_yaml_ng::from_value(spec).map_err(|e| e.to_string())?;
    spec.compile(&own.compiled.policy, config)
}

impl PolicyCompiler for TrafficPolicies {
    fn for_config(&self, config: &Config) -> Option<Arc<dyn PolicyCompiler>> {
        Some(Arc::new(TrafficPolicies::build_with(config, &self.runtime)))
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    fn statuses(&self) -> Vec<ObjectStatus> {
        self.statuses.clone()
    }

    fn listener(&self, listener: &ListenerTarget<'_>, slot: &mut PolicySlot) {
        if let Some(policy) = self.client_for_listener(listener.gateway, listener.listener) {
            slot.insert(AttachedClientTraffic(Arc::clone(policy)));
        }
    }

    /// Only when every policy the rule has (on each of its Gateways) asks for it: the rule's
    /// backends are compiled once for all of them.
    fn routes_to_service_address(&self, rule: &RuleTarget<'_>) -> bool {
        let scoped = self.scoped(rule);
        !scoped.is_empty()
            && scoped
                .iter()
                .all(|(_, _, compiled)| compiled.service_routing)
    }

    /// The family of the first of the rule's policies (one per Gateway) that sets `dns`: the
    /// rule's backends are compiled once for all of them.
    fn lookup_family(&self, rule: &RuleTarget<'_>) -> Option<routing::compiled::LookupFamily> {
        self.scoped(rule)
            .iter()
            .find_map(|(_, _, compiled)| compiled.dns.map(|dns| dns.family))
    }

    fn rule(&self, rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
        let scoped: Vec<ScopedTraffic> = self
            .scoped(rule)
            .into_iter()
            .map(|(gateway, listener, compiled)| {
                let mut traffic = compiled.for_route(
                    &self.epoch,
                    &self.runtime,
                    &format!("{}/{}/{}", rule.kind, rule.route, rule.index),
                    rule.backends.ready().map(|backend| &**backend),
                );
                traffic.stat_name = compiled.route_stat_name.as_ref().map(|pattern| {
                    pattern
                        .fill(rule.kind, &rule.route.namespace, &rule.route.name)
                        .into()
                });
                ScopedTraffic {
                    gateway,
                    listener,
                    traffic,
                }
            })
            .collect();
        if !scoped.is_empty() {
            slot.insert(AttachedBackendTraffic(Arc::new(scoped)));
        }
    }
}
