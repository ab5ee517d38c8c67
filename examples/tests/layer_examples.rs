//! The single-layer examples, run as a newcomer would: `axum_routing` (route selection, two
//! filters and CORS in an axum app), `axum_traffic` (client IP detection, path normalisation,
//! a local rate limit, a circuit breaker, fault injection and a bandwidth limit in an axum
//! app) and `hbone_http`
//! (HTTP inside HBONE tunnels through the gateway's request path), driven with curl and
//! `hbonecat connect`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use gateway_support::{curl, echoed};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts example `binary` with `args` and waits for its `NAME: listening on ADDR` line.
async fn start(binary: &str, args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("the example starts")
            .unwrap()
            .expect("a line before exit");
        if let Some((_, address)) = line.split_once(": listening on ") {
            break address.parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    (child, address)
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_app_selects_routes_runs_the_filters_and_answers_cors() {
    let (_app, address) = start(
        env!("CARGO_BIN_EXE_axum_routing"),
        &["--listen", "127.0.0.1:0"],
    )
    .await;
    let url = |path: &str| format!("http://{address}{path}");

    let (status, response) = curl(&["-H", "host: shop.example", &url("/cart/42")]).await;
    assert_eq!(status, 200, "{response}");
    let matched = echoed(&response);
    assert_eq!(matched["route"], "default/shop");
    assert_eq!(
        (matched["rule"].as_u64(), matched["name"].as_str()),
        (Some(0), Some("cart"))
    );
    assert_eq!(matched["listener"], "default/demo/http");
    assert_eq!(
        matched["x-routed-by"], "tower-mesh",
        "the request filter ran before the app"
    );
    assert!(
        response.to_ascii_lowercase().contains("x-served-by: axum"),
        "the response filter ran: {response}"
    );

    let (_, home) = curl(&["-H", "host: shop.example", &url("/")]).await;
    assert_eq!(echoed(&home)["name"], "home");

    let (status, _) = curl(&["-H", "host: other.example", &url("/cart")]).await;
    assert_eq!(
        status, 404,
        "no route for that host: the respond layer answers"
    );

    let (status, preflight) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "host: shop.example",
        "-H",
        "origin: https://app.example",
        "-H",
        "access-control-request-method: POST",
        &url("/cart"),
    ])
    .await;
    let preflight = preflight.to_ascii_lowercase();
    assert_eq!(status, 200, "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: https://app.example"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-methods: get, post"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-expose-headers: x-served-by"),
        "{preflight}"
    );
    assert!(
        !preflight.contains("x-routed-by"),
        "a preflight never reaches the app"
    );

    let (status, _) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "host: shop.example",
        "-H",
        "origin: https://evil.test",
        "-H",
        "access-control-request-method: POST",
        &url("/cart"),
    ])
    .await;
    assert_eq!(status, 403, "an origin the policy does not allow");
}

#[tokio::test(flavor = "multi_thread")]
async fn hbone_tunnels_carry_http_through_the_gateway_request_path() {
    let dir = support::scratch("hbone-http");
    let client = "spiffe://cluster.local/ns/default/sa/client";
    let made = Command::new(support::HBONECAT)
        .args([
            "dev-ca",
            "--out",
            dir.to_str().unwrap(),
            "--identity",
            client,
        ])
        .args(["--identity", "spiffe://cluster.local/ns/default/sa/server"])
        .output()
        .await
        .unwrap();
    assert!(made.status.success());
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (_server, address) = start(
        env!("CARGO_BIN_EXE_hbone_http"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &file("default-server-cert.pem"),
            "--key",
            &file("default-server-key.pem"),
            "--ca",
            &file("ca-cert.pem"),
        ],
    )
    .await;
    let to = address.to_string();
    let finished = support::run_with_stdin(
        [
            "connect",
            "--to",
            &to,
            "--authority",
            "10.0.0.1:80",
            "--cert",
            &file("default-client-cert.pem"),
            "--key",
            &file("default-client-key.pem"),
            "--ca",
            &file("ca-cert.pem"),
        ],
        b"GET /hello HTTP/1.1\r\nhost: echo.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(finished.code, 0, "{}", finished.stderr);
    let response = String::from_utf8(finished.stdout).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let seen: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(
        seen["pod"], "echo-0",
        "forwarded to the route's backend: {seen}"
    );
    assert_eq!(
        seen["headers"]["x-tunnelled"][0], "hbone",
        "the route's filter ran: {seen}"
    );
    assert_eq!(seen["headers"]["x-client-identity"][0], client, "{seen}");
    assert_eq!(seen["path"], "/hello", "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_app_detects_clients_normalises_paths_limits_and_injects_faults() {
    let (_app, address) = start(
        env!("CARGO_BIN_EXE_axum_traffic"),
        &["--listen", "127.0.0.1:0", "--abort-percent", "100"],
    )
    .await;
    let url = |path: &str| format!("http://{address}{path}");

    let (status, response) = curl(&[
        "--path-as-is",
        "-H",
        "x-forwarded-for: 203.0.113.9, 10.0.0.1",
        &url("/a/../b//c"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let answer = echoed(&response);
    assert_eq!(answer["client"], "203.0.113.9", "two trusted hops");
    assert_eq!(answer["path"], "/b/c", "normalised before the handler");
    let (status, response) = curl(&[&url("/a%2Fb")]).await;
    assert_eq!(status, 307, "{response}");
    assert!(response.contains("location: /a/b"), "{response}");

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(curl(&["-H", "x-user: ann", &url("/")]).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let (status, response) = curl(&["-H", "x-user: bob", &url("/")]).await;
    assert_eq!(status, 200, "bob has his own bucket");
    assert!(response.contains("x-ratelimit-remaining: 4"), "{response}");

    let (status, _) = curl(&[&url("/teapot")]).await;
    assert_eq!(status, 418, "--abort-percent 100");
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_app_paces_its_download_to_the_flag() {
    let timed = |address: SocketAddr| async move {
        let started = std::time::Instant::now();
        let (status, response) = curl(&[&format!("http://{address}/download")]).await;
        assert_eq!(status, 200);
        assert!(response.ends_with(&"x".repeat(64)), "the whole body");
        started.elapsed()
    };
    // 64 KiB at 16 KiB/s: one second's burst, then three more.
    let (_slow, address) = start(
        env!("CARGO_BIN_EXE_axum_traffic"),
        &["--listen", "127.0.0.1:0", "--download-limit", "16384"],
    )
    .await;
    let paced = timed(address).await;
    assert!(
        paced >= Duration::from_millis(2700) && paced < Duration::from_secs(8),
        "{paced:?}"
    );
    // At 1 MiB/s the burst holds it all.
    let (_fast, address) = start(
        env!("CARGO_BIN_EXE_axum_traffic"),
        &["--listen", "127.0.0.1:0", "--download-limit", "1048576"],
    )
    .await;
    let quick = timed(address).await;
    assert!(quick < Duration::from_millis(800), "{quick:?}");
}
