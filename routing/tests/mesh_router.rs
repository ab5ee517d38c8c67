//! GAMMA: routes attached to Services, chosen by destination and caller namespace.
// Test helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use http::{Request, Response};
use routing::loader::load_str;
use routing::model::ObjectKey;
use routing::resolve::{Resolution, ResolveOptions, resolve};
use routing::router::{MeshDestination, MeshRouter, RouteError, SelectedBackend, UpstreamError};
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

mod support;
use support::{accepted_reason, outcome};

type Backend = BoxCloneService<Request<String>, Response<String>, UpstreamError>;

fn service(namespace: &str, name: &str, ip: &str, extra_ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{clusterIP: {ip}, ports: [{{name: http, port: 9080}}{extra_ports}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         endpoints: [{{addresses: [{ip}]}}]\nports: [{{name: http, port: 9080}}, {{name: admin, port: 8080}}]\n---\n"
    )
}

fn resolution() -> Resolution {
    let mut yaml = String::new();
    yaml.push_str(&service(
        "bookinfo",
        "reviews",
        "10.96.0.10",
        ", {name: admin, port: 8080}",
    ));
    yaml.push_str(&service("bookinfo", "reviews-v1", "10.0.0.1", ""));
    yaml.push_str(&service("bookinfo", "reviews-v2", "10.0.0.2", ""));
    yaml.push_str(&service("elsewhere", "external", "10.0.0.3", ""));
    yaml.push_str(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-producer, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - matches: [{path: {value: /ext}}]
    backendRefs: [{name: external, namespace: elsewhere, port: 9080}]
  - backendRefs: [{name: reviews-v1, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-for-frontend, namespace: frontend}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, namespace: bookinfo}]
  rules:
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-consumer, value: frontend}]}}]
    backendRefs: [{name: reviews-v2, namespace: bookinfo, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-port, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 7000}]
"#,
    );
    let loaded = load_str("mesh.yaml", &yaml).unwrap();
    resolve(&loaded.config, &ResolveOptions::default())
}

fn router(resolution: &Resolution) -> MeshRouter<Backend> {
    let backend = tower::service_fn(|request: Request<String>| async move {
        let backend = request.extensions().get::<SelectedBackend>().unwrap();
        let consumer = request
            .headers()
            .get("x-consumer")
            .map_or("", |v| v.to_str().unwrap());
        Ok::<_, UpstreamError>(Response::new(format!("{} {consumer}", backend.service)))
    });
    MeshRouter::new(
        Arc::new(resolution.mesh.clone()),
        BoxCloneService::new(backend),
    )
}

async fn send(
    router: &mut MeshRouter<Backend>,
    port: u16,
    caller: &str,
    path: &str,
    version: &str,
) -> Response<String> {
    let mut request = Request::get(path)
        .header("host", "anything.example")
        .header("x-version", version)
        .body(String::new())
        .unwrap();
    request.extensions_mut().insert(MeshDestination {
        service: ObjectKey::new("bookinfo", "reviews"),
        port,
        source_namespace: Some(caller.to_owned()),
    });
    router.ready().await.unwrap().call(request).await.unwrap()
}

async fn try_send(
    router: &mut MeshRouter<Backend>,
    port: u16,
    caller: &str,
) -> Result<Response<String>, RouteError> {
    let mut request = Request::get("/").body(String::new()).unwrap();
    request.extensions_mut().insert(MeshDestination {
        service: ObjectKey::new("bookinfo", "reviews"),
        port,
        source_namespace: Some(caller.to_owned()),
    });
    router.ready().await.unwrap().call(request).await
}

#[tokio::test]
async fn producer_routes_apply_to_every_caller_and_consumer_routes_override_them() {
    let resolution = resolution();
    let mut router = router(&resolution);
    assert_eq!(
        send(&mut router, 9080, "shop", "/", "v1").await.body(),
        "bookinfo/reviews-v1 "
    );
    assert_eq!(
        send(&mut router, 9080, "shop", "/", "v2").await.body(),
        "bookinfo/reviews-v2 "
    );
    assert_eq!(
        send(&mut router, 9080, "shop", "/ext/x", "v1").await.body(),
        "elsewhere/external ",
        "mesh backendRefs cross namespaces without a ReferenceGrant"
    );
    assert_eq!(
        send(&mut router, 9080, "frontend", "/", "v1").await.body(),
        "bookinfo/reviews-v2 frontend",
        "the consumer route replaces the producer route for its namespace"
    );
}

#[tokio::test]
async fn ports_without_routes_forward_to_the_service_and_unknown_destinations_are_404() {
    let resolution = resolution();
    let mut router = router(&resolution);
    assert_eq!(
        send(&mut router, 8080, "shop", "/", "v2").await.body(),
        "bookinfo/reviews ",
        "a route bound to 9080 does not apply to 8080"
    );
    assert_eq!(outcome(&try_send(&mut router, 1, "shop").await), "NoRoute");
    let (service, port) = resolution
        .mesh
        .by_address("10.96.0.10:9080".parse().unwrap())
        .unwrap();
    assert_eq!(
        (service.service.name.as_str(), port.name.as_str()),
        ("reviews", "http")
    );
    let status = |name: &str| accepted_reason(&resolution, name);
    assert_eq!(status("reviews-producer"), "Accepted");
    assert_eq!(status("reviews-for-frontend"), "Accepted");
    assert_eq!(status("wrong-port"), "NoMatchingParent");
}

#[test]
fn a_grpcroute_on_a_service_port_takes_precedence_over_httproutes() {
    let mut yaml = service("bookinfo", "ratings", "10.96.0.20", "");
    yaml.push_str(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ratings-http, namespace: bookinfo, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: ratings-grpc, namespace: bookinfo, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings, port: 9080}]
  rules: [{backendRefs: [{name: ratings, port: 9080}]}]
"#,
    );
    let loaded = load_str("mesh.yaml", &yaml).unwrap();
    let resolution = resolve(&loaded.config, &ResolveOptions::default());
    let reason = |name: &str| accepted_reason(&resolution, name);
    assert_eq!(reason("ratings-grpc"), "Accepted");
    assert_eq!(
        reason("ratings-http"),
        "Conflicted",
        "even though it is older"
    );
}

#[tokio::test]
async fn requests_to_unknown_destinations_are_no_route_errors() {
    let resolution = resolution();
    let mut router = router(&resolution);
    let mut request = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    request.extensions_mut().insert(MeshDestination {
        service: ObjectKey::new("bookinfo", "nowhere"),
        port: 9080,
        source_namespace: None,
    });
    let response = router.ready().await.unwrap().call(request).await;
    assert_eq!(
        outcome(&response),
        "NoRoute",
        "answered UNIMPLEMENTED by the embedder's respond layer"
    );
}
