//! Which AuthorizationPolicies and RequestAuthentications a waypoint applies (policy.md
//! §4.3): those whose `targetRefs` name its Gateway (all its traffic), the `istio-waypoint`
//! GatewayClass from the root namespace (every waypoint), or a Service in the policy's
//! namespace (traffic to it). `selector` policies are for ztunnels and sidecars, not
//! waypoints. The RequestAuthentications of a destination are compiled together.

use std::collections::HashMap;
use std::sync::Arc;

use routing::loader::{InvalidField, LoadError, parse_foreign};
use routing::model::{Config, ForeignObject, GATEWAY_GROUP, ObjectKey};

use super::custom::CustomAuthorizers;
use super::model::{AuthorizationPolicy, PolicyTargetReference};
use super::request_authn::{IstioJwt, RequestAuthentication};
use crate::security::SecurityRuntime;
use crate::security::jwt::JwksRegistry;

/// Istio's root namespace (mesh-wide policies).
pub const ROOT_NAMESPACE: &str = "istio-system";
/// The GatewayClass of Istio waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";

type PolicyList = Arc<[Arc<AuthorizationPolicy>]>;

/// The policies of one waypoint, ready per destination Service.
#[derive(Debug, Clone, Default)]
pub struct WaypointPolicies {
    all: PolicyList,
    by_service: HashMap<ObjectKey, PolicyList>,
    authentication: Option<Arc<IstioJwt>>,
    authentication_by_service: HashMap<ObjectKey, Option<Arc<IstioJwt>>>,
    custom: Arc<CustomAuthorizers>,
    count: usize,
}

/// Where a policy attaches on this waypoint.
enum Attachment {
    /// All its traffic (its Gateway, or the waypoint class from the root namespace).
    Waypoint,
    /// Traffic to one Service.
    Service(ObjectKey),
}

/// Whose policies are collected: a waypoint's (its Gateway, the waypoint class, Services) or
/// an ingress gateway's (its Gateway only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attaching {
    Waypoint,
    Gateway,
}

fn attachments<'a>(
    targets: impl Iterator<Item = &'a PolicyTargetReference>,
    namespace: &str,
    gateway: &ObjectKey,
    attaching: Attaching,
) -> Vec<Attachment> {
    let mut found = Vec::new();
    for target in targets {
        if target.namespace.as_ref().is_some_and(|ns| ns != namespace) {
            continue; // targets are in the policy's own namespace
        }
        let key = ObjectKey::new(namespace, target.name.clone());
        match (target.group.as_str(), target.kind.as_str()) {
            (GATEWAY_GROUP, "Gateway") if key == *gateway => found.push(Attachment::Waypoint),
            (GATEWAY_GROUP, "GatewayClass")
                if attaching == Attaching::Waypoint
                    && target.name == WAYPOINT_CLASS
                    && namespace == ROOT_NAMESPACE =>
            {
                found.push(Attachment::Waypoint);
            }
            ("" | "core", "Service") if attaching == Attaching::Waypoint => {
                found.push(Attachment::Service(key));
            }
            _ => {}
        }
    }
    found
}

fn objects<'a>(config: &'a Config, kind: &'a str) -> impl Iterator<Item = &'a ForeignObject> {
    config
        .foreign
        .iter()
        .filter(move |o| o.group() == "security.istio.io" && o.kind == kind)
}

impl WaypointPolicies {
    /// Reads every AuthorizationPolicy and RequestAuthentication of `config` and keeps those
    /// that target the waypoint `gateway` (or its class) or a Service; a malformed one is an
    /// error naming its field. No `jwksUri` can be used (see [`WaypointPolicies::build_with`]).
    pub fn build(config: &Config, gateway: &ObjectKey) -> Result<Self, LoadError> {
        WaypointPolicies::build_with(config, gateway, &SecurityRuntime::default())
    }

    /// As [`WaypointPolicies::build`], with what `runtime` lends: `jwksUri` handles (which
    /// it refreshes) and the client CUSTOM policies' authorizers are asked through.
    pub fn build_with(
        config: &Config,
        gateway: &ObjectKey,
        runtime: &SecurityRuntime,
    ) -> Result<Self, LoadError> {
        let registry = runtime.remote_jwks.as_deref();
        if let Some(registry) = registry {
            registry.begin();
        }
        let collected = WaypointPolicies::collect(config, gateway, runtime, Attaching::Waypoint);
        if let Some(registry) = registry {
            registry.finish();
        }
        collected
    }

