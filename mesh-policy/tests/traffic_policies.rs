//! ClientTrafficPolicy and BackendTrafficPolicy attachment, precedence, merging and status
//! (policy.md §0.1), from Kubernetes YAML.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mesh_policy::traffic::TrafficPolicies;
use mesh_policy::traffic::attach::AttachedBackendTraffic;
use mesh_policy::traffic::client_ip::{ClientIpDetection, XffTrust};
use mesh_policy::traffic::path::EscapedSlashes;
use routing::loader::load_str;
use routing::model::{Config, ObjectKey};
use routing::resolve::ObjectStatus;
use routing::slot::{PolicyCompiler, PolicySlot, RuleTarget};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: test
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: other, port: 8080, protocol: HTTP, hostname: other.example}
  - {name: admin, port: 9090, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: gw}]
  rules:
  - name: cart
    backendRefs: [{name: shop, port: 80}]
  - backendRefs: [{name: shop, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: blog}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: blog, port: 80}]}]
"#;

fn build(policies: &str) -> TrafficPolicies {
    let config = load_str("objects.yaml", &format!("{BASE}{policies}"))
        .unwrap()
        .config;
    TrafficPolicies::build(&config)
}

fn status<'a>(statuses: &'a [ObjectStatus], name: &str) -> &'a ObjectStatus {
    statuses
        .iter()
        .find(|s| s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {name}: {statuses:#?}"))
}

fn conditions(status: &ObjectStatus) -> Vec<(String, &'static str, String)> {
    status
        .ancestors
        .iter()
        .flat_map(|a| {
            a.conditions.iter().map(|c| {
                (
                    format!("{}:{}", a.parent_ref, c.condition_type),
                    c.reason,
                    c.message.clone(),
                )
            })
        })
        .collect()
}

/// The policy names applying to rule `index` of route `route` on listener `http` of `gw`.
fn rule_policy(
    policies: &TrafficPolicies,
    route: &str,
    index: usize,
    name: Option<&str>,
) -> Option<String> {
    let key = ObjectKey::new("default", route);
    let target = RuleTarget {
        kind: "HTTPRoute",
        route: &key,
        index,
        name,
        mesh: false,
        backends: &routing::backends::WeightedBackends::new(Vec::new()),
    };
    let mut slot = PolicySlot::default();
    policies.rule(&target, &mut slot);
    let attached = slot.get::<AttachedBackendTraffic>()?;
    let gateway = ObjectKey::new("default", "gw");
    attached
        .for_listener(Some((&gateway, "http")))
        .map(|t| t.policy.policy.name.clone())
}

/// A BackendTrafficPolicy `spec` compiled on its own, as the CRD rules check it.
fn compile_spec(
    yaml: &str,
) -> Result<mesh_policy::traffic::compile::CompiledBackendTraffic, String> {
    let key = ObjectKey::new("default", "policy");
    serde_yaml_ng::from_str::<mesh_policy::traffic::model::BackendTrafficPolicySpec>(yaml)
        .map_err(|e| e.to_string())
        .and_then(|spec| spec.compile(&key, &Config::default()))
}

const GATEWAY_BTP: &str = r#"
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: gateway-wide, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  rateLimit:
    local:
      rules: [{limit: {requests: 10, unit: Minute}}]
"#;

#[test]
fn the_most_specific_backend_policy_replaces_the_rest() {
    let policies = build(&format!(
        r#"{GATEWAY_BTP}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: shop-route, creationTimestamp: "2026-01-02T00:00:00Z"}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}}]
  faultInjection: {{abort: {{httpStatus: 503, percentage: 50}}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: cart-rule, creationTimestamp: "2026-01-03T00:00:00Z"}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop, sectionName: cart}}]
  circuitBreaker: {{maxParallelRequests: 5}}
"#
    ));
    assert_eq!(
        rule_policy(&policies, "shop", 0, Some("cart")).as_deref(),
        Some("cart-rule")
    );
    assert_eq!(
        rule_policy(&policies, "shop", 1, None).as_deref(),
        Some("shop-route")
    );
    assert_eq!(
        rule_policy(&policies, "blog", 0, None).as_deref(),
        Some("gateway-wide")
    );
    let statuses = policies.statuses();
    let overridden = conditions(status(&statuses, "gateway-wide"));
    assert!(
        overridden
            .iter()
            .any(|(on, reason, message)| on == "default/gw:Overridden"
                && *reason == "Overridden"
                && message.contains("HTTPRoute default/shop")),
        "{overridden:?}"
    );
    let accepted = conditions(status(&statuses, "cart-rule"));
    assert!(
        accepted
            .iter()
            .any(|(on, reason, _)| on == "default/gw:Accepted" && *reason == "Accepted"),
        "{accepted:?}"
    );
}

