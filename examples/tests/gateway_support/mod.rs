//! Helpers shared by the end-to-end tests of the `gateway` binary: processes, YAML, curl,
//! echo backends, certificates made with the openssl CLI.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod tls;
pub mod upgrade;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use examples_support::echo::{EchoIdentity, serve_echo};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

pub const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

/// A running gateway and its admin address.
pub struct Gateway {
    pub child: Child,
    pub admin: SocketAddr,
}

/// A loopback port that was free a moment ago, taken below the kernel's ephemeral range
/// (32768–60999) so that no client connection — of this test or a parallel one — can take it
/// as its local port before the process under test binds it. Ports are handed out in a
/// per-process sequence (from an offset of the process id), each checked free for TCP and UDP.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919) % 12_000;
    for _ in 0..12_000 {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + u16::try_from((offset + step) % 12_000).unwrap();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}
/// Numbers scratch directories so two tests naming theirs alike never share (or delete) one.
static SCRATCH_SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "gateway-{name}-{}-{}",
        std::process::id(),
        SCRATCH_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts an independent peer (an authorizer, an OpenID provider…) that announces itself on
/// its first stdout line: the child (killed on drop) and that line. The rest of its stdout is
/// read and dropped, so the peer never blocks writing. `what` names it in failures.
pub async fn spawn_peer(mut command: Command, what: &str) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} (scripts/install-test-deps): {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} starts within 20 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{what} printed a line before exiting"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, line)
}

/// Starts an echo backend reporting `pod`; returns its port.
pub async fn echo(pod: &str) -> u16 {
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
pub fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1], hostname: {name}-0}}]\n\
         ports: [{{name: http, port: {port}}}]\n---\n"
    )
}

/// An h2c Service `name` (appProtocol `kubernetes.io/h2c`) with the one endpoint
/// 127.0.0.1:`port`.
pub fn h2c_service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  \
         ports: [{{name: http, port: 80, appProtocol: kubernetes.io/h2c}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\n\
         ports: [{{name: http, port: {port}, appProtocol: kubernetes.io/h2c}}]\n---\n"
    )
}

/// An HTTPRoute `name` on the `http` listener of `gw` for host `name.example`, to port 80 of
/// the Service `service`.
pub fn host_route(name: &str, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
         rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]\n---\n"
    )
}

pub fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: http, port: {port}, protocol: HTTP}}\n  \
         - {{name: foo, port: {port}, protocol: HTTP, hostname: foo.example.com}}\n---\n"
    )
}

pub async fn start_gateway(configs: &[&Path]) -> Gateway {
    start_gateway_with(configs, &[]).await
}

/// Starts the gateway with `extra` arguments after the usual ones.
pub async fn start_gateway_with(configs: &[&Path], extra: &[&str]) -> Gateway {
    start_gateway_logging(configs, extra, None).await
}

/// Starts the gateway with `extra` arguments; its stderr lines are appended to `lines`.
pub async fn start_gateway_logging(
    configs: &[&Path],
    extra: &[&str],
    lines: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
) -> Gateway {
    let mut command = Command::new(GATEWAY);
    for config in configs {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .args(["--admin", "127.0.0.1:0", "--reload-interval-ms", "50"])
        .args(extra)
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
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if let Some(lines) = &lines {
                lines.lock().unwrap().push(line);
            }
        }
    });
    Gateway { child, admin }
}

/// Runs curl; returns (status, headers and body as text).
pub async fn curl(args: &[&str]) -> (u16, String) {
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

/// The value of header `name` in a `curl -i` answer's head.
pub fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The JSON body of an echo answer.
pub fn echoed(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F)
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
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn wait_ready(&self) {
        let url = self.admin_url("/ready");
        wait_until("/ready", || async { curl(&[&url]).await.0 == 200 }).await;
    }

    pub async fn terminate(&mut self) -> Duration {
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

/// The next request head on `stream` (its text, without the blank line), reading into and
/// then out of `pending`; `None` once the stream ends or fails first. For raw test backends.
pub async fn next_request_head(
    stream: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            return Some(head);
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Runs HAProxy with the configuration `config` (text) written to `dir/name`, killed when the
/// child is dropped.
pub fn spawn_haproxy(dir: &Path, name: &str, config: &str) -> Child {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy is installed (scripts/install-test-deps)")
}

/// The independent python `h2` server answering with the HTTP/2 settings, `:authority` and
/// `:scheme` it saw (`tests/interop/h2_settings_server.py`); its port.
pub async fn h2_settings_server() -> (Child, u16) {
    h2_settings_server_with(&[]).await
}

/// [`h2_settings_server`] speaking TLS (ALPN `h2`) with the certificate `cert` and its `key`.
pub async fn h2_settings_server_tls(cert: &Path, key: &Path) -> (Child, u16) {
    h2_settings_server_with(&[cert, key]).await
}

async fn h2_settings_server_with(args: &[&Path]) -> (Child, u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/h2_settings_server.py"
    );
    let mut command = Command::new("python3");
    command.arg(script).args(args);
    let (server, line) = spawn_peer(command, "the python h2 server").await;
    (server, line.trim().parse().unwrap())
}
