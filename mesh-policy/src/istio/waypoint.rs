//! Which AuthorizationPolicies a waypoint applies (policy.md §4.3): those whose `targetRefs`
//! name its Gateway (all its traffic), the `istio-waypoint` GatewayClass from the root
//! namespace (every waypoint), or a Service in the policy's namespace (traffic to it).
//! `selector` policies are for ztunnels and sidecars, not waypoints.

use std::collections::HashMap;
use std::sync::Arc;

use routing::loader::{LoadError, parse_foreign};
use routing::model::{Config, GATEWAY_GROUP, ObjectKey};

use super::model::AuthorizationPolicy;

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
    count: usize,
}

impl WaypointPolicies {
    /// Reads every AuthorizationPolicy of `config` and keeps those that target the waypoint
    /// `gateway` (or its class) or a Service; a malformed one is an error naming its field.
    pub fn build(config: &Config, gateway: &ObjectKey) -> Result<Self, LoadError> {
        let mut all = Vec::new();
        let mut by_service: HashMap<ObjectKey, Vec<Arc<AuthorizationPolicy>>> = HashMap::new();
        let mut count = 0;
        let objects = config
            .foreign
            .iter()
            .filter(|o| o.group() == "security.istio.io" && o.kind == "AuthorizationPolicy");
        for object in objects {
            let mut policy: AuthorizationPolicy = parse_foreign(object)?;
            // The loader's metadata has the namespace defaulted (`default` when absent).
            policy.metadata = object.metadata.clone();
            let policy = Arc::new(policy);
            let namespace = policy.metadata.namespace.clone();
            let mut attached = false;
            for target in policy.targets() {
                if target.namespace.as_ref().is_some_and(|ns| *ns != namespace) {
                    continue; // targets are in the policy's own namespace
                }
                let key = ObjectKey::new(namespace.clone(), target.name.clone());
                match (target.group.as_str(), target.kind.as_str()) {
                    (GATEWAY_GROUP, "Gateway") if key == *gateway => {
                        all.push(Arc::clone(&policy));
                        attached = true;
                    }
                    (GATEWAY_GROUP, "GatewayClass")
                        if target.name == WAYPOINT_CLASS && namespace == ROOT_NAMESPACE =>
                    {
                        all.push(Arc::clone(&policy));
                        attached = true;
                    }
                    ("" | "core", "Service") => {
                        by_service.entry(key).or_default().push(Arc::clone(&policy));
                        attached = true;
                    }
                    _ => {}
                }
            }
            count += usize::from(attached);
        }
        let by_service = by_service
            .into_iter()
            .map(|(service, own)| {
                let list: PolicyList = all.iter().cloned().chain(own).collect();
                (service, list)
            })
            .collect();
        Ok(WaypointPolicies {
            all: all.into(),
            by_service,
            count,
        })
    }

    /// The policies for a request to `service` (the waypoint's, then the Service's).
    pub fn for_service(&self, service: &ObjectKey) -> &PolicyList {
        self.by_service.get(service).unwrap_or(&self.all)
    }

    /// How many policies attach to this waypoint or its Services.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none does.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
