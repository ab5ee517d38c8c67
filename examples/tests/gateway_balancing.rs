//! BackendTrafficPolicy `loadBalancer` through the `gateway` binary, against four echo pods of
//! one Service (127.0.0.11–14): round robin splits evenly, random and least request spread
//! within statistical tolerance, and a consistent hash — by source address, header, query
//! parameter or a generated session cookie — keeps each key on one pod while spreading keys;
//! an `endpointOverride` header pins a request to the pod it names, unless that pod is not
//! the Service's or not healthy; with `slowStart`, a pod added by a reload gets a small share
//! at first and a full one once the window has passed. Active checks — HTTP, and gRPC
//! against grpcio health servers — take a pod out and bring it back. `zoneAware` with the
//! gateway's `--zone`: a local zone with less than its share keeps half its requests,
//! `force` keeps them all, too small a backend ignores zones, `weightedZones` split 80/20
//! (a consistent hash too, each key keeping its pod), and without `--zone` nothing is local.
//! `BackendUtilization`: pods reporting their load (ORCA `endpoint-load-metrics`) take
//! requests in proportion to `rps / utilization` once the blackout has passed, the reports
//! removed from answers unless `keepResponseHeaders`. Envoy Gateway `Backend`s with `fallback`:
//! the fallback pod takes what the primary pods' health (active checks) cannot — 7 % with one
//! of three out, 54 % with two, all with three — and, under `numAttemptsPerPriority`, retries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gateway_support::*;
use tokio::net::TcpListener;
use tokio::process::Command;

const PODS: u8 = 4;

/// What a test pod answers: `/healthz` 200 while `healthy` (else 503); every other path
/// `{"pod": …}` with 200, or 500 while `failing`, and the ORCA load report `orca` when set.
#[derive(Debug, Default)]
struct PodState {
    orca: std::sync::Mutex<Option<String>>,
    sick: AtomicBool,
    failing: AtomicBool,
}

/// Four pods listening on 127.0.0.11–14 at one port; returns the port and their states.
async fn controlled_pods() -> (u16, Vec<Arc<PodState>>) {
    'port: loop {
        let first = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for pod in 2..=PODS {
            match TcpListener::bind(format!("127.0.0.{}:{port}", 10 + pod)).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'port,
            }
        }
        let mut states = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let state = Arc::new(PodState::default());
            states.push(Arc::clone(&state));
            tokio::spawn(serve_pod(listener, format!("pod-{}", index + 1), state));
        }
        return (port, states);
    }
}

async fn serve_pod(listener: TcpListener, name: String, state: Arc<PodState>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    while let Ok((stream, _)) = listener.accept().await {
        let name = name.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                let (status, body) = if request.uri().path() == "/healthz" {
                    if state.sick.load(Ordering::SeqCst) {
                        (503, "sick".to_owned())
                    } else {
                        (200, "ok".to_owned())
                    }
                } else {
                    let status = if state.failing.load(Ordering::SeqCst) {
                        500
                    } else {
                        200
                    };
                    (
                        status,
                        format!("{{\"pod\": \"{name}\", \"status\": {status}}}\n"),
                    )
                };
                let mut response =
                    http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                if let Some(report) = state.orca.lock().unwrap().as_deref() {
                    response
                        .headers_mut()
                        .insert("endpoint-load-metrics", report.parse().unwrap());
                }
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Four echo-like pods that always answer.
async fn echo_pods() -> u16 {
    controlled_pods().await.0
}

/// The Service `pods` with the four endpoints.
fn pods_service(port: u16) -> String {
    pods_service_of(port, PODS)
}

/// The Service `pods` with its first `count` endpoints.
fn pods_service_of(port: u16, count: u8) -> String {
    let endpoints: Vec<String> = (1..=count)
        .map(|pod| format!("{{addresses: [127.0.0.{}], hostname: pod-{pod}}}", 10 + pod))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: pods}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: pods-1, labels: {{kubernetes.io/service-name: pods}}}}\n\
         addressType: IPv4\nendpoints: [{}]\nports: [{{name: http, port: {port}}}]\n---\n",
        endpoints.join(", ")
    )
}

/// A route `name` for host `name.example` to the pods, and a BackendTrafficPolicy with `spec`
/// (YAML flow-style fields) on it.
fn route_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
         rules: [{{backendRefs: [{{name: pods, port: 80}}]}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
         {spec}\n---\n"
    )
}

