//! Attaching HTTPRoutes and GRPCRoutes (compiled to the same rules) to listeners.

use super::attach::{ServedGateway, attach};
use super::compile::CompiledRule;
use super::hostnames::intersect;
use super::mesh::{MeshBuild, attach_to_service, is_service_parent};
use super::status::{Condition, ObjectStatus, ParentStatus};
use super::{ListenerBuild, created_order, parent_name};
use crate::model::{Config, ObjectMeta, ParentReference};

/// A route whose rules compile to HTTP rules.
pub(crate) struct HttpLikeRoute<'a> {
    pub(crate) kind: &'static str,
    pub(crate) metadata: &'a ObjectMeta,
    pub(crate) parent_refs: &'a [ParentReference],
    pub(crate) hostnames: &'a [String],
    /// The compiled rules, or why the route cannot be accepted.
    pub(crate) rules: Result<Vec<CompiledRule>, String>,
    /// The rules compiled for Service parents (cross-namespace backends allowed), when the
    /// route has any.
    pub(crate) mesh_rules: Option<Result<Vec<CompiledRule>, String>>,
}

/// Attaches `route` through each of its parentRefs, adding its candidates to the listeners'
/// builds; returns its status.
pub(crate) fn attach_route(
    config: &Config,
    served: &[ServedGateway<'_>],
    route: HttpLikeRoute<'_>,
    builds: &mut [Vec<ListenerBuild>],
    mesh_build: &mut MeshBuild,
) -> ObjectStatus {
    let key = route.metadata.key();
    let mut status = ObjectStatus::new(route.kind, key.clone());
    for parent in route.parent_refs {
        if is_service_parent(parent) {
            let conditions = match &route.mesh_rules {
                Some(Ok(rules)) => vec![
                    attach_to_service(
                        config,
                        route.kind,
                        route.metadata,
                        created_order(route.metadata),
                        rules,
                        parent,
                        mesh_build,
                    ),
                    resolved_refs(rules),
                ],
                Some(Err(message)) => vec![
                    Condition::failed("Accepted", "UnsupportedValue", message.clone()),
                    Condition::ok("ResolvedRefs", "ResolvedRefs"),
                ],
                None => continue,
            };
            status.parents.push(ParentStatus {
                parent_ref: parent_name(parent, &key.namespace),
                conditions,
            });
            continue;
        }
        let Some((attachments, accepted)) = attach(
            config,
            served,
            &config.gateways,
            route.kind,
            &key.namespace,
            route.hostnames,
            parent,
        ) else {
            continue;
        };
        let rules = match &route.rules {
            Ok(rules) => rules,
            Err(message) => {
                status.parents.push(ParentStatus {
                    parent_ref: parent_name(parent, &key.namespace),
                    conditions: vec![
                        Condition::failed("Accepted", "UnsupportedValue", message.clone()),
                        Condition::ok("ResolvedRefs", "ResolvedRefs"),
                    ],
                });
                continue;
            }
        };
        let created = created_order(route.metadata);
        let name = key.to_string();
        let mut conflicts = 0;
        let mut attached = 0;
        for attachment in &attachments {
            let build = &mut builds[attachment.gateway][attachment.listener];
            // An older route of the other kind (HTTPRoute vs GRPCRoute) with intersecting
            // hostnames keeps the listener (spec §2.1).
            let conflicting = build.claims.iter().any(|(kind, hostnames)| {
                *kind != route.kind && hostnames_intersect(hostnames, &attachment.hostnames)
            });
            if conflicting {
                conflicts += 1;
                continue;
            }
            attached += 1;
            build
                .claims
                .push((route.kind, attachment.hostnames.clone()));
            build.attached_routes += 1;
            for rule in rules {
                build
                    .http
                    .extend(rule.candidates(&attachment.hostnames, created, &name));
            }
        }
        let accepted = if attached == 0 && conflicts > 0 {
            Condition::failed(
                "Accepted",
                "Conflicted",
                "an older route of the other kind (HTTPRoute/GRPCRoute) holds these hostnames",
            )
        } else {
            accepted
        };
        status.parents.push(ParentStatus {
            parent_ref: parent_name(parent, &key.namespace),
            conditions: vec![accepted, resolved_refs(rules)],
        });
    }
    status
}

/// Whether two effective hostname lists share a host (an empty list is every host).
fn hostnames_intersect(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|host| intersect(Some(host), b).is_some())
}

/// `ResolvedRefs`: the first backend problem of any rule, else true.
fn resolved_refs(rules: &[CompiledRule]) -> Condition {
    rules
        .iter()
        .flat_map(|r| r.ref_problems.first())
        .next()
        .cloned()
        .unwrap_or_else(|| Condition::ok("ResolvedRefs", "ResolvedRefs"))
}
