//! Helpers shared by the integration tests: external peers run as child processes.
#![allow(dead_code, unreachable_pub)]

pub mod mesh;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Numbers scratch directories so two tests naming theirs alike never share (or delete) one.
static SCRATCH_SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A directory under the target dir, fresh for each test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hbone-test-{name}-{}-{}",
        std::process::id(),
        SCRATCH_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// Fails with a clear message when a peer program is missing: interop tests never skip.
pub fn require_program(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: run scripts/install-test-deps"
    );
}

/// A child process that is killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts HAProxy in the foreground with the config `make_config` writes for a frontend address,
/// and waits until that frontend accepts. Retries with another port if the one picked was taken
/// in the meantime (tests run in parallel).
pub fn start_haproxy(dir: &Path, make_config: impl Fn(SocketAddr) -> String) -> (Peer, SocketAddr) {
    require_program("haproxy");
    let path = dir.join("haproxy.cfg");
    let log = dir.join("haproxy.log");
    for _attempt in 0..5 {
        let frontend = SocketAddr::from(([127, 0, 0, 1], free_port()));
        std::fs::write(&path, make_config(frontend)).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "invalid HAProxy config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut peer = Peer(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&frontend, Duration::from_millis(100)).is_ok() {
                return (peer, frontend);
            }
            if let Ok(Some(_)) = peer.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "HAProxy did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A self-signed ECDSA P-256 certificate and key for `name`, concatenated in one PEM (the form
/// HAProxy's `crt` takes), made with the openssl command-line tool.
pub fn self_signed_pem(dir: &Path, name: &str) -> PathBuf {
    require_program("openssl");
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let combined = dir.join("combined.pem");
    let pem = [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat();
    std::fs::write(&combined, pem).unwrap();
    combined
}
