//! The node proxy's state, indexed from a [`LocalConfig`] as ztunnel loads it
//! (`ztunnel-local-config.md` §3, §4.3, §8.1): workloads by uid and by `(network, IP)`,
//! services by `namespace/hostname` and by VIP, endpoints staged from workloads' `services`
//! maps (health-filtered) plus explicit ones, and policies by `namespace/name`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use mesh_policy::l4::{Authorization, Scope};

use super::local_config::{
    HealthPolicy, HealthStatus, LocalConfig, NetworkMode, PortMap, Service, TunnelProtocol,
    Visibility, Workload,
};

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The workload's uid.
    pub workload_uid: String,
    /// Its port map.
    pub ports: PortMap,
}

/// A service with its endpoints.
#[derive(Debug, Clone)]
pub struct ServiceState {
    /// The entry as written.
    pub service: Service,
    /// Endpoints: staged from workloads (health-filtered), then explicit ones.
    pub endpoints: Vec<ServiceEndpoint>,
}

impl ServiceState {
    /// Whether a client in `namespace` may see the service.
    pub fn visible_to(&self, namespace: &str) -> bool {
        self.service.visibility == Visibility::Public || self.service.namespace == namespace
    }
}

/// The loaded state.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    workloads: HashMap<String, Arc<Workload>>,
    by_ip: HashMap<(String, IpAddr), Arc<Workload>>,
    services: HashMap<(String, String), Arc<ServiceState>>,
    /// Services by VIP in file order.
    by_vip: HashMap<(String, IpAddr), Vec<Arc<ServiceState>>>,
    policies: HashMap<String, Arc<Authorization>>,
    /// Services in file order (for CIDR VIPs).
    ordered_services: Vec<Arc<ServiceState>>,
}

