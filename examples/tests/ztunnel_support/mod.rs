//! Running `ztunnel` processes for the end-to-end tests: certificates from `hbonecat dev-ca`,
//! a local configuration file, readiness, SOCKS5 and admin helpers.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The binaries built for these tests.
pub const ZTUNNEL: &str = env!("CARGO_BIN_EXE_ztunnel");
pub const HBONECAT: &str = env!("CARGO_BIN_EXE_hbonecat");

/// Numbers scratch directories so two tests naming theirs alike never share (or delete) one.
static SCRATCH_SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ztunnel-{name}-{}-{}",
        std::process::id(),
        SCRATCH_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Issues certificates for `identities` into `dir` (`{ns}-{sa}-cert.pem`, `ca-cert.pem`).
pub async fn dev_ca(dir: &Path, identities: &[&str]) {
    let mut command = Command::new(HBONECAT);
    command.args(["dev-ca", "--out", dir.to_str().unwrap()]);
    for identity in identities {
        command.args(["--identity", identity]);
    }
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running ztunnel.
pub struct Ztunnel {
    pub child: Child,
    pub ip: String,
    pub log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Ztunnel {
    /// Starts `ztunnel` for `default/{name}` (certificate `default-{name}`) with every
    /// listener on `ip`, and waits until it is ready.
    pub async fn start(dir: &Path, config: &Path, name: &str, ip: &str, extra: &[&str]) -> Self {
        let pem = |suffix: &str| dir.join(format!("default-{name}-{suffix}.pem"));
        let mut command = Command::new(ZTUNNEL);
        command
            .arg("--config")
            .arg(config)
            .arg("--cert")
            .arg(pem("cert"))
            .arg("--key")
            .arg(pem("key"))
            .arg("--ca")
            .arg(dir.join("ca-cert.pem"))
            .args(["--workload", &format!("default/{name}")])
            .args(["--bind", ip])
            .args(["--admin", &format!("{ip}:15000")])
            .args(["--socks5", &format!("{ip}:15080")])
            .args(["--reload-interval-ms", "50"])
            .args(extra);
        let (child, log) = spawn_logged(command);
        let ztunnel = Ztunnel {
            child,
            ip: ip.to_owned(),
            log,
        };
        ztunnel.wait_ready().await;
        ztunnel
    }

    /// Waits for `/healthz/ready` to answer 200.
    pub async fn wait_ready(&self) {
        wait_http_ok(&format!("{}:15021", self.ip), "/healthz/ready").await;
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout_at(deadline, self.log.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
                .unwrap();
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The SOCKS5 address.
    pub fn socks5(&self) -> String {
        format!("{}:15080", self.ip)
    }
}

/// `GET path` on `address` with `connection: close`; the whole answer, or `None`.
pub async fn http_get(address: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .ok()?
        .ok()?;
    Some(answer)
}

/// Opens a SOCKS5 CONNECT to `host:port` through `proxy` (domain-name form); the stream
/// after the proxy's success reply, or the reply code it refused with.
pub async fn socks5_connect(proxy: &str, host: &str, port: u16) -> Result<TcpStream, u8> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let mut request = vec![5, 1, 0, 5, 1, 0, 3, u8::try_from(host.len()).unwrap()];
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let mut answers = [0u8; 12];
    stream.read_exact(&mut answers).await.map_err(|_| 0xFF)?;
    assert_eq!(&answers[..2], &[5, 0], "method selection");
    match answers[3] {
        0 => Ok(stream),
        code => Err(code),
    }
}

/// A TCP app on `address` echoing every byte, and half-closing when the client does.
pub async fn byte_echo(address: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    })
}

/// The waypoint binary built for these tests.
pub const WAYPOINT: &str = env!("CARGO_BIN_EXE_waypoint");

/// A running waypoint.
pub struct Waypoint {
    pub child: Child,
    pub admin: String,
    pub log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Waypoint {
    /// Starts `waypoint` with certificate `default-waypoint` and `args`, admin on
    /// `admin`, and waits until the admin endpoint answers.
    pub async fn start(dir: &Path, config: &Path, admin: &str, args: &[&str]) -> Self {
        let pem = |suffix: &str| dir.join(format!("default-waypoint-{suffix}.pem"));
        let mut command = Command::new(WAYPOINT);
        command
            .arg("--config")
            .arg(config)
            .arg("--cert")
            .arg(pem("cert"))
            .arg("--key")
            .arg(pem("key"))
            .arg("--ca")
            .arg(dir.join("ca-cert.pem"))
            .args(["--admin", admin, "--reload-interval-ms", "50"])
            .args(args);
        let (child, log) = spawn_logged(command);
        wait_http_ok(admin, "/ready").await;
        Waypoint {
            child,
            admin: admin.to_owned(),
            log,
        }
    }
}

/// Spawns `command` (killed on drop) with its stderr lines forwarded to a channel.
fn spawn_logged(mut command: Command) -> (Child, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (sender, log) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    (child, log)
}

/// Waits (up to 5 s) for `GET path` on `address` to answer 200.
pub async fn wait_http_ok(address: &str, path: &str) {
    for _ in 0..200 {
        if http_get(address, path)
            .await
            .is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{address}{path} never answered 200");
}
