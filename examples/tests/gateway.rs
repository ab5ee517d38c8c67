//! End-to-end tests of the `gateway` binary: YAML on disk, echo backends on loopback, curl as
//! the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use examples_support::echo::{EchoIdentity, serve_echo};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

/// A running gateway and its admin address.
struct Gateway {
    child: Child,
    admin: SocketAddr,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts an echo backend reporting `pod`; returns its port.
async fn echo(pod: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let identity = EchoIdentity {
        namespace: "default".into(),
        pod: pod.into(),
    };
    tokio::spawn(serve_echo(listener, identity));
    port
}

/// A Service named `name` whose one endpoint is 127.0.0.1:`port` (pod `name-0`).
fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1], hostname: {name}-0}}]\n\
         ports: [{{name: http, port: {port}}}]\n---\n"
    )
}

fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: http, port: {port}, protocol: HTTP}}\n  \
         - {{name: foo, port: {port}, protocol: HTTP, hostname: foo.example.com}}\n---\n"
    )
}

async fn start_gateway(configs: &[&Path]) -> Gateway {
    let mut command = Command::new(GATEWAY);
    for config in configs {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .args(["--admin", "127.0.0.1:0", "--reload-interval-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let admin = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("the gateway starts")
            .unwrap()
            .expect("a line before exit");
        if let Some(address) = line.strip_prefix("gateway: admin on ") {
            break address.parse().unwrap();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    Gateway { child, admin }
}

/// Runs curl; returns (status, headers and body as text).
async fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-i"])
        .args(args)
        .output()
        .await
        .expect("curl is installed (run scripts/install-test-deps)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The JSON body of an echo answer.
fn echoed(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Gateway {
    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn wait_ready(&self) {
        let url = self.admin_url("/ready");
        wait_until("/ready", || async { curl(&[&url]).await.0 == 200 }).await;
    }

    async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().unwrap();
        let started = Instant::now();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::time::timeout(Duration::from_secs(8), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
        started.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_curl_requests_to_echo_backends_as_the_yaml_says() {
    let port = free_port();
    let (v1, v2) = (echo("v1-0").await, echo("v2-0").await);
    let dir = scratch("routes");
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Header-Set, value: new}], add: [{name: x-added, value: two}], remove: [x-drop]}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: Exact, value: /broken}}]
    backendRefs: [{name: does-not-exist, port: 80}]
  - matches: [{path: {type: Exact, value: /nobody}}]
    backendRefs: [{name: no-endpoints, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip/}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, statusCode: 308}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foo-only}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: no-endpoints}
spec: {ports: [{port: 80}]}
"#;
    let yaml = format!(
        "{}{}{}{routes}",
        gateway_yaml(port),
        service("v1", v1),
        service("v2", v2)
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let (status, response) = curl(&[
        "-H",
        "x-header-set: old",
        "-H",
        "x-added: one",
        "-H",
        "x-drop: yes",
        "-H",
        "x-empty;",
        "-H",
        "Host: shop.example.com:1234",
        &url("/app/items?b=2&a=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["pod"], "v1-0");
    assert_eq!(
        seen["path"], "/app/items?b=2&a=1",
        "path and query forwarded as sent"
    );
    assert_eq!(
        seen["host"], "shop.example.com:1234",
        "Host forwarded with its port"
    );
    assert_eq!(seen["headers"]["x-header-set"], serde_json::json!(["new"]));
    assert_eq!(seen["headers"]["x-added"], serde_json::json!(["one,two"]));
    assert_eq!(
        seen["headers"]["x-empty"],
        serde_json::json!([""]),
        "empty headers forwarded"
    );
    assert!(seen["headers"].get("x-drop").is_none());

    assert_eq!(
        curl(&[&url("/application")]).await.0,
        404,
        "prefixes match whole segments"
    );
    assert_eq!(curl(&[&url("/broken")]).await.0, 500, "missing Service");
    assert_eq!(
        curl(&[&url("/nobody")]).await.0,
        503,
        "Service without endpoints"
    );

    let (_, response) = curl(&[&url("/strip/three?x=y")]).await;
    let seen = echoed(&response);
    assert_eq!(
        (seen["path"].as_str(), seen["host"].as_str()),
        (Some("/three?x=y"), Some("rewritten.example"))
    );
    assert_eq!(seen["pod"], "v2-0");

    let (status, response) = curl(&["-H", "Host: shop.example.com", &url("/moved/here")]).await;
    assert_eq!(status, 308);
    assert!(
        response
            .to_ascii_lowercase()
            .contains("location: https://shop.example.com:8443/moved/here\r\n"),
        "{response}"
    );

    let (status, response) = curl(&["-H", "Host: foo.example.com", &url("/app/x")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        echoed(&response)["pod"],
        "v2-0",
        "the foo listener has only its own route"
    );

    let (status, response) = curl(&["--http2-prior-knowledge", &url("/app/h2c")]).await;
    assert_eq!(
        status, 200,
        "h2c prior knowledge on a plain HTTP listener: {response}"
    );
    assert!(response.starts_with("HTTP/2 200"), "{response}");
    assert_eq!(echoed(&response)["host"], format!("127.0.0.1:{port}"));

    let (_, status_json) = curl(&[&gateway.admin_url("/status")]).await;
    let status_json = echoed(&status_json);
    let main = status_json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"]["name"] == "main")
        .unwrap();
    let conditions = &main["parents"][0]["conditions"];
    assert_eq!(conditions[0]["reason"], "Accepted");
    assert_eq!(conditions[1]["reason"], "BackendNotFound");
    let (_, metrics) = curl(&[&gateway.admin_url("/metrics")]).await;
    assert!(
        metrics.contains("gateway_http_requests_total{code=\"503\"} 1"),
        "{metrics}"
    );
}

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

/// A self-signed certificate for `names` made by the openssl CLI; returns (cert PEM, key PEM).
/// `rsa_pkcs1` makes an RSA key in PKCS#1 form, otherwise a P-256 key in PKCS#8.
fn openssl_certificate(
    dir: &Path,
    stem: &str,
    names: &[&str],
    rsa_pkcs1: bool,
) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{stem}-cert.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = std::process::Command::new("openssl");
    command.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={}", names[0]),
    ]);
    command.args(["-addext", &format!("subjectAltName={san}")]);
    if rsa_pkcs1 {
        command.args(["-newkey", "rsa:2048"]);
    } else {
        command.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    let status = command
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-test-deps)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    if rsa_pkcs1 {
        let converted = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(converted.status.success());
    }
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert_eq!(
        key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        rsa_pkcs1
    );
    (std::fs::read_to_string(&cert).unwrap(), key_pem)
}

fn tls_secret(name: &str, (cert, key): &(String, String)) -> String {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\n\
         data:\n  tls.crt: {}\n  tls.key: {}\n---\n",
        encode(cert),
        encode(key)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn https_listeners_choose_certificates_by_sni_and_refuse_misdirected_requests() {
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("https");
    let wildcard = openssl_certificate(&dir, "wild", &["*.example.com"], true);
    let other = openssl_certificate(&dir, "other", &["other.test"], false);
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: wild, port: {port}, protocol: HTTPS, hostname: '*.example.com', tls: {{certificateRefs: [{{name: wild}}]}}}}\n  \
         - {{name: other, port: {port}, protocol: HTTPS, hostname: other.test, tls: {{certificateRefs: [{{name: other}}]}}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{path: {{value: /go}}}}]\n    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /gone}}}}}}]\n  \
         - backendRefs: [{{name: v1, port: 80}}]\n---\n{}{}{}",
        tls_secret("wild", &wildcard),
        tls_secret("other", &other),
        service("v1", v1)
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    let wild_ca = dir.join("wild-cert.pem").display().to_string();
    let other_ca = dir.join("other-cert.pem").display().to_string();

    let (status, response) = curl(&[
        "--http2",
        "--resolve",
        &resolve("www.example.com"),
        "--cacert",
        &wild_ca,
        &format!("https://www.example.com:{port}/path?q=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(response.starts_with("HTTP/2 200"), "ALPN h2: {response}");
    let seen = echoed(&response);
    assert_eq!(
        (seen["path"].as_str(), seen["pod"].as_str()),
        (Some("/path?q=1"), Some("v1-0"))
    );
    assert_eq!(seen["host"], format!("www.example.com:{port}"));

    let (status, response) = curl(&[
        "--http1.1",
        "--resolve",
        &resolve("other.test"),
        "--cacert",
        &other_ca,
        &format!("https://other.test:{port}/"),
    ])
    .await;
    assert_eq!(
        status, 200,
        "the other listener's certificate verifies: {response}"
    );

    let (status, response) = curl(&[
        "--http1.1",
        "--resolve",
        &resolve("www.example.com"),
        "--cacert",
        &wild_ca,
        "-H",
        "Host: other.test",
        &format!("https://www.example.com:{port}/"),
    ])
    .await;
    assert_eq!(
        status, 421,
        "SNI and Host belong to different listeners: {response}"
    );

    let (status, response) = curl(&[
        "--resolve",
        &resolve("a.example.com"),
        "--cacert",
        &wild_ca,
        &format!("https://a.example.com:{port}/go?x=1"),
    ])
    .await;
    assert_eq!(status, 302);
    assert!(
        response.to_ascii_lowercase().contains(&format!(
            "location: https://a.example.com:{port}/gone?x=1\r\n"
        )),
        "an HTTPS listener redirects to https and its own port: {response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_routes_and_h2c_services_reach_the_backend_over_http2() {
    let port = free_port();
    let (v1, v2) = (echo("grpc-0").await, echo("h2c-0").await);
    let dir = scratch("grpc");
    let yaml = format!(
        "{}{}{}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{method: {{service: echo.Echo, method: Say}}}}]\n    backendRefs: [{{name: grpc, port: 80}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: h}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{path: {{value: /h2c}}}}]\n    backendRefs: [{{name: h2c, port: 80}}]\n",
        gateway_yaml(port),
        service("grpc", v1),
        service("h2c", v2).replace(
            "ports: [{name: http, port: 80}]",
            "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]"
        ),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let grpc = [
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ];

    let (status, response) = curl(&[&grpc[..], &[url("/echo.Echo/Say").as_str()]].concat()).await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(
        (seen["pod"].as_str(), seen["proto"].as_str()),
        (Some("grpc-0"), Some("HTTP/2.0"))
    );
    let (status, response) = curl(&[&grpc[..], &[url("/echo.Echo/Other").as_str()]].concat()).await;
    assert_eq!(status, 200);
    assert!(
        response.contains("grpc-status: 12"),
        "UNIMPLEMENTED for no route: {response}"
    );

    let (_, response) = curl(&[&url("/h2c")]).await;
    let seen = echoed(&response);
    assert_eq!(
        (seen["pod"].as_str(), seen["proto"].as_str()),
        (Some("h2c-0"), Some("HTTP/2.0")),
        "appProtocol kubernetes.io/h2c"
    );
    assert_eq!(seen["host"], format!("127.0.0.1:{port}"));
}

/// An `openssl s_server -www` on 127.0.0.1:`port` with the certificate `stem` in `dir`.
async fn openssl_server(dir: &Path, stem: &str, port: u16) -> Child {
    let child = Command::new("openssl")
        .args(["s_server", "-www", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(dir.join(format!("{stem}-cert.pem")))
        .arg("-key")
        .arg(dir.join(format!("{stem}-key.pem")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until("openssl s_server", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_passthrough_tcp_and_udp_listeners_forward_to_their_routes() {
    let (tls_port, tcp_port, udp_port) = (free_port(), free_port(), free_port());
    let (backend_a, backend_b) = (free_port(), free_port());
    let dir = scratch("l4");
    openssl_certificate(&dir, "a", &["a.example.com"], false);
    openssl_certificate(&dir, "b", &["b.example.com"], true);
    let _servers = (
        openssl_server(&dir, "a", backend_a).await,
        openssl_server(&dir, "b", backend_b).await,
    );
    let http_echo = echo("tcp-0").await;
    let udp_echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_echo_port = udp_echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, from)) = udp_echo.recv_from(&mut buffer).await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buffer[..len]);
            let _ = udp_echo.send_to(&reply, from).await;
        }
    });
    let plain_service = |name: &str, port: u16| service(name, port);
    let udp_service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: udp}}\nspec:\n  ports: [{{name: dns, port: 53, protocol: UDP}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: udp-1, labels: {{kubernetes.io/service-name: udp}}}}\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: dns, port: {udp_echo_port}, protocol: UDP}}]\n---\n"
    );
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: tls, port: {tls_port}, protocol: TLS, tls: {{mode: Passthrough}}}}\n  \
         - {{name: tcp, port: {tcp_port}, protocol: TCP}}\n  \
         - {{name: udp, port: {udp_port}, protocol: UDP}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: a}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: [a.example.com], rules: [{{backendRefs: [{{name: tls-a, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: b}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: ['*.example.com'], rules: [{{backendRefs: [{{name: tls-b, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: t}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: tcp}}], rules: [{{backendRefs: [{{name: http, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {{name: u}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: udp}}], rules: [{{backendRefs: [{{name: udp, port: 53}}]}}]}}\n---\n\
         {}{}{}{udp_service}",
        plain_service("tls-a", backend_a),
        plain_service("tls-b", backend_b),
        plain_service("http", http_echo),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;

    // The backend's own certificate reaches the client: the gateway did not terminate TLS.
    for (name, stem) in [("a.example.com", "a"), ("b.example.com", "b")] {
        let ca = dir.join(format!("{stem}-cert.pem")).display().to_string();
        let (status, response) = curl(&[
            "--resolve",
            &format!("{name}:{tls_port}:127.0.0.1"),
            "--cacert",
            &ca,
            &format!("https://{name}:{tls_port}/"),
        ])
        .await;
        assert_eq!(status, 200, "{name}: {response}");
        assert!(response.contains("s_server"), "{response}");
    }
    let (status, _) = curl(&[
        "-k",
        "--resolve",
        &format!("c.other.org:{tls_port}:127.0.0.1"),
        &format!("https://c.other.org:{tls_port}/"),
    ])
    .await;
    assert_eq!(status, 0, "an SNI without a route is refused");

    let (status, response) = curl(&[&format!("http://127.0.0.1:{tcp_port}/over/tcp")]).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&response)["path"], "/over/tcp");

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(("127.0.0.1", udp_port)).await.unwrap();
    client.send(b"ping").await.unwrap();
    let mut reply = [0u8; 64];
    let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply[..len], b"echo:ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_the_documented_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("hostile");
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {value: /app}}]\n    backendRefs: [{name: v1, port: 80}]\n";
    std::fs::write(
        dir.join("config.yaml"),
        format!("{}{}{route}", gateway_yaml(port), service("v1", v1)),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let huge = format!("x-huge: {}", "a".repeat(100 * 1024));
    assert_eq!(
        curl(&["-H", &huge, &url("/app")]).await.0,
        431,
        "headers over 64 KiB"
    );
    let (status, response) = curl(&["--path-as-is", &url("/app/../../etc/passwd")]).await;
    assert_eq!(
        status, 200,
        "routed on the raw path, forwarded as sent: {response}"
    );
    assert_eq!(echoed(&response)["path"], "/app/../../etc/passwd");
    assert_eq!(curl(&["--path-as-is", &url("/../app")]).await.0, 404);

    // A client that never finishes its headers is disconnected after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"GET /app HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buffer))
        .await
        .expect("closed before 20 s");
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(n) if n == 0 || buffer[..n].starts_with(b"HTTP/1.1 408")),
        "{read:?}"
    );
    assert!(elapsed >= Duration::from_secs(8), "{elapsed:?}");
    assert_eq!(curl(&[&url("/app")]).await.0, 200, "still serving");
}

/// A backend that switches every `Upgrade` request to an echo of raw bytes (what a WebSocket
/// connection is to a proxy); returns its port.
async fn upgrade_echo() -> u16 {
    use hyper_util::rt::TokioIo;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |mut request: http::Request<hyper::body::Incoming>| async move {
                        let upgrade = hyper::upgrade::on(&mut request);
                        tokio::spawn(async move {
                            let mut io = TokioIo::new(upgrade.await.unwrap());
                            let (mut reader, mut writer) = tokio::io::split(&mut io);
                            let _ = tokio::io::copy(&mut reader, &mut writer).await;
                        });
                        let response = http::Response::builder()
                            .status(101)
                            .header("upgrade", "websocket")
                            .header("connection", "upgrade")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_pass_through_to_ws_services() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let backend = upgrade_echo().await;
    let dir = scratch("websocket");
    let ws_service = service("ws", backend).replace(
        "ports: [{name: http, port: 80}]",
        "ports: [{name: http, port: 80, appProtocol: kubernetes.io/ws}]",
    );
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: ws, port: 80}]\n";
    std::fs::write(
        dir.join("config.yaml"),
        format!("{}{ws_service}{route}", gateway_yaml(port)),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    client
        .write_all(b"GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    client.write_all(b"frames both ways").await.unwrap();
    let mut echoed_back = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed_back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed_back, b"frames both ways");
}

/// A CA and a server certificate it signed for `name`, made by the openssl CLI: returns the
/// paths (ca cert, leaf cert, leaf key).
fn openssl_ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = |file: &str| dir.join(file);
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test backend CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca-cert.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        "leaf-key.pem",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        path("leaf.ext"),
        format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca-cert.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf-cert.pem",
    ]);
    (
        path("ca-cert.pem"),
        path("leaf-cert.pem"),
        path("leaf-key.pem"),
    )
}

