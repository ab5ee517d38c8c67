//! Istio AuthorizationPolicy: loading from Kubernetes YAML, attachment to a waypoint, and
//! decisions in Istio's order with its matching rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use http::HeaderMap;
use mesh_policy::istio::{Attributes, HttpAttributes, PolicyDenied, WaypointPolicies, authorize};
use routing::loader::load_str;
use routing::model::ObjectKey;

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secrets, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/secret*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: frontend-reads, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/frontend"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/items/{*}"]}}]
    when: [{key: "request.headers[x-tenant]", values: ["a*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-sidecars, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules: [{}]
"#;

fn policies() -> WaypointPolicies {
    let loaded = load_str("policies.yaml", POLICIES).unwrap();
    WaypointPolicies::build(&loaded.config, &ObjectKey::new("shop", "waypoint")).unwrap()
}

fn request<'a>(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> Attributes<'a> {
    Attributes {
        principal: Some("cluster.local/ns/shop/sa/frontend"),
        namespace: Some("shop"),
        service_account: Some("frontend"),
        source_ip: Some("10.0.0.7".parse().unwrap()),
        destination: Some("10.96.0.20:80".parse().unwrap()),
        http: Some(HttpAttributes {
            host: "cart.shop",
            method,
            path,
            headers,
        }),
        ..Attributes::default()
    }
}

#[test]
fn waypoint_policies_attach_by_target_refs_only() {
    let policies = policies();
    assert_eq!(
        policies.len(),
        3,
        "the selector policy is for ztunnels and sidecars"
    );
    let cart = policies.for_service(&ObjectKey::new("shop", "cart"));
    let names: Vec<String> = cart.iter().map(|p| p.key()).collect();
    assert_eq!(
        names,
        ["shop/frontend-reads", "shop/audit-all", "shop/no-secrets"]
    );
    assert_eq!(
        policies.for_service(&ObjectKey::new("shop", "other")).len(),
        2
    );
}

#[test]
fn decisions_follow_istio_order_and_matching() {
    let policies = policies();
    let cart = policies.for_service(&ObjectKey::new("shop", "cart"));
    let decide =
        |attributes: &Attributes<'_>| authorize(cart.iter().map(|p| p.as_ref()), attributes);
    let mut tenant = HeaderMap::new();
    tenant.insert("x-tenant", "acme".parse().unwrap());
    assert_eq!(decide(&request("GET", "/items/7", &tenant)), Ok(()));
    assert_eq!(
        decide(&request("GET", "/secret/key", &tenant)),
        Err(PolicyDenied::Deny("shop/no-secrets".into()))
    );
    assert_eq!(
        decide(&request("POST", "/items/7", &tenant)),
        Err(PolicyDenied::NotAllowed),
        "the ALLOW names GET only"
    );
    assert_eq!(
        decide(&request("GET", "/items/7/parts", &tenant)),
        Err(PolicyDenied::NotAllowed),
        "{{*}} is one segment"
    );
    assert_eq!(
        decide(&request("GET", "/items/7", &HeaderMap::new())),
        Err(PolicyDenied::NotAllowed),
        "when: the header must be present and match"
    );
    let stranger = Attributes {
        principal: Some("cluster.local/ns/other/sa/x"),
        namespace: Some("other"),
        ..request("GET", "/items/7", &tenant)
    };
    assert_eq!(decide(&stranger), Err(PolicyDenied::NotAllowed));
    // Plain TCP: the DENY's path counts as matching, the ALLOW's methods do not.
    let tcp = Attributes {
        http: None,
        ..request("GET", "/", &tenant)
    };
    assert_eq!(
        decide(&tcp),
        Err(PolicyDenied::Deny("shop/no-secrets".into()))
    );
}

#[test]
fn a_malformed_policy_is_an_error_naming_its_field() {
    let typo = POLICIES.replace("targetRefs: [{kind: Service", "targetRef: [{kind: Service");
    let loaded = load_str(
        "policies.yaml",
        &typo.replace("rules: [{to:", "rules: [{too:"),
    )
    .unwrap();
    let error = WaypointPolicies::build(&loaded.config, &ObjectKey::new("shop", "waypoint"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("policies.yaml") && error.contains("shop/no-secrets"),
        "{error}"
    );
}

const JWT_POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: claims, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["https://idp.example/*"]}}]
    when:
    - {key: "request.auth.claims[groups]", values: [ops]}
    - {key: "request.auth.claims[org][tier]", values: [gold]}
    - {key: request.auth.audiences, values: [api]}
    - {key: request.auth.presenter, notValues: [evil-app]}
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: [/public/*]}}]
"#;

#[test]
fn request_principals_and_claim_conditions_decide_with_the_verified_token() {
    let loaded = load_str("jwt.yaml", JWT_POLICIES).unwrap();
    let policies =
        WaypointPolicies::build(&loaded.config, &ObjectKey::new("shop", "waypoint")).unwrap();
    let cart = policies.for_service(&ObjectKey::new("shop", "cart"));
    let headers = HeaderMap::new();
    let claims = |value: serde_json::Value| value.as_object().unwrap().clone();
    let good = claims(serde_json::json!({
        "iss": "https://idp.example", "sub": "alice", "aud": ["api", "web"],
        "azp": "shop-app", "groups": ["dev", "ops"], "org": {"tier": "gold"}
    }));
    let decide = |path: &str, principal: Option<&str>, token: Option<&serde_json::Map<_, _>>| {
        let mut attributes = request("GET", path, &headers);
        attributes.request_principal = principal;
        attributes.request_claims = token;
        authorize(cart.iter().map(|p| p.as_ref()), &attributes)
    };
    let alice = Some("https://idp.example/alice");
    assert_eq!(decide("/items", alice, Some(&good)), Ok(()));
    assert_eq!(
        decide("/items", Some("https://other.example/alice"), Some(&good)),
        Err(PolicyDenied::NotAllowed)
    );
    for (field, value) in [
        ("groups", serde_json::json!(["dev"])),
        ("org", serde_json::json!({"tier": "silver"})),
        ("aud", serde_json::json!("web")),
        ("azp", serde_json::json!("evil-app")),
    ] {
        let mut changed = good.clone();
        changed.insert(field.into(), value);
        assert_eq!(
            decide("/items", alice, Some(&changed)),
            Err(PolicyDenied::NotAllowed),
            "{field}"
        );
    }
    // No token: a negative request-principal list matches, a positive one does not.
    assert_eq!(decide("/public/x", None, None), Ok(()));
    assert_eq!(decide("/items", None, None), Err(PolicyDenied::NotAllowed));
    assert_eq!(
        decide("/public/x", alice, Some(&good)),
        Ok(()),
        "the first rule allows a good token anywhere"
    );
}

#[test]
fn request_authentications_compile_with_their_errors_named() {
    let bad = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: broken, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  jwtRules: [{issuer: https://idp.example, jwks: "not json"}]
"#;
    let loaded = load_str("ra.yaml", bad).unwrap();
    let error = WaypointPolicies::build(&loaded.config, &ObjectKey::new("shop", "waypoint"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("shop/broken") && error.contains("jwks"),
        "{error}"
    );
    let remote = bad.replace(r#"jwks: "not json""#, "jwksUri: https://idp.example/keys");
    let loaded = load_str("ra.yaml", &remote).unwrap();
    let error = WaypointPolicies::build(&loaded.config, &ObjectKey::new("shop", "waypoint"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs a runtime"), "{error}");
    let registry = std::sync::Arc::new(mesh_policy::security::jwt::JwksRegistry::default());
    let runtime = mesh_policy::security::SecurityRuntime {
        remote_jwks: Some(std::sync::Arc::clone(&registry)),
        authorizer: None,
        oidc: None,
    };
    let policies = WaypointPolicies::build_with(
        &loaded.config,
        &ObjectKey::new("shop", "waypoint"),
        &runtime,
    )
    .unwrap();
    assert!(
        policies
            .authentication_for_service(&ObjectKey::new("shop", "cart"))
            .is_some()
    );
    assert!(
        policies
            .authentication_for_service(&ObjectKey::new("shop", "other"))
            .is_none()
    );
    assert_eq!(
        registry.all().len(),
        1,
        "the jwksUri is fetched by the runtime"
    );
}

const CUSTOM: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultConfig: {holdApplicationUntilProxyStarts: true}
    extensionProviders:
    - {name: http-authz, envoyExtAuthzHttp: {service: authz.shop.svc.cluster.local, port: 80, statusOnError: "503", timeout: 1s}}
    - {name: grpc-authz, envoyExtAuthzGrpc: {service: authz.shop.svc.cluster.local, port: 9000}}
    - {name: tracer, zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: via-http, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  action: CUSTOM
  provider: {name: http-authz}
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: via-grpc, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: CUSTOM
  provider: {name: grpc-authz}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: unknown-provider, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  action: CUSTOM
  provider: {name: nowhere}
  rules: [{to: [{operation: {paths: [/x]}}]}]
"#;

#[derive(Debug)]
struct NoExchanges;

impl mesh_policy::security::ext_auth::AuthorizerClient for NoExchanges {
    fn exchange(
        &self,
        _: mesh_policy::security::ext_auth::AuthorizerRequest,
    ) -> mesh_policy::security::ext_auth::AuthorizerFuture {
        Box::pin(async { Err("not in this test".to_owned()) })
    }
}

#[test]
fn custom_policies_find_their_meshconfig_providers_and_fail_closed_without() {
    use mesh_policy::security::ext_auth::AuthorizerProtocol;
    let loaded = load_str("custom.yaml", CUSTOM).unwrap();
    let gateway = ObjectKey::new("shop", "waypoint");
    let runtime = mesh_policy::security::SecurityRuntime {
        remote_jwks: None,
        authorizer: Some(std::sync::Arc::new(NoExchanges)),
        ..Default::default()
    };
    let policies = WaypointPolicies::build_with(&loaded.config, &gateway, &runtime).unwrap();
    let custom = &policies.custom_authorizers().0;
    let http = custom["shop/via-http"].as_ref().unwrap();
    assert_eq!(http.protocol, AuthorizerProtocol::Http);
    assert_eq!(http.target.authority, "authz.shop.svc.cluster.local:80");
    assert_eq!(http.status_on_error, 503);
    assert_eq!(http.timeout, std::time::Duration::from_secs(1));
    let grpc = custom["shop/via-grpc"].as_ref().unwrap();
    assert_eq!(grpc.protocol, AuthorizerProtocol::Grpc);
    assert_eq!(
        grpc.timeout,
        std::time::Duration::from_secs(600),
        "Istio's default"
    );
    let unknown = custom["shop/unknown-provider"].as_ref().unwrap_err();
    assert!(
        unknown.contains("\"nowhere\" is not in MeshConfig"),
        "{unknown}"
    );
    // Without a runtime client, CUSTOM policies have no authorizer (and refuse what they match).
    let bare = WaypointPolicies::build(&loaded.config, &gateway).unwrap();
    assert!(bare.custom_authorizers().0["shop/via-http"].is_err());

    // The engine: a CUSTOM policy refuses only what it matches, when nobody asked its authorizer.
    let cart = policies.for_service(&ObjectKey::new("shop", "cart"));
    let headers = HeaderMap::new();
    let only_http: Vec<_> = cart
        .iter()
        .filter(|p| p.key() != "shop/via-grpc")
        .map(|p| p.as_ref())
        .collect();
    let admin = request("GET", "/admin/panel", &headers);
    assert_eq!(
        authorize(
            only_http.iter().copied(),
            &request("GET", "/items", &headers)
        ),
        Ok(())
    );
    assert_eq!(
        authorize(only_http.iter().copied(), &admin),
        Err(PolicyDenied::NoAuthorizer("shop/via-http".into()))
    );
    let matching: Vec<String> =
        mesh_policy::istio::matching_custom(only_http.iter().copied(), &admin)
            .iter()
            .map(|p| p.key())
            .collect();
    assert_eq!(matching, ["shop/via-http"]);
}
