//! Resolution and the Router end to end, sans-IO: YAML → resolve → Router over a recording
//! backend service.
// Test helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use routing::loader::load_str;
use routing::resolve::{Resolution, ResolveOptions, resolve};
use routing::router::{
    ListenerSet, MatchedRoute, RouteError, Router, SelectedBackend, TlsServerName, UpstreamError,
};
use routing::slot::{BackendTarget, ListenerTarget, PolicyCompiler, PolicySlot, RuleTarget};
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

mod support;
use support::{accepted_reason, outcome};

type Backend = BoxCloneService<Request<String>, Response<String>, UpstreamError>;

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: test
  listeners:
  - {name: any, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: wild, port: 8080, protocol: HTTP, hostname: "*.example.net", allowedRoutes: {namespaces: {from: All}}}
  - {name: exact, port: 8080, protocol: HTTP, hostname: "very.specific.com", allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: apps}
spec:
  ports: [{name: http, port: 80, targetPort: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: apps, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
endpoints: [{addresses: ["10.0.0.1"]}]
ports: [{name: http, port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: apps}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: elsewhere}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-1, namespace: elsewhere, labels: {kubernetes.io/service-name: other}}
endpoints: [{addresses: ["10.0.0.2"]}]
ports: [{name: http, port: 8000}]
"#;

fn resolution(routes: &str) -> Resolution {
    let loaded = load_str("test.yaml", &format!("{BASE}\n---\n{routes}")).unwrap();
    resolve(&loaded.config, &ResolveOptions::default())
}

/// What the recording backend saw.
fn router(resolution: &Resolution) -> Router<Backend> {
    let listeners = resolution.gateways[0].listeners.clone();
    let backend = tower::service_fn(|request: Request<String>| async move {
        let backend = request.extensions().get::<SelectedBackend>().unwrap();
        let headers: Vec<String> = request
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
            .collect();
        let body = format!(
            "{} {} {} {} {:?}",
            backend.service,
            backend.endpoints[0].address,
            request.uri(),
            headers.join(","),
            backend.protocol
        );
        Ok::<_, UpstreamError>(Response::new(body))
    });
    Router::new(
        Arc::new(ListenerSet::new(listeners)),
        BoxCloneService::new(backend),
    )
}

async fn get(
    router: &mut Router<Backend>,
    host: &str,
    path: &str,
) -> Result<Response<String>, RouteError> {
    let request = Request::get(path)
        .header("host", host)
        .body(String::new())
        .unwrap();
    router.ready().await.unwrap().call(request).await
}

#[tokio::test]
async fn routes_by_host_and_path_and_answers_the_documented_errors() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-routed, value: shop}]}
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {value: /missing}}]
    backendRefs: [{name: nowhere, port: 80}]
  - matches: [{path: {value: /empty}}]
    backendRefs: [{name: empty, port: 80}]
  - matches: [{path: {value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - matches: [{path: {value: /foreign}}]
    backendRefs: [{name: other, namespace: elsewhere, port: 80}]
"#,
    );
    let mut router = router(&resolution);
    let ok = get(&mut router, "shop.local:8080", "/shop/cart?x=1")
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.body().starts_with(
            "apps/echo 10.0.0.1:9000 /shop/cart?x=1 host=shop.local:8080,x-routed=shop"
        ),
        "{}",
        ok.body()
    );
    assert_eq!(
        outcome(&get(&mut router, "shop.local", "/shopping").await),
        "NoRoute"
    );
    assert_eq!(
        outcome(&get(&mut router, "shop.local", "/missing").await),
        "InvalidBackend"
    );
    assert_eq!(
        outcome(&get(&mut router, "shop.local", "/empty").await),
        "NoEndpoints"
    );
    assert_eq!(
        outcome(&get(&mut router, "shop.local", "/foreign").await),
        "InvalidBackend",
        "cross-namespace backend without a ReferenceGrant"
    );
    let redirect = get(&mut router, "shop.local:8080", "/old/page")
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        redirect.headers()["location"],
        "https://shop.local/old/page"
    );

    let status = resolution
        .statuses
        .iter()
        .find(|s| s.object.name == "shop")
        .unwrap();
    let refs = status.condition("ResolvedRefs").unwrap();
    assert!(!refs.is_true());
    assert_eq!(status.condition("Accepted").unwrap().reason, "Accepted");
}

#[tokio::test]
async fn a_reference_grant_permits_the_cross_namespace_backend() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: other, namespace: elsewhere, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow-apps, namespace: elsewhere}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: "", kind: Service}]
"#,
    );
    let mut router = router(&resolution);
    let response = get(&mut router, "a.b", "/").await.unwrap();
    assert!(
        response
            .body()
            .starts_with("elsewhere/other 10.0.0.2:8000 "),
        "{}",
        response.body()
    );
}

