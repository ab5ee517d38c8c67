//! Interop with an independent HTTP/2 implementation: python-h2 as an HBONE client of our
//! server and as an HBONE server for our client (checklist items 5 and 12).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hbone::server::{ConnectDecision, HboneServerConfig};
use serde_json::Value;
use support::mesh::{CLIENT, Mesh, SERVER, echo_upstream, id, read_all};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Writes `<name>-cert.pem`, `<name>-key.pem` and `ca.pem`; returns their paths.
fn write_identity(mesh: &Mesh, dir: &Path, name: &str, identity: &str) -> [String; 3] {
    let issued = mesh.ca.issue(&id(identity)).unwrap();
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let ca = dir.join("ca.pem");
    std::fs::write(&cert, &issued.certificate_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    std::fs::write(&ca, mesh.ca.root_pem()).unwrap();
    [cert, key, ca].map(|p| p.to_str().unwrap().to_owned())
}

/// python-h2 opens three CONNECT streams on one connection to our server; each is forwarded
/// and echoed. Our SETTINGS are ztunnel's server values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_h2_client_to_our_server() {
    support::require_program("python3");
    let mesh = Mesh::new();
    let dir = support::scratch_dir("py-client");
    let [cert, key, ca] = write_identity(&mesh, &dir, "client", CLIENT);
    let upstream = echo_upstream().await;
    let server = mesh
        .server(SERVER, HboneServerConfig::default(), move |_| {
            ConnectDecision::forward(upstream)
        })
        .await;
    let output = Command::new("python3")
        .arg(script("h2_hbone_client.py"))
        .args([
            "127.0.0.1",
            &server.address.port().to_string(),
            &cert,
            &key,
            &ca,
        ])
        .args(["10.0.0.1:80", "3"])
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
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["statuses"], serde_json::json!(["200", "200", "200"]));
    assert_eq!(
        result["bodies"],
        serde_json::json!(["stream-0", "stream-1", "stream-2"])
    );
    let settings = &result["settings"];
    assert_eq!(settings["INITIAL_WINDOW_SIZE"], 4 * 1024 * 1024);
    assert_eq!(settings["MAX_FRAME_SIZE"], 1024 * 1024);
    assert_eq!(settings["MAX_CONCURRENT_STREAMS"], 200);
    assert_eq!(settings["MAX_HEADER_LIST_SIZE"], 64 * 1024);
    let window = result["outbound_window"].as_i64().unwrap();
    assert!(
        window > 16 * 1024 * 1024 - 1024,
        "16 MiB connection window, got {window}"
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|(request, _)| request.peer_identity == Some(id(CLIENT)))
    );
}

/// Our client against a python-h2 server: the CONNECT carries exactly `:method` and
/// `:authority` as pseudo-headers (IPv6 bracketed), our SETTINGS are ztunnel's client values,
/// the connection window is raised to 16 MiB, and no SNI is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_to_a_python_h2_server() {
    support::require_program("python3");
    let mesh = Mesh::new();
    let dir = support::scratch_dir("py-server");
    let [cert, key, ca] = write_identity(&mesh, &dir, "server", SERVER);
    let mut child = Command::new("python3")
        .arg(script("h2_hbone_server.py"))
        .args([&cert, &key, &ca])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    {
        let connector = mesh.connector();
        let target = mesh.target(address, "[fd00::1]:8080", &[SERVER]);
        let mut stream = connector.open(&target).await.unwrap();
        stream.write_all(b"hello python").await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_all(&mut stream).await, b"hello python");
    }
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let result: Value = serde_json::from_str(&line).unwrap();
    let headers = result["requests"][0].as_array().unwrap();
    let pseudo: Vec<&Value> = headers
        .iter()
        .filter(|h| h[0].as_str().unwrap().starts_with(':'))
        .collect();
    assert_eq!(
        pseudo,
        [
            &serde_json::json!([":method", "CONNECT"]),
            &serde_json::json!([":authority", "[fd00::1]:8080"])
        ]
    );
    let names: Vec<&str> = headers.iter().map(|h| h[0].as_str().unwrap()).collect();
    for required in ["forwarded", "baggage", "traceparent"] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
    let settings = &result["settings"];
    assert_eq!(settings["INITIAL_WINDOW_SIZE"], 4 * 1024 * 1024);
    assert_eq!(settings["MAX_FRAME_SIZE"], 1024 * 1024);
    assert_eq!(settings["MAX_HEADER_LIST_SIZE"], 16 * 1024);
    assert_eq!(settings["ENABLE_PUSH"], 0);
    assert_eq!(
        result["connection_window_increment"],
        16 * 1024 * 1024 - 65_535
    );
    let sni = result["sni"].as_array().unwrap();
    assert!(sni.iter().all(Value::is_null), "no SNI: {sni:?}");
}
