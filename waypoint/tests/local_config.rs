//! ztunnel's local configuration format as ztunnel reads it (`ztunnel-local-config.md`):
//! what loads, what each field becomes, and what is refused with an error naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mesh_policy::l4::{Action, Scope, StringMatch};
use waypoint::node::local_config::{
    ApplicationTunnelProtocol, Destination, LocalConfig, LocalConfigError, TunnelProtocol,
    parse_local_config,
};

const MESH: &str = r#"
# one client, one server behind a waypoint, one PROXY-tunnelled app
workloads:
- uid: Kubernetes//Pod/shop/frontend
  name: frontend
  namespace: shop
  serviceAccount: frontend
  trustDomain: mesh.test
  workloadIps: ["10.10.0.5"]
  protocol: HBONE
  services: {}
- uid: Kubernetes//Pod/shop/cart
  name: cart
  namespace: shop
  serviceAccount: cart
  trustDomain: mesh.test
  workloadIps: ["10.10.0.6", "fd00::6"]
  protocol: HBONE
  applicationTunnel: {protocol: PROXY, port: 15088}
  authorizationPolicies: [shop/only-frontend]
  services:
    shop/cart.shop.svc.cluster.local: {80: 8080, 443: 8443}
- uid: Kubernetes//Pod/shop/wp
  name: wp
  namespace: shop
  serviceAccount: wp
  trustDomain: mesh.test
  workloadIps: ["10.10.0.7"]
  protocol: HBONE
  services:
    shop/wp.shop.svc.cluster.local: {15008: 15008}
services:
- name: cart
  namespace: shop
  hostname: cart.shop.svc.cluster.local
  vips: ["/10.96.1.1"]
  ports: {80: 8080, 443: 0}
  waypoint: {destination: shop/wp.shop.svc.cluster.local, hboneMtlsPort: 15008}
- name: wp
  namespace: shop
  hostname: wp.shop.svc.cluster.local
  vips: ["/10.96.1.2"]
  ports: {15008: 15008}
policies:
- name: only-frontend
  namespace: shop
  scope: WorkloadSelector
  action: Allow
  dryRun: false
  rules:
  - - - principals: [!Exact mesh.test/ns/shop/sa/frontend]
    - - destinationPorts: [15088]
"#;

fn parse(text: &str) -> Result<LocalConfig, LocalConfigError> {
    parse_local_config("local.yaml", text)
}

fn error(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

#[test]
fn a_mesh_loads_with_every_field_as_written() {
    let config = parse(MESH).unwrap();
    assert_eq!(config.workloads.len(), 3);
    let cart = &config.workloads[1];
    assert_eq!(cart.protocol, TunnelProtocol::Hbone);
    assert_eq!(cart.identity_uri(), "spiffe://mesh.test/ns/shop/sa/cart");
    assert_eq!(cart.workload_ips.len(), 2);
    assert_eq!(cart.capacity, 1, "default capacity");
    let tunnel = cart.application_tunnel.as_ref().unwrap();
    assert_eq!(
        (tunnel.protocol, tunnel.port),
        (ApplicationTunnelProtocol::Proxy, Some(15088))
    );
    assert_eq!(
        cart.services["shop/cart.shop.svc.cluster.local"][&443],
        8443
    );
    let waypoint = config.services[0].waypoint.as_ref().unwrap();
    assert_eq!(
        waypoint.destination,
        Destination::Hostname {
            namespace: "shop".into(),
            hostname: "wp.shop.svc.cluster.local".into()
        }
    );
    assert_eq!(config.services[0].ports[&443], 0);
    let policy = &config.policies[0];
    assert_eq!(
        (policy.scope, policy.action),
        (Scope::WorkloadSelector, Action::Allow)
    );
    assert_eq!(
        policy.rules()[0][0][0].principals,
        [StringMatch::Exact("mesh.test/ns/shop/sa/frontend".into())]
    );
}

#[test]
fn empty_documents_are_an_empty_configuration() {
    for text in ["", "# nothing\n", "{}", "workloads:\n"] {
        assert_eq!(parse(text).unwrap(), LocalConfig::default(), "{text:?}");
    }
}

#[test]
fn unknown_and_misspelled_fields_are_refused_by_name() {
    let top = error("workloads: []\nextras: 1\n");
    assert!(top.contains("unknown field `extras`"), "{top}");
    let entry = error("workloads:\n- {workloadIps: [], namespace: a, services: {}, bogus: 1}\n");
    assert!(
        entry.contains("workloads[0]") && entry.contains("bogus"),
        "{entry}"
    );
    let snake =
        error("workloads:\n- {workloadIps: [], namespace: a, services: {}, trust_domain: x}\n");
    assert!(snake.contains("trust_domain"), "{snake}");
    let service = error(
        "services:\n- {name: a, namespace: a, hostname: a, vips: [], ports: {}, addresses: []}\n",
    );
    assert!(
        service.contains("services[0]") && service.contains("addresses"),
        "{service}"
    );
    let missing = error("workloads:\n- {workloadIps: [], services: {}}\n");
    assert!(missing.contains("missing field `namespace`"), "{missing}");
}

#[test]
fn values_are_spelled_exactly_as_ztunnel_spells_them() {
    let lower =
        error("workloads:\n- {workloadIps: [], namespace: a, services: {}, protocol: hbone}\n");
    assert!(lower.contains("hbone"), "{lower}");
    let quoted_port = error(
        "services:\n- {name: a, namespace: a, hostname: a, vips: [], ports: {\"80\": 8080}}\n",
    );
    assert!(quoted_port.contains("80"), "{quoted_port}");
    let bare_vip =
        error("services:\n- {name: a, namespace: a, hostname: a, vips: [10.0.0.1], ports: {}}\n");
    assert!(bare_vip.contains("network/IP"), "{bare_vip}");
    let cidr_ip = error("workloads:\n- {workloadIps: [10.0.0.1/32], namespace: a, services: {}}\n");
    assert!(cidr_ip.contains("workloads[0]"), "{cidr_ip}");
    let numeric_name =
        error("workloads:\n- {workloadIps: [], namespace: a, services: {}, name: 123}\n");
    assert!(numeric_name.contains("workloads[0]"), "{numeric_name}");
    let no_slash = error(
        "workloads:\n- {workloadIps: [], namespace: a, services: {}, waypoint: {destination: wp, hboneMtlsPort: 15008}}\n",
    );
    assert!(no_slash.contains("workloads[0]"), "{no_slash}");
    let two_documents = error("workloads: []\n---\nservices: []\n");
    assert!(!two_documents.is_empty());
}

#[test]
fn a_services_key_without_a_namespace_is_refused() {
    let refused = parse("workloads:\n- {workloadIps: [], namespace: a, services: {cart: {}}}\n");
    assert_eq!(
        refused,
        Err(LocalConfigError::NamespacedHostname {
            origin: "local.yaml".into(),
            index: 0,
            key: "cart".into()
        })
    );
}

#[test]
fn gateway_destinations_are_addresses_before_hostnames() {
    let config = parse(
        "workloads:\n- workloadIps: []\n  namespace: a\n  services: {}\n  waypoint: {destination: ns/10.0.0.9, hboneMtlsPort: 15008}\n",
    )
    .unwrap();
    let waypoint = config.workloads[0].waypoint.as_ref().unwrap();
    assert_eq!(
        waypoint.destination,
        Destination::Address {
            network: "ns".into(),
            ip: "10.0.0.9".parse().unwrap()
        }
    );
}
