//! ListenerSets (GEP-1713, standard since v1.5): which ones a Gateway admits — its
//! `allowedListeners` (default: none), in precedence order (older first, then
//! `namespace/name`) — and the status of every ListenerSet naming one of our Gateways.

use std::collections::BTreeMap;

use super::attach::{ServedGateway, namespace_labels};
use super::route_order_key;
use super::status::{Condition, ListenerStatus, ObjectStatus};
use crate::model::{
    Config, FromListenerNamespaces, GATEWAY_GROUP, Gateway, ListenerSet, ObjectKey,
};

/// The Gateway a ListenerSet names, as `namespace/name` (`None`: not a Gateway reference).
fn parent_gateway(set: &ListenerSet) -> Option<ObjectKey> {
    let parent = &set.spec.parent_ref;
    (parent.group == GATEWAY_GROUP && parent.kind == "Gateway").then(|| {
        let namespace = parent
            .namespace
            .as_deref()
            .unwrap_or(&set.metadata.namespace);
        ObjectKey::new(namespace, parent.name.clone())
    })
}

/// Whether `gateway`'s `allowedListeners` admits ListenerSets from `namespace`.
fn allowed(config: &Config, gateway: &Gateway, namespace: &str) -> bool {
    let Some(allowed) = &gateway.spec.allowed_listeners else {
        return false;
    };
    let namespaces = &allowed.namespaces;
    match namespaces.from {
        FromListenerNamespaces::None | FromListenerNamespaces::Unsupported => false,
        FromListenerNamespaces::Same => namespace == gateway.metadata.namespace,
        FromListenerNamespaces::All => true,
        FromListenerNamespaces::Selector => namespaces
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(&namespace_labels(config, namespace))),
    }
}

/// The ListenerSets `gateway` admits, in precedence order.
pub(crate) fn admitted<'a>(config: &'a Config, gateway: &Gateway) -> Vec<&'a ListenerSet> {
    let key = gateway.metadata.key();
    let mut sets: Vec<&ListenerSet> = config
        .listener_sets
        .iter()
        .filter(|set| parent_gateway(set).as_ref() == Some(&key))
        .filter(|set| allowed(config, gateway, &set.metadata.namespace))
        .collect();
    sets.sort_by_key(|set| route_order_key(&set.metadata));
    sets
}

/// The status of every ListenerSet whose Gateway is one of ours (served) or missing;
/// `listeners` holds the status of each admitted set's listeners.
pub(crate) fn statuses(
    config: &Config,
    served: &[ServedGateway<'_>],
    mut listeners: BTreeMap<ObjectKey, Vec<ListenerStatus>>,
) -> Vec<ObjectStatus> {
    let mut statuses = Vec::new();
    let mut sets: Vec<&ListenerSet> = config.listener_sets.iter().collect();
    sets.sort_by_key(|set| route_order_key(&set.metadata));
    for set in sets {
        let key = set.metadata.key();
        let mut status = ObjectStatus::new("ListenerSet", key.clone());
        let parent = parent_gateway(set);
        let gateway = served
            .iter()
            .find(|s| Some(s.gateway.metadata.key()) == parent);
        let (accepted, programmed) = match (gateway, &parent) {
            (Some(gateway), _)
                if gateway
                    .listener_sets
                    .iter()
                    .any(|s| s.metadata.key() == key) =>
            {
                status.listeners = listeners.remove(&key).unwrap_or_default();
                let usable = gateway
                    .listeners
                    .iter()
                    .any(|l| l.owner.listener_set_key().as_ref() == Some(&key) && l.state.usable());
                if usable {
                    (
                        Condition::ok("Accepted", "Accepted"),
                        Condition::ok("Programmed", "Programmed"),
                    )
                } else {
                    let message = "no listener of the ListenerSet is valid";
                    (
                        Condition::failed("Accepted", "ListenersNotValid", message),
                        Condition::failed("Programmed", "ListenersNotValid", message),
                    )
                }
            }
            (Some(_), Some(parent)) => (
                Condition::failed(
                    "Accepted",
                    "NotAllowed",
                    format!("Gateway {parent}'s allowedListeners does not admit this namespace"),
                ),
                Condition::failed("Programmed", "Invalid", "not allowed by the Gateway"),
            ),
            (None, Some(parent)) => {
                let exists = config.gateways.iter().any(|g| g.metadata.key() == *parent);
                if exists {
                    continue; // another data plane's Gateway
                }
                let message = format!("Gateway {parent} not found");
                (
                    Condition::failed("Accepted", "ParentNotAccepted", message.clone()),
                    Condition::failed("Programmed", "ParentNotProgrammed", message),
                )
            }
            (_, None) => {
                let message = "parentRef must name a gateway.networking.k8s.io Gateway";
                (
                    Condition::failed("Accepted", "ParentNotAccepted", message),
                    Condition::failed("Programmed", "ParentNotProgrammed", message),
                )
            }
        };
        status.conditions.push(accepted);
        status.conditions.push(programmed);
        statuses.push(status);
    }
    statuses
}
