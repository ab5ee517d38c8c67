//! The node proxy's outbound and inbound decisions on ztunnel's documented cases
//! (`ztunnel-local-config.md` §6, §7, §9), sans-IO.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;

use hbone::connect_headers::Authority;
use hbone::identity::SpiffeId;
use http::StatusCode;
use waypoint::node::inbound::{Inbound, InboundConnect};
use waypoint::node::local_config::{Workload, parse_local_config};
use waypoint::node::outbound::{HboneRoute, ILLEGAL_PORTS, Outbound, OutboundError, OutboundRoute};
use waypoint::node::state::NodeState;

const NODE: &str = r#"
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default, serviceAccount: client,
   trustDomain: cluster.local, workloadIps: ["10.244.0.10"], protocol: HBONE, services: {}}
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  trustDomain: cluster.local
  workloadIps: ["10.244.0.11"]
  protocol: HBONE
  services:
    default/server.default.svc.cluster.local: {80: 8080}
- uid: Kubernetes//Pod/default/legacy
  name: legacy
  namespace: default
  workloadIps: ["10.244.0.13"]
  services:
    default/legacy.default.svc.cluster.local: {}
- uid: Kubernetes//Pod/default/waypoint
  name: waypoint
  namespace: default
  serviceAccount: waypoint
  trustDomain: cluster.local
  workloadIps: ["10.244.0.12"]
  protocol: HBONE
  services:
    default/waypoint.default.svc.cluster.local: {15008: 15008}
- uid: Kubernetes//Pod/default/echo
  name: echo
  namespace: default
  serviceAccount: echo
  trustDomain: cluster.local
  workloadIps: ["10.244.0.21"]
  protocol: HBONE
  applicationTunnel: {protocol: PROXY, port: 15088}
  authorizationPolicies: ["default/deny-sandbox-and-plaintext"]
  services:
    default/echo.default.svc.cluster.local: {80: 8080}
services:
- {name: server, namespace: default, hostname: server.default.svc.cluster.local,
   vips: ["/10.96.0.20"], ports: {80: 8080}}
- {name: legacy, namespace: default, hostname: legacy.default.svc.cluster.local,
   vips: ["/10.96.0.50"], ports: {80: 9090}}
- name: shop
  namespace: default
  hostname: shop.default.svc.cluster.local
  vips: ["/10.96.0.25"]
  ports: {80: 8080}
  waypoint: {destination: default/waypoint.default.svc.cluster.local, hboneMtlsPort: 15008}
- {name: waypoint, namespace: default, hostname: waypoint.default.svc.cluster.local,
   vips: ["/10.96.0.30"], ports: {15008: 15008}}
- {name: echo, namespace: default, hostname: echo.default.svc.cluster.local,
   vips: ["/10.96.0.40"], ports: {80: 8080}}
policies:
- name: deny-sandbox-and-plaintext
  namespace: default
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - namespaces: [!Exact sandbox]
  - - - notPrincipals: [!Presence []]
"#;

fn state() -> NodeState {
    NodeState::build(&parse_local_config("node.yaml", NODE).unwrap())
}

fn workload<'a>(state: &'a NodeState, uid: &str) -> &'a Workload {
    state.workload(uid).unwrap()
}

fn outbound(state: &NodeState, destination: &str) -> Result<OutboundRoute, OutboundError> {
    let client = workload(state, "Kubernetes//Pod/default/client");
    let outbound = Outbound {
        state,
        source: client,
        network: "",
        illegal_ports: &ILLEGAL_PORTS,
    };
    outbound.resolve(destination.parse().unwrap(), &mut |_| 0)
}

fn hbone(next_hop: &str, authority: &str, identity: &str, via_waypoint: bool) -> OutboundRoute {
    OutboundRoute::Hbone(HboneRoute {
        next_hop: next_hop.parse().unwrap(),
        authority: authority.parse().unwrap(),
        expected_identities: vec![identity.to_owned()],
        via_waypoint,
    })
}

#[test]
fn outbound_destinations_resolve_as_ztunnel_resolves_them() {
    let state = state();
    assert_eq!(
        outbound(&state, "10.96.0.20:80").unwrap(),
        hbone(
            "10.244.0.11:15008",
            "10.244.0.11:8080",
            "spiffe://cluster.local/ns/default/sa/server",
            false
        ),
        "a VIP picks an endpoint and translates the port"
    );
    assert_eq!(
        outbound(&state, "10.96.0.20:81"),
        Err(OutboundError::NoHealthyUpstream {
            service: "default/server.default.svc.cluster.local".into(),
            port: 81
        })
    );
    assert_eq!(
        outbound(&state, "10.244.0.11:9000").unwrap(),
        hbone(
            "10.244.0.11:15008",
            "10.244.0.11:9000",
            "spiffe://cluster.local/ns/default/sa/server",
            false
        ),
        "a workload by IP keeps the port"
    );
    assert_eq!(
        outbound(&state, "10.96.0.50:80").unwrap(),
        OutboundRoute::Tcp("10.244.0.13:9090".parse().unwrap()),
        "a TCP workload gets plain TCP"
    );
    assert_eq!(
        outbound(&state, "192.0.2.1:443").unwrap(),
        OutboundRoute::Passthrough("192.0.2.1:443".parse().unwrap())
    );
    assert_eq!(
        outbound(&state, "127.0.0.1:15008"),
        Err(OutboundError::SelfCall("127.0.0.1:15008".parse().unwrap()))
    );
    assert_eq!(
        outbound(&state, "10.96.0.25:80").unwrap(),
        hbone(
            "10.244.0.12:15008",
            "10.96.0.25:80",
            "spiffe://cluster.local/ns/default/sa/waypoint",
            true
        ),
        "a service with a waypoint goes to the waypoint with the VIP untranslated"
    );
}

