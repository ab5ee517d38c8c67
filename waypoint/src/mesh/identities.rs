//! The identity each mesh endpoint must present: from its Pod's service account
//! (`spiffe://<trust domain>/ns/<namespace>/sa/<serviceAccount>`), the Pod found by the
//! EndpointSlice's `targetRef` or by its address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hbone::identity::SpiffeId;
use routing::model::{Config, ObjectKey};

/// Identities by endpoint address.
#[derive(Debug, Clone, Default)]
pub struct EndpointIdentityMap(HashMap<IpAddr, SpiffeId>);

impl EndpointIdentityMap {
    /// Every Pod's addresses, and every slice endpoint whose `targetRef` names a Pod.
    pub fn build(config: &Config, trust_domain: &str) -> Self {
        let mut map = HashMap::new();
        let identity = |namespace: &str, account: &str| {
            format!("spiffe://{trust_domain}/ns/{namespace}/sa/{account}")
                .parse::<SpiffeId>()
                .ok()
        };
        let mut pods = HashMap::new();
        for pod in &config.pods {
            let Some(id) = identity(&pod.metadata.namespace, pod.service_account()) else {
                continue;
            };
            for address in pod.addresses() {
                if let Ok(ip) = address.parse() {
                    map.insert(ip, id.clone());
                }
            }
            pods.insert(pod.metadata.key(), id);
        }
        for slice in &config.endpoint_slices {
            for endpoint in &slice.endpoints {
                let Some(target) = &endpoint.target_ref else {
                    continue;
                };
                if target.kind != "Pod" {
                    continue;
                }
                let namespace = target
                    .namespace
                    .as_deref()
                    .unwrap_or(&slice.metadata.namespace);
                let Some(id) = pods.get(&ObjectKey::new(namespace, target.name.clone())) else {
                    continue;
                };
                for address in &endpoint.addresses {
                    if let Ok(ip) = address.parse() {
                        map.insert(ip, id.clone());
                    }
                }
            }
        }
        EndpointIdentityMap(map)
    }

    /// The identity of the endpoint at `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<&SpiffeId> {
        self.0.get(&ip)
    }
}

/// The identities the HBONE connector expects, swapped on reload: the endpoint's Pod
/// identity; an endpoint without a known Pod is not dialled (no identity can be checked).
pub(crate) fn expected_identities(
    map: Arc<ArcSwap<EndpointIdentityMap>>,
) -> impl Fn(SocketAddr) -> Option<Vec<SpiffeId>> + Send + Sync + 'static {
    move |endpoint: SocketAddr| map.load().get(endpoint.ip()).map(|id| vec![id.clone()])
}
