//! Attaching a route to listeners through one parentRef (spec §1.1 item 3, §2.5): sectionName
//! and port, allowed kinds and namespaces, hostname intersection.

use std::collections::BTreeMap;

use super::hostnames::intersect;
use super::listeners::ListenerState;
use super::status::Condition;
use crate::model::{Config, FromNamespaces, GATEWAY_GROUP, Gateway, ParentReference};

/// A Gateway being served, with its validated listeners.
pub(crate) struct ServedGateway<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) listeners: Vec<ListenerState>,
}

/// Where a route attached through one parentRef: `(gateway, listener, effective hostnames)`.
pub(crate) struct Attachment {
    pub(crate) gateway: usize,
    pub(crate) listener: usize,
    pub(crate) hostnames: Vec<String>,
}

/// The outcome for one parentRef: the attachments and the `Accepted` condition. `None` when
/// the parent is not a Gateway of this data plane (another class): no status is written.
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
    if parent.group != GATEWAY_GROUP || parent.kind != "Gateway" {
        return Some((
            Vec::new(),
            Condition::failed(
                "Accepted",
                "NoMatchingParent",
                format!(
                    "parent kind {}/{} is not served here",
                    parent.group, parent.kind
                ),
            ),
        ));
    }
    let found = gateways.iter().position(|served| {
        served.gateway.metadata.namespace == namespace
            && served.gateway.metadata.name == parent.name
    });
    let Some(gateway_index) = found else {
        let exists = all_gateways
            .iter()
            .any(|g| g.metadata.namespace == namespace && g.metadata.name == parent.name);
        return (!exists).then(|| {
            (
                Vec::new(),
                Condition::failed(
                    "Accepted",
                    "NoMatchingParent",
                    format!("Gateway {namespace}/{} not found", parent.name),
                ),
            )
        });
    };
    let served = &gateways[gateway_index];
    let mut attachments = Vec::new();
    let (mut selected, mut allowed) = (0, 0);
    for (index, listener) in served.gateway.spec.listeners.iter().enumerate() {
        let state = &served.listeners[index];
        let section_ok = parent
            .section_name
            .as_ref()
            .is_none_or(|s| *s == listener.name);
        let port_ok = parent.port.is_none_or(|p| p == listener.port);
        if !section_ok || !port_ok || !state.usable() {
            continue;
        }
        selected += 1;
        let kind_ok = state.kinds.iter().any(|k| k == route_kind);
        if !kind_ok || !namespace_allowed(config, served.gateway, index, route_namespace) {
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
        Condition::failed(
            "Accepted",
            "NoMatchingParent",
            "no usable listener matches sectionName/port",
        )
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

fn namespace_allowed(
    config: &Config,
    gateway: &Gateway,
    listener: usize,
    route_namespace: &str,
) -> bool {
    let namespaces = &gateway.spec.listeners[listener].allowed_routes.namespaces;
    match namespaces.from {
        FromNamespaces::Same => route_namespace == gateway.metadata.namespace,
        FromNamespaces::All => true,
        FromNamespaces::Selector => {
            let mut labels: BTreeMap<String, String> = config
                .namespaces
                .iter()
                .find(|ns| ns.metadata.name == route_namespace)
                .map(|ns| ns.metadata.labels.clone())
                .unwrap_or_default();
            // Kubernetes labels every Namespace with its name.
            labels.insert("kubernetes.io/metadata.name".into(), route_namespace.into());
            namespaces
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&labels))
        }
        FromNamespaces::Unsupported => false,
    }
}