#[test]
fn a_route_policy_with_merge_type_is_merged_into_the_gateway_policy() {
    let policies = build(&format!(
        r#"{GATEWAY_BTP}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: shop-merged, creationTimestamp: "2026-01-02T00:00:00Z"}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}}]
  mergeType: StrategicMerge
  circuitBreaker: {{maxParallelRequests: 3}}
"#
    ));
    let key = ObjectKey::new("default", "shop");
    let mut slot = PolicySlot::default();
    policies.rule(
        &RuleTarget {
            kind: "HTTPRoute",
            route: &key,
            index: 1,
            name: None,
            mesh: false,
            backends: &routing::backends::WeightedBackends::new(Vec::new()),
        },
        &mut slot,
    );
    let gateway = ObjectKey::new("default", "gw");
    let traffic = slot
        .get::<AttachedBackendTraffic>()
        .unwrap()
        .for_listener(Some((&gateway, "http")))
        .unwrap();
    assert_eq!(traffic.policy.policy.name, "shop-merged");
    assert!(
        traffic.rate_limit.is_some(),
        "the Gateway's rate limit is kept"
    );
    assert_eq!(
        traffic
            .policy
            .circuit_breaker
            .map(|c| c.max_parallel_requests),
        Some(3)
    );
    let statuses = policies.statuses();
    let merged = conditions(status(&statuses, "shop-merged"));
    assert!(
        merged
            .iter()
            .any(|(_, reason, message)| *reason == "Merged"
                && message.contains("default/gateway-wide")),
        "{merged:?}"
    );
    let gateway_wide = conditions(status(&statuses, "gateway-wide"));
    assert!(
        !gateway_wide
            .iter()
            .any(|(_, reason, _)| *reason == "Overridden"),
        "{gateway_wide:?}"
    );
}

#[test]
fn the_older_policy_wins_a_conflict_and_invalid_policies_harm_no_other() {
    let policies = build(
        r#"
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: newer, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  clientIPDetection: {xForwardedFor: {numTrustedHops: 1}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: older, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  clientIPDetection: {xForwardedFor: {numTrustedHops: 2}}
  path: {escapedSlashesAction: RejectRequest}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: typo}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: admin}]
  clientIpDetection: {}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: not-yet}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: blog}]
  loadBalancer: {type: RoundRobin}
  telemetry: {tracing: {customTags: {}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: impossible}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: blog}]
  rateLimit:
    local:
      rules:
      - {limit: {requests: 1, unit: Minute}}
      - {limit: {requests: 2, unit: Minute}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: nowhere}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]
  faultInjection: {delay: {fixedDelay: 1s}}
"#,
    );
    let gateway = ObjectKey::new("default", "gw");
    let admin = policies.client_for_listener(&gateway, "admin").unwrap();
    assert_eq!(
        admin.policy.name, "older",
        "the typo'd policy is attached nowhere"
    );
    assert_eq!(
        admin.detection,
        ClientIpDetection::XForwardedFor {
            trust: XffTrust::Hops(2),
            append: true
        }
    );
    assert_eq!(
        admin.normalization.path.escaped_slashes,
        EscapedSlashes::Reject
    );
    let statuses = policies.statuses();
    let newer = conditions(status(&statuses, "newer"));
    assert!(
        newer.iter().any(
            |(_, reason, message)| *reason == "Conflicted" && message.contains("default/older")
        ),
        "{newer:?}"
    );
    let typo = conditions(status(&statuses, "typo"));
    assert!(
        typo.iter()
            .any(|(on, reason, message)| on == "default/gw/admin:Accepted"
                && *reason == "Invalid"
                && message.contains("clientIpDetection")),
        "{typo:?}"
    );
    let not_yet = conditions(status(&statuses, "not-yet"));
    assert!(
        not_yet
            .iter()
            .any(|(_, reason, message)| *reason == "Invalid"
                && message.contains("spec.telemetry")
                && !message.contains("loadBalancer")),
        "{not_yet:?}"
    );
    let impossible = conditions(status(&statuses, "impossible"));
    assert!(
        impossible
            .iter()
            .any(|(_, _, message)| message.contains("without clientSelectors")),
        "{impossible:?}"
    );
    let nowhere = conditions(status(&statuses, "nowhere"));
    assert!(
        nowhere
            .iter()
            .any(|(_, reason, _)| *reason == "TargetNotFound"),
        "{nowhere:?}"
    );
    assert_eq!(
        rule_policy(&policies, "blog", 0, None),
        None,
        "invalid policies attach nowhere"
    );
}

