//! GAMMA attachment: HTTPRoutes and GRPCRoutes whose parentRef is a Service (spec §2.6),
//! collected per Service port into a producer table and per-namespace consumer tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::backends::resolve_backend;
use super::compile::CompiledRule;
use super::references;
use super::status::Condition;
use crate::compiled::{HttpRule, MeshPort, MeshRoutes, MeshService};
use crate::http_route::{Candidate, RouteTable};
use crate::model::{BackendObjectReference, Config, ObjectKey, ObjectMeta, ParentReference};

/// Candidates gathered per Service port.
#[derive(Default)]
pub(crate) struct MeshBuild {
    ports: HashMap<(ObjectKey, u16), PortBuild>,
    /// Service ports a GRPCRoute attaches to: HTTPRoutes there are refused (GEP-1426).
    grpc_ports: HashSet<(ObjectKey, u16)>,
}

impl MeshBuild {
    /// Records the Service ports every GRPCRoute of `config` names, before any attachment.
    pub(crate) fn claim_grpc_ports(&mut self, config: &Config) {
        for route in &config.grpc_routes {
            for parent in route
                .spec
                .parent_refs
                .iter()
                .filter(|p| is_service_parent(p))
            {
                if let Some((key, ports)) = service_ports(config, &route.metadata, parent) {
                    self.grpc_ports
                        .extend(ports.into_iter().map(|port| (key.clone(), port)));
                }
            }
        }
    }
}

/// The Service a parentRef names and the ports it selects (its `port` or `sectionName`, else
/// all); `None` when the Service does not exist.
fn service_ports(
    config: &Config,
    route: &ObjectMeta,
    parent: &ParentReference,
) -> Option<(ObjectKey, Vec<u16>)> {
    let namespace = parent.namespace.as_deref().unwrap_or(&route.namespace);
    let key = ObjectKey::new(namespace, parent.name.clone());
    let service = config.services.iter().find(|s| s.metadata.key() == key)?;
    let ports = service
        .spec
        .ports
        .iter()
        .filter(|p| parent.port.is_none_or(|wanted| wanted == p.port))
        .filter(|p| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|name| *name == p.name)
        })
        .map(|p| p.port)
        .collect();
    Some((key, ports))
}

#[derive(Default)]
struct PortBuild {
    producer: Vec<Candidate<Arc<HttpRule>>>,
    consumers: BTreeMap<String, Vec<Candidate<Arc<HttpRule>>>>,
}

/// Whether `parent` names a Service (core group).
pub(crate) fn is_service_parent(parent: &ParentReference) -> bool {
    parent.group.is_empty() && parent.kind == "Service"
}

/// Attaches a route's compiled rules to the Service port(s) `parent` names; returns the
/// `Accepted` condition.
pub(crate) fn attach_to_service(
    config: &Config,
    kind: &str,
    route: &ObjectMeta,
    created: u64,
    rules: &[CompiledRule],
    parent: &ParentReference,
    build: &mut MeshBuild,
) -> Condition {
    let Some((key, ports)) = service_ports(config, route, parent) else {
        let namespace = parent.namespace.as_deref().unwrap_or(&route.namespace);
        return Condition::failed(
            "Accepted",
            "NoMatchingParent",
            format!("Service {namespace}/{} not found", parent.name),
        );
    };
    if ports.is_empty() {
        return Condition::failed(
            "Accepted",
            "NoMatchingParent",
            format!("Service {key} has no port matching the parentRef"),
        );
    }
    let selected = ports.len();
    let ports: Vec<u16> = ports
        .into_iter()
        .filter(|port| kind != "HTTPRoute" || !build.grpc_ports.contains(&(key.clone(), *port)))
        .collect();
    if ports.is_empty() && selected > 0 {
        return Condition::failed(
            "Accepted",
            "Conflicted",
            "a GRPCRoute attaches to this Service port, and takes precedence over HTTPRoutes",
        );
    }
    let producer = route.namespace == key.namespace;
    let name = route.key().to_string();
    for port in ports {
        let port_build = build.ports.entry((key.clone(), port)).or_default();
        let list = if producer {
            &mut port_build.producer
        } else {
            port_build
                .consumers
                .entry(route.namespace.clone())
                .or_default()
        };
        // GAMMA selects by destination; route hostnames are not used.
        for rule in rules {
            list.extend(rule.candidates(&[], created, &name));
        }
    }
    Condition::ok("Accepted", "Accepted")
}

/// Every Service as a mesh destination, with the tables built from `build`.
pub(crate) fn mesh_routes(config: &Config, mut build: MeshBuild) -> MeshRoutes {
    let mut services = Vec::with_capacity(config.services.len());
    for service in &config.services {
        let key = service.metadata.key();
        let from = references::From {
            group: "",
            kind: "Service",
            namespace: &key.namespace,
            mesh: true,
        };
        let ports = service
            .spec
            .ports
            .iter()
            .map(|port| {
                let reference = BackendObjectReference {
                    group: String::new(),
                    kind: "Service".into(),
                    name: key.name.clone(),
                    namespace: None,
                    port: Some(port.port),
                };
                let built = build
                    .ports
                    .remove(&(key.clone(), port.port))
                    .unwrap_or_default();
                let table = |candidates: Vec<_>| Arc::new(RouteTable::new(candidates));
                let default_backend = resolve_backend(config, from, &reference).state;
                MeshPort {
                    default_rule: Arc::new(HttpRule::forward_to_service(
                        key.clone(),
                        default_backend.clone(),
                    )),
                    port: port.port,
                    name: port.name.clone(),
                    producer: (!built.producer.is_empty()).then(|| table(built.producer)),
                    consumers: built
                        .consumers
                        .into_iter()
                        .map(|(namespace, candidates)| (namespace, table(candidates)))
                        .collect(),
                    default_backend,
                }
            })
            .collect();
        services.push(MeshService {
            service: key,
            cluster_ip: service
                .spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
            ports,
        });
    }
    MeshRoutes::new(services)
}
