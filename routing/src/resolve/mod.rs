//! Resolution: from a [`Config`] to what the data plane serves ([`CompiledGateway`]s) and the
//! status of every object (spec §1.1, §1.5, §2.4–2.8).
//!
//! - Gateways of the served class; listeners validated (protocol, TLS, certificates through
//!   ReferenceGrants, allowed kinds, conflicts).
//! - Routes attached through their parentRefs (sectionName, port, allowed kinds and namespaces
//!   including Namespace label selectors, hostname intersection), compiled into per-listener
//!   route tables with the precedence tie-breaks (creation time, then `namespace/name`).
//! - Backends resolved to Service ports and ready endpoints; invalid ones keep their weight and
//!   answer 500, Services without endpoints 503.
//! - Conditions `Accepted`, `ResolvedRefs`, `Programmed` and `Conflicted` with the reasons the
//!   spec names. A broken object never stops the others from being served.

mod attach;
mod backend_tls;
mod backends;
mod compile;
mod duration;
mod envoy_backend;
mod envoy_backend_tls;
pub use backends::{service_host_endpoints, service_port_endpoints};
pub use duration::parse_duration;
pub use references::reference_permitted;
mod gateway_tls;
mod grpc;
mod hostnames;
mod http_like;
mod l4;
mod listener_sets;
mod listeners;
mod mesh;
mod references;
mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

pub use crate::http_route::hostname_covers;
pub use hostnames::intersect as intersect_hostnames;
pub use status::{Condition, ConditionStatus, ListenerStatus, ObjectStatus, ParentStatus};

use crate::compiled::{
    CompiledGateway, CompiledListener, HttpRule, ListenerProtocol, ListenerRoutes, MeshRoutes,
};
use crate::http_route::{Candidate, RouteTable};
use crate::model::{Config, ObjectKey, ObjectMeta, ParentReference};
use crate::slot::{ListenerTarget, PolicyCompiler, PolicySlot};
use attach::ServedGateway;
use compile::compile_http_rule;
use http_like::HttpLikeRoute;
use l4::L4Attached;

/// The `controllerName` this implementation answers to unless told otherwise.
pub const DEFAULT_CONTROLLER_NAME: &str = "tower-mesh.dev/gateway";

/// What to serve.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Serve only Gateways of this class; `None`: every Gateway.
    pub gateway_class: Option<String>,
    /// The `controllerName` of the GatewayClasses this implementation owns: only those are
    /// `Accepted` (others get no status from us), and a Gateway whose class is defined with
    /// another controller is not served. A Gateway whose class is not defined at all is served
    /// (a standalone data plane often has no GatewayClass object).
    pub controller_name: String,
    /// Fills the policy slots of compiled listeners, rules and backends.
    pub policies: Option<Arc<dyn PolicyCompiler>>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            gateway_class: None,
            controller_name: DEFAULT_CONTROLLER_NAME.to_owned(),
            policies: None,
        }
    }
}

/// The result of resolution.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// The Gateways to serve, with their usable listeners.
    pub gateways: Vec<CompiledGateway>,
    /// Every Service as a mesh destination, with the routes attached to it (GAMMA).
    pub mesh: MeshRoutes,
    /// Every object's status.
    pub statuses: Vec<ObjectStatus>,
    /// What the policy compiler could not enforce or attach, one line each.
    pub policy_problems: Vec<String>,
}

