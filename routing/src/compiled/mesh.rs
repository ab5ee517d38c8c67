//! GAMMA: routes whose parent is a Service (spec §2.6), compiled per Service port and selected
//! by destination, not by `Host`. Producer routes (in the Service's namespace) apply to every
//! caller; consumer routes (in another namespace) apply only to callers from that namespace
//! and override the producer routes for them. Without any route a port forwards to the Service
//! itself.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::backend::Backend;
use super::rule::HttpRule;
use crate::backends::BackendState;
use crate::http_route::RouteTable;
use crate::model::ObjectKey;

/// The compiled routes of one HTTPRoute table.
pub type HttpRouteTable = RouteTable<Arc<HttpRule>>;

/// One port of a mesh Service.
#[derive(Debug, Clone)]
pub struct MeshPort {
    /// The Service port.
    pub port: u16,
    /// The port's name.
    pub name: String,
    /// Routes from the Service's own namespace, for every caller.
    pub producer: Option<Arc<HttpRouteTable>>,
    /// Routes from other namespaces, for callers in that namespace.
    pub consumers: BTreeMap<String, Arc<HttpRouteTable>>,
    /// Where traffic goes when no route applies: the Service port itself.
    pub default_backend: BackendState<Arc<Backend>>,
    /// The implicit rule forwarding to `default_backend` (no filters, no timeouts).
    pub default_rule: Arc<HttpRule>,
}

/// A Service as a mesh destination.
#[derive(Debug, Clone)]
pub struct MeshService {
    /// The Service.
    pub service: ObjectKey,
    /// Its virtual IP, when it has one (not headless).
    pub cluster_ip: Option<IpAddr>,
    /// Its ports.
    pub ports: Vec<MeshPort>,
}

/// Every Service of the configuration as a mesh destination.
#[derive(Debug, Clone, Default)]
pub struct MeshRoutes {
    services: HashMap<ObjectKey, MeshService>,
    by_address: HashMap<SocketAddr, ObjectKey>,
}

impl MeshPort {
    /// The table that applies to a caller from `source_namespace` (the consumer routes of that
    /// namespace, else the producer routes); `None`: no route, forward to `default_backend`.
    pub fn table_for(&self, source_namespace: Option<&str>) -> Option<&Arc<HttpRouteTable>> {
        source_namespace
            .and_then(|namespace| self.consumers.get(namespace))
            .or(self.producer.as_ref())
    }
}

impl MeshRoutes {
    /// Indexes `services` by key and by `clusterIP:port`.
    pub fn new(services: Vec<MeshService>) -> Self {
        let mut routes = MeshRoutes::default();
        for service in services {
            if let Some(ip) = service.cluster_ip {
                for port in &service.ports {
                    routes
                        .by_address
                        .insert(SocketAddr::new(ip, port.port), service.service.clone());
                }
            }
            routes.services.insert(service.service.clone(), service);
        }
        routes
    }

    /// Every Service, in no particular order.
    pub fn services(&self) -> impl Iterator<Item = &MeshService> {
        self.services.values()
    }

    /// The Service `key`.
    pub fn service(&self, key: &ObjectKey) -> Option<&MeshService> {
        self.services.get(key)
    }

    /// The Service and port a request to `clusterIP:port` is for.
    pub fn by_address(&self, address: SocketAddr) -> Option<(&MeshService, &MeshPort)> {
        let service = self.services.get(self.by_address.get(&address)?)?;
        let port = service.ports.iter().find(|p| p.port == address.port())?;
        Some((service, port))
    }

    /// How many Services are indexed.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no Service is indexed.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

impl MeshPort {
    /// Every rule of the port: its producer and consumer routes' and the implicit one.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<HttpRule>> {
        self.producer
            .iter()
            .chain(self.consumers.values())
            .flat_map(|table| table.targets())
            .chain(std::iter::once(&self.default_rule))
    }
}

impl MeshService {
    /// The port numbered `port`.
    pub fn port(&self, port: u16) -> Option<&MeshPort> {
        self.ports.iter().find(|p| p.port == port)
    }
}