/// A route `name` for host `name.example` to the pods, and a BackendTrafficPolicy on it.
fn balanced(name: &str, load_balancer: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
         rules: [{{backendRefs: [{{name: pods, port: 80}}]}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
         loadBalancer: {load_balancer}\n---\n"
    )
}

/// The pods that answered `count` requests sent on one curl connection with `args` (`pod-2!`:
/// pod-2 answered 500; `503`: the gateway answered 503 itself).
async fn pods_answering(args: &[&str], url: &str, count: usize) -> Vec<String> {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-S", "--max-time", "20", "-w", "\n"])
        .args(args);
    for _ in 0..count {
        command.arg(url);
    }
    let output = command.output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            if line == "no healthy upstream" {
                return "503".to_owned();
            }
            let body: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            match body["status"].as_u64() {
                Some(500) => format!("{}!", body["pod"].as_str().unwrap()),
                _ => body["pod"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

fn counts(pods: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for pod in pods {
        *counts.entry(pod.clone()).or_insert(0) += 1;
    }
    counts
}

/// Replaces the configuration in `dir` by `config` plus a route for `probe.example`
/// (atomically, as Kubernetes does), then waits until the gateway at `url` serves the probe:
/// the reload has happened.
async fn reload_with_probe(dir: &std::path::Path, config: &str, url: &str) {
    let probe = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: probe}\nspec:\n  \
                 parentRefs: [{name: gw, sectionName: http}]\n  hostnames: [probe.example]\n  \
                 rules: [{backendRefs: [{name: pods, port: 80}]}]\n---\n";
    let staged = dir.join("config.staged");
    std::fs::write(&staged, format!("{config}{probe}")).unwrap();
    std::fs::rename(&staged, dir.join("config.yaml")).unwrap();
    wait_until("the reload", || async {
        curl(&["-H", "host: probe.example", url]).await.0 == 200
    })
    .await;
}

/// Pearson's chi-square statistic of `counts` against an even split over the four pods.
fn chi_square(counts: &BTreeMap<String, usize>, total: usize) -> f64 {
    let expected = total as f64 / f64::from(PODS);
    (1..=PODS)
        .map(|pod| {
            let seen = counts.get(&format!("pod-{pod}")).copied().unwrap_or(0) as f64;
            (seen - expected).powi(2) / expected
        })
        .sum()
}

/// The chi-square value with 3 degrees of freedom exceeded with probability 0.001.
const CHI_SQUARE_3_P001: f64 = 16.27;

#[tokio::test(flavor = "multi_thread")]
async fn load_balancers_split_and_stick_as_configured() {
    let port = free_port();
    let pods = echo_pods().await;
    let dir = scratch("balancing");
    let mut config = gateway_yaml(port) + &pods_service(pods);
    config.push_str(&balanced("rr", "{type: RoundRobin}"));
    config.push_str(&balanced("random", "{type: Random}"));
    config.push_str(&balanced("least", "{type: LeastRequest}"));
    config.push_str(&balanced(
        "source",
        "{type: ConsistentHash, consistentHash: {type: SourceIP}}",
    ));
    config.push_str(&balanced(
        "user",
        "{type: ConsistentHash, consistentHash: {type: Headers, headers: [{name: x-user}], tableSize: 251}}",
    ));
    config.push_str(&balanced(
        "query",
        "{type: ConsistentHash, consistentHash: {type: QueryParams, queryParams: [{name: cart}]}}",
    ));
    config.push_str(&balanced(
        "sticky",
        "{type: ConsistentHash, consistentHash: {type: Cookie, cookie: {name: session, ttl: 1h, attributes: {SameSite: Strict}}}}",
    ));
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let on = |name: &str| format!("host: {name}.example");

    // Round robin: exactly even, in turn.
    let answered = pods_answering(&["-H", &on("rr")], &url, 200).await;
    assert_eq!(answered.len(), 200);
    let split = counts(&answered);
    assert_eq!(
        split.values().copied().collect::<Vec<_>>(),
        vec![50; 4],
        "{split:?}"
    );
    assert!(answered.windows(2).all(|w| w[0] != w[1]), "{answered:?}");

    // Random and least request (sequential requests: every pod idle, so a fair coin between
    // two random pods): even within chi-square's 0.1 % tolerance.
    for name in ["random", "least"] {
        let answered = pods_answering(&["-H", &on(name)], &url, 400).await;
        let split = counts(&answered);
        assert_eq!(split.len(), 4, "{name}: {split:?}");
        let chi = chi_square(&split, 400);
        assert!(
            chi < CHI_SQUARE_3_P001,
            "{name}: {split:?} (chi-square {chi:.1})"
        );
    }

    // Source address: each client address stays on one pod; twenty addresses reach them all.
    let mut reached = BTreeSet::new();
    for client in 21..41u8 {
        let interface = format!("127.0.0.{client}");
        let answered =
            pods_answering(&["--interface", &interface, "-H", &on("source")], &url, 5).await;
        assert_eq!(answered.len(), 5);
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "{interface}: {answered:?}"
        );
        reached.insert(answered[0].clone());
    }
    assert!(
        reached.len() >= 3,
        "twenty clients reached only {reached:?}"
    );

    // A header and a query parameter: one pod per value, values spread.
    let mut reached = BTreeSet::new();
    for user in 0..20 {
        let user = format!("x-user: user-{user}");
        let answered = pods_answering(&["-H", &on("user"), "-H", &user], &url, 5).await;
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "{user}: {answered:?}"
        );
        reached.insert(answered[0].clone());
    }
    assert!(reached.len() >= 3, "twenty users reached only {reached:?}");
    let mut reached = BTreeSet::new();
    for cart in 0..20 {
        let with_cart = format!("http://127.0.0.1:{port}/items?cart={cart}&page=1");
        let answered = pods_answering(&["-H", &on("query")], &with_cart, 5).await;
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "cart {cart}: {answered:?}"
        );
        reached.insert(answered[0].clone());
    }
    assert!(reached.len() >= 3, "twenty carts reached only {reached:?}");

    // The session cookie: generated with the configured attributes when missing, then sticky.
    let jar = dir.join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let (status, first) = curl(&["-H", &on("sticky"), "-c", jar, &url]).await;
    assert_eq!(status, 200, "{first}");
    let set_cookie = header(&first, "set-cookie").unwrap_or_else(|| panic!("{first}"));
    assert!(set_cookie.starts_with("session=\""), "{set_cookie}");
    assert!(set_cookie.contains("; Max-Age=3600"), "{set_cookie}");
    assert!(set_cookie.contains("; SameSite=Strict"), "{set_cookie}");
    let pod = echoed(&first)["pod"].as_str().unwrap().to_owned();
    let answered = pods_answering(&["-H", &on("sticky"), "-b", jar], &url, 10).await;
    assert_eq!(answered, vec![pod; 10]);
    let (_, again) = curl(&["-H", &on("sticky"), "-b", jar, &url]).await;
    assert_eq!(header(&again, "set-cookie"), None, "{again}");
    let mut reached = BTreeSet::new();
    for session in 0..20 {
        let cookie = format!("session={session:016x}");
        let answered = pods_answering(&["-H", &on("sticky"), "-b", &cookie], &url, 3).await;
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "{cookie}: {answered:?}"
        );
        reached.insert(answered[0].clone());
    }
    assert!(
        reached.len() >= 3,
        "twenty sessions reached only {reached:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_load_balancer_is_reported_and_not_applied() {
    let port = free_port();
    let pods = echo_pods().await;
    let dir = scratch("balancing-invalid");
    let mut config = gateway_yaml(port) + &pods_service(pods);
    config.push_str(&balanced(
        "bad",
        "{type: ConsistentHash, consistentHash: {type: SourceIP, tableSize: 65536}}",
    ));
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (status, body) = curl(&[&gateway.admin_url("/status")]).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("spec.loadBalancer.consistentHash.tableSize: 65536 must be a prime"),
        "{body}"
    );
    // The route still works, balanced by the gateway's default.
    let url = format!("http://127.0.0.1:{port}/");
    let answered = pods_answering(&["-H", "host: bad.example"], &url, 8).await;
    assert_eq!(answered.len(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_is_ejected_and_comes_back() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-outliers");
    let mut config = gateway_yaml(port) + &pods_service(pods);
    config.push_str(&route_policy(
        "ejecting",
        "loadBalancer: {type: RoundRobin}\n  healthCheck:\n    passive: {consecutive5XxErrors: 3, baseEjectionTime: 2s, interval: 1s, maxEjectionPercent: 50}",
    ));
    std::fs::write(dir.join("config.yaml"), &config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let on = ["-H", "host: ejecting.example"];

    // pod-2 fails: its third 500 in a row ejects it, and then it gets nothing.
    states[1].failing.store(true, Ordering::SeqCst);
    let answered = pods_answering(&on, &url, 40).await;
    assert_eq!(answered.len(), 40);
    let failures = answered.iter().filter(|pod| *pod == "pod-2!").count();
    assert_eq!(failures, 3, "{answered:?}");
    let last_failure = answered.iter().rposition(|pod| pod == "pod-2!").unwrap();
    assert!(last_failure < 12, "{answered:?}");
    // A reload (another route added) keeps the ejection: still failing, pod-2 gets nothing.
    reload_with_probe(&dir, &config, &url).await;
    let answered = pods_answering(&on, &url, 20).await;
    assert!(
        !answered.iter().any(|pod| pod.starts_with("pod-2")),
        "after the reload: {answered:?}"
    );
    // It recovers; after its ejection (2 s) it is back in turn.
    states[1].failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let answered = pods_answering(&on, &url, 40).await;
    let split = counts(&answered);
    assert_eq!(split.get("pod-2"), Some(&10), "{split:?}");
    assert!(
        answered.iter().all(|pod| !pod.ends_with('!')),
        "{answered:?}"
    );
    // The ejection cap: with three failing, at most half (two) are out at once.
    for state in &states[..3] {
        state.failing.store(true, Ordering::SeqCst);
    }
    let answered = pods_answering(&on, &url, 60).await;
    let tail = counts(&answered[40..]);
    assert!(tail.contains_key("pod-4"), "{tail:?}");
    assert_eq!(
        tail.keys().filter(|pod| pod.ends_with('!')).count(),
        1,
        "one failing pod stays in: {tail:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn active_checks_take_endpoints_out_and_the_panic_threshold_brings_them_back() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-active");
    let mut config = gateway_yaml(port) + &pods_service(pods);
    let active = "active: {type: HTTP, interval: 100ms, timeout: 500ms, unhealthyThreshold: 2, healthyThreshold: 1, http: {path: /healthz, expectedStatuses: [200]}}";
    config.push_str(&route_policy(
        "strict",
        &format!("loadBalancer: {{type: RoundRobin}}\n  healthCheck:\n    panicThreshold: 0\n    {active}"),
    ));
    config.push_str(&route_policy(
        "panicky",
        &format!("loadBalancer: {{type: RoundRobin}}\n  healthCheck:\n    panicThreshold: 50\n    {active}"),
    ));
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let strict = ["-H", "host: strict.example"];
    let panicky = ["-H", "host: panicky.example"];

    let answered = pods_answering(&strict, &url, 8).await;
    assert_eq!(counts(&answered).len(), 4, "{answered:?}");
    // pod-3's health endpoint turns 503: after two failed probes it gets no traffic.
    states[2].sick.store(true, Ordering::SeqCst);
    let url_ = url.clone();
    wait_until("pod-3 is out", || {
        let url = url_.clone();
        async move {
            let answered = pods_answering(&strict, &url, 8).await;
            !answered.iter().any(|pod| pod == "pod-3")
        }
    })
    .await;
    let answered = pods_answering(&strict, &url, 30).await;
    let split = counts(&answered);
    assert_eq!(split.len(), 3, "{split:?}");
    assert_eq!(split.values().copied().collect::<Vec<_>>(), vec![10; 3]);
    // Three of four out: panic threshold 0 routes to the one left, 50 % ignores health.
    states[0].sick.store(true, Ordering::SeqCst);
    states[1].sick.store(true, Ordering::SeqCst);
    let url_ = url.clone();
    wait_until("only pod-4 is in", || {
        let url = url_.clone();
        async move {
            let answered = pods_answering(&strict, &url, 8).await;
            answered.iter().all(|pod| pod == "pod-4")
        }
    })
    .await;
    let answered = pods_answering(&panicky, &url, 8).await;
    assert_eq!(
        counts(&answered).len(),
        4,
        "panic mode uses every pod: {answered:?}"
    );
    // All out: 503 without panic mode; every pod with it.
    states[3].sick.store(true, Ordering::SeqCst);
    let url_ = url.clone();
    wait_until("no pod is in", || {
        let url = url_.clone();
        async move {
            let answered = pods_answering(&strict, &url, 4).await;
            answered.iter().all(|pod| pod == "503")
        }
    })
    .await;
    let (status, body) = curl(&["-H", "host: strict.example", &url]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.ends_with("no healthy upstream"), "{body}");
    let answered = pods_answering(&panicky, &url, 8).await;
    assert_eq!(counts(&answered).len(), 4, "{answered:?}");
    // Healthy again: back in after one good probe.
    for state in &states {
        state.sick.store(false, Ordering::SeqCst);
    }
    let url_ = url.clone();
    wait_until("every pod is back", || {
        let url = url_.clone();
        async move { counts(&pods_answering(&strict, &url, 8).await).len() == 4 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_events_are_logged_as_envoy_logs_them() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-health-log");
    // The log lives apart from the configuration: a change in the watched directory would
    // reload it.
    let log = scratch("balancing-health-log-sink").join("health.jsonl");
    let every = scratch("balancing-health-log-every").join("health.jsonl");
    let active = |sink: &std::path::Path, matches: &str| {
        format!(
            "active: {{type: HTTP, interval: 100ms, timeout: 500ms, unhealthyThreshold: 2, healthyThreshold: 1, \
             http: {{path: /healthz}}, healthCheckLog: {{{matches}sinks: [{{type: File, file: {{path: {}}}}}]}}}}",
            sink.display()
        )
    };
    let config = gateway_yaml(port)
        + &pods_service(pods)
        + &route_policy("logged", &format!("healthCheck:\n    {}", active(&log, "")))
        + &route_policy(
            "chatty",
            &format!(
                "healthCheck:\n    {}",
                active(&every, "matches: [Failure, Success], ")
            ),
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    // The events of pod-2 (127.0.0.12), as "event detail" lines.
    let events_of = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|event| event["host"]["socket_address"]["address"] == "127.0.0.12")
            .map(|event| {
                assert_eq!(event["health_checker_type"], "HTTP", "{event}");
                assert_eq!(
                    event["host"]["socket_address"]["port_value"], pods,
                    "{event}"
                );
                assert!(
                    event["cluster_name"]
                        .as_str()
                        .is_some_and(|name| name.starts_with("httproute/default/")
                            && name.ends_with("/rule/0")),
                    "{event}"
                );
                assert!(
                    event["timestamp"]
                        .as_str()
                        .is_some_and(|t| t.ends_with('Z')),
                    "{event}"
                );
                let object = event.as_object().unwrap();
                let name = object.keys().find(|key| key.ends_with("_event")).unwrap();
                format!("{name} {}", object[name])
            })
            .collect()
    };
    // pod-2's health endpoint fails, then recovers.
    states[1].sick.store(true, Ordering::SeqCst);
    let log_ = log.clone();
    wait_until("pod-2's ejection is logged", || {
        let log = log_.clone();
        async move {
            events_of(&log)
                .iter()
                .any(|e| e.starts_with("eject_unhealthy_event"))
        }
    })
    .await;
    // Every failure is logged under Failure, only the first under the default.
    let every_ = every.clone();
    wait_until("three failures are logged under Failure", || {
        let every = every_.clone();
        async move {
            events_of(&every)
                .iter()
                .filter(|e| e.starts_with("health_check_failure_event"))
                .count()
                >= 3
        }
    })
    .await;
    states[1].sick.store(false, Ordering::SeqCst);
    let log_ = log.clone();
    wait_until("pod-2's return is logged", || {
        let log = log_.clone();
        async move {
            events_of(&log)
                .last()
                .is_some_and(|e| e.contains(r#""first_check":false"#))
        }
    })
    .await;
    // Envoy's default events: the first pass, the failure that starts the series (a 503
    // answer: ACTIVE) and the ejection with it (an unhealthy answer takes the pod out at
    // once), the return.
    assert_eq!(
        events_of(&log),
        [
            r#"add_healthy_event {"first_check":true}"#,
            r#"health_check_failure_event {"failure_type":"ACTIVE","first_check":false}"#,
            r#"eject_unhealthy_event {"failure_type":"ACTIVE"}"#,
            r#"add_healthy_event {"first_check":false}"#,
        ]
    );
    // Every probe, under Failure and Success.
    let chatty = events_of(&every);
    let count = |name: &str| chatty.iter().filter(|e| e.starts_with(name)).count();
    assert!(count("successful_health_check_event") >= 2, "{chatty:?}");
    assert!(count("health_check_failure_event") >= 3, "{chatty:?}");
    assert_eq!(count("eject_unhealthy_event"), 1, "{chatty:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_checks_take_a_pod_out_at_its_first_unhealthy_answer() {
    let port = free_port();
    let (pods, _states) = controlled_pods().await;
    let dir = scratch("balancing-grpc-health");
    // The servers' control files live apart from the configuration: a change in the watched
    // directory would reload it.
    let control_dir = scratch("balancing-grpc-health-control");
    let control = control_dir.join("health");
    let hosts: Vec<String> = (1..=PODS)
        .map(|pod| format!("127.0.0.{}", 10 + pod))
        .collect();
    let (_servers, health_port) = loop {
        let health_port = free_port();
        let mut command = Command::new("python3");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/grpc_health_server.py"
            ))
            .arg(&control)
            .arg(health_port.to_string())
            .args(&hosts);
        let (servers, line) = spawn_peer(command, "the python grpcio health servers").await;
        if line.trim() == "ready" {
            break (servers, health_port);
        }
    };
    // A threshold of 100 failures 100 ms apart would take 10 s: an answer saying NOT_SERVING
    // (or a gRPC error) must take the pod out at once instead. The first probes wait up to
    // 1 s, after start and after a reload.
    let active = format!(
        "active: {{type: GRPC, interval: 100ms, timeout: 500ms, initialJitter: 1s, unhealthyThreshold: 100, healthyThreshold: 1, \
         grpc: {{service: pods}}, overrides: {{port: {health_port}}}}}"
    );
    let config = gateway_yaml(port)
        + &pods_service(pods)
        + &route_policy(
            "checked",
            &format!(
                "loadBalancer: {{type: RoundRobin}}\n  healthCheck:\n    panicThreshold: 0\n    {active}"
            ),
        );
    std::fs::write(dir.join("config.yaml"), &config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let checked = ["-H", "host: checked.example"];
    assert_eq!(counts(&pods_answering(&checked, &url, 8).await).len(), 4);

    let out_within = |what: &'static str, pod: &'static str| {
        let url = url.clone();
        async move {
            let started = std::time::Instant::now();
            wait_until(what, || {
                let url = url.clone();
                async move {
                    let answered = pods_answering(&checked, &url, 8).await;
                    !answered.iter().any(|answer| answer == pod)
                }
            })
            .await;
            started.elapsed()
        }
    };
    // Replaced whole, so that the servers never read a half-written file.
    let tell = |lines: &str| {
        let next = control_dir.join("health.next");
        std::fs::write(&next, lines).unwrap();
        std::fs::rename(&next, &control).unwrap();
    };
    tell("127.0.0.13 NOT_SERVING\n");
    let took = out_within("pod-3 is out", "pod-3").await;
    assert!(took < Duration::from_secs(5), "NOT_SERVING took {took:?}");
    let split = counts(&pods_answering(&checked, &url, 30).await);
    assert_eq!(split.len(), 3, "{split:?}");
    // A reload (another route added) keeps the verdict: the rebuilt balancer starts with
    // pod-3 out, as Envoy keeps a host's health across updates.
    reload_with_probe(&dir, &config, &url).await;
    let split = counts(&pods_answering(&checked, &url, 30).await);
    assert!(!split.contains_key("pod-3"), "after the reload: {split:?}");
    tell("127.0.0.13 NOT_SERVING\n127.0.0.12 UNAVAILABLE\n");
    let took = out_within("pod-2 is out", "pod-2").await;
    assert!(took < Duration::from_secs(5), "UNAVAILABLE took {took:?}");
    tell("");
    let url_ = url.clone();
    wait_until("every pod is back", || {
        let url = url_.clone();
        async move { counts(&pods_answering(&checked, &url, 8).await).len() == 4 }
    })
    .await;
    // Every host is asked about the service at the override port (a host whose pod never
    // had to change may get its first, jittered, probe only now).
    let calls_file = control_dir.join("health.calls");
    let asked_all = || {
        let calls = std::fs::read_to_string(&calls_file).unwrap_or_default();
        hosts
            .iter()
            .all(|host| calls.lines().any(|line| line == format!("{host} pods")))
    };
    wait_until("every host asked about the service pods", || async {
        asked_all()
    })
    .await;
    let calls = std::fs::read_to_string(&calls_file).unwrap();
    assert!(
        !calls.lines().any(|line| !line.ends_with(" pods")),
        "only the service named is asked about: {calls}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_routes_balance_by_their_policy_and_skip_unhealthy_pods() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-tcp");
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: tcp, port: {port}, protocol: TCP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: relay}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: pods, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: relay}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: TCPRoute, name: relay}}]\n  \
         loadBalancer: {{type: ConsistentHash, consistentHash: {{type: SourceIP}}}}\n  \
         healthCheck:\n    panicThreshold: 0\n    \
         active: {{type: HTTP, interval: 100ms, timeout: 500ms, http: {{path: /healthz}}}}\n---\n{}",
        pods_service(pods)
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    // Each request on a connection of its own (the pod closes it): each one relayed anew.
    let from = |client: u8, count: usize| {
        let url = url.clone();
        async move {
            let interface = format!("127.0.0.{client}");
            let args = ["--interface", interface.as_str(), "-H", "connection: close"];
            pods_answering(&args, &url, count).await
        }
    };
    let mut first_pods = BTreeMap::new();
    for client in 21..37u8 {
        let answered = from(client, 4).await;
        assert_eq!(answered.len(), 4, "{answered:?}");
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "{client}: {answered:?}"
        );
        first_pods.insert(client, answered[0].clone());
    }
    let reached: BTreeSet<&String> = first_pods.values().collect();
    assert!(
        reached.len() >= 3,
        "sixteen clients reached only {reached:?}"
    );
    // The pod of client 21 fails its health checks: its connections go elsewhere, and stay
    // there; the other pods' clients keep theirs.
    let sick = first_pods[&21].clone();
    let index: usize = sick.trim_start_matches("pod-").parse().unwrap();
    states[index - 1].sick.store(true, Ordering::SeqCst);
    let sick_ = sick.clone();
    wait_until("client 21 moves", || {
        let sick = sick_.clone();
        async move { from(21, 1).await.first().is_some_and(|pod| *pod != sick) }
    })
    .await;
    let moved = from(21, 4).await;
    assert!(
        moved.windows(2).all(|w| w[0] == w[1]) && moved[0] != sick,
        "{moved:?}"
    );
    for (client, pod) in &first_pods {
        if *pod != sick {
            assert_eq!(from(*client, 1).await, vec![pod.clone()], "client {client}");
        }
    }
}

