//! End-to-end tests of operating the `gateway` binary: hot reload, startup errors, the quick
//! start, SIGTERM and restart (with `--min-drain-ms`: health checks fail first while the
//! gateway still serves), sockets shared by address, unavailable ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::process::Stdio;
use std::time::Duration;

use gateway_support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn reloads_valid_changes_and_keeps_serving_through_invalid_ones() {
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("reload");
    let base = format!("{}{}", gateway_yaml(port), service("v1", v1));
    let route = |path: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{{path: {{value: {path}}}}}]\n    \
             backendRefs: [{{name: v1, port: 80}}]\n"
        )
    };
    std::fs::write(dir.join("base.yaml"), &base).unwrap();
    std::fs::write(dir.join("route.yaml"), route("/first")).unwrap();
    let mut gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    assert_eq!(curl(&[&url("/first")]).await.0, 200);
    assert_eq!(curl(&[&url("/second")]).await.0, 404);

    std::fs::write(dir.join("route.yaml"), route("/second")).unwrap();
    wait_until("the new route", || async {
        curl(&[&url("/second")]).await.0 == 200
    })
    .await;
    assert_eq!(curl(&[&url("/first")]).await.0, 404);

    std::fs::write(
        dir.join("route.yaml"),
        "kind: HTTPRoute\nmetadata: {name: r\n",
    )
    .unwrap();
    let status_url = gateway.admin_url("/status");
    wait_until("the rejection", || async {
        echoed(&curl(&[&status_url]).await.1)["lastReloadError"].is_string()
    })
    .await;
    let (_, status) = curl(&[&status_url]).await;
    let error = echoed(&status)["lastReloadError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("route.yaml: document 1: malformed YAML"),
        "{error}"
    );
    assert_eq!(
        curl(&[&url("/second")]).await.0,
        200,
        "the previous configuration keeps serving"
    );

    // SIGTERM drains and exits quickly; SO_REUSEADDR lets a new gateway bind at once.
    let elapsed = gateway.terminate().await;
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    std::fs::write(dir.join("route.yaml"), route("/third")).unwrap();
    let restarted = start_gateway(&[&dir]).await;
    restarted.wait_ready().await;
    assert_eq!(curl(&[&url("/third")]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_startup_configuration_is_refused_with_file_object_and_field() {
    let dir = scratch("invalid");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
         spec:\n  gatewayClassName: x\n  listeners: [{name: http, port: eighty, protocol: HTTP}]\n",
    )
    .unwrap();
    let output = Command::new(GATEWAY)
        .args(["--admin", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml: document 1: Gateway default/gw: field `spec.listeners[0].port`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_runs_without_arguments() {
    let mut child = Command::new(GATEWAY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.contains("http://127.0.0.1:8080"), "{first}");
    wait_until("the quick start", || async {
        curl(&["http://127.0.0.1:15000/ready"]).await.0 == 200
    })
    .await;
    let (status, response) = curl(&["-H", "x-canary: true", "http://127.0.0.1:8080/"]).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&response)["pod"], "echo-v2-0");
    let (status, response) = curl(&["http://127.0.0.1:8080/hello"]).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&response)["pod"], "echo-v1-0");
    assert!(
        response.contains("x-served-by: quickstart-gateway"),
        "{response}"
    );
    let mut gateway = Gateway {
        child,
        admin: "127.0.0.1:15000".parse().unwrap(),
    };
    gateway.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_share_ports_by_address_and_an_unavailable_port_leaves_the_rest_serving() {
    let (shared, taken_port) = (free_port(), free_port());
    let _occupied = std::net::TcpListener::bind(("127.0.0.1", taken_port)).unwrap();
    let (a, b) = (echo("a-0").await, echo("b-0").await);
    let dir = scratch("addresses");
    let gateway = |name: &str, addresses: &str, listeners: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
             gatewayClassName: test\n  addresses: [{addresses}]\n  listeners: [{listeners}]\n---\n"
        )
    };
    let route = |name: &str, parent: &str, backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\n\
             spec: {{parentRefs: [{{name: {parent}}}], rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]}}\n---\n"
        )
    };
    let yaml = [
        gateway("specific", "{value: 127.0.0.1}", &format!("{{name: http, port: {shared}, protocol: HTTP}}, {{name: taken, port: {taken_port}, protocol: HTTP}}")),
        gateway("everywhere", "", &format!("{{name: http, port: {shared}, protocol: HTTP}}")),
        gateway("blocked", "{value: 127.0.0.1}", &format!("{{name: only, port: {taken_port}, protocol: HTTP}}")),
        route("to-a", "specific", "a"),
        route("to-b", "everywhere", "b"),
        service("a", a),
        service("b", b),
    ]
    .concat();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    let admin_status = gateway.admin_url("/status");
    wait_until("the first status", || async {
        curl(&[&admin_status]).await.0 == 200
    })
    .await;

    let (_, via_specific) = curl(&[&format!("http://127.0.0.1:{shared}/")]).await;
    assert_eq!(
        echoed(&via_specific)["pod"],
        "a-0",
        "127.0.0.1 belongs to the Gateway bound there"
    );
    let (_, via_wildcard) = curl(&[&format!("http://127.0.0.2:{shared}/")]).await;
    assert_eq!(
        echoed(&via_wildcard)["pod"],
        "b-0",
        "other addresses reach the all-interfaces Gateway"
    );

    assert_eq!(
        curl(&[&gateway.admin_url("/ready")]).await.0,
        503,
        "not every listener is bound"
    );
    let (_, status) = curl(&[&admin_status]).await;
    let status = echoed(&status);
    let specific = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "Gateway" && r["object"]["name"] == "specific")
        .unwrap();
    let taken = specific["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "taken")
        .unwrap();
    let reasons: Vec<&str> = taken["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"PortUnavailable"), "{reasons:?}");
    let condition = |kind: &str, name: &str, condition: &str| {
        let resource = status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["object"]["name"] == name)
            .unwrap();
        resource["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == condition)
            .unwrap()
            .clone()
    };
    let blocked = condition("Gateway", "blocked", "Programmed");
    assert_eq!(
        blocked["status"], "False",
        "corrected after binding: {blocked}"
    );
    assert_eq!(blocked["reason"], "NoResources");
    let partly = condition("Gateway", "specific", "Programmed");
    assert_eq!(partly["status"], "True", "one of its listeners is served");
}

/// The Tokio worker threads of process `pid` (named `tokio-rt-worker`).
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim_end() == "tokio-rt-worker")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_sets_the_runtime_and_one_means_a_single_thread() {
    let backend = echo("w-0").await;
    for (flag, workers) in [("1", 0), ("3", 3)] {
        let port = free_port();
        let dir = scratch(&format!("workers-{flag}"));
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
                     spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: w, port: 80}]}]}\n";
        std::fs::write(
            dir.join("all.yaml"),
            format!("{}{}{route}", gateway_yaml(port), service("w", backend)),
        )
        .unwrap();
        let mut gateway = start_gateway_with(&[&dir], &["--worker-threads", flag]).await;
        gateway.wait_ready().await;
        let (status, _) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
        assert_eq!(status, 200, "--worker-threads {flag} serves");
        let pid = gateway.child.id().unwrap();
        assert_eq!(worker_threads(pid), workers, "--worker-threads {flag}");
        gateway.terminate().await;
    }
    let refused = Command::new(GATEWAY)
        .args(["--worker-threads", "0"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_name_selects_the_gateway_classes_served() {
    let backend = echo("c-0").await;
    let port = free_port();
    let dir = scratch("controller");
    let class = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: test}\n\
                 spec: {controllerName: acme.io/gateway}\n---\n";
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
                 spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: c, port: 80}]}]}\n";
    std::fs::write(
        dir.join("all.yaml"),
        format!(
            "{class}{}{}{route}",
            gateway_yaml(port),
            service("c", backend)
        ),
    )
    .unwrap();
    let mut ours = start_gateway_with(&[&dir], &["--controller-name", "acme.io/gateway"]).await;
    ours.wait_ready().await;
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/")]).await.0, 200);
    let status = echoed(&curl(&[&ours.admin_url("/status")]).await.1);
    let text = status.to_string();
    assert!(text.contains("\"GatewayClass\""), "{text}");
    assert!(text.contains("\"Gateway\""), "{text}");
    ours.terminate().await;

    let mut other = start_gateway(&[&dir]).await;
    let status = echoed(&curl(&[&other.admin_url("/status")]).await.1);
    let text = status.to_string();
    assert!(
        !text.contains("\"Gateway\""),
        "a Gateway of acme.io's class is not ours to serve: {text}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens for it"
    );
    other.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_fails_health_checks_before_the_gateway_stops_accepting() {
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("min-drain");
    let config = gateway_yaml(port)
        + &service("v1", v1)
        + &host_route("app", "v1")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {name: health}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n  \
           healthCheck: {path: /healthz}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let mut gateway = start_gateway_with(&[&dir], &["--min-drain-ms", "1500"]).await;
    gateway.wait_ready().await;
    let health = format!("http://127.0.0.1:{port}/healthz");
    let app = format!("http://127.0.0.1:{port}/");
    let ready = gateway.admin_url("/ready");
    assert_eq!(curl(&[&health]).await.0, 200);
    let (status, response) = curl(&["-H", "host: app.example", &app]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&response, "connection"), None, "{response}");

    let pid = gateway.child.id().unwrap().to_string();
    let signalled = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The health check fails at once, while new connections are still served, each closed
    // after its answer.
    wait_until("the failing health check", || async {
        curl(&[&health]).await.0 == 503
    })
    .await;
    assert_eq!(curl(&[&ready]).await.0, 503);
    let (status, response) = curl(&["-H", "host: app.example", &app]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(header(&response, "connection"), Some("close"), "{response}");
    assert!(signalled.elapsed() < Duration::from_millis(1400));

    // Then the gateway stops accepting and exits.
    let status = tokio::time::timeout(Duration::from_secs(8), gateway.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let stopped = signalled.elapsed();
    assert!(
        stopped >= Duration::from_millis(1500) && stopped < Duration::from_secs(4),
        "{stopped:?}"
    );
    assert_eq!(curl(&[&health]).await.0, 0, "nothing listens any more");
}
