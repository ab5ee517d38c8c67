//! Helpers shared by the end-to-end tests of the example binaries.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The hbonecat binary built for these tests.
pub const HBONECAT: &str = env!("CARGO_BIN_EXE_hbonecat");

/// A running server subcommand: its process, the address it announced, its JSON event lines.
pub struct Running {
    pub child: Child,
    pub address: SocketAddr,
    events: Lines<BufReader<ChildStdout>>,
}

/// Starts `hbonecat ARGS…`, waits for its `hbonecat: listening on ADDR` line on stderr.
pub async fn start_listening<I, S>(args: I) -> Running
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(HBONECAT)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
        .await
        .expect("a listening line")
        .unwrap()
        .unwrap();
    let address = line
        .strip_prefix("hbonecat: listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let events = BufReader::new(child.stdout.take().unwrap()).lines();
    Running {
        child,
        address,
        events,
    }
}

impl Running {
    /// The next JSON line printed on stdout.
    pub async fn next_event(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.events.next_line())
            .await
            .expect("an event line")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// Sends SIGTERM and asserts a clean exit within 3 s.
    pub async fn terminate_and_expect_clean_exit(&mut self) {
        let pid = self.child.id().unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(killed.unwrap().success());
        let exit = tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await;
        assert!(
            matches!(exit, Ok(Ok(status)) if status.success()),
            "{exit:?}"
        );
    }
}

/// What a finished command left behind.
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `hbonecat ARGS…` with `stdin` as its input (then closed) and waits for it to exit.
pub async fn run_with_stdin<I, S>(args: I, stdin: &[u8]) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(HBONECAT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the command exits")
        .unwrap();
    Finished {
        code: output.status.code().unwrap(),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Numbers scratch directories so two tests naming theirs alike never share (or delete) one.
static SCRATCH_SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hbonecat-{name}-{}-{}",
        std::process::id(),
        SCRATCH_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
