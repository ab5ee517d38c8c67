//! ListenerSets (GEP-1713): admitted by the Gateway's `allowedListeners`, their listeners
//! merged into the Gateway's (conflicts lose to the Gateway and to older sets), routes
//! attached through `kind: ListenerSet` parentRefs, and the status of every object involved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use http::{Request, Response};
use routing::loader::load_str;
use routing::resolve::{Resolution, ResolveOptions, resolve};
use routing::router::{ListenerSet, MatchedRoute, Router, UpstreamError};
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

mod support;
use support::accepted_reason;

const CONFIG: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: test
  allowedListeners: {namespaces: {from: Selector, selector: {matchLabels: {team: yes}}}}
  listeners:
  - {name: main, port: 8080, protocol: HTTP, hostname: main.example}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {team: "yes"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: outsiders}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: a, namespace: team-a, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRef: {name: gw, namespace: infra}
  listeners:
  - {name: web, port: 8080, protocol: HTTP, hostname: a.example}
  - {name: clash, port: 8080, protocol: HTTP, hostname: main.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: late, namespace: team-a, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRef: {name: gw, namespace: infra}
  listeners:
  - {name: web, port: 8080, protocol: HTTP, hostname: a.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: stranger, namespace: outsiders}
spec:
  parentRef: {name: gw, namespace: infra}
  listeners:
  - {name: web, port: 8080, protocol: HTTP, hostname: stranger.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: orphan, namespace: team-a}
spec:
  parentRef: {name: nowhere, namespace: infra}
  listeners:
  - {name: web, port: 8080, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-a, namespace: team-a}
spec:
  parentRefs: [{group: gateway.networking.k8s.io, kind: ListenerSet, name: a, sectionName: web}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-stranger, namespace: outsiders}
spec:
  parentRefs: [{kind: ListenerSet, name: stranger}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-gateway, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: echo, port: 80, namespace: team-a}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: let-infra, namespace: team-a}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: team-a}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: team-a, labels: {kubernetes.io/service-name: echo}}
endpoints: [{addresses: ["10.0.0.1"]}]
ports: [{name: http, port: 80}]
"#;

fn resolution() -> Resolution {
    let loaded = load_str("sets.yaml", CONFIG).unwrap();
    resolve(&loaded.config, &ResolveOptions::default())
}

fn status<'a>(
    resolution: &'a Resolution,
    kind: &str,
    name: &str,
) -> &'a routing::resolve::ObjectStatus {
    resolution
        .statuses
        .iter()
        .find(|s| s.kind == kind && s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}"))
}

#[test]
fn admitted_sets_add_listeners_and_conflicts_lose_to_the_gateway_and_older_sets() {
    let resolution = resolution();
    let served: Vec<String> = resolution.gateways[0]
        .listeners
        .iter()
        .map(|l| match &l.listener_set {
            Some(set) => format!("{set}/{}", l.name),
            None => l.name.clone(),
        })
        .collect();
    assert_eq!(served, ["main", "team-a/a/web"]);

    let gateway = status(&resolution, "Gateway", "gw");
    assert_eq!(gateway.attached_listener_sets, Some(2));
    assert_eq!(
        gateway.listeners.len(),
        1,
        "only the Gateway's own listeners"
    );

    let a = status(&resolution, "ListenerSet", "a");
    assert_eq!(a.condition("Accepted").unwrap().reason, "Accepted");
    let clash = a.listeners.iter().find(|l| l.name == "clash").unwrap();
    let conflicted = clash
        .conditions
        .iter()
        .find(|c| c.condition_type == "Conflicted");
    assert_eq!(conflicted.unwrap().reason, "HostnameConflict");
    let web = a.listeners.iter().find(|l| l.name == "web").unwrap();
    assert_eq!(web.attached_routes, 1);

    let late = status(&resolution, "ListenerSet", "late");
    assert_eq!(
        late.condition("Accepted").unwrap().reason,
        "ListenersNotValid"
    );
    assert_eq!(
        status(&resolution, "ListenerSet", "stranger")
            .condition("Accepted")
            .unwrap()
            .reason,
        "NotAllowed"
    );
    assert_eq!(
        status(&resolution, "ListenerSet", "orphan")
            .condition("Accepted")
            .unwrap()
            .reason,
        "ParentNotAccepted"
    );
    assert_eq!(accepted_reason(&resolution, "to-a"), "Accepted");
    assert_eq!(
        accepted_reason(&resolution, "to-stranger"),
        "NoMatchingParent"
    );
    assert_eq!(accepted_reason(&resolution, "to-gateway"), "Accepted");
}

#[tokio::test]
async fn requests_reach_routes_attached_to_a_listener_set() {
    let resolution = resolution();
    let listeners = resolution.gateways[0].listeners.clone();
    let backend = tower::service_fn(|request: Request<String>| async move {
        let matched = request.extensions().get::<MatchedRoute>().unwrap();
        Ok::<_, UpstreamError>(Response::new(matched.identity().to_string()))
    });
    let mut router = Router::new(
        Arc::new(ListenerSet::new(listeners)),
        BoxCloneService::new(backend),
    );
    let mut get = async |host: &str| {
        let request = Request::get("/")
            .header("host", host)
            .body(String::new())
            .unwrap();
        router
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .map(Response::into_body)
    };
    assert_eq!(
        get("a.example").await.unwrap(),
        "infra/gw ListenerSet team-a/a/web HTTPRoute team-a/to-a rule 0"
    );
    assert_eq!(
        get("main.example").await.unwrap(),
        "infra/gw/main HTTPRoute infra/to-gateway rule 0"
    );
    assert!(
        get("stranger.example").await.is_err(),
        "not admitted, not served"
    );
}