#[tokio::test]
async fn listeners_are_isolated_and_hostnames_intersect() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catch-all, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules: [{matches: [{path: {value: /only-catch-all}}], backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wild, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: ["*.specific.com", "www.example.net"]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"#,
    );
    let mut router = router(&resolution);
    assert_eq!(
        outcome(&get(&mut router, "x.com", "/only-catch-all").await),
        "200"
    );
    assert_eq!(
        outcome(&get(&mut router, "www.example.net", "/only-catch-all").await),
        "200",
        "the wild route on the *.example.net listener serves it"
    );
    assert_eq!(
        outcome(&get(&mut router, "api.example.net", "/only-catch-all").await),
        "NoRoute",
        "belongs to the *.example.net listener, where nothing matches api.example.net"
    );
    assert_eq!(
        outcome(&get(&mut router, "very.specific.com", "/").await),
        "200"
    );
    assert_eq!(
        outcome(&get(&mut router, "foo.specific.com", "/x").await),
        "200",
        "catch-all listener, *.specific.com"
    );
    let gateway = resolution
        .statuses
        .iter()
        .find(|s| s.kind == "Gateway")
        .unwrap();
    let attached: Vec<usize> = gateway
        .listeners
        .iter()
        .map(|l| l.attached_routes)
        .collect();
    assert_eq!(attached, [2, 1, 1]);
}

#[tokio::test]
async fn https_requests_for_another_listener_than_the_sni_are_misdirected() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"#,
    );
    let mut router = router(&resolution);
    let mut request = Request::get("/")
        .header("host", "very.specific.com")
        .body(String::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(TlsServerName("a.example.net".into()));
    let response = router.ready().await.unwrap().call(request).await;
    assert_eq!(outcome(&response), "Misdirected");
}

#[test]
fn routes_not_allowed_or_without_matching_hostnames_are_not_accepted() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-host, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: exact}]
  hostnames: [other.com]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: unknown-listener, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: nope}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: regex, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{matches: [{path: {type: RegularExpression, value: "/a[.*"}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-host, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: ["Bad_Host.example"]
"#,
    );
    let reason = |name: &str| accepted_reason(&resolution, name);
    assert_eq!(reason("no-host"), "NoMatchingListenerHostname");
    assert_eq!(reason("unknown-listener"), "NoMatchingParent");
    assert_eq!(reason("regex"), "UnsupportedValue");
    assert_eq!(reason("bad-host"), "UnsupportedValue");
}

#[tokio::test]
async fn grpc_routes_match_service_and_method_and_answer_grpc_statuses() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules:
  - matches: [{method: {service: pkg.Greeter, method: Hello}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{method: {service: pkg.Broken}}]
    backendRefs: [{name: nowhere, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: method-only, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{matches: [{method: {method: Hello}}]}]
"#,
    );
    let mut router = router(&resolution);
    let grpc = |path: &str| {
        Request::post(path)
            .header("host", "grpc.local")
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap()
    };
    let response = router
        .ready()
        .await
        .unwrap()
        .call(grpc("/pkg.Greeter/Hello"))
        .await
        .unwrap();
    assert!(
        response.body().starts_with("apps/echo "),
        "{}",
        response.body()
    );
    for (path, error) in [
        ("/pkg.Greeter/Other", "NoRoute"),
        ("/pkg.Broken/Any", "InvalidBackend"),
    ] {
        let response = router.ready().await.unwrap().call(grpc(path)).await;
        assert_eq!(outcome(&response), error, "{path}");
    }
    let status = resolution
        .statuses
        .iter()
        .find(|s| s.object.name == "method-only")
        .unwrap();
    assert_eq!(
        status.condition("Accepted").unwrap().reason,
        "UnsupportedValue"
    );
}

#[tokio::test]
async fn regular_expression_paths_and_headers_route() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: regex, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/users/[0-9]+"}, headers: [{type: RegularExpression, name: x-tenant, value: "t-[a-z]+"}]}]
    backendRefs: [{name: echo, port: 80}]
"#,
    );
    let mut router = router(&resolution);
    let send = |path: &str, tenant: &str| {
        Request::get(path)
            .header("host", "a.test")
            .header("x-tenant", tenant)
            .body(String::new())
            .unwrap()
    };
    let ok = router
        .ready()
        .await
        .unwrap()
        .call(send("/users/42", "t-abc"))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    for (path, tenant) in [
        ("/users/x", "t-abc"),
        ("/users/42", "T-ABC"),
        ("/users/42/more", "t-abc"),
    ] {
        let response = router.ready().await.unwrap().call(send(path, tenant)).await;
        assert_eq!(outcome(&response), "NoRoute", "{path} {tenant}");
    }
}

