//! backendRef → Service port → EndpointSlices → ready endpoints (spec §1.5); Envoy Gateway
//! `Backend`s in [`super::envoy_backend`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::backend_tls::backend_tls;
use super::references::{self, To};
use super::status::Condition;
use crate::backends::BackendState;
use crate::compiled::{Backend, BackendProtocol, Endpoint};
use crate::model::{BackendObjectReference, Config, ObjectKey, Service, ServicePort, TargetPort};

/// A backend reference resolved, or the `ResolvedRefs=False` condition explaining why not.
pub(crate) struct ResolvedBackend {
    pub(crate) state: BackendState<Arc<Backend>>,
    pub(crate) problem: Option<Condition>,
    /// A fallback backend (Envoy Gateway `Backend.spec.fallback`).
    pub(crate) fallback: bool,
}

impl ResolvedBackend {
    /// An unusable reference: `ResolvedRefs=False` with `reason` and `message`.
    pub(crate) fn invalid(reason: &'static str, message: String) -> Self {
        Self::failed(Condition::failed("ResolvedRefs", reason, message))
    }

    /// An unusable reference, with the condition that says why.
    pub(crate) fn failed(problem: Condition) -> Self {
        ResolvedBackend {
            state: BackendState::Invalid,
            problem: Some(problem),
            fallback: false,
        }
    }
}

/// Resolves `reference`, written in an object of `from`.
pub(crate) fn resolve_backend(
    config: &Config,
    from: references::From<'_>,
    reference: &BackendObjectReference,
) -> ResolvedBackend {
    let invalid = ResolvedBackend::invalid;
    if super::envoy_backend::names_envoy_backend(reference) {
        return super::envoy_backend::resolve_envoy_backend(config, from, reference);
    }
    let namespace = reference.namespace.as_deref().unwrap_or(from.namespace);
    let key = ObjectKey::new(namespace, reference.name.clone());
    if !reference.group.is_empty() || reference.kind != "Service" {
        return invalid(
            "InvalidKind",
            format!(
                "backend {key}: kind {}/{} is not supported",
                reference.group, reference.kind
            ),
        );
    }
    let to = To {
        group: "",
        kind: "Service",
        namespace,
        name: &reference.name,
    };
    if !references::permitted(config, from, to) {
        return invalid(
            "RefNotPermitted",
            format!("backend {key}: no ReferenceGrant in {namespace} permits it"),
        );
    }
    let Some(service) = config.services.iter().find(|s| s.metadata.key() == key) else {
        return invalid("BackendNotFound", format!("Service {key} not found"));
    };
    if service.spec.service_type.as_deref() == Some("ExternalName") {
        return invalid(
            "UnsupportedProtocol",
            format!("Service {key}: ExternalName is not supported"),
        );
    }
    let Some(port_number) = reference.port else {
        return invalid(
            "UnsupportedValue",
            format!("backend {key}: a Service reference needs a port"),
        );
    };
    let Some(port) = service.spec.ports.iter().find(|p| p.port == port_number) else {
        return invalid(
            "BackendNotFound",
            format!("Service {key} has no port {port_number}"),
        );
    };
    let tls = match backend_tls(config, service, port) {
        Ok(tls) => tls.map(Arc::new),
        Err(problem) => return ResolvedBackend::failed(problem),
    };
    let endpoints = ready_endpoints(config, service, port);
    let state = if endpoints.is_empty() {
        BackendState::NoEndpoints
    } else {
        BackendState::Ready(Arc::new(Backend {
            service: key,
            port: port_number,
            endpoints: Arc::from(endpoints),
            protocol: protocol_of(port),
            filters: Vec::new(),
            policy: crate::slot::PolicySlot::default(),
            tls,
            cluster_address: service
                .spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, port_number)),
            names: None,
        }))
    };
    ResolvedBackend {
        state,
        problem: None,
        fallback: false,
    }
}

fn protocol_of(port: &ServicePort) -> BackendProtocol {
    match port.app_protocol.as_deref() {
        Some("kubernetes.io/h2c") => BackendProtocol::H2c,
        Some("kubernetes.io/ws" | "kubernetes.io/wss") => BackendProtocol::WebSocket,
        _ => BackendProtocol::Http1,
    }
}

/// The ready endpoints of the Service that an in-cluster host name names —
/// `name.namespace[.svc[.cluster.local]]` — on Service port `port`, as cluster DNS and
/// kube-proxy would reach them (empty when the name is not such a host or the Service, its port
/// or ready endpoints are missing). For the URLs policies name (JWKS, authorizers, token
/// endpoints).
pub fn service_host_endpoints(config: &Config, host: &str, port: u16) -> Vec<SocketAddr> {
    let mut labels = host.split('.');
    let (Some(name), Some(namespace)) = (labels.next(), labels.next()) else {
        return Vec::new();
    };
    let rest: Vec<&str> = labels.collect();
    if !(rest.is_empty() || rest == ["svc"] || rest == ["svc", "cluster", "local"]) {
        return Vec::new();
    }
    service_port_endpoints(config, namespace, name, port)
}

/// The ready endpoints of Service `namespace/name` on Service port `port`.
pub fn service_port_endpoints(
    config: &Config,
    namespace: &str,
    name: &str,
    port: u16,
) -> Vec<SocketAddr> {
    let Some(service) = config
        .services
        .iter()
        .find(|s| s.metadata.name == name && s.metadata.namespace == namespace)
    else {
        return Vec::new();
    };
    let Some(service_port) = service.spec.ports.iter().find(|p| p.port == port) else {
        return Vec::new();
    };
    ready_endpoints(config, service, service_port)
        .into_iter()
        .map(|e| e.address)
        .collect()
}

/// The ready endpoints of `service`'s `port`, from the slices labelled with the Service's name;
/// slice ports are matched to the Service port by name (a numeric `targetPort` is used when the
/// slice port has no number).
fn ready_endpoints(config: &Config, service: &Service, port: &ServicePort) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    let slices = config.endpoint_slices.iter().filter(|slice| {
        slice.metadata.namespace == service.metadata.namespace
            && slice.service_name() == Some(service.metadata.name.as_str())
    });
    for slice in slices {
        let slice_port = slice.ports.iter().find(|p| p.name == port.name);
        let number = slice_port.and_then(|p| p.port).or(match port.target_port {
            Some(TargetPort::Number(number)) => Some(number),
            None if slice.ports.is_empty() => Some(port.port),
            _ => None,
        });
        let Some(number) = number else { continue };
        for endpoint in &slice.endpoints {
            if endpoint.conditions.ready == Some(false) {
                continue;
            }
            let zone: Option<Arc<str>> = endpoint.zone.as_deref().map(Arc::from);
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    endpoints.push(Endpoint {
                        address: SocketAddr::new(ip, number),
                        pod: endpoint.hostname.clone(),
                        zone: zone.clone(),
                    });
                }
            }
        }
    }
    endpoints
}