/// An echo backend behind TLS (rustls) that reports the SNI it received as its pod name.
async fn tls_echo(cert: &Path, key: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("none").to_owned();
                let identity = EchoIdentity {
                    namespace: "default".into(),
                    pod: format!("sni={sni}"),
                };
                examples_support::echo::serve_echo_connection(tls, std::sync::Arc::new(identity))
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_tls_policies_make_the_gateway_speak_verified_tls_to_the_backend() {
    let port = free_port();
    let dir = scratch("backend-tls");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    let backend = tls_echo(&leaf, &key).await;
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    let policy = |name: &str, service: &str, hostname: &str, config_map: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  targetRefs: [{{group: '', kind: Service, name: {service}}}]\n  \
             validation: {{hostname: {hostname}, caCertificateRefs: [{{group: '', kind: ConfigMap, name: {config_map}}}]}}\n---\n"
        )
    };
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  \
        - matches: [{path: {value: /good}}]\n    backendRefs: [{name: good, port: 80}]\n  \
        - matches: [{path: {value: /wrong-name}}]\n    backendRefs: [{name: wrong-name, port: 80}]\n  \
        - matches: [{path: {value: /no-ca}}]\n    backendRefs: [{name: no-ca, port: 80}]\n---\n";
    let yaml = format!(
        "{}{}{}{}{}{}{}{route}apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: backend-ca}}\ndata:\n  ca.crt: |\n{indented}",
        gateway_yaml(port),
        service("good", backend),
        service("wrong-name", backend),
        service("no-ca", backend),
        policy("good", "good", "backend.internal", "backend-ca"),
        policy("wrong-name", "wrong-name", "other.internal", "backend-ca"),
        policy("no-ca", "no-ca", "backend.internal", "missing"),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let (status, response) = curl(&[&url("/good")]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        echoed(&response)["pod"],
        "sni=backend.internal",
        "the policy's hostname is the SNI"
    );
    assert_eq!(
        curl(&[&url("/wrong-name")]).await.0,
        503,
        "the certificate does not match the policy's hostname"
    );
    assert_eq!(
        curl(&[&url("/no-ca")]).await.0,
        500,
        "an invalid CA reference makes the backend invalid"
    );
    let (_, status_json) = curl(&[&gateway.admin_url("/status")]).await;
    let status_json = echoed(&status_json);
    let no_ca = status_json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "BackendTLSPolicy" && r["object"]["name"] == "no-ca")
        .unwrap();
    assert_eq!(no_ca["conditions"][1]["reason"], "InvalidCACertificateRef");
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
}
