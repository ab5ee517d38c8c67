//! ClientTrafficPolicy `tls.fingerprints` through the `gateway` binary: the JA3 and JA4 of
//! each TLS client reach the backend through `earlyRequestHeaders` values holding
//! `%TLS_JA3_FINGERPRINT%` and `%TLS_JA4_FINGERPRINT%`. The expected fingerprints are those a
//! Python reference (`interop/tls_fingerprints.py`) computes from the ClientHello the same
//! curl command sends to a plain TCP socket; two curl settings give two different clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::io::Read;

use gateway_support::tls::*;
use gateway_support::*;

/// The length of the records that carry a whole ClientHello at the start of `bytes`, once
/// they have all arrived.
fn client_hello_records(bytes: &[u8]) -> Option<usize> {
    let (mut at, mut payload) = (0, Vec::new());
    while bytes.len() >= at + 5 {
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        payload.extend_from_slice(bytes.get(at + 5..at + 5 + len)?);
        at += 5 + len;
        if payload.len() >= 4 {
            let body = usize::from(payload[1]) << 16
                | usize::from(payload[2]) << 8
                | usize::from(payload[3]);
            if payload.len() >= 4 + body {
                return Some(at);
            }
        }
    }
    None
}

/// The ClientHello (its records) that `client`, run against a port, sends to a TCP socket
/// that never answers.
fn captured_client_hello(client: impl FnOnce(u16)) -> Vec<u8> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let read = stream.read(&mut chunk).unwrap();
            assert!(
                read > 0,
                "the client closed before its ClientHello was complete"
            );
            bytes.extend_from_slice(&chunk[..read]);
            if let Some(records) = client_hello_records(&bytes) {
                bytes.truncate(records);
                return bytes;
            }
        }
    });
    client(port);
    reader.join().unwrap()
}

/// curl with `args` to `https://gw.example:port/`.
fn curl_once(port: u16, args: &[&str]) {
    let url = format!("https://gw.example:{port}/");
    let resolve = format!("gw.example:{port}:127.0.0.1");
    let _ = std::process::Command::new("curl")
        .args(["-s", "-k", "--max-time", "5", "--resolve", &resolve])
        .args(args)
        .arg(&url)
        .output()
        .unwrap();
}

/// One HTTP/1.1 request by `openssl s_client` whose ClientHello is spread over 512-byte
/// records (a long ALPN list, `http/1.1` last); returns what it printed.
fn s_client_in_records(port: u16) -> String {
    fragmented_s_client(
        port,
        "gw.example",
        &["http/1.1"],
        &["-quiet"],
        b"GET / HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
    )
}

/// (JA3, JA4) of `hello` by the Python reference.
fn reference_fingerprints(hello: &[u8]) -> (String, String) {
    let hex: String = hello.iter().map(|b| format!("{b:02x}")).collect();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tls_fingerprints.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(hex)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut words = text.split_whitespace();
    (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    )
}

fn policy(name: &str, tls: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: {name}}}]\n  \
         tls: {tls}\n  headers:\n    earlyRequestHeaders:\n      set:\n      \
         - {{name: x-ja3, value: '%TLS_JA3_FINGERPRINT%'}}\n      \
         - {{name: x-ja4, value: 'ja4=%TLS_JA4_FINGERPRINT%'}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ja3_and_ja4_of_each_client_reach_the_backend() {
    let dir = scratch("fingerprints");
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let backend = echo("echo-0").await;
    let (both, none) = (free_port(), free_port());
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: both, port: {both}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n  \
         - {{name: none, port: {none}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n---\n\
         {}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: closed}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: [closed.example], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {{name: deny-all}}\n\
         spec: {{targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: closed}}], \
         authorization: {{defaultAction: Deny}}}}\n---\n{}{}",
        tls_secret("gw-cert", &server),
        service("echo", backend),
        policy("both", "{fingerprints: [JA3, JA4]}"),
        policy("none", "{minVersion: '1.2'}"),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gateway = start_gateway_logging(
        &[&dir.join("config.yaml")],
        &["--log-denials"],
        Some(logged.clone()),
    )
    .await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    let seen = |port: u16, client: &'static [&'static str]| async move {
        let url = format!("https://gw.example:{port}/");
        let resolve = format!("gw.example:{port}:127.0.0.1");
        let mut args = vec!["-k", "--resolve", &resolve];
        args.extend_from_slice(client);
        args.push(&url);
        let (code, response) = curl(&args).await;
        assert_eq!(code, 200, "{response}");
        let headers = &echoed(&response)["headers"];
        let first = |name: &str| {
            headers[name]
                .as_array()
                .map(|v| v[0].as_str().unwrap().to_owned())
        };
        (first("x-ja3"), first("x-ja4"))
    };
    const MODERN: &[&str] = &[];
    const LEGACY: &[&str] = &[
        "--http1.1",
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
    ];
    let mut fingerprints = Vec::new();
    for client in [MODERN, LEGACY] {
        let (ja3, ja4) =
            reference_fingerprints(&captured_client_hello(|port| curl_once(port, client)));
        let (seen_ja3, seen_ja4) = seen(both, client).await;
        assert_eq!(seen_ja3.as_deref(), Some(ja3.as_str()), "{client:?}");
        assert_eq!(seen_ja4, Some(format!("ja4={ja4}")), "{client:?}");
        fingerprints.push((ja3, ja4));
    }
    assert_ne!(
        fingerprints[0], fingerprints[1],
        "two clients, two fingerprints"
    );
    assert!(fingerprints[0].1.starts_with("t13d"), "{fingerprints:?}");
    // Two suites and OpenSSL's renegotiation SCSV.
    assert!(fingerprints[1].1.starts_with("t12d03"), "{fingerprints:?}");
    assert!(
        fingerprints[1].1.contains("h1_"),
        "ALPN http/1.1: {fingerprints:?}"
    );

    // A ClientHello in four records is fingerprinted whole.
    let hello = captured_client_hello(|port| {
        s_client_in_records(port);
    });
    assert!(
        hello.len() > 1500 && hello[517] == 22,
        "four records: {}",
        hello.len()
    );
    let (ja3, ja4) = reference_fingerprints(&hello);
    let answer = s_client_in_records(both);
    let body = &answer[answer.find("\r\n\r\n").expect("an HTTP answer") + 4..];
    let headers = &serde_json::from_str::<serde_json::Value>(body).unwrap()["headers"];
    assert_eq!(headers["x-ja3"][0], ja3.as_str(), "{answer}");
    assert_eq!(
        headers["x-ja4"][0],
        format!("ja4={ja4}").as_str(),
        "{answer}"
    );
    assert!(ja4.starts_with("t13d") && ja4[8..10] == *"px", "{ja4}");

    // The denial log names the refused client's fingerprints.
    let resolve = format!("closed.example:{both}:127.0.0.1");
    let url = format!("https://closed.example:{both}/");
    let (code, _) = curl(&["-k", "--resolve", &resolve, &url]).await;
    assert_eq!(code, 403);
    let (ja3, ja4) = &fingerprints[0];
    let expected = format!("GET closed.example:{both}/ ja3={ja3} ja4={ja4} → 403");
    let lines = logged.lock().unwrap().clone();
    assert!(
        lines.iter().any(|line| line.contains(&expected)),
        "{expected} in {lines:#?}"
    );

    // Without `fingerprints` the operators are empty: a value of nothing but the operator is
    // not added, and the rest of a value stays.
    assert_eq!(seen(none, MODERN).await, (None, Some("ja4=".to_owned())));
}
