//! BackendTrafficPolicy `rateLimit.global` through two `gateway` processes sharing one real
//! `redis-server`: the limits are counted once across both (with Envoy's draft-03 headers and
//! `x-envoy-ratelimited` on 429), `Distinct` buckets per client; with Redis frozen, the gateway
//! failing open lets requests pass after `--rate-limit-timeout-ms` and the one failing closed
//! answers 500; without `--rate-limit-redis` the policy is reported invalid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Starts `redis-server` on `port` without persistence; returns it once it answers PING.
async fn start_redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/install-test-deps)");
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            stream.write_all(b"PING\r\n").await.unwrap();
            let mut answer = [0u8; 7];
            if stream.read_exact(&mut answer).await.is_ok() && &answer == b"+PONG\r\n" {
                return child;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server starts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

const POLICIES: &str = r#"
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: shared-limit}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  rateLimit:
    global:
      rules:
      - limit: {requests: 5, unit: Hour}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: per-user}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: users}]
  rateLimit:
    type: Global
    global:
      rules:
      - clientSelectors: [{headers: [{name: x-user, type: Distinct}]}]
        limit: {requests: 2, unit: Hour}
"#;

fn config(port: u16, echo_port: u16) -> String {
    let mut config = gateway_yaml(port) + &service("echo", echo_port);
    for name in ["limited", "users"] {
        config.push_str(&format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
             rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n---\n"
        ));
    }
    config + POLICIES
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_global_limits_in_redis() {
    // Hour windows: wait out the last seconds of an hour so that one window holds the test.
    let into_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3600;
    if into_hour > 3570 {
        tokio::time::sleep(Duration::from_secs(3601 - into_hour)).await;
    }
    let redis_port = free_port();
    let redis = start_redis(redis_port).await;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let echo_port = echo("echo-0").await;
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let (dir_a, dir_b, dir_c) = (
        scratch("global-a"),
        scratch("global-b"),
        scratch("global-c"),
    );
    std::fs::write(dir_a.join("config.yaml"), config(port_a, echo_port)).unwrap();
    std::fs::write(dir_b.join("config.yaml"), config(port_b, echo_port)).unwrap();
    std::fs::write(dir_c.join("config.yaml"), config(port_c, echo_port)).unwrap();
    // A fails open after 1.5 s; B fails closed after 0.3 s; C has no Redis.
    let a = start_gateway_with(
        &[&dir_a],
        &[
            "--rate-limit-redis",
            &redis_url,
            "--rate-limit-timeout-ms",
            "1500",
        ],
    )
    .await;
    let b = start_gateway_with(
        &[&dir_b],
        &[
            "--rate-limit-redis",
            &redis_url,
            "--rate-limit-timeout-ms",
            "300",
            "--rate-limit-fail-closed",
        ],
    )
    .await;
    let c = start_gateway(&[&dir_c]).await;
    for gateway in [&a, &b, &c] {
        gateway.wait_ready().await;
    }
    let url_a = format!("http://127.0.0.1:{port_a}/");
    let url_b = format!("http://127.0.0.1:{port_b}/");

    // Five a hour for the route, counted across both gateways.
    for (n, url) in [&url_a, &url_b, &url_a, &url_b, &url_a]
        .into_iter()
        .enumerate()
    {
        let (status, response) = curl(&["-H", "host: limited.example", url]).await;
        assert_eq!(status, 200, "request {n}: {response}");
        assert_eq!(header(&response, "x-ratelimit-limit"), Some("5, 5;w=3600"));
        let remaining = (4 - n).to_string();
        assert_eq!(
            header(&response, "x-ratelimit-remaining"),
            Some(remaining.as_str())
        );
        let reset: u64 = header(&response, "x-ratelimit-reset")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&reset), "{reset}");
    }
    for url in [&url_b, &url_a] {
        let (status, response) = curl(&["-H", "host: limited.example", url]).await;
        assert_eq!(status, 429, "{response}");
        assert_eq!(header(&response, "x-envoy-ratelimited"), Some("true"));
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some("0"));
    }

    // Two a hour per user, across both gateways; another user has their own two.
    for url in [&url_a, &url_b] {
        let (status, response) =
            curl(&["-H", "host: users.example", "-H", "x-user: alice", url]).await;
        assert_eq!(status, 200, "{response}");
    }
    let (status, _) = curl(&["-H", "host: users.example", "-H", "x-user: alice", &url_a]).await;
    assert_eq!(status, 429);
    let (status, response) =
        curl(&["-H", "host: users.example", "-H", "x-user: bob", &url_b]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(header(&response, "x-ratelimit-limit"), Some("2, 2;w=3600"));
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some("1"));
    // A request the rule does not select is not counted.
    let (status, response) = curl(&["-H", "host: users.example", &url_a]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(header(&response, "x-ratelimit-limit"), None, "{response}");

    // Without a rate-limit backend, the policies are invalid (and the routes unlimited).
    let (_, status_page) = curl(&[&c.admin_url("/status")]).await;
    assert!(
        status_page.contains("spec.rateLimit.global: no rate-limit backend is configured"),
        "{status_page}"
    );
    for _ in 0..7 {
        let url_c = format!("http://127.0.0.1:{port_c}/");
        let (status, _) = curl(&["-H", "host: limited.example", &url_c]).await;
        assert_eq!(status, 200);
    }

    // Redis frozen: A waits its 1.5 s and lets the request pass; B waits 0.3 s and refuses.
    signal(&redis, "-STOP");
    let started = Instant::now();
    let (status, response) =
        curl(&["-H", "host: users.example", "-H", "x-user: carol", &url_a]).await;
    let waited_a = started.elapsed();
    assert_eq!(status, 200, "fail open: {response}");
    assert_eq!(header(&response, "x-ratelimit-limit"), None);
    assert!(waited_a >= Duration::from_millis(1_500), "{waited_a:?}");
    let started = Instant::now();
    let (status, response) =
        curl(&["-H", "host: users.example", "-H", "x-user: carol", &url_b]).await;
    let waited_b = started.elapsed();
    assert_eq!(status, 500, "fail closed: {response}");
    assert!(
        waited_b >= Duration::from_millis(300) && waited_b < waited_a,
        "{waited_b:?} (A waited {waited_a:?})"
    );
    // Redis back: counting resumes where it was.
    signal(&redis, "-CONT");
    let (status, _) = curl(&["-H", "host: limited.example", &url_b]).await;
    assert_eq!(status, 429);
    drop(redis);
}
