//! Attaching a route to listeners through one parentRef (spec §1.1 item 3, §2.5): sectionName
//! and port, allowed kinds and namespaces, hostname intersection.

use std::collections::BTreeMap;

use super::hostnames::intersect;
use super::listeners::{ListenerOwner, ServedListener};
use super::status::Condition;
use crate::model::{Config, FromNamespaces, GATEWAY_GROUP, Gateway, ListenerSet, ParentReference};

/// A Gateway being served, with its validated listeners: its own, then those of the
/// ListenerSets it admits.
pub(crate) struct ServedGateway<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) listeners: Vec<ServedListener<'a>>,
    /// The ListenerSets admitted, in precedence order.
    pub(crate) listener_sets: Vec<&'a ListenerSet>,
}

/// Where a route attached through one parentRef: `(gateway, listener, effective hostnames)`.
pub(crate) struct Attachment {
    pub(crate) gateway: usize,
    pub(crate) listener: usize,
    pub(crate) hostnames: Vec<String>,
}

/// The outcome for one parentRef: the attachments and the `Accepted` condition. `None` when
/// the parent is not a Gateway (or a ListenerSet of a Gateway) of this data plane: no status
/// is written.
pub(crate) fn attach(
    config: &Config,
    gateways: &[ServedGateway<'_>],
    all_gateways: &[Gateway],
    route_kind: &str,
    route_namespace: &str,
    route_hostnames: &[String],
    parent: &ParentReference,
) -> Option<(Vec<Attachment>, Condition)> {
    let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
    if parent.group.is_empty() && parent.kind == "Service" {
        return None; // a GAMMA parent, attached by `mesh`
    }
    let owner_kind = match (parent.group.as_str(), parent.kind.as_str()) {
        (GATEWAY_GROUP, "Gateway") => "Gateway",
        (GATEWAY_GROUP, "ListenerSet") => "ListenerSet",
        _ => {
            return Some((
                Vec::new(),
                no_matching_parent(format!(
                    "parent kind {}/{} is not served here",
                    parent.group, parent.kind
                )),
            ));
        }
    };
    let is_parent = |owner: &ListenerOwner<'_>| {
        owner.kind == owner_kind && owner.namespace == namespace && owner.name == parent.name
    };
    let found = gateways
        .iter()
        .position(|served| served.listeners.iter().any(|l| is_parent(&l.owner)))
        .or_else(|| {
            // A Gateway without listeners is still a parent.
            (owner_kind == "Gateway")
                .then(|| {
                    gateways
                        .iter()
                        .position(|served| is_parent(&ListenerOwner::gateway(served.gateway)))
                })
                .flatten()
        });
    let Some(gateway_index) = found else {
        return missing_parent(
            config,
            gateways,
            all_gateways,
            owner_kind,
            namespace,
            parent,
        );
    };
    let served = &gateways[gateway_index];
    let mut attachments = Vec::new();
    let (mut selected, mut allowed) = (0, 0);
    for (index, entry) in served.listeners.iter().enumerate() {
        let listener = entry.listener;
        let section_ok = parent
            .section_name
            .as_ref()
            .is_none_or(|s| *s == listener.name);
        let port_ok = parent.port.is_none_or(|p| p == listener.port);
        if !is_parent(&entry.owner) || !section_ok || !port_ok || !entry.state.usable() {
            continue;
        }
        selected += 1;
        let kind_ok = entry.state.kinds.iter().any(|k| k == route_kind);
        if !kind_ok || !namespace_allowed(config, entry, route_namespace) {
            continue;
        }
        allowed += 1;
        let hostnames = match listener.protocol.as_str() {
            "TCP" | "UDP" => Some(Vec::new()),
            _ => intersect(listener.hostname.as_deref(), route_hostnames),
        };
        if let Some(hostnames) = hostnames {
            attachments.push(Attachment {
                gateway: gateway_index,
                listener: index,
                hostnames,
            });
        }
    }
    let condition = if !attachments.is_empty() {
        Condition::ok("Accepted", "Accepted")
    } else if selected == 0 {
        no_matching_parent("no usable listener matches sectionName/port".to_owned())
    } else if allowed == 0 {
        Condition::failed(
            "Accepted",
            "NotAllowedByListeners",
            "the listeners' allowedRoutes exclude this route",
        )
    } else {
        Condition::failed(
            "Accepted",
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames",
        )
    };
    Some((attachments, condition))
}

fn no_matching_parent(message: String) -> Condition {
    Condition::failed("Accepted", "NoMatchingParent", message)
}

/// The parent is not among the served listeners' owners: not ours (no status), or missing,
/// or a ListenerSet its Gateway does not admit.
fn missing_parent(
    config: &Config,
    gateways: &[ServedGateway<'_>],
    all_gateways: &[Gateway],
    owner_kind: &str,
    namespace: &str,
    parent: &ParentReference,
) -> Option<(Vec<Attachment>, Condition)> {
    let gateway_key = if owner_kind == "Gateway" {
        Some((namespace.to_owned(), parent.name.clone()))
    } else {
        config
            .listener_sets
            .iter()
            .find(|set| set.metadata.namespace == namespace && set.metadata.name == parent.name)
            .map(|set| {
                let reference = &set.spec.parent_ref;
                let gateway_namespace = reference.namespace.as_deref().unwrap_or(namespace);
                (gateway_namespace.to_owned(), reference.name.clone())
            })
    };
    let message = match &gateway_key {
        None => format!("{owner_kind} {namespace}/{} not found", parent.name),
        Some((gateway_namespace, gateway_name)) => {
            let is_gateway = |g: &Gateway| {
                g.metadata.namespace == *gateway_namespace && g.metadata.name == *gateway_name
            };
            let served = gateways.iter().any(|served| is_gateway(served.gateway));
            if !served && all_gateways.iter().any(is_gateway) {
                return None; // another data plane's Gateway
            }
            if !served {
                format!("Gateway {gateway_namespace}/{gateway_name} not found")
            } else {
                format!(
                    "ListenerSet {namespace}/{} is not attached to its Gateway",
                    parent.name
                )
            }
        }
    };
    Some((Vec::new(), no_matching_parent(message)))
}

fn namespace_allowed(config: &Config, entry: &ServedListener<'_>, route_namespace: &str) -> bool {
    let namespaces = &entry.listener.allowed_routes.namespaces;
    match namespaces.from {
        FromNamespaces::Same => route_namespace == entry.owner.namespace,
        FromNamespaces::All => true,
        FromNamespaces::Selector => namespaces
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(&namespace_labels(config, route_namespace))),
        FromNamespaces::Unsupported => false,
    }
}

/// The labels of Namespace `name`, with the `kubernetes.io/metadata.name` label Kubernetes
/// gives every Namespace.
pub(crate) fn namespace_labels(config: &Config, name: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = config
        .namespaces
        .iter()
        .find(|ns| ns.metadata.name == name)
        .map(|ns| ns.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), name.into());
    labels
}
