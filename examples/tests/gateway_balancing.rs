//! BackendTrafficPolicy `loadBalancer` through the `gateway` binary, against four echo pods of
//! one Service (127.0.0.11–14): round robin splits evenly, random and least request spread
//! within statistical tolerance, and a consistent hash — by source address, header, query
//! parameter or a generated session cookie — keeps each key on one pod while spreading keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::collections::{BTreeMap, BTreeSet};

use examples_support::echo::{EchoIdentity, serve_echo};
use gateway_support::*;
use tokio::net::TcpListener;
use tokio::process::Command;

const PODS: u8 = 4;

/// Four echo pods listening on 127.0.0.11–14 at one port; returns the port.
async fn echo_pods() -> u16 {
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
        for (index, listener) in listeners.into_iter().enumerate() {
            let identity = EchoIdentity {
                namespace: "default".into(),
                pod: format!("pod-{}", index + 1),
            };
            tokio::spawn(serve_echo(listener, identity));
        }
        return port;
    }
}

/// The Service `pods` with the four endpoints.
fn pods_service(port: u16) -> String {
    let endpoints: Vec<String> = (1..=PODS)
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

/// The pods that answered `count` requests sent on one curl connection with `args`.
async fn pods_answering(args: &[&str], url: &str, count: usize) -> Vec<String> {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "--max-time", "20"]).args(args);
    for _ in 0..count {
        command.arg(url);
    }
    let output = command.output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .map(|line| {
            let body: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            body["pod"].as_str().unwrap().to_owned()
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