#[test]
fn listener_policies_override_the_gateway_but_not_on_a_shared_http_port() {
    let policies = build(
        r#"
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: everywhere, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: admin-only}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: admin}]
  headers: {withUnderscoresAction: Allow}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: shared-port}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: http}]
"#,
    );
    let gateway = ObjectKey::new("default", "gw");
    assert_eq!(
        policies
            .client_for_listener(&gateway, "admin")
            .unwrap()
            .policy
            .name,
        "admin-only"
    );
    assert_eq!(
        policies
            .client_for_listener(&gateway, "http")
            .unwrap()
            .policy
            .name,
        "everywhere"
    );
    let statuses = policies.statuses();
    let shared = conditions(status(&statuses, "shared-port"));
    assert!(
        shared
            .iter()
            .any(|(_, _, message)| message.contains("on the same port, which is not allowed")),
        "{shared:?}"
    );
    let everywhere = conditions(status(&statuses, "everywhere"));
    assert!(
        everywhere
            .iter()
            .any(|(_, reason, message)| *reason == "Overridden"
                && message.contains("default/gw/admin")),
        "{everywhere:?}"
    );
}

#[test]
fn retries_compile_to_the_route_retry_loop_with_envoy_gateway_defaults() {
    use mesh_policy::traffic::model::BackendTrafficPolicySpec;
    let compile = |yaml: &str| {
        let spec: BackendTrafficPolicySpec = serde_yaml_ng::from_str(yaml).unwrap();
        spec.compile(&ObjectKey::new("default", "p"), &Config::default())
    };
    let defaults = compile("retry: {}").unwrap().retry.unwrap();
    assert_eq!(defaults.retry.codes, [503]);
    assert_eq!(defaults.retry.attempts, 2);
    assert_eq!(defaults.retry.backoff, std::time::Duration::from_millis(25));
    assert_eq!(defaults.per_try_timeout, None);
    // numAttemptsPerPriority: levels left out after every two tries.
    let gateway_errors = compile(
        "retry: {numRetries: 5, numAttemptsPerPriority: 2, retryOn: {triggers: [gateway-error, retriable-4xx]}, perRetry: {timeout: 250ms, backOff: {baseInterval: 100ms}}}",
    )
    .unwrap()
    .retry
    .unwrap();
    assert_eq!(gateway_errors.retry.codes, [409, 502, 503, 504]);
    assert_eq!(gateway_errors.retry.attempts, 5);
    assert_eq!(gateway_errors.retry.attempts_per_priority, Some(2));
    assert_eq!(defaults.retry.attempts_per_priority, None);
    assert_eq!(
        gateway_errors.per_try_timeout,
        Some(std::time::Duration::from_millis(250))
    );
    let grpc = compile("retry: {retryOn: {triggers: [unavailable, cancelled, 5xx]}}")
        .unwrap()
        .retry
        .unwrap();
    assert_eq!(grpc.retry.grpc_statuses, [14, 1]);
    let error =
        serde_yaml_ng::from_str::<BackendTrafficPolicySpec>("retry: {numAttemptsPerPriority: -1}")
            .unwrap_err()
            .to_string();
    assert!(error.contains("numAttemptsPerPriority"), "{error}");
    assert_eq!(grpc.retry.codes.len(), 100);
    assert!(compile("retry: {retryOn: {triggers: [sometimes]}}").is_err());
}