    /// The policies of `gateway` (within the caller's remote-JWKS round), as a waypoint or an
    /// ingress gateway attaches them.
    pub(crate) fn collect(
        config: &Config,
        gateway: &ObjectKey,
        runtime: &SecurityRuntime,
        attaching: Attaching,
    ) -> Result<Self, LoadError> {
        let registry = runtime.remote_jwks.as_deref();
        let mut all = Vec::new();
        let mut by_service: HashMap<ObjectKey, Vec<Arc<AuthorizationPolicy>>> = HashMap::new();
        let mut count = 0;
        for object in objects(config, "AuthorizationPolicy") {
            let mut policy: AuthorizationPolicy = parse_foreign(object)?;
            // The loader's metadata has the namespace defaulted (`default` when absent).
            policy.metadata = object.metadata.clone();
            let policy = Arc::new(policy);
            let found = attachments(
                policy.targets(),
                &policy.metadata.namespace,
                gateway,
                attaching,
            );
            count += usize::from(!found.is_empty());
            for attachment in found {
                match attachment {
                    Attachment::Waypoint => all.push(Arc::clone(&policy)),
                    Attachment::Service(key) => {
                        by_service.entry(key).or_default().push(Arc::clone(&policy));
                    }
                }
            }
        }
        let custom = CustomAuthorizers::build(
            config,
            all.iter().chain(by_service.values().flatten()),
            runtime.authorizer.as_ref(),
        );
        let by_service = by_service
            .into_iter()
            .map(|(service, own)| {
                let list: PolicyList = all.iter().cloned().chain(own).collect();
                (service, list)
            })
            .collect();
        let (authentication, authentication_by_service, authentications) =
            authentications(config, gateway, registry, attaching)?;
        Ok(WaypointPolicies {
            all: all.into(),
            by_service,
            authentication,
            authentication_by_service,
            custom: Arc::new(custom),
            count: count + authentications,
        })
    }

    /// The external authorizers of the CUSTOM policies.
    pub fn custom_authorizers(&self) -> &Arc<CustomAuthorizers> {
        &self.custom
    }

    /// The RequestAuthentications for a request to `service` (the waypoint's and the
    /// Service's, compiled together), if any.
    pub fn authentication_for_service(&self, service: &ObjectKey) -> Option<&Arc<IstioJwt>> {
        self.authentication_by_service
            .get(service)
            .unwrap_or(&self.authentication)
            .as_ref()
    }

    /// The policies for a request to `service` (the waypoint's, then the Service's).
    pub fn for_service(&self, service: &ObjectKey) -> &PolicyList {
        self.by_service.get(service).unwrap_or(&self.all)
    }

    /// How many policies (AuthorizationPolicies and RequestAuthentications) attach to this
    /// waypoint or its Services.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none does.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

type Compiled = Option<Arc<IstioJwt>>;

/// The waypoint's RequestAuthentications compiled, those per Service (with the waypoint's),
/// and how many attach.
fn authentications(
    config: &Config,
    gateway: &ObjectKey,
    registry: Option<&JwksRegistry>,
    attaching: Attaching,
) -> Result<(Compiled, HashMap<ObjectKey, Compiled>, usize), LoadError> {
    let mut all: Vec<(RequestAuthentication, &ForeignObject)> = Vec::new();
    let mut by_service: HashMap<ObjectKey, Vec<usize>> = HashMap::new();
    let mut waypoint_wide = Vec::new();
    for object in objects(config, "RequestAuthentication") {
        let mut policy: RequestAuthentication = parse_foreign(object)?;
        policy.metadata = object.metadata.clone();
        let targets = policy
            .spec
            .target_refs
            .iter()
            .chain(&policy.spec.target_ref);
        let found = attachments(targets, &policy.metadata.namespace, gateway, attaching);
        if found.is_empty() {
            continue;
        }
        let index = all.len();
        for attachment in found {
            match attachment {
                Attachment::Waypoint => waypoint_wide.push(index),
                Attachment::Service(key) => by_service.entry(key).or_default().push(index),
            }
        }
        all.push((policy, object));
    }
    let compile = |indices: &mut dyn Iterator<Item = usize>| -> Result<Compiled, LoadError> {
        let chosen: Vec<usize> = indices.collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let policies: Vec<&RequestAuthentication> = chosen.iter().map(|&i| &all[i].0).collect();
        IstioJwt::compile(&policies, registry)
            .map(|jwt| Some(Arc::new(jwt)))
            .map_err(|message| {
                let object = all[chosen[0]].1;
                LoadError::InvalidField(Box::new(InvalidField {
                    source_name: object.source_name.clone(),
                    document: object.document,
                    kind: object.kind.clone(),
                    object: object.metadata.key().to_string(),
                    field: "spec.jwtRules".to_owned(),
                    message,
                }))
            })
    };
    let waypoint = compile(&mut waypoint_wide.iter().copied())?;
    let mut per_service = HashMap::new();
    for (service, own) in &by_service {
        let compiled = compile(&mut waypoint_wide.iter().chain(own).copied())?;
        per_service.insert(service.clone(), compiled);
    }
    Ok((waypoint, per_service, all.len()))
}