#[tokio::test]
async fn the_older_of_an_httproute_and_a_grpcroute_with_intersecting_hostnames_keeps_the_listener()
{
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-older, namespace: apps, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  hostnames: [api.example.com]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-newer, namespace: apps, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  hostnames: ["*.example.com"]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-elsewhere, namespace: apps, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  hostnames: [web.example.org]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"#,
    );
    let reason = |name: &str| accepted_reason(&resolution, name);
    assert_eq!(reason("grpc-older"), "Accepted");
    assert_eq!(reason("http-newer"), "Conflicted");
    assert_eq!(
        reason("http-elsewhere"),
        "Accepted",
        "no shared hostname, no conflict"
    );
}

/// What the test policy compiler attaches.
#[derive(Debug, Clone, PartialEq)]
struct Tag(String);

#[derive(Debug)]
struct Tagger;

impl PolicyCompiler for Tagger {
    fn listener(&self, listener: &ListenerTarget<'_>, slot: &mut PolicySlot) {
        slot.insert(Tag(format!("{}/{}", listener.gateway, listener.listener)));
    }
    fn rule(&self, rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
        let name = rule.name.unwrap_or("-");
        slot.insert(Tag(format!(
            "{} {} {} {name}",
            rule.kind, rule.route, rule.index
        )));
    }
    fn backend(&self, backend: &BackendTarget<'_>, slot: &mut PolicySlot) {
        slot.insert(Tag(format!("{}:{}", backend.service, backend.port)));
    }
}

#[tokio::test]
async fn policy_slots_are_filled_at_compile_time_and_reach_the_request() {
    let yaml = format!(
        "{BASE}\n---\n{}",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules:
  - name: cart
    matches: [{path: {value: /cart}}]
    backendRefs: [{name: echo, port: 80}]
"#
    );
    let loaded = load_str("test.yaml", &yaml).unwrap();
    let options = ResolveOptions {
        policies: Some(Arc::new(Tagger)),
        ..ResolveOptions::default()
    };
    let resolution = resolve(&loaded.config, &options);
    let listeners = resolution.gateways[0].listeners.clone();
    let backend = tower::service_fn(|request: Request<String>| async move {
        let matched = request.extensions().get::<MatchedRoute>().unwrap();
        let selected = request.extensions().get::<SelectedBackend>().unwrap();
        let tag = |slot: &PolicySlot| slot.get::<Tag>().map(|t| t.0.clone()).unwrap();
        let body = format!(
            "{} | {} | {} | {}",
            tag(&matched.listener.as_ref().unwrap().policy),
            tag(&matched.rule.policy),
            tag(&selected.policy),
            matched.identity()
        );
        Ok::<_, UpstreamError>(Response::new(body))
    });
    let mut router = Router::new(
        Arc::new(ListenerSet::new(listeners)),
        BoxCloneService::new(backend),
    );
    let response = get(&mut router, "shop.local", "/cart").await.unwrap();
    assert_eq!(
        response.body(),
        "infra/gw/any | HTTPRoute apps/shop 0 cart | apps/echo:80 | \
         infra/gw/any HTTPRoute apps/shop rule 0 (cart)"
    );
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_and_forwarded_by_its_authority() {
    let resolution = resolution(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  hostnames: [a.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"#,
    );
    let mut router = router(&resolution);
    let request = Request::get("http://a.example/x")
        .header("host", "b.example")
        .body(String::new())
        .unwrap();
    let response = router.ready().await.unwrap().call(request).await.unwrap();
    assert!(
        response.body().contains("host=a.example"),
        "RFC 9112 §3.2.2: the Host forwarded is the target's authority: {}",
        response.body()
    );
    assert!(
        !response.body().contains("b.example"),
        "{}",
        response.body()
    );
}

#[test]
fn only_gateway_classes_of_our_controller_are_accepted_and_served() {
    let yaml = format!(
        "{BASE}\n---\n{}",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: test}
spec: {controllerName: acme.io/gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours}
spec: {controllerName: tower-mesh.dev/gateway}
"#
    );
    let loaded = load_str("test.yaml", &yaml).unwrap();
    let by_default = resolve(&loaded.config, &ResolveOptions::default());
    assert!(
        by_default.gateways.is_empty(),
        "gw's class `test` belongs to acme.io/gateway"
    );
    let classes: Vec<_> = by_default
        .statuses
        .iter()
        .filter(|s| s.kind == "GatewayClass")
        .map(|s| s.object.name.as_str())
        .collect();
    assert_eq!(
        classes,
        ["ours"],
        "another controller's class gets no status"
    );
    assert_eq!(accepted_reason(&by_default, "ours"), "Accepted");

    let as_acme = ResolveOptions {
        controller_name: "acme.io/gateway".into(),
        ..ResolveOptions::default()
    };
    let resolution = resolve(&loaded.config, &as_acme);
    assert_eq!(resolution.gateways.len(), 1);
    assert_eq!(accepted_reason(&resolution, "test"), "Accepted");
}

#[test]
fn a_gateway_whose_addresses_are_all_unusable_is_not_served_anywhere() {
    let gateway = |name: &str, addresses: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n\
             spec:\n  gatewayClassName: test\n  addresses: {addresses}\n  listeners:\n  \
             - {{name: http, port: 80, protocol: HTTP}}\n---\n"
        )
    };
    let yaml = format!(
        "{}{}",
        gateway(
            "bad",
            "[{type: Hostname, value: gw.example}, {value: not-an-ip}]"
        ),
        gateway("mixed", "[{value: 10.0.0.9}, {value: not-an-ip}]")
    );
    let loaded = load_str("gw.yaml", &yaml).unwrap();
    let resolution = resolve(&loaded.config, &ResolveOptions::default());
    let served: Vec<_> = resolution
        .gateways
        .iter()
        .map(|g| (g.key.name.as_str(), g.addresses.len()))
        .collect();
    assert_eq!(served, [("mixed", 1)], "never on every interface instead");
    let bad = resolution
        .statuses
        .iter()
        .find(|s| s.kind == "Gateway" && s.object.name == "bad")
        .unwrap();
    assert_eq!(
        bad.condition("Programmed").unwrap().reason,
        "AddressNotUsable"
    );
}