/// Per listener of each served Gateway: the route candidates and counts gathered so far.
pub(crate) struct ListenerBuild {
    pub(crate) http: Vec<Candidate<Arc<HttpRule>>>,
    pub(crate) l4: Vec<L4Attached>,
    pub(crate) attached_routes: usize,
    /// The kind and effective hostnames of each HTTPRoute or GRPCRoute attached so far (oldest
    /// first), to refuse a route of the other kind whose hostnames intersect.
    pub(crate) claims: Vec<(&'static str, Vec<String>)>,
}

/// Resolves `config`.
pub fn resolve(config: &Config, options: &ResolveOptions) -> Resolution {
    // A compiler built from the configuration's own policy objects replaces the given one.
    let prepared = options
        .policies
        .as_ref()
        .and_then(|policies| policies.for_config(config))
        .map(|policies| ResolveOptions {
            policies: Some(policies),
            ..options.clone()
        });
    let options = prepared.as_ref().unwrap_or(options);
    let mut statuses = Vec::new();
    let ours =
        |class: &crate::model::GatewayClass| class.spec.controller_name == options.controller_name;
    for class in config.gateway_classes.iter().filter(|c| ours(c)) {
        let mut status = ObjectStatus::new("GatewayClass", class.metadata.key());
        status
            .conditions
            .push(Condition::ok("Accepted", "Accepted"));
        statuses.push(status);
    }
    let served: Vec<ServedGateway<'_>> = config
        .gateways
        .iter()
        .filter(|g| {
            options
                .gateway_class
                .as_ref()
                .is_none_or(|class| *class == g.spec.gateway_class_name)
        })
        .filter(|g| {
            config
                .gateway_classes
                .iter()
                .find(|class| class.metadata.name == g.spec.gateway_class_name)
                .is_none_or(ours)
        })
        .map(|gateway| {
            let listener_sets = listener_sets::admitted(config, gateway);
            ServedGateway {
                gateway,
                listeners: listeners::validate_listeners(config, gateway, &listener_sets),
                listener_sets,
            }
        })
        .collect();
    let mut builds: Vec<Vec<ListenerBuild>> = served
        .iter()
        .map(|s| {
            s.listeners
                .iter()
                .map(|_| ListenerBuild {
                    http: Vec::new(),
                    l4: Vec::new(),
                    attached_routes: 0,
                    claims: Vec::new(),
                })
                .collect()
        })
        .collect();

    let mut routes: Vec<HttpLikeRoute<'_>> = Vec::new();
    for route in &config.http_routes {
        let key = route.metadata.key();
        let compile = |mesh| {
            let rules = route
                .spec
                .rules
                .iter()
                .enumerate()
                .map(|(index, rule)| {
                    compile_http_rule(config, "HTTPRoute", &key, index, rule, mesh)
                })
                .collect();
            fill_rule_slots(rules, options, mesh)
        };
        let rules =
            hostnames::validate_hostnames(&route.spec.hostnames).and_then(|()| compile(false));
        let mesh_rules = route
            .spec
            .parent_refs
            .iter()
            .any(mesh::is_service_parent)
            .then(|| compile(true));
        routes.push(HttpLikeRoute {
            kind: "HTTPRoute",
            metadata: &route.metadata,
            parent_refs: &route.spec.parent_refs,
            hostnames: &route.spec.hostnames,
            rules,
            mesh_rules,
        });
    }
    for route in &config.grpc_routes {
        routes.push(HttpLikeRoute {
            kind: "GRPCRoute",
            metadata: &route.metadata,
            parent_refs: &route.spec.parent_refs,
            hostnames: &route.spec.hostnames,
            rules: hostnames::validate_hostnames(&route.spec.hostnames).and_then(|()| {
                let rules = grpc::compile_grpc_rules(
                    config,
                    &route.metadata.key(),
                    &route.spec.rules,
                    false,
                );
                fill_rule_slots(rules, options, false)
            }),
            mesh_rules: route
                .spec
                .parent_refs
                .iter()
                .any(mesh::is_service_parent)
                .then(|| {
                    let rules = grpc::compile_grpc_rules(
                        config,
                        &route.metadata.key(),
                        &route.spec.rules,
                        true,
                    );
                    fill_rule_slots(rules, options, true)
                }),
        });
    }
    routes.sort_by_key(|r| route_order_key(r.metadata));
    let mut mesh_build = mesh::MeshBuild::default();
    mesh_build.claim_grpc_ports(config);
    for route in routes {
        statuses.push(http_like::attach_route(
            config,
            &served,
            route,
            &mut builds,
            &mut mesh_build,
        ));
    }
    let mesh = mesh::mesh_routes(config, mesh_build);
    statuses.extend(backend_tls::policy_statuses(config));
    for (kind, routes) in [
        ("TLSRoute", &config.tls_routes),
        ("TCPRoute", &config.tcp_routes),
        ("UDPRoute", &config.udp_routes),
    ] {
        statuses.extend(l4::attach_routes(
            config,
            &served,
            kind,
            routes,
            options.policies.as_deref(),
            &mut |g, l, attached| {
                let build = &mut builds[g][l];
                build.attached_routes += 1;
                build.l4.push(attached);
            },
        ));
    }

    let mut gateways = Vec::new();
    let mut set_listeners: BTreeMap<ObjectKey, Vec<ListenerStatus>> = BTreeMap::new();
    for (served, builds) in served.iter().zip(builds) {
        let gateway = served.gateway;
        let key = gateway.metadata.key();
        let mut status = ObjectStatus::new("Gateway", key.clone());
        status.attached_listener_sets = Some(served.listener_sets.len());
        let mut addresses = Vec::new();
        let mut bad_address = None;
        for address in &gateway.spec.addresses {
            match (
                address.address_type.as_str(),
                address.value.parse::<IpAddr>(),
            ) {
                ("IPAddress", Ok(ip)) => addresses.push(ip),
                _ => bad_address = Some(address.value.clone()),
            }
        }
        status
            .conditions
            .push(Condition::ok("Accepted", "Accepted"));
        status.conditions.push(match bad_address {
            None => Condition::ok("Programmed", "Programmed"),
            Some(value) => Condition::failed(
                "Programmed",
                "AddressNotUsable",
                format!("address {value:?} is not an IP address"),
            ),
        });
        let backend_client_certificate =
            match gateway_tls::backend_client_certificate(config, gateway) {
                Ok(certificate) => certificate,
                Err(mut problem) => {
                    problem.reason = "InvalidClientCertificateRef";
                    status.conditions.push(problem);
                    None
                }
            };
        let mut listeners = Vec::new();
        for (entry, build) in served.listeners.iter().zip(builds) {
            let mut listener_status = ListenerStatus {
                name: entry.listener.name.clone(),
                attached_routes: build.attached_routes,
                conditions: entry.state.conditions.clone(),
            };
            let compiled = compile_listener(
                config,
                options,
                gateway,
                entry,
                build,
                &backend_client_certificate,
                &mut listener_status,
            );
            match entry.owner.listener_set_key() {
                None => status.listeners.push(listener_status),
                Some(set) => set_listeners.entry(set).or_default().push(listener_status),
            }
            listeners.extend(compiled);
        }
        statuses.push(status);
        // Addresses were asked for and none is usable: serving on every interface instead
        // would expose the Gateway where it was not meant to be.
        let unusable = !gateway.spec.addresses.is_empty() && addresses.is_empty();
        if !unusable {
            gateways.push(CompiledGateway {
                key,
                addresses,
                listeners,
            });
        }
    }
    statuses.extend(listener_sets::statuses(config, &served, set_listeners));
    if let Some(policies) = &options.policies {
        statuses.extend(policies.statuses());
    }
    Resolution {
        gateways,
        mesh,
        statuses,
        policy_problems: options
            .policies
            .as_ref()
            .map(|policies| policies.problems())
            .unwrap_or_default(),
    }
}

/// The served form of one validated listener (`None`: not served), its status corrected
/// when the Gateway's frontend validation for its port cannot be set up (fail closed).
fn compile_listener(
    config: &Config,
    options: &ResolveOptions,
    gateway: &crate::model::Gateway,
    entry: &listeners::ServedListener<'_>,
    build: ListenerBuild,
    backend_client_certificate: &Option<Arc<crate::compiled::Certificate>>,
    listener_status: &mut ListenerStatus,
) -> Option<CompiledListener> {
    let listener = entry.listener;
    let protocol = entry.state.protocol?;
    let client_validation = match protocol {
        ListenerProtocol::Https => {
            match gateway_tls::frontend_validation(config, gateway, listener.port) {
                Ok(validation) => validation,
                Err(problem) => {
                    listener_status.conditions.retain(|c| {
                        c.condition_type != "ResolvedRefs" && c.condition_type != "Programmed"
                    });
                    listener_status.conditions.push(problem.clone());
                    listener_status.conditions.push(Condition::failed(
                        "Programmed",
                        "Invalid",
                        problem.message,
                    ));
                    return None;
                }
            }
        }
        _ => None,
    };
    let key = gateway.metadata.key();
    let routes = l4::listener_routes(protocol, build.http, build.l4);
    let mut policy = PolicySlot::default();
    if let Some(policies) = &options.policies {
        let target = ListenerTarget {
            gateway: &key,
            listener: &listener.name,
            port: listener.port,
            protocol,
        };
        policies.listener(&target, &mut policy);
    }
    Some(CompiledListener {
        gateway: key,
        listener_set: entry.owner.listener_set_key(),
        name: listener.name.clone(),
        hostname: listener.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        port: listener.port,
        protocol,
        certificates: entry.state.certificates.clone(),
        tls_terminate: entry.state.tls_terminate,
        routes,
        client_validation,
        backend_client_certificate: backend_client_certificate.clone(),
        policy,
    })
}

/// Lets the embedder's policy compiler fill the slots of freshly compiled rules.
fn fill_rule_slots(
    rules: Result<Vec<compile::CompiledRule>, String>,
    options: &ResolveOptions,
    mesh: bool,
) -> Result<Vec<compile::CompiledRule>, String> {
    let Some(policies) = &options.policies else {
        return rules;
    };
    rules.map(|mut rules| {
        for rule in &mut rules {
            rule.fill_policy_slots(policies.as_ref(), mesh);
        }
        rules
    })
}

/// Routes are processed oldest first, then by `namespace/name`.
fn route_order_key(metadata: &ObjectMeta) -> (u64, ObjectKey) {
    (created_order(metadata), metadata.key())
}

/// A creation timestamp as a sortable number (`2024-01-02T03:04:05Z` → 20240102030405); no
/// timestamp sorts as 0, leaving ties to `namespace/name`.
fn created_order(metadata: &ObjectMeta) -> u64 {
    metadata.creation_timestamp.as_deref().map_or(0, |text| {
        text.bytes()
            .filter(u8::is_ascii_digit)
            .take(14)
            .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'))
    })
}

fn parent_name(parent: &ParentReference, route_namespace: &str) -> String {
    let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
    let mut name = format!("{}/{}", namespace, parent.name);
    if let Some(section) = &parent.section_name {
        name.push('/');
        name.push_str(section);
    }
    if let Some(port) = parent.port {
        name.push(':');
        name.push_str(&port.to_string());
    }
    name
}

/// Builds the HTTP table of a listener (shared with [`l4::listener_routes`]).
fn http_table(candidates: Vec<Candidate<Arc<HttpRule>>>) -> ListenerRoutes {
    ListenerRoutes::Http(Arc::new(RouteTable::new(candidates)))
}
