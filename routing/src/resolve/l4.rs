//! TLSRoute, TCPRoute and UDPRoute: attachment and the per-listener backend choice
//! (spec §2.2, §2.3).

use std::sync::Arc;

use super::attach::{ServedGateway, attach};
use super::backends::resolve_backend;
use super::references;
use super::status::{Condition, ObjectStatus, ParentStatus};
use super::{created_order, http_table, parent_name, route_order_key};
use crate::backends::{WeightedBackend, WeightedBackends};
use crate::compiled::Backend;
use crate::compiled::{HttpRule, L4Backends, ListenerProtocol, ListenerRoutes};
use crate::http_route::Candidate;
use crate::model::{Config, GATEWAY_GROUP, L4Route, ObjectKey};
use crate::slot::PolicyCompiler;

/// An L4 route attached to one listener.
pub(crate) struct L4Attached {
    /// Effective SNI hostnames (TLS); empty otherwise.
    hostnames: Vec<String>,
    /// Oldest first, then by name.
    order: (u64, String),
    backends: Arc<L4Backends>,
}

/// Attaches the routes of one L4 kind; `on_attach(gateway, listener, route)` receives each
/// attachment. `policies` fill the route's rule slot, which every backend of the rule then
/// carries (an L4 listener has no rule of its own to hold it). Returns the routes' statuses.
pub(crate) fn attach_routes(
    config: &Config,
    served: &[ServedGateway<'_>],
    kind: &'static str,
    routes: &[L4Route],
    policies: Option<&dyn PolicyCompiler>,
    on_attach: &mut dyn FnMut(usize, usize, L4Attached),
) -> Vec<ObjectStatus> {
    let mut sorted: Vec<&L4Route> = routes.iter().collect();
    sorted.sort_by_key(|r| route_order_key(&r.metadata));
    let mut statuses = Vec::new();
    for route in sorted {
        let key = route.metadata.key();
        let mut status = ObjectStatus::new(kind, key.clone());
        let from = references::From {
            group: GATEWAY_GROUP,
            kind,
            namespace: &key.namespace,
            mesh: false,
        };
        let valid_shape = match kind {
            "TLSRoute" => {
                !route.spec.hostnames.is_empty()
                    && super::hostnames::validate_hostnames(&route.spec.hostnames).is_ok()
                    && route.spec.rules.len() == 1
            }
            _ => route.spec.rules.len() == 1,
        };
        let mut problems = Vec::new();
        let backends = route.spec.rules.first().map(|rule| {
            let list = rule
                .backend_refs
                .iter()
                .map(|backend_ref| {
                    let resolved = resolve_backend(config, from, &backend_ref.backend);
                    problems.extend(resolved.problem);
                    WeightedBackend {
                        weight: backend_ref.weight,
                        state: resolved.state,
                        fallback: resolved.fallback,
                    }
                })
                .collect();
            let mut backends = WeightedBackends::new(list);
            if let Some(policies) = policies {
                fill_rule_slot(policies, kind, &key, None, &mut backends);
            }
            Arc::new(backends)
        });
        for parent in &route.spec.parent_refs {
            let Some((attachments, accepted)) = attach(
                config,
                served,
                &config.gateways,
                kind,
                &key.namespace,
                &route.spec.hostnames,
                parent,
            ) else {
                continue;
            };
            let name = parent_name(parent, &key.namespace);
            let (true, Some(backends)) = (valid_shape, &backends) else {
                status.parents.push(ParentStatus {
                    parent_ref: name,
                    conditions: vec![Condition::failed(
                        "Accepted",
                        "UnsupportedValue",
                        "needs exactly one rule (and hostnames, for TLSRoute)",
                    )],
                });
                continue;
            };
            for attachment in attachments {
                on_attach(
                    attachment.gateway,
                    attachment.listener,
                    L4Attached {
                        hostnames: attachment.hostnames,
                        order: (created_order(&route.metadata), key.to_string()),
                        backends: Arc::clone(backends),
                    },
                );
            }
            let resolved_refs = problems
                .first()
                .cloned()
                .unwrap_or_else(|| Condition::ok("ResolvedRefs", "ResolvedRefs"));
            status.parents.push(ParentStatus {
                parent_ref: name,
                conditions: vec![accepted, resolved_refs],
            });
        }
        statuses.push(status);
    }
    statuses
}

/// Lets `policies` fill the slot of an L4 route's one rule, then gives each backend a copy.
fn fill_rule_slot(
    policies: &dyn PolicyCompiler,
    kind: &'static str,
    route: &ObjectKey,
    name: Option<&str>,
    backends: &mut WeightedBackends<Arc<Backend>>,
) {
    let slot = super::compile::rule_slot(policies, (kind, route, 0, name, false), backends);
    if slot.is_empty() {
        return;
    }
    backends.for_each_ready_mut(|backend| Arc::make_mut(backend).policy.extend(slot.clone()));
}

/// What a listener of `protocol` routes, from what attached to it.
pub(crate) fn listener_routes(
    protocol: ListenerProtocol,
    http: Vec<Candidate<Arc<HttpRule>>>,
    mut l4: Vec<L4Attached>,
) -> ListenerRoutes {
    l4.sort_by(|a, b| a.order.cmp(&b.order));
    match protocol {
        ListenerProtocol::Http | ListenerProtocol::Https => http_table(http),
        ListenerProtocol::Tls => {
            // One entry per SNI pattern; the oldest route keeps a contested hostname; the most
            // specific pattern (exact, then the longest wildcard) is tried first.
            let mut entries: Vec<(String, L4Backends)> = Vec::new();
            for attached in l4 {
                for hostname in attached.hostnames {
                    if !entries.iter().any(|(h, _)| *h == hostname) {
                        entries.push((hostname, (*attached.backends).clone()));
                    }
                }
            }
            entries.sort_by_key(|(h, _)| (h.starts_with("*."), std::cmp::Reverse(h.len())));
            ListenerRoutes::Tls(Arc::from(entries))
        }
        ListenerProtocol::Tcp | ListenerProtocol::Udp => {
            ListenerRoutes::Stream(l4.into_iter().next().map(|a| a.backends))
        }
    }
}