#[test]
fn client_header_settings_and_proxy_protocol_compile_with_the_crd_rules() {
    use mesh_policy::traffic::compile::ProxyProtocolMode;
    use mesh_policy::traffic::headers::RequestIdPolicy;
    use mesh_policy::traffic::model::ClientTrafficPolicySpec;
    let key = ObjectKey::new("default", "edge");
    let compile = |yaml: &str| {
        serde_yaml_ng::from_str::<ClientTrafficPolicySpec>(yaml)
            .map_err(|e| e.to_string())
            .and_then(|spec| spec.compile(&key, &Config::default()))
    };
    let defaults = compile("{}").unwrap();
    assert_eq!(defaults.request_id, RequestIdPolicy::Generate);
    assert!(defaults.rate_limit_headers && defaults.early_request_headers.is_empty());
    assert_eq!(defaults.proxy_protocol, None);
    for (yaml, expected) in [
        (
            "headers: {preserveXRequestID: true}",
            RequestIdPolicy::PreserveOrGenerate,
        ),
        ("headers: {requestID: Preserve}", RequestIdPolicy::Preserve),
        ("headers: {requestID: Disable}", RequestIdPolicy::Disable),
        (
            "headers: {requestID: PreserveOrGenerate}",
            RequestIdPolicy::PreserveOrGenerate,
        ),
    ] {
        assert_eq!(compile(yaml).unwrap().request_id, expected, "{yaml}");
    }
    assert_eq!(defaults.buffer_limit, 32 * 1024);
    assert_eq!(defaults.max_accept_per_socket_event, None);
    assert_eq!(
        compile("connection: {maxAcceptPerSocketEvent: 0}")
            .unwrap()
            .max_accept_per_socket_event,
        Some(0)
    );
    assert_eq!(
        compile("connection: {bufferLimit: 1Mi}")
            .unwrap()
            .buffer_limit,
        1 << 20
    );
    assert!(!defaults.match_backend_scheme);
    assert!(
        compile("scheme: MatchBackend")
            .unwrap()
            .match_backend_scheme
    );
    assert!(!compile("scheme: Preserve").unwrap().match_backend_scheme);
    for (yaml, expected) in [
        ("scheme: Upstream", "spec.scheme: unsupported value"),
        (
            "connection: {bufferLimit: 0}",
            "spec.connection.bufferLimit: a quantity",
        ),
        (
            "connection: {bufferLimit: lots}",
            "spec.connection.bufferLimit: a quantity",
        ),
        ("headers: {requestID: Always}", "unsupported value"),
        (
            "headers: {requestID: Generate, preserveXRequestID: true}",
            "contradicts",
        ),
        (
            "headers: {earlyRequestHeaders: {set: [{name: 'a b', value: x}]}}",
            "earlyRequestHeaders.set",
        ),
        (
            "headers: {earlyRequestHeaders: {removeOnMatch: [{type: RegularExpression, value: '('}]}}",
            "spec.headers.earlyRequestHeaders.removeOnMatch",
        ),
        (
            "headers: {lateResponseHeaders: {removeOnMatch: [{type: Glob, value: x}]}}",
            "unsupported value \"Glob\"",
        ),
        (
            "headers: {earlyRequestHeaders: {replace: []}}",
            "unknown field",
        ),
        (
            "headers: {maxRequestHeaderLimit: 9000}",
            "maxRequestHeaderLimit",
        ),
        (
            "timeout: {http: {requestHeadersReceivedTimeout: 0s}}",
            "positive duration",
        ),
        (
            "timeout: {http: {streamIdleTimeout: soon}}",
            "spec.timeout.http.streamIdleTimeout",
        ),
        (
            "timeout: {tcp: {idleTimeout: forever}}",
            "spec.timeout.tcp.idleTimeout",
        ),
        (
            "timeout: {http: {idleTimeout: later}}",
            "spec.timeout.http.idleTimeout: \"later\" is not a duration",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
    assert!(
        !compile("headers: {disableRateLimitHeaders: true}")
            .unwrap()
            .rate_limit_headers
    );
    let limits = compile(
        "headers: {maxRequestHeaderLimit: 2}\ntimeout: {http: {requestHeadersReceivedTimeout: 2s}}",
    )
    .unwrap();
    assert_eq!(limits.max_request_header_bytes, Some(2048));
    assert_eq!(
        limits.request_headers_timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(
        compile("proxyProtocol: {}").unwrap().proxy_protocol,
        Some(ProxyProtocolMode::Required)
    );
    assert_eq!(
        compile("enableProxyProtocol: true").unwrap().proxy_protocol,
        Some(ProxyProtocolMode::Required)
    );
    assert_eq!(
        compile("proxyProtocol: {optional: true}")
            .unwrap()
            .proxy_protocol,
        Some(ProxyProtocolMode::Optional)
    );
    assert_eq!(
        compile("enableProxyProtocol: false")
            .unwrap()
            .proxy_protocol,
        None
    );
}

#[test]
fn compressors_compile_with_their_minimum_length() {
    use mesh_policy::traffic::compile::{Compression, quantity};
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.compression);
    assert_eq!(
        compile("compressor: [{type: Gzip}, {type: Zstd, minContentLength: 1Ki}]").unwrap(),
        Some(Compression {
            gzip: true,
            brotli: false,
            zstd: true,
            min_length: 1024
        })
    );
    assert_eq!(
        compile("compression: [{type: Brotli}]")
            .unwrap()
            .map(|c| c.brotli),
        Some(true)
    );
    assert_eq!(compile("{}").unwrap(), None);
    for (yaml, expected) in [
        ("compressor: [{type: Lz4}]", "unsupported value"),
        (
            "compressor: [{type: Gzip, minContentLength: 10}]",
            "at least 30",
        ),
        (
            "compressor: [{type: Gzip, minContentLength: lots}]",
            "not a quantity",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
    let q = |text: &str| quantity(&serde_yaml_ng::Value::String(text.into()));
    assert_eq!(q("30"), Some(30));
    assert_eq!(q("2Mi"), Some(2 << 20));
    assert_eq!(q("1k"), Some(1000));
    assert_eq!(q("1Ti"), None);
    assert_eq!(q("99999999999999999999Gi"), None);
}

#[test]
fn response_overrides_compile_with_the_crd_rules() {
    use mesh_policy::traffic::model::BackendTrafficPolicySpec;
    use mesh_policy::traffic::response_override::ResponseSource;
    let key = ObjectKey::new("shop", "pages");
    let config = load_str(
        "pages.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pages, namespace: shop}\n\
         data: {response.body: sorry}\n",
    )
    .unwrap()
    .config;
    let compile = |yaml: &str| {
        serde_yaml_ng::from_str::<BackendTrafficPolicySpec>(yaml)
            .map_err(|e| e.to_string())
            .and_then(|spec| spec.compile(&key, &config))
            .map(|compiled| compiled.response_override)
    };
    let rules = compile(
        "responseOverride:\n\
         - match: {statusCodes: [{value: 404}, {type: Range, range: {start: 500, end: 599}}]}\n  \
           source: Local\n  \
           response: {body: {type: ValueRef, valueRef: {kind: ConfigMap, name: pages}}}",
    )
    .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].source, ResponseSource::Local);
    assert_eq!(rules[0].edits.body.as_deref(), Some(&b"sorry"[..]));
    assert!(compile("{}").unwrap().is_empty());
    for (yaml, expected) in [
        (
            "responseOverride: [{match: {statusCodes: []}, response: {statusCode: 200}}]",
            "spec.responseOverride[0].match.statusCodes: at least one",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{type: Range, range: {start: 504, end: 500}}]}, response: {}}]",
            "start after end",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{value: 700}]}, response: {}}]",
            "700 is not an HTTP status",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{value: 404}]}, source: Elsewhere, response: {}}]",
            "source: unsupported value",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{value: 404}]}, response: {body: {type: ValueRef, valueRef: {kind: ConfigMap, name: missing}}}}]",
            "ConfigMap shop/missing not found",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{value: 404}]}, redirect: {hostname: x.example}}]",
            "redirect: not enforced",
        ),
        (
            "responseOverride: [{match: {statusCodes: [{value: 404}]}, response: {body: {inline: a, valueRef: {kind: ConfigMap, name: pages}}}}]",
            "type Inline needs inline (and no valueRef)",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

#[test]
fn connect_timeouts_and_upstream_proxy_protocol_compile_with_the_crd_rules() {
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.upstream.connect_timeout);
    assert_eq!(
        compile("timeout: {tcp: {connectTimeout: 250ms}}").unwrap(),
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(
        compile("timeout: {http: {requestTimeout: 1s}}").unwrap(),
        None
    );
    let error = compile("timeout: {tcp: {connectTimeout: 0s}}").unwrap_err();
    assert!(error.contains("spec.timeout.tcp.connectTimeout"), "{error}");
    let proxy = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.upstream.proxy_protocol);
    assert_eq!(
        proxy("proxyProtocol: {version: V1}").unwrap(),
        Some(routing::router::UpstreamProxyProtocol::V1)
    );
    let error = proxy("proxyProtocol: {version: V3}").unwrap_err();
    assert!(error.contains("spec.proxyProtocol.version"), "{error}");
}