/// Four UDP pods on 127.0.0.11–14 at one port, each answering every datagram with its name;
/// returns the port.
async fn udp_pods() -> u16 {
    'port: loop {
        let first = tokio::net::UdpSocket::bind("127.0.0.11:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut sockets = vec![first];
        for pod in 2..=PODS {
            match tokio::net::UdpSocket::bind(format!("127.0.0.{}:{port}", 10 + pod)).await {
                Ok(socket) => sockets.push(socket),
                Err(_) => continue 'port,
            }
        }
        for (index, socket) in sockets.into_iter().enumerate() {
            tokio::spawn(async move {
                let name = format!("pod-{}", index + 1);
                let mut buffer = [0u8; 512];
                while let Ok((_, from)) = socket.recv_from(&mut buffer).await {
                    let _ = socket.send_to(name.as_bytes(), from).await;
                }
            });
        }
        return port;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_routes_balance_sessions_by_their_policy() {
    let port = free_port();
    let pods = udp_pods().await;
    let dir = scratch("balancing-udp");
    let endpoints: Vec<String> = (1..=PODS)
        .map(|pod| format!("{{addresses: [127.0.0.{}]}}", 10 + pod))
        .collect();
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: udp, port: {port}, protocol: UDP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {{name: dns}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: pods, port: 53}}]}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: dns}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: UDPRoute, name: dns}}]\n  \
         loadBalancer: {{type: ConsistentHash, consistentHash: {{type: SourceIP}}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: pods}}\nspec:\n  ports: [{{name: dns, port: 53, protocol: UDP}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: pods-1, labels: {{kubernetes.io/service-name: pods}}}}\n\
         addressType: IPv4\nendpoints: [{}]\nports: [{{name: dns, port: {pods}, protocol: UDP}}]\n---\n",
        endpoints.join(", ")
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    // One session per client socket: the pod that answers it.
    let session = |client: u8| async move {
        let socket = tokio::net::UdpSocket::bind(format!("127.0.0.{client}:0"))
            .await
            .unwrap();
        let mut buffer = [0u8; 64];
        for _ in 0..20 {
            socket.send_to(b"who", ("127.0.0.1", port)).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_millis(250), socket.recv(&mut buffer));
            if let Ok(Ok(read)) = reply.await {
                return String::from_utf8_lossy(&buffer[..read]).into_owned();
            }
        }
        panic!("no answer for 127.0.0.{client}");
    };
    let mut reached = BTreeSet::new();
    for client in 21..33u8 {
        let first = session(client).await;
        for _ in 0..3 {
            assert_eq!(session(client).await, first, "client 127.0.0.{client}");
        }
        reached.insert(first);
    }
    assert!(
        reached.len() >= 3,
        "twelve clients reached only {reached:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_override_header_pins_the_pod_or_falls_back() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-override");
    let config = gateway_yaml(port)
        + &pods_service(pods)
        + &route_policy(
            "pinned",
            "loadBalancer: {type: RoundRobin, endpointOverride: {extractFrom: [{header: x-custom-host}]}}\n  \
             healthCheck: {passive: {consecutive5XxErrors: 1, interval: 100ms, baseEjectionTime: 60s, maxEjectionPercent: 100}}",
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let host = "host: pinned.example";

    // EG's EndpointOverride expectations: a valid pod address pins every request to it…
    let pinned = format!("x-custom-host: 127.0.0.13:{pods}");
    let answered = pods_answering(&["-H", host, "-H", &pinned], &url, 10).await;
    assert_eq!(answered, vec!["pod-3"; 10]);
    // …the first usable address of a list is taken…
    let listed = format!("x-custom-host: 192.168.99.99:8080, 127.0.0.12:{pods}");
    let answered = pods_answering(&["-H", host, "-H", &listed], &url, 4).await;
    assert_eq!(answered, vec!["pod-2"; 4]);
    // …and an address that is not one of the Service's falls back to the round robin.
    let invalid = "x-custom-host: 192.168.99.99:8080";
    let answered = pods_answering(&["-H", host, "-H", invalid], &url, 8).await;
    assert_eq!(counts(&answered).len(), 4, "{answered:?}");
    let answered = pods_answering(
        &["-H", host, "-H", "x-custom-host: not an address"],
        &url,
        4,
    )
    .await;
    assert_eq!(counts(&answered).len(), 4, "{answered:?}");

    // An ejected pod is not pinned to: the balancer picks a healthy one instead.
    states[2].failing.store(true, Ordering::SeqCst);
    let answered = pods_answering(&["-H", host, "-H", &pinned], &url, 1).await;
    assert_eq!(answered, vec!["pod-3!"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = pods_answering(&["-H", host, "-H", &pinned], &url, 6).await;
    assert!(
        answered.iter().all(|pod| pod != "pod-3" && pod != "pod-3!"),
        "{answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_endpoint_ramps_up_over_the_slow_start_window() {
    let port = free_port();
    let pods = echo_pods().await;
    let dir = scratch("balancing-slow-start");
    let policy = route_policy(
        "ramp",
        "loadBalancer: {type: RoundRobin, slowStart: {window: 6s}}",
    );
    std::fs::write(
        dir.join("config.yaml"),
        gateway_yaml(port) + &pods_service_of(pods, 3) + &policy,
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let on = ["-H", "host: ramp.example"];

    // The first three pods are as new as each other: an even round robin.
    let answered = pods_answering(&on, &url, 90).await;
    assert_eq!(
        counts(&answered).values().copied().collect::<Vec<_>>(),
        vec![30; 3]
    );

    // Past the window, pod-4 joins (a probe route shows the reload has happened): at first it
    // gets a tenth of a full pod's share (3 %), far below a quarter.
    tokio::time::sleep(Duration::from_millis(6200)).await;
    reload_with_probe(
        &dir,
        &(gateway_yaml(port) + &pods_service_of(pods, 4) + &policy),
        &url,
    )
    .await;
    let joined = std::time::Instant::now();
    let early = pods_answering(&on, &url, 200).await;
    let early_share = counts(&early).get("pod-4").copied().unwrap_or(0);
    assert!(
        joined.elapsed() < Duration::from_secs(3),
        "the early sample took {:?}",
        joined.elapsed()
    );
    assert!(
        early_share <= 30,
        "pod-4 took {early_share} of 200 while new"
    );

    // Once the window has passed, every pod has a full share again: an exact round robin.
    tokio::time::sleep(
        Duration::from_secs(6).saturating_sub(joined.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let settled = pods_answering(&on, &url, 200).await;
    assert_eq!(
        counts(&settled).values().copied().collect::<Vec<_>>(),
        vec![50; 4],
        "{settled:?}"
    );
}

/// The Service `zoned` over the four pods, pod-1 in zone `a` and the others in zone `b`.
fn zoned_service(port: u16) -> String {
    let endpoints: Vec<String> = (1..=PODS)
        .map(|pod| {
            let zone = if pod == 1 { "a" } else { "b" };
            format!(
                "{{addresses: [127.0.0.{}], hostname: pod-{pod}, zone: {zone}}}",
                10 + pod
            )
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: zoned}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: zoned-1, labels: {{kubernetes.io/service-name: zoned}}}}\n\
         addressType: IPv4\nendpoints: [{}]\nports: [{{name: http, port: {port}}}]\n---\n",
        endpoints.join(", ")
    )
}

/// A route `name` to the zoned pods with a BackendTrafficPolicy `loadBalancer`.
fn zoned_route(name: &str, load_balancer: &str) -> String {
    balanced(name, load_balancer).replace("{name: pods, port: 80}", "{name: zoned, port: 80}")
}

#[tokio::test(flavor = "multi_thread")]
async fn zone_aware_balancing_prefers_the_gateways_zone_or_splits_by_weight() {
    let (port, unzoned_port) = (free_port(), free_port());
    let pods = echo_pods().await;
    let routes = zoned_route(
        "share",
        "{type: RoundRobin, zoneAware: {preferLocal: {minEndpointsThreshold: 1}}}",
    ) + &zoned_route(
        "forced",
        "{type: Random, zoneAware: {preferLocal: {minEndpointsThreshold: 1, force: {}}}}",
    ) + &zoned_route(
        "small",
        "{type: RoundRobin, zoneAware: {preferLocal: {force: {}}}}",
    ) + &zoned_route(
        "weighted",
        "{type: RoundRobin, zoneAware: {weightedZones: [{zone: a, weight: 80}, {zone: b, weight: 20}]}}",
    ) + &zoned_route(
        "hashed",
        "{type: ConsistentHash, consistentHash: {type: QueryParams, queryParams: [{name: u}]}, \
         zoneAware: {weightedZones: [{zone: a, weight: 80}, {zone: b, weight: 20}]}}",
    );
    let dir = scratch("balancing-zones");
    std::fs::write(
        dir.join("config.yaml"),
        gateway_yaml(port) + &zoned_service(pods) + &routes,
    )
    .unwrap();
    let gateway = start_gateway_with(&[&dir], &["--zone", "a"]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let local_share = |answered: &[String]| {
        answered.iter().filter(|pod| *pod == "pod-1").count() as f64 / answered.len() as f64
    };

    // Zone a holds one endpoint in four, but its gateways (taken as spread evenly over the
    // two zones) send half the traffic: half its requests stay local, the rest go to b.
    let answered = pods_answering(&["-H", "host: share.example"], &url, 400).await;
    let share = local_share(&answered);
    assert!((0.38..0.62).contains(&share), "{:?}", counts(&answered));
    assert_eq!(counts(&answered).len(), 4, "{:?}", counts(&answered));
    // Forced: every request stays in zone a.
    let answered = pods_answering(&["-H", "host: forced.example"], &url, 100).await;
    assert_eq!(local_share(&answered), 1.0, "{:?}", counts(&answered));
    // Fewer endpoints than minEndpointsThreshold (6 by default): zones are ignored, an even
    // round robin, even when forced.
    let answered = pods_answering(&["-H", "host: small.example"], &url, 200).await;
    assert_eq!(
        counts(&answered).values().copied().collect::<Vec<_>>(),
        vec![50; 4]
    );
    // Weighted zones: 80 % to zone a, 20 % spread over zone b.
    let answered = pods_answering(&["-H", "host: weighted.example"], &url, 400).await;
    let share = local_share(&answered);
    assert!((0.72..0.88).contains(&share), "{:?}", counts(&answered));
    // A consistent hash weighs the zones in its table: each key keeps its pod, and keys land
    // in zone a about 80 % of the time.
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "-w", "\n", "-H", "host: hashed.example"]);
    for key in 0..300 {
        command.arg(format!("{url}?u={key}"));
    }
    let first = command.output().await.unwrap();
    let second = command.output().await.unwrap();
    assert_eq!(first.stdout, second.stdout, "each key keeps its pod");
    let text = String::from_utf8_lossy(&first.stdout);
    let keyed: Vec<String> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["pod"].to_string())
        .collect();
    assert_eq!(keyed.len(), 300);
    let in_a = keyed.iter().filter(|pod| pod.contains("pod-1")).count();
    assert!((200..280).contains(&in_a), "{in_a} of 300 keys in zone a");

    // Without --zone, the gateway knows no local zone: even the forced route spreads.
    let dir = scratch("balancing-zones-unknown");
    std::fs::write(
        dir.join("config.yaml"),
        gateway_yaml(unzoned_port) + &zoned_service(pods) + &routes,
    )
    .unwrap();
    let unzoned = start_gateway(&[&dir]).await;
    unzoned.wait_ready().await;
    let url = format!("http://127.0.0.1:{unzoned_port}/");
    let answered = pods_answering(&["-H", "host: forced.example"], &url, 200).await;
    assert_eq!(counts(&answered).len(), 4, "{:?}", counts(&answered));
    assert!(local_share(&answered) < 0.45, "{:?}", counts(&answered));
}

/// Makes pod-1 report `first` CPU utilization in its answers, the others `others`, all at
/// 100 requests per second.
fn report_in_answers(states: &[Arc<PodState>], first: f64, others: f64) {
    for (index, state) in states.iter().enumerate() {
        let cpu = if index == 0 { first } else { others };
        *state.orca.lock().unwrap() =
            Some(format!("TEXT cpu_utilization={cpu}, rps_fractional=100"));
    }
}

/// pod-1 weighs a quarter of each other pod (100/0.8 = 125 against 100/0.2 = 500): of 520
/// requests it takes about 40, the others about 160 each.
fn assert_pod1_takes_a_thirteenth(answered: &[String]) {
    let weighted = counts(answered);
    let pod1 = weighted.get("pod-1").copied().unwrap_or(0);
    assert!(
        pod1 < 70,
        "pod-1 took {pod1} of 520 (about 40 expected): {weighted:?}"
    );
    for pod in ["pod-2", "pod-3", "pod-4"] {
        let got = weighted.get(pod).copied().unwrap_or(0);
        assert!((110..=210).contains(&got), "{pod} took {got}: {weighted:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_utilization_weighs_pods_by_their_load_reports() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    // pod-1 reports four times the utilization of the others at the same rate: a quarter of
    // their weight (100/0.8 = 125 against 100/0.2 = 500), so 1/13 of the requests.
    report_in_answers(&states, 0.8, 0.2);
    let dir = scratch("balancing-utilization");
    let config = gateway_yaml(port)
        + &pods_service(pods)
        + &balanced(
            "loaded",
            "{type: BackendUtilization, backendUtilization: {blackoutPeriod: 2s, weightUpdatePeriod: 100ms}}",
        )
        + &balanced(
            "kept",
            "{type: BackendUtilization, backendUtilization: {keepResponseHeaders: true}}",
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let loaded = ["-H", "host: loaded.example"];

    // Before any weight counts (the blackout), the pods share evenly.
    let early = counts(&pods_answering(&loaded, &url, 200).await);
    let pod1 = early.get("pod-1").copied().unwrap_or(0);
    assert!(pod1 >= 25, "{early:?}");
    // Once the reports have counted for the blackout, pod-1 gets about 1/13.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let _warm = pods_answering(&loaded, &url, 20).await;
    assert_pod1_takes_a_thirteenth(&pods_answering(&loaded, &url, 520).await);

    // The reports are removed from answers, unless the policy keeps them.
    let (_, response) = curl(&["-H", "host: loaded.example", &url]).await;
    assert_eq!(
        header(&response, "endpoint-load-metrics"),
        None,
        "{response}"
    );
    let (_, response) = curl(&["-H", "host: kept.example", &url]).await;
    assert!(
        header(&response, "endpoint-load-metrics").is_some_and(|v| v.starts_with("TEXT ")),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_load_reports_weigh_pods_and_answers_headers_do_not() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    // In-band reports that would favour pod-1 are ignored once reports come out of band.
    report_in_answers(&states, 0.01, 0.9);
    let dir = scratch("balancing-orca-oob");
    let log = scratch("balancing-orca-oob-log").join("streams");
    // Reporting sidecars on another port of each pod's address (grpcio, Envoy's protos):
    // pod-1 reports four times the others' utilization (1/13 of the requests, as in the
    // in-band test); pod-4 does not serve the method.
    let (_servers, report_port) = loop {
        let report_port = free_port();
        let mut command = Command::new("python3");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/orca_oob_server.py"
            ))
            .arg(&log)
            .arg(report_port.to_string())
            .args([
                "127.0.0.11=0.8",
                "127.0.0.12=0.2",
                "127.0.0.13=0.2",
                "127.0.0.14=unimplemented",
            ]);
        let (servers, line) = spawn_peer(command, "the python grpcio ORCA servers").await;
        if line.trim() == "ready" {
            break (servers, report_port);
        }
    };
    let config = gateway_yaml(port)
        + &pods_service(pods)
        + &balanced(
            "reported",
            &format!(
                "{{type: BackendUtilization, backendUtilization: {{blackoutPeriod: 1s, weightUpdatePeriod: 100ms, \
                 outOfBand: {{reportingPeriod: 200ms, port: {report_port}}}}}}}"
            ),
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let reported = ["-H", "host: reported.example"];
    // Every sidecar was asked for a report every 200 ms.
    let log_ = log.clone();
    wait_until("every pod's stream is open", || {
        let log = log_.clone();
        async move {
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            (11..=14).all(|pod| seen.contains(&format!("127.0.0.{pod} 0.2\n")))
        }
    })
    .await;
    // Once the reports have counted for the blackout: pod-1 about 1/13 (pod-4, without
    // reports, takes the mean weight).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _warm = pods_answering(&reported, &url, 20).await;
    assert_pod1_takes_a_thirteenth(&pods_answering(&reported, &url, 520).await);
    // UNIMPLEMENTED is final: pod-4's sidecar was asked once; the others' streams stay open.
    let seen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(seen.matches("127.0.0.14 ").count(), 1, "{seen}");
    assert_eq!(seen.matches("127.0.0.11 ").count(), 1, "{seen}");
}

/// An Envoy Gateway `Backend` named `name` with the pods `pods` (1–4) at `port`; a fallback
/// one with `fallback`.
fn pods_backend(name: &str, port: u16, pods: &[u8], fallback: bool) -> String {
    let endpoints: Vec<String> = pods
        .iter()
        .map(|pod| format!("{{ip: {{address: 127.0.0.{}, port: {port}}}}}", 10 + pod))
        .collect();
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n\
         spec: {{fallback: {fallback}, endpoints: [{}]}}\n---\n",
        endpoints.join(", ")
    )
}

/// Waits until the pods answering a dozen requests sent with `args` pass `check`.
async fn wait_for_pods(what: &str, args: &[&str], url: &str, check: fn(&[String]) -> bool) {
    wait_until(what, || async move {
        check(&pods_answering(args, url, 12).await)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fallback_backend_takes_what_the_primary_backends_health_cannot() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-fallback");
    let mut config = gateway_yaml(port)
        + &pods_backend("primary", pods, &[1, 2, 3], false)
        + &pods_backend("spare", pods, &[4], true);
    config.push_str(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: failover}\nspec:\n  \
         parentRefs: [{name: gw, sectionName: http}]\n  hostnames: [failover.example]\n  \
         rules: [{backendRefs: [{group: gateway.envoyproxy.io, kind: Backend, name: spare}, \
         {group: gateway.envoyproxy.io, kind: Backend, name: primary}]}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: failover}\nspec:\n  \
         targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: failover}]\n  \
         loadBalancer: {type: RoundRobin}\n  \
         healthCheck: {active: {type: HTTP, interval: 100ms, timeout: 500ms, unhealthyThreshold: 1, \
         healthyThreshold: 1, http: {path: /healthz}}}\n---\n",
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let host = ["-H", "host: failover.example"];

    // Healthy primary backend: the fallback one gets nothing.
    let split = counts(&pods_answering(&host, &url, 60).await);
    assert_eq!(
        split.keys().collect::<Vec<_>>(),
        ["pod-1", "pod-2", "pod-3"]
    );
    // pod-1 out: 2 of 3 healthy, 1.4 × 67 % = 93 % for the primary level, 7 % falls back,
    // and pod-1 itself gets nothing (the levels together are fully healthy: no panic).
    states[0].sick.store(true, Ordering::SeqCst);
    wait_for_pods("pod-1 is out", &host, &url, |pods| {
        !pods.iter().any(|p| p == "pod-1")
    })
    .await;
    let split = counts(&pods_answering(&host, &url, 400).await);
    assert!(!split.contains_key("pod-1"), "{split:?}");
    let spare = split.get("pod-4").copied().unwrap_or(0);
    assert!((8..=52).contains(&spare), "7 % of 400 expected: {split:?}");
    // pod-2 out too: 1.4 × 33 % = 46 % primary, 54 % to the fallback backend.
    states[1].sick.store(true, Ordering::SeqCst);
    wait_for_pods("pod-2 is out", &host, &url, |pods| {
        !pods.iter().any(|p| p == "pod-2")
    })
    .await;
    let split = counts(&pods_answering(&host, &url, 200).await);
    assert_eq!(split.len(), 2, "{split:?}");
    assert!(
        (80..=136).contains(&split["pod-4"]),
        "54 % of 200 expected: {split:?}"
    );
    // Every primary endpoint out: everything falls back; healthy again: nothing does.
    states[2].sick.store(true, Ordering::SeqCst);
    wait_for_pods("only the fallback backend answers", &host, &url, |pods| {
        pods.iter().all(|p| p == "pod-4")
    })
    .await;
    for state in &states {
        state.sick.store(false, Ordering::SeqCst);
    }
    wait_for_pods("the primary backend is back", &host, &url, |pods| {
        counts(pods).len() == 3
    })
    .await;
    let split = counts(&pods_answering(&host, &url, 60).await);
    assert!(!split.contains_key("pod-4"), "{split:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn num_attempts_per_priority_sends_a_retry_to_the_fallback_backend() {
    let port = free_port();
    let (pods, states) = controlled_pods().await;
    let dir = scratch("balancing-priority-retry");
    let mut config = gateway_yaml(port)
        + &pods_backend("primary", pods, &[1, 2, 3], false)
        + &pods_backend("spare", pods, &[4], true);
    for (name, per_priority) in [("moving", ", numAttemptsPerPriority: 1"), ("staying", "")] {
        config.push_str(&format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
             rules: [{{backendRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: primary}}, \
             {{group: gateway.envoyproxy.io, kind: Backend, name: spare}}]}}]\n---\n\
             apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
             retry: {{numRetries: 1{per_priority}, retryOn: {{triggers: [retriable-status-codes], httpStatusCodes: [500]}}}}\n---\n"
        ));
    }
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    // The primary pods answer 500 (without health checks they all stay healthy).
    for state in &states[..3] {
        state.failing.store(true, Ordering::SeqCst);
    }
    // Each retry leaves the level tried first: the fallback pod answers them all.
    let answered = pods_answering(&["-H", "host: moving.example"], &url, 30).await;
    assert_eq!(
        counts(&answered).keys().collect::<Vec<_>>(),
        ["pod-4"],
        "{answered:?}"
    );
    // Without numAttemptsPerPriority, retries stay on the primary level.
    let answered = pods_answering(&["-H", "host: staying.example"], &url, 30).await;
    assert!(
        answered.iter().all(|pod| pod.ends_with('!')),
        "{answered:?}"
    );
    assert!(
        !answered.iter().any(|pod| pod.starts_with("pod-4")),
        "{answered:?}"
    );
}