fn inbound_connect(
    state: &NodeState,
    local: &str,
    dialled: &str,
    authority: &str,
    identity: Option<&SpiffeId>,
) -> Result<waypoint::node::inbound::InboundRoute, waypoint::node::inbound::InboundError> {
    let local = workload(state, local);
    let inbound = Inbound {
        state,
        local,
        network: "",
        illegal_ports: &ILLEGAL_PORTS,
        localhost_app_tunnel: true,
    };
    let authority: Authority = authority.parse().unwrap();
    inbound.hbone(&InboundConnect {
        authority: &authority,
        dialled: dialled.parse().unwrap(),
        peer: "10.244.0.10:40000".parse().unwrap(),
        identity,
    })
}

#[test]
fn inbound_tunnels_are_checked_translated_and_authorized() {
    let state = state();
    let client: SpiffeId = "spiffe://cluster.local/ns/default/sa/client"
        .parse()
        .unwrap();
    let tester: SpiffeId = "spiffe://cluster.local/ns/sandbox/sa/tester"
        .parse()
        .unwrap();
    let server = "Kubernetes//Pod/default/server";
    let route = inbound_connect(
        &state,
        server,
        "10.244.0.11:15008",
        "10.244.0.11:8080",
        Some(&client),
    )
    .unwrap();
    assert_eq!(
        route.upstream,
        "10.244.0.11:8080".parse::<SocketAddr>().unwrap()
    );
    assert!(route.proxy_header.is_none());

    let mismatch = inbound_connect(
        &state,
        server,
        "10.244.0.11:15008",
        "10.96.0.20:80",
        Some(&client),
    )
    .unwrap_err();
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        mismatch.to_string(),
        "ip mismatch: 10.244.0.11 != 10.96.0.20"
    );

    let by_name = inbound_connect(
        &state,
        server,
        "10.244.0.11:15008",
        "server.default.svc.cluster.local:80",
        Some(&client),
    )
    .unwrap();
    assert_eq!(
        by_name.upstream,
        "10.244.0.11:8080".parse::<SocketAddr>().unwrap()
    );

    let waypoint = "Kubernetes//Pod/default/waypoint";
    let through = inbound_connect(
        &state,
        waypoint,
        "10.244.0.12:15008",
        "10.96.0.25:80",
        Some(&client),
    )
    .unwrap();
    assert_eq!(
        through.upstream,
        "10.244.0.12:80".parse::<SocketAddr>().unwrap(),
        "the waypoint accepts the VIP of a service it serves"
    );

    let echo = "Kubernetes//Pod/default/echo";
    let tunnelled = inbound_connect(
        &state,
        echo,
        "10.244.0.21:15008",
        "10.244.0.21:8080",
        Some(&client),
    )
    .unwrap();
    assert_eq!(
        tunnelled.upstream,
        "127.0.0.1:15088".parse::<SocketAddr>().unwrap()
    );
    let header = tunnelled.proxy_header.unwrap();
    assert_eq!(header.peer_identity(), Some(client.as_str()));
    assert_eq!(
        header.addresses.destination(),
        Some("10.244.0.21:8080".parse().unwrap())
    );

    let denied = inbound_connect(
        &state,
        echo,
        "10.244.0.21:15008",
        "10.244.0.21:8080",
        Some(&tester),
    )
    .unwrap_err();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        denied.to_string(),
        "explicitly denied by: default/deny-sandbox-and-plaintext"
    );

    let self_call = inbound_connect(
        &state,
        server,
        "10.244.0.11:15008",
        "10.244.0.11:15006",
        Some(&client),
    )
    .unwrap_err();
    assert_eq!(self_call.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn plaintext_inbound_is_authorized_without_an_identity() {
    let state = state();
    let plaintext = |local: &str| {
        Inbound {
            state: &state,
            local: workload(&state, local),
            network: "",
            illegal_ports: &ILLEGAL_PORTS,
            localhost_app_tunnel: true,
        }
        .plaintext(
            "10.244.0.10:40000".parse().unwrap(),
            "10.244.0.21:8080".parse().unwrap(),
        )
    };
    assert!(
        plaintext("Kubernetes//Pod/default/echo").is_err(),
        "notPrincipals: [!Presence] denies plaintext"
    );
    assert_eq!(
        plaintext("Kubernetes//Pod/default/server").unwrap(),
        "10.244.0.21:8080".parse::<SocketAddr>().unwrap()
    );
}