#[test]
fn connection_reuse_limits_compile_into_the_upstream_connection() {
    let compiled = compile_spec(
        "timeout: {http: {connectionIdleTimeout: 2s, maxConnectionDuration: 1m, streamIdleTimeout: 5s}}\n\
         circuitBreaker: {maxRequestsPerConnection: 3}",
    )
    .unwrap();
    let upstream = compiled.upstream_connection().unwrap();
    assert_eq!(
        upstream.idle_timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(
        upstream.max_lifetime,
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(
        upstream.stream_idle_timeout,
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(upstream.max_requests, Some(3));
    assert!(
        compile_spec("retry: {numRetries: 1}")
            .unwrap()
            .upstream_connection()
            .is_none()
    );
    for (yaml, field) in [
        (
            "circuitBreaker: {maxRequestsPerConnection: 0}",
            "spec.circuitBreaker.maxRequestsPerConnection",
        ),
        (
            "timeout: {http: {connectionIdleTimeout: 0s}}",
            "spec.timeout.http.connectionIdleTimeout",
        ),
        (
            "timeout: {http: {maxConnectionDuration: soon}}",
            "spec.timeout.http.maxConnectionDuration",
        ),
    ] {
        let error = compile_spec(yaml).unwrap_err();
        assert!(error.contains(field), "{yaml}: {error}");
    }
}

#[test]
fn a_tcp_route_takes_its_backend_policy_with_the_gateway_as_ancestor() {
    let policies = build(
        r#"
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{name: gw, sectionName: admin}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: db-connect}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: TCPRoute, name: db}]
  timeout: {tcp: {connectTimeout: 300ms}}
"#,
    );
    let key = ObjectKey::new("default", "db");
    let target = RuleTarget {
        kind: "TCPRoute",
        route: &key,
        index: 0,
        name: None,
        mesh: false,
        backends: &routing::backends::WeightedBackends::new(Vec::new()),
    };
    let mut slot = PolicySlot::default();
    policies.rule(&target, &mut slot);
    let attached = slot
        .get::<AttachedBackendTraffic>()
        .expect("the TCPRoute's rule carries its policy");
    let gateway = ObjectKey::new("default", "gw");
    let traffic = attached.for_listener(Some((&gateway, "admin"))).unwrap();
    assert_eq!(traffic.policy.policy.name, "db-connect");
    assert_eq!(
        traffic.policy.upstream.connect_timeout,
        Some(std::time::Duration::from_millis(300))
    );
    let statuses = policies.statuses();
    let accepted = conditions(status(&statuses, "db-connect"));
    assert!(
        accepted
            .iter()
            .any(|(on, reason, _)| on.starts_with("default/gw") && *reason == "Accepted"),
        "{accepted:?}"
    );
    assert_eq!(
        rule_policy(&policies, "db", 0, None),
        None,
        "an HTTPRoute of the same name does not take it"
    );
}

