//! SecurityPolicy references across namespaces: a Secret (basic auth, API keys) or an
//! authorizer Service in another namespace is used only when a ReferenceGrant there allows
//! SecurityPolicies of the policy's namespace; otherwise the policy cannot be enforced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mesh_policy::security::SecurityPolicies;
use routing::loader::load_str;
use routing::model::ObjectKey;

const OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: vault}
stringData: {.htpasswd: "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  gatewayClassName: test
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: basic, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  basicAuth: {users: {name: users, namespace: vault}}
"#;

const GRANT: &str = r#"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: shop-may-read-users, namespace: vault}
spec:
  from: [{group: gateway.envoyproxy.io, kind: SecurityPolicy, namespace: shop}]
  to: [{group: "", kind: Secret, name: users}]
"#;

fn compiled(yaml: &str) -> Result<(), String> {
    let config = load_str("objects.yaml", yaml).unwrap().config;
    let policies = SecurityPolicies::build(&config);
    let policy = policies
        .for_listener(&ObjectKey::new("shop", "gw"), "http")
        .expect("attached to the Gateway");
    policy.checks.as_ref().map(|_| ()).map_err(Clone::clone)
}

#[test]
fn a_secret_in_another_namespace_needs_a_reference_grant() {
    let error = compiled(OBJECTS).unwrap_err();
    assert!(
        error.contains("Secret vault/users in another namespace needs a ReferenceGrant"),
        "{error}"
    );
    assert_eq!(compiled(&format!("{OBJECTS}{GRANT}")), Ok(()));
    // A grant for another kind, or from another namespace, does not do.
    let for_config_maps = GRANT.replace("kind: Secret", "kind: ConfigMap");
    assert!(compiled(&format!("{OBJECTS}{for_config_maps}")).is_err());
    let from_elsewhere = GRANT.replace("namespace: shop}", "namespace: other}");
    assert!(compiled(&format!("{OBJECTS}{from_elsewhere}")).is_err());
}
