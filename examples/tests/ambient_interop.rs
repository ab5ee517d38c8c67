//! Independent peers against our ambient binaries: python-h2 (with Python's ssl) as the
//! HBONE client of our ztunnel's inbound 15008 and as the HBONE server our ztunnel's outbound
//! dials, and HAProxy as the PROXY v2 sender in front
//! of our sandwiched waypoint, with curl as the application client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ztunnel_support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use ztunnel_support::{Waypoint, Ztunnel, byte_echo, dev_ca, scratch};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";
const SANDBOX: &str = "spiffe://cluster.local/ns/sandbox/sa/tester";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/default/sa/waypoint";

fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hbone/tests/interop")
        .join(name)
}

fn python_client() -> PathBuf {
    python_script("h2_hbone_client.py")
}

async fn python_connect(dir: &std::path::Path, who: &str, to: &str, authority: &str) -> Value {
    let pem = |suffix: &str| dir.join(format!("{who}-{suffix}.pem"));
    let (host, port) = to.split_once(':').unwrap();
    let output = tokio::process::Command::new("python3")
        .arg(python_client())
        .args([host, port])
        .arg(pem("cert"))
        .arg(pem("key"))
        .arg(dir.join("ca-cert.pem"))
        .args([authority, "2"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn python_h2_is_an_hbone_client_of_our_ztunnel() {
    let dir = scratch("python-h2");
    dev_ca(&dir, &[CLIENT, SERVER, SANDBOX]).await;
    let server_ip = "127.0.0.70";
    let config = dir.join("local.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
workloads:
- {{uid: Kubernetes//Pod/default/server, name: server, namespace: default, serviceAccount: server,
   trustDomain: cluster.local, workloadIps: ["{server_ip}"], protocol: HBONE, services: {{}}}}
policies:
- {{name: no-sandbox, namespace: default, scope: Namespace, action: Deny, dryRun: false,
   rules: [[[{{namespaces: [!Exact sandbox]}}]]]}}
"#
        ),
    )
    .unwrap();
    let _echo = byte_echo(format!("{server_ip}:7000").parse().unwrap()).await;
    let _server = Ztunnel::start(&dir, &config, "server", server_ip, &["--mark", "0"]).await;
    let hbone = format!("{server_ip}:15008");

    let result = python_connect(&dir, "default-client", &hbone, &format!("{server_ip}:7000")).await;
    assert_eq!(
        result["statuses"],
        serde_json::json!(["200", "200"]),
        "{result}"
    );
    assert_eq!(
        result["bodies"],
        serde_json::json!(["stream-0", "stream-1"]),
        "echoed"
    );

    let mismatch = python_connect(&dir, "default-client", &hbone, "127.0.0.99:7000").await;
    assert_eq!(
        mismatch["statuses"],
        serde_json::json!(["400", "400"]),
        "ip mismatch: {mismatch}"
    );

    let denied = python_connect(&dir, "sandbox-tester", &hbone, &format!("{server_ip}:7000")).await;
    assert_eq!(
        denied["statuses"],
        serde_json::json!(["401", "401"]),
        "L4 Deny: {denied}"
    );
}

#[tokio::test]
async fn haproxy_sends_proxy_v2_to_our_sandwiched_waypoint() {
    let dir = scratch("haproxy-sandwich");
    dev_ca(&dir, &[WAYPOINT_ID]).await;
    let (front, waypoint_ip, app_ip) = ("127.0.0.74", "127.0.0.75", "127.0.0.76");
    let listener = tokio::net::TcpListener::bind(format!("{app_ip}:8080"))
        .await
        .unwrap();
    let identity = examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: "app".into(),
    };
    tokio::spawn(examples_support::echo::serve_echo(listener, identity));
    // The Service's VIP is HAProxy's address: the PROXY header's destination.
    let mesh = dir.join("mesh.yaml");
    std::fs::write(
        &mesh,
        format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec: {{clusterIP: {front}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}
addressType: IPv4
endpoints: [{{addresses: ["{app_ip}"]}}]
ports: [{{name: http, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: app, port: 80}}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-sandwich, value: haproxy}}]}}
    backendRefs: [{{name: app, port: 80}}]
"#
        ),
    )
    .unwrap();
    let proxy_listen = format!("{waypoint_ip}:15088");
    let _waypoint = Waypoint::start(
        &dir,
        &mesh,
        &format!("{waypoint_ip}:15000"),
        &["--proxy-listen", &proxy_listen],
    )
    .await;
    let haproxy_config = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_config,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen front\n  bind {front}:80\n  server waypoint {proxy_listen} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let _haproxy = tokio::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&haproxy_config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://{front}/through/haproxy"),
            ])
            .output()
            .await
            .unwrap();
        if output.status.success() {
            body = String::from_utf8_lossy(&output.stdout).into_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(body.contains("\"x-sandwich\":[\"haproxy\"]"), "{body}");
    assert!(body.contains("/through/haproxy"), "{body}");
}

