//! Fuzzes the ClientTrafficPolicy / BackendTrafficPolicy loader: any text after a fixed
//! Gateway and HTTPRoute is loaded, compiled and attached without a panic, every traffic
//! policy that loads gets a status, and every route rule's slot can be filled.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::TrafficPolicies;
use routing::model::ObjectKey;
use routing::slot::{PolicyCompiler, PolicySlot, RuleTarget};

const BASE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
spec:\n  gatewayClassName: t\n  listeners: [{name: http, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: HTTP}]\n---\n\
apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
spec:\n  parentRefs: [{name: gw}]\n  rules: [{name: a}, {}]\n---\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(loaded) = routing::loader::load_str("fuzz.yaml", &format!("{BASE}{text}")) else {
        return;
    };
    let config = loaded.config;
    let policies = TrafficPolicies::build(&config);
    let traffic_objects = config
        .foreign
        .iter()
        .filter(|o| o.kind == "ClientTrafficPolicy" || o.kind == "BackendTrafficPolicy")
        .filter(|o| o.group() == "gateway.envoyproxy.io")
        .count();
    assert_eq!(policies.statuses().len(), traffic_objects);
    let route = ObjectKey::new("default", "r");
    let backends = routing::backends::WeightedBackends::new(Vec::new());
    for (index, name) in [(0, Some("a")), (1, None)] {
        let target = RuleTarget {
            kind: "HTTPRoute",
            route: &route,
            index,
            name,
            mesh: false,
            backends: &backends,
        };
        // The hooks asked before the slot is filled, then the slot.
        let _ = policies.lookup_family(&target);
        let _ = policies.routes_to_service_address(&target);
        let mut slot = PolicySlot::default();
        policies.rule(&target, &mut slot);
    }
});