impl NodeState {
    /// Indexes `config` in ztunnel's load order: workloads, policies, services.
    pub fn build(config: &LocalConfig) -> Self {
        let mut state = NodeState::default();
        let mut staged: HashMap<(String, String), Vec<(ServiceEndpoint, HealthStatus)>> =
            HashMap::new();
        for workload in &config.workloads {
            let workload = Arc::new(workload.clone());
            if let Some(previous) = state
                .workloads
                .insert(workload.uid.clone(), Arc::clone(&workload))
            {
                state.by_ip.retain(|_, w| !Arc::ptr_eq(w, &previous));
                for endpoints in staged.values_mut() {
                    endpoints.retain(|(e, _)| e.workload_uid != previous.uid);
                }
            }
            if workload.network_mode == NetworkMode::Standard {
                for ip in &workload.workload_ips {
                    let key = (workload.network.clone(), *ip);
                    let keep_existing = state
                        .by_ip
                        .get(&key)
                        .is_some_and(|existing| ip_owner_rank(existing) > ip_owner_rank(&workload));
                    if !keep_existing {
                        state.by_ip.insert(key, Arc::clone(&workload));
                    }
                }
            }
            for (key, ports) in &workload.services {
                if let Some((namespace, hostname)) = key.split_once('/') {
                    staged
                        .entry((namespace.to_owned(), hostname.to_owned()))
                        .or_default()
                        .push((
                            ServiceEndpoint {
                                workload_uid: workload.uid.clone(),
                                ports: ports.clone(),
                            },
                            workload.status,
                        ));
                }
            }
        }
        for policy in &config.policies {
            state
                .policies
                .insert(policy.key(), Arc::new(policy.clone()));
        }
        for service in &config.services {
            let key = (service.namespace.clone(), service.hostname.clone());
            let allow_unhealthy = service
                .load_balancer
                .as_ref()
                .is_some_and(|lb| lb.health_policy == HealthPolicy::AllowAll);
            // A duplicate entry replaces the first and finds the staged endpoints taken.
            let mut endpoints: Vec<ServiceEndpoint> = staged
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, status)| allow_unhealthy || *status == HealthStatus::Healthy)
                .map(|(endpoint, _)| endpoint)
                .collect();
            for explicit in service.endpoints.values() {
                endpoints.retain(|e| e.workload_uid != explicit.workload_uid);
                endpoints.push(ServiceEndpoint {
                    workload_uid: explicit.workload_uid.clone(),
                    ports: explicit.port.clone(),
                });
            }
            let entry = Arc::new(ServiceState {
                service: service.clone(),
                endpoints,
            });
            if let Some(previous) = state.services.insert(key, Arc::clone(&entry)) {
                for services in state.by_vip.values_mut() {
                    services.retain(|s| !Arc::ptr_eq(s, &previous));
                }
                state
                    .ordered_services
                    .retain(|s| !Arc::ptr_eq(s, &previous));
            }
            for vip in &service.vips {
                let services = state
                    .by_vip
                    .entry((vip.network.clone(), vip.ip))
                    .or_default();
                // The same VIP in the same namespace: the later service owns it.
                services.retain(|s| s.service.namespace != service.namespace);
                services.push(Arc::clone(&entry));
            }
            state.ordered_services.push(entry);
        }
        state
    }

    /// The workload with `uid`.
    pub fn workload(&self, uid: &str) -> Option<&Arc<Workload>> {
        self.workloads.get(uid)
    }

    /// Every workload.
    pub fn workloads(&self) -> impl Iterator<Item = &Arc<Workload>> {
        self.workloads.values()
    }

    /// The workload found by `(network, ip)` (never a `HostNetwork` one).
    pub fn workload_by_ip(&self, network: &str, ip: IpAddr) -> Option<&Arc<Workload>> {
        self.by_ip.get(&(network.to_owned(), ip))
    }

    /// The service `namespace/hostname`.
    pub fn service(&self, namespace: &str, hostname: &str) -> Option<&Arc<ServiceState>> {
        self.services
            .get(&(namespace.to_owned(), hostname.to_owned()))
    }

    /// The service a client in `client_namespace` reaches at `(network, ip)`: exact VIPs
    /// first (the client's namespace, then a canonical one, then the first), then CIDR VIPs
    /// (the client's namespace, the longest prefix, canonical).
    pub fn service_by_vip(
        &self,
        network: &str,
        ip: IpAddr,
        client_namespace: &str,
    ) -> Option<&Arc<ServiceState>> {
        if let Some(services) = self.by_vip.get(&(network.to_owned(), ip)) {
            let visible: Vec<&Arc<ServiceState>> = services
                .iter()
                .filter(|s| s.visible_to(client_namespace))
                .collect();
            let chosen = visible
                .iter()
                .find(|s| s.service.namespace == client_namespace)
                .or_else(|| visible.iter().rev().find(|s| s.service.canonical))
                .or_else(|| visible.first());
            if let Some(service) = chosen {
                return Some(service);
            }
        }
        self.ordered_services
            .iter()
            .filter(|s| s.visible_to(client_namespace))
            .filter_map(|s| {
                let prefix = s
                    .service
                    .cidr_vips
                    .iter()
                    .filter(|c| c.network == network && c.cidr.contains(ip))
                    .map(|c| c.cidr.prefix_len())
                    .max()?;
                Some((s, prefix))
            })
            .max_by_key(|(s, prefix)| {
                (
                    s.service.namespace == client_namespace,
                    *prefix,
                    s.service.canonical,
                )
            })
            .map(|(s, _)| s)
    }

    /// The service a client in `client_namespace` reaches by `hostname`: its own namespace's,
    /// else a canonical one, else the first.
    pub fn service_by_hostname(
        &self,
        hostname: &str,
        client_namespace: &str,
    ) -> Option<&Arc<ServiceState>> {
        let matching: Vec<&Arc<ServiceState>> = self
            .ordered_services
            .iter()
            .filter(|s| s.service.hostname == hostname && s.visible_to(client_namespace))
            .collect();
        matching
            .iter()
            .find(|s| s.service.namespace == client_namespace)
            .or_else(|| matching.iter().rev().find(|s| s.service.canonical))
            .or_else(|| matching.first())
            .copied()
    }

    /// The policies that apply to `workload` (§5.5): its namespace's `Namespace`-scoped ones,
    /// every `Global` one, and those it names (unknown names skipped).
    pub fn policies_for<'a>(
        &'a self,
        workload: &'a Workload,
    ) -> impl Iterator<Item = &'a Authorization> + 'a {
        let scoped = self.policies.values().filter(move |p| match p.scope {
            Scope::Global => true,
            Scope::Namespace => p.namespace == workload.namespace,
            Scope::WorkloadSelector => false,
        });
        let named = workload
            .authorization_policies
            .iter()
            .filter_map(move |key| self.policies.get(key));
        scoped.chain(named).map(|p| p.as_ref())
    }
}

/// When several workloads share an `(network, ip)`: a uid with `//Pod/` wins, then HBONE.
fn ip_owner_rank(workload: &Workload) -> (bool, bool) {
    (
        workload.uid.contains("//Pod/"),
        workload.protocol == TunnelProtocol::Hbone,
    )
}