/// python-h2 listening on `address` as an HBONE server with `who`'s certificate; its port line
/// read, the rest of its stdout (the JSON summary printed when the connection closes) returned.
async fn python_hbone_server(
    dir: &std::path::Path,
    who: &str,
    address: &str,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt as _;
    let pem = |suffix: &str| dir.join(format!("{who}-{suffix}.pem"));
    let mut child = tokio::process::Command::new("python3")
        .arg(python_script("h2_hbone_server.py"))
        .arg(pem("cert"))
        .arg(pem("key"))
        .arg(dir.join("ca-cert.pem"))
        .arg(address)
        .stdout(std::process::Stdio::piped())
        // The impostor's refused handshake would print a traceback: the JSON tells enough.
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(Some(port.as_str()), address.rsplit(':').next());
    (child, lines)
}

/// SOCKS5 CONNECT to an IPv4 `destination` through `proxy`; the stream after success.
async fn socks5_ipv4(proxy: &str, destination: std::net::SocketAddrV4) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let mut request = vec![5, 1, 0, 5, 1, 0, 1];
    request.extend_from_slice(&destination.ip().octets());
    request.extend_from_slice(&destination.port().to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let mut answers = [0u8; 12];
    stream.read_exact(&mut answers).await.unwrap();
    assert_eq!(&answers[..4], &[5, 0, 5, 0], "SOCKS5 success");
    stream
}

#[tokio::test]
async fn our_ztunnel_dials_python_h2_as_the_hbone_server() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = scratch("python-h2-server");
    dev_ca(&dir, &[CLIENT, SERVER]).await;
    let (client_ip, server_ip, impostor_ip) = ("127.0.0.77", "127.0.0.78", "127.0.0.79");
    let config = dir.join("local.yaml");
    let workload = |name: &str, ip: &str| {
        format!(
            "- {{uid: Kubernetes//Pod/default/{name}, name: {name}, namespace: default, \
             serviceAccount: {name}, trustDomain: cluster.local, workloadIps: [\"{ip}\"], \
             protocol: HBONE, services: {{}}}}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "workloads:\n{}{}{}",
            workload("client", client_ip),
            workload("server", server_ip),
            // Claims the server's service account but will present the client's certificate.
            workload("server", impostor_ip).replace("Pod/default/server", "Pod/default/impostor"),
        ),
    )
    .unwrap();
    let (mut python, mut summary) =
        python_hbone_server(&dir, "default-server", &format!("{server_ip}:15008")).await;
    let (_impostor, _) =
        python_hbone_server(&dir, "default-client", &format!("{impostor_ip}:15008")).await;
    let mut client = Ztunnel::start(&dir, &config, "client", client_ip, &["--mark", "0"]).await;

    let mut stream = socks5_ipv4(
        &client.socks5(),
        format!("{server_ip}:8080").parse().unwrap(),
    )
    .await;
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.split();
    let (_, echoed) = tokio::join!(
        async {
            write.write_all(&payload).await.unwrap();
            write.shutdown().await.unwrap();
        },
        async {
            let mut echoed = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut echoed))
                .await
                .unwrap()
                .unwrap();
            echoed
        }
    );
    assert!(
        echoed == payload,
        "256 KiB echoed through python-h2 ({} bytes)",
        echoed.len()
    );

    // A peer presenting another identity than the workload's service account is refused:
    // SOCKS5 answers success first (as Istio's does), then the stream closes without data.
    let mut refused = socks5_ipv4(
        &client.socks5(),
        format!("{impostor_ip}:8080").parse().unwrap(),
    )
    .await;
    let _ = refused.write_all(b"not for an impostor").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), refused.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(answer.is_empty(), "nothing from the impostor: {answer:?}");

    // Ending our ztunnel closes its pooled HBONE connection: python prints what it saw.
    client.child.kill().await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), summary.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = python.wait().await;
    let seen: Value = serde_json::from_str(&line).unwrap();
    let headers = seen["requests"][0].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .and_then(|h| h[1].as_str())
            .map(str::to_owned)
    };
    assert_eq!(header(":method").as_deref(), Some("CONNECT"), "{seen}");
    assert_eq!(
        header(":authority"),
        Some(format!("{server_ip}:8080")),
        "authority = workload IP and target port"
    );
    assert!(
        header("forwarded").is_some_and(|f| f.starts_with("for=")),
        "{seen}"
    );
    assert_eq!(seen["settings"]["ENABLE_PUSH"], 0, "{seen}");
    let sni = seen["sni"].as_array().unwrap();
    assert!(sni.iter().all(Value::is_null), "no SNI: {sni:?}");
}