#[test]
fn http_upgrades_compile_to_lower_case_tokens_and_connect() {
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.upgrades);
    let upgrades = compile("httpUpgrade: [{type: websocket}, {type: SPDY/3.1}]")
        .unwrap()
        .unwrap();
    let allowed = &upgrades.allowed;
    assert!(allowed.allows("spdy/3.1") && allowed.allows("WebSocket"));
    assert!(!allowed.allows("h2c"));
    assert_eq!(upgrades.connect, None);
    assert_eq!(compile("useClientProtocol: true").unwrap(), None);
    let connect = |yaml: &str| compile(yaml).unwrap().unwrap().connect;
    assert_eq!(
        connect("httpUpgrade: [{type: CONNECT}]"),
        Some(routing::router::ConnectTunnels { terminate: false })
    );
    assert_eq!(
        connect("httpUpgrade: [{type: CONNECT, connect: {terminate: true}}]"),
        Some(routing::router::ConnectTunnels { terminate: true })
    );
    for (yaml, expected) in [
        (
            "httpUpgrade: [{type: websocket, connect: {terminate: true}}]",
            "spec.httpUpgrade[0].connect: only with type CONNECT",
        ),
        (
            "httpUpgrade: [{type: websocket}, {type: 'a b'}]",
            "spec.httpUpgrade[1].type",
        ),
        ("httpUpgrade: [{type: ''}]", "not an upgrade token"),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

#[test]
fn routing_type_compiles_to_service_routing() {
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.service_routing);
    assert!(compile("routingType: Service").unwrap());
    assert!(!compile("routingType: Endpoint").unwrap());
    assert!(!compile("useClientProtocol: true").unwrap());
    let error = compile("routingType: ClusterIP").unwrap_err();
    assert!(error.contains("spec.routingType"), "{error}");
}

