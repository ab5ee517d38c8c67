//! The YAML loader: CRD defaults, multi-document sources, directories, and errors that name the
//! source, document, object and field.

use routing::loader::{LoadError, load_paths, load_str};
use routing::model::{FromNamespaces, HeaderMatchType, PathMatchType, TargetPort};

const ROUTE_WITHOUT_DEFAULTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - headers:
      - name: x-version
        value: "2"
    backendRefs:
    - name: shop-v2
      port: 8080
  - filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: infra
spec:
  gatewayClassName: example
  listeners:
  - name: http
    port: 80
    protocol: HTTP
"#;

#[test]
fn applies_the_api_server_defaults() {
    let loaded = load_str("inline", ROUTE_WITHOUT_DEFAULTS).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let route = &loaded.config.http_routes[0];
    assert_eq!(route.metadata.namespace, "default");
    let parent = &route.spec.parent_refs[0];
    assert_eq!(
        (parent.group.as_str(), parent.kind.as_str()),
        ("gateway.networking.k8s.io", "Gateway")
    );
    let first = &route.spec.rules[0];
    let path = &first.matches[0].path;
    assert_eq!(
        (path.match_type, path.value.as_str()),
        (PathMatchType::PathPrefix, "/")
    );
    assert_eq!(
        first.matches[0].headers[0].match_type,
        HeaderMatchType::Exact
    );
    let backend = &first.backend_refs[0];
    assert_eq!(
        (
            backend.backend.group.as_str(),
            backend.backend.kind.as_str(),
            backend.weight
        ),
        ("", "Service", 1)
    );
    let second = &route.spec.rules[1];
    assert_eq!(second.matches.len(), 1, "the default match");
    assert_eq!(second.matches[0].path.value, "/");
    let redirect = second.filters[0].request_redirect.as_ref().unwrap();
    assert_eq!(redirect.status_code, 302);

    let gateway = &loaded.config.gateways[0];
    assert_eq!(gateway.metadata.namespace, "infra");
    assert_eq!(
        gateway.spec.listeners[0].allowed_routes.namespaces.from,
        FromNamespaces::Same
    );
}

#[test]
fn unknown_kinds_are_ignored_with_a_warning_and_lists_are_expanded() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: echo}
  spec:
    ports: [{name: http, port: 80, targetPort: web}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: echo}
---
# only a comment
"#;
    let loaded = load_str("list.yaml", text).unwrap();
    assert_eq!(loaded.config.services.len(), 1);
    let port = &loaded.config.services[0].spec.ports[0];
    assert_eq!(port.target_port, Some(TargetPort::Name("web".into())));
    assert_eq!(port.protocol, "TCP");
    assert_eq!(loaded.warnings.len(), 1);
    let warning = loaded.warnings[0].to_string();
    assert!(
        warning.starts_with("list.yaml: document 1: ignored unknown kind Deployment"),
        "{warning}"
    );
}

#[test]
fn a_wrong_field_is_named_with_source_document_and_object() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
        metadata: {name: bad, namespace: shop}\n\
        spec:\n  rules:\n  - backendRefs:\n    - name: x\n      port: seventy\n";
    let error = load_str("routes.yaml", text).unwrap_err();
    let LoadError::InvalidField(invalid) = &error else {
        panic!("{error}");
    };
    assert_eq!((invalid.document, invalid.object.as_str()), (2, "shop/bad"));
    assert!(
        invalid.field.starts_with("spec.rules[0].backendRefs[0]"),
        "{}",
        invalid.field
    );
    let message = error.to_string();
    assert!(
        message.starts_with("routes.yaml: document 2: HTTPRoute shop/bad: field `spec.rules"),
        "{message}"
    );
}

#[test]
fn malformed_yaml_and_nameless_objects_are_rejected() {
    let error = load_str("a.yaml", "kind: Service\nmetadata: {name: x\n").unwrap_err();
    assert!(
        matches!(error, LoadError::Syntax { document: 1, .. }),
        "{error}"
    );
    let error = load_str("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("field `metadata.name`: required"),
        "{error}"
    );
    let error = load_str("c.yaml", "- just\n- a list\n").unwrap_err();
    assert!(matches!(error, LoadError::NotAnObject { .. }), "{error}");
    // A policy-group object is kept as read, so it must be JSON (found by fuzzing: `/config_dump`
    // could not show it).
    let error = load_str(
        "d.yaml",
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b}\n\
         spec: {endpoints: [{ip: {1: x}}]}\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Backend: a mapping key that is not a string"),
        "{error}"
    );
    let tagged = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b}\n\
                  spec: {endpoints: [{!odd zone: a}]}\n";
    assert!(load_str("e.yaml", tagged).is_err(), "a tagged key");
}

#[test]
fn unknown_enum_values_load_as_unsupported_for_resolution_to_report() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  rules:\n  - matches:\n    - path: {type: FancyNew, value: /x}\n";
    let loaded = load_str("r.yaml", text).unwrap();
    let path = &loaded.config.http_routes[0].spec.rules[0].matches[0].path;
    assert_eq!(path.match_type, PathMatchType::Unsupported);
}

#[test]
fn directories_load_sorted_and_the_last_definition_wins() {
    let dir = std::env::temp_dir().join(format!("routing-loader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let service = |port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  ports: [{{port: {port}}}]\n"
        )
    };
    std::fs::write(dir.join("b.yaml"), service(2)).unwrap();
    std::fs::write(dir.join("a.yml"), service(1)).unwrap();
    std::fs::write(dir.join("notes.txt"), "not: config").unwrap();
    let loaded = load_paths(&[&dir]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded.config.services.len(), 1);
    assert_eq!(loaded.config.services[0].spec.ports[0].port, 2);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let missing = load_paths(&["/nonexistent/gateway.yaml"]).unwrap_err();
    assert!(matches!(missing, LoadError::Read { .. }));
}