/// A `kubernetes.io/tls` Secret `name` with a self-signed certificate made by the openssl CLI.
fn tls_secret(name: &str) -> String {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("routing-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=gw.example",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (scripts/install-test-deps installs it)");
    assert!(status.status.success());
    let encode = |file: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(file)).unwrap())
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\n\
         data: {{tls.crt: {}, tls.key: {}}}\n",
        encode("cert.pem"),
        encode("key.pem")
    )
}

#[test]
fn frontend_validation_with_a_missing_ca_fails_the_https_listeners_closed() {
    let yaml = format!(
        "{}---\n{}",
        tls_secret("gw-cert"),
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: test
  tls:
    frontend:
      default: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: missing}]}}
    backend: {clientCertificateRef: {name: missing-secret}}
  listeners:
  - {name: plain, port: 80, protocol: HTTP}
  - {name: secure, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: gw-cert}]}}
"#
    );
    let loaded = load_str("gw.yaml", &yaml).unwrap();
    let resolution = resolve(&loaded.config, &ResolveOptions::default());
    let served: Vec<_> = resolution.gateways[0]
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(
        served,
        ["plain"],
        "the HTTPS listener fails closed; HTTP is not affected"
    );
    let gateway = resolution
        .statuses
        .iter()
        .find(|s| s.kind == "Gateway")
        .unwrap();
    let secure = gateway
        .listeners
        .iter()
        .find(|l| l.name == "secure")
        .unwrap();
    let reasons: Vec<_> = secure.conditions.iter().map(|c| c.reason).collect();
    assert!(reasons.contains(&"InvalidCACertificateRef"), "{reasons:?}");
    assert_eq!(
        gateway.condition("ResolvedRefs").unwrap().reason,
        "InvalidClientCertificateRef"
    );
}

/// Tags every rule with the number of HTTPRoutes in the configuration it was built from.
#[derive(Debug)]
struct RouteCounter(usize);

impl PolicyCompiler for RouteCounter {
    fn for_config(&self, config: &routing::model::Config) -> Option<Arc<dyn PolicyCompiler>> {
        Some(Arc::new(RouteCounter(config.http_routes.len())))
    }
    fn rule(&self, _rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
        slot.insert(Tag(format!("{} routes", self.0)));
    }
}

#[tokio::test]
async fn a_compiler_built_from_the_configuration_fills_the_slots() {
    let resolution = resolve(
        &load_str(
            "test.yaml",
            &format!(
                "{BASE}\n---\n{}",
                r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: any}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
"#
            ),
        )
        .unwrap()
        .config,
        &ResolveOptions {
            policies: Some(Arc::new(RouteCounter(0))),
            ..ResolveOptions::default()
        },
    );
    let backend = tower::service_fn(|request: Request<String>| async move {
        let matched = request.extensions().get::<MatchedRoute>().unwrap();
        let tag = matched.rule.policy.get::<Tag>().map(|t| t.0.clone());
        Ok::<_, UpstreamError>(Response::new(tag.unwrap_or_default()))
    });
    let mut router = Router::new(
        Arc::new(ListenerSet::new(resolution.gateways[0].listeners.clone())),
        BoxCloneService::new(backend),
    );
    let response = get(&mut router, "shop.local", "/").await.unwrap();
    assert_eq!(response.body(), "1 routes");
}