#[test]
fn socket_buffer_limits_compile_within_bounds() {
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.upstream.socket_buffer);
    assert_eq!(
        compile("connection: {socketBufferLimit: 48Ki}").unwrap(),
        Some(48 * 1024)
    );
    assert_eq!(
        compile("connection: {socketBufferLimit: 65536}").unwrap(),
        Some(65536)
    );
    for (yaml, expected) in [
        ("connection: {socketBufferLimit: 512}", "from 1Ki to 1Gi"),
        ("connection: {socketBufferLimit: 2Gi}", "from 1Ki to 1Gi"),
        (
            "connection: {socketBufferLimit: lots}",
            "spec.connection.socketBufferLimit",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

#[test]
fn preconnect_compiles_within_the_crd_bounds() {
    let compile =
        |yaml: &str| compile_spec(yaml).map(|compiled| compiled.upstream.preconnect_percent);
    assert_eq!(
        compile("connection: {preconnect: {perEndpointPercent: 150}}").unwrap(),
        Some(150)
    );
    for (yaml, expected) in [
        (
            "connection: {preconnect: {perEndpointPercent: 99}}",
            "within 100–300",
        ),
        (
            "connection: {preconnect: {perEndpointPercent: 301}}",
            "within 100–300",
        ),
        (
            "connection: {preconnect: {predictivePercent: 200}}",
            "spec.connection.preconnect.predictivePercent",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

#[test]
fn per_endpoint_connection_limits_compile() {
    let compile = |yaml: &str| {
        compile_spec(yaml).map(|compiled| compiled.upstream.max_connections_per_endpoint)
    };
    assert_eq!(
        compile("circuitBreaker: {perEndpoint: {maxConnections: 4}}").unwrap(),
        Some(4)
    );
    assert_eq!(compile("circuitBreaker: {perEndpoint: {}}").unwrap(), None);
    let error = compile("circuitBreaker: {perEndpoint: {maxConnections: 0}}").unwrap_err();
    assert!(error.contains("perEndpoint.maxConnections"), "{error}");
}

#[test]
fn predictive_preconnect_needs_round_robin_or_random_and_at_least_100() {
    let compile = |yaml: &str| compile_spec(yaml).map(|compiled| compiled.predictive_percent);
    assert_eq!(
        compile("loadBalancer: {type: Random}\nconnection: {preconnect: {predictivePercent: 150}}"),
        Ok(Some(150))
    );
    for (yaml, expected) in [
        (
            "loadBalancer: {type: RoundRobin}\nconnection: {preconnect: {predictivePercent: 50}}",
            "at least 100",
        ),
        (
            "loadBalancer: {type: LeastRequest}\nconnection: {preconnect: {predictivePercent: 200}}",
            "only with loadBalancer type RoundRobin or Random",
        ),
        (
            "connection: {preconnect: {predictivePercent: 200}}",
            "only with loadBalancer type RoundRobin or Random",
        ),
    ] {
        let error = compile(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

#[test]
fn http3_is_an_empty_setting_that_needs_tls_1_3() {
    use mesh_policy::traffic::model::ClientTrafficPolicySpec;
    let key = ObjectKey::new("default", "edge");
    let compile = |yaml: &str| {
        serde_yaml_ng::from_str::<ClientTrafficPolicySpec>(yaml)
            .map_err(|e| e.to_string())
            .and_then(|spec| spec.compile(&key, &Config::default()))
    };
    assert!(!compile("{}").unwrap().http3);
    assert!(compile("http3: {}").unwrap().http3);
    assert!(
        compile("http3: {}\ntls: {minVersion: \"1.2\", maxVersion: \"1.3\"}")
            .unwrap()
            .http3
    );
    let refused = compile("http3: {}\ntls: {maxVersion: \"1.2\"}").unwrap_err();
    assert!(
        refused.contains("spec.http3") && refused.contains("TLS 1.3"),
        "{refused}"
    );
    let unknown = compile("http3: {allowHTTP3: true}").unwrap_err();
    assert!(unknown.contains("allowHTTP3"), "{unknown}");
}
