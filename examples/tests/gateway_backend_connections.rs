//! BackendTrafficPolicy connection settings through the `gateway` binary:
//! `timeout.tcp.connectTimeout` — a backend whose accept queue is full drops new connection
//! attempts (the kernel ignores their SYNs), so connecting hangs; with the policy the gateway
//! gives up after its 300 ms and answers 503, without it after the forwarder's own 5 s — and
//! `tcpKeepalive` — the gateway's connections to the backend carry keepalive with the policy's
//! idle time, as `ss` reports it; those of a route without the policy do not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use gateway_support::*;
use tokio::net::{TcpSocket, TcpStream};

/// A listener on loopback that never accepts, its queue filled: the port of a backend that
/// cannot be connected to (connection attempts hang). The guards keep it so.
async fn full_backend() -> (u16, Vec<TcpStream>, tokio::net::TcpListener) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // The accept queue holds backlog + 1 connections; attempts past it hang.
    for _ in 0..2 {
        queued.push(TcpStream::connect(address).await.unwrap());
    }
    let hung = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(address)).await;
    assert!(hung.is_err(), "the queue is full: connecting hangs");
    (address.port(), queued, listener)
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_timeout_bounds_connecting_to_a_backend() {
    let port = free_port();
    let (backend, _queued, _listener) = full_backend().await;
    let dir = scratch("backend-connect-timeout");
    let config = gateway_yaml(port)
        + &service("stuck", backend)
        + &host_route("quick", "stuck")
        + &host_route("patient", "stuck")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: quick}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: quick}]\n  \
           timeout: {tcp: {connectTimeout: 300ms}}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");

    let started = Instant::now();
    let (status, response) = curl(&["-H", "host: quick.example", &url]).await;
    let quick = started.elapsed();
    assert_eq!(status, 503, "{response}");
    assert!(
        quick >= Duration::from_millis(250) && quick < Duration::from_secs(2),
        "{quick:?}"
    );

    let started = Instant::now();
    let (status, response) = curl(&["-H", "host: patient.example", &url]).await;
    let patient = started.elapsed();
    assert_eq!(status, 503, "{response}");
    assert!(
        patient >= Duration::from_secs(4),
        "the forwarder's 5 s: {patient:?}"
    );
}

/// The `ss` lines of established connections to `port`.
async fn connections_to(port: u16) -> String {
    let output = tokio::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .await
        .expect("ss is installed (iproute2)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_connections_carry_the_policy_keepalive() {
    let port = free_port();
    let kept = echo("kept-0").await;
    let plain = echo("plain-0").await;
    let dir = scratch("backend-keepalive");
    let config = gateway_yaml(port)
        + &service("kept", kept)
        + &service("plain", plain)
        + &host_route("kept", "kept")
        + &host_route("plain", "plain")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: kept}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: kept}]\n  \
           tcpKeepalive: {idleTime: 600s, interval: 10s, probes: 3}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for host in ["host: kept.example", "host: plain.example"] {
        let (status, response) = curl(&["-H", host, &url]).await;
        assert_eq!(status, 200, "{response}");
    }

    // The pooled connection to the kept backend: keepalive counting down from 10 minutes.
    let sockets = connections_to(kept).await;
    let armed: Vec<&str> = sockets
        .lines()
        .filter(|line| line.contains("timer:(keepalive"))
        .collect();
    assert_eq!(armed.len(), 1, "{sockets}");
    assert!(
        armed[0].contains("timer:(keepalive,9min") || armed[0].contains("timer:(keepalive,10min"),
        "{sockets}"
    );
    let sockets = connections_to(plain).await;
    assert!(
        sockets.lines().count() >= 2,
        "the pooled connection is open: {sockets}"
    );
    assert!(!sockets.contains("keepalive"), "{sockets}");
}
