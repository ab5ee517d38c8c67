//! End-to-end tests of `hbonecat dev-ca`, `serve` and `connect`: real binaries, real mTLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use support::{Finished, HBONECAT, Running, run_with_stdin, scratch, start_listening};

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";
const FOREIGN: &str = "spiffe://other.domain/ns/foreign/sa/client";

async fn dev_ca(dir: &Path) {
    let output = Command::new(HBONECAT)
        .args(["dev-ca", "--out", dir.to_str().unwrap()])
        .args([
            "--identity",
            CLIENT,
            "--identity",
            SERVER,
            "--identity",
            FOREIGN,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(listed.lines().count(), 7, "{listed}");
}

fn tls_args(dir: &Path, who: &str) -> Vec<String> {
    tls_args_for(dir, &format!("default-{who}"))
}

async fn serve(dir: &Path, listen: &str, extra: &[&str]) -> Running {
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), listen.into()];
    args.extend(tls_args(dir, "server"));
    args.extend(extra.iter().map(|arg| arg.to_string()));
    start_listening(args).await
}

async fn connect(
    to: SocketAddr,
    authority: &str,
    tls: Vec<String>,
    extra: &[&str],
    stdin: &[u8],
) -> Finished {
    let mut args: Vec<String> = vec!["connect".into(), "--to".into(), to.to_string()];
    args.extend(["--authority".into(), authority.into()]);
    args.extend(tls);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    run_with_stdin(args, stdin).await
}

/// An upstream that reads to EOF, waits, then answers and closes: `connect` must keep reading
/// after its stdin EOF until the server ends the stream.
async fn answering_after_eof(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                tcp.read_to_end(&mut request).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                tcp.write_all(&[b"upstream got ", &request[..]].concat())
                    .await
                    .unwrap();
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_through_serve_to_the_authority() {
    let dir = scratch("authority");
    dev_ca(&dir).await;
    let upstream = answering_after_eof("127.0.0.1:0").await;
    let mut server = serve(&dir, "127.0.0.1:0", &[]).await;
    let result = connect(
        server.address,
        &upstream.to_string(),
        tls_args(&dir, "client"),
        &[
            "--expect-identity",
            "spiffe://cluster.local/ns/x/sa/nope",
            "--expect-identity",
            SERVER,
            "--header",
            "X-Debug: a:b",
        ],
        b"ping",
    )
    .await;
    assert_eq!(
        (result.code, result.stdout.as_slice()),
        (0, &b"upstream got ping"[..]),
        "{}",
        result.stderr
    );
    let event = server.next_event().await;
    assert_eq!(event["event"], "tunnel");
    assert_eq!(event["peer_identity"], CLIENT);
    assert_eq!(event["authority"], upstream.to_string());
    assert_eq!(event["status"], 200);
    assert_eq!(
        event["headers"]["x-debug"], "a:b",
        "split at the first ':', names lower-case"
    );
    assert!(
        event["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );
    assert!(
        event["headers"]["forwarded"]
            .as_str()
            .unwrap()
            .starts_with("for=\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_status_503_with_nothing_on_stdout() {
    let dir = scratch("refused");
    dev_ca(&dir).await;
    let refused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut server = serve(&dir, "127.0.0.1:0", &["--forward", &refused.to_string()]).await;
    let result = connect(
        server.address,
        "10.0.0.1:80",
        tls_args(&dir, "client"),
        &[],
        b"ping",
    )
    .await;
    assert_eq!(result.code, 1);
    assert!(result.stdout.is_empty());
    assert_eq!(result.stderr.trim(), "status: 503");
    assert_eq!(
        server.next_event().await["status"],
        503,
        "serve prints the 503 line too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_identity_failures_exit_2() {
    let dir = scratch("tls");
    dev_ca(&dir).await;
    let server = serve(&dir, "127.0.0.1:0", &["--echo"]).await;
    let wrong_identity = connect(
        server.address,
        "10.0.0.1:80",
        tls_args(&dir, "client"),
        &[
            "--expect-identity",
            "spiffe://cluster.local/ns/default/sa/someone-else",
        ],
        b"x",
    )
    .await;
    assert_eq!(wrong_identity.code, 2, "{}", wrong_identity.stderr);
    assert!(wrong_identity.stdout.is_empty());

    // A client certificate of another trust domain (same CA) is rejected after the TLS 1.3
    // handshake, while the client waits for the CONNECT response.
    let result = connect(
        server.address,
        "10.0.0.1:80",
        tls_args_for(&dir, "foreign-client"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(result.stdout.is_empty());

    // A CA the server does not trust: the handshake itself fails.
    let stranger_dir = scratch("tls-stranger");
    dev_ca(&stranger_dir).await;
    let result = connect(
        server.address,
        "10.0.0.1:80",
        tls_args(&stranger_dir, "client"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(result.code, 2, "{}", result.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_listener_and_bracketed_authority() {
    let dir = scratch("ipv6");
    dev_ca(&dir).await;
    let upstream = answering_after_eof("[::1]:0").await;
    let mut server = serve(&dir, "[::1]:0", &[]).await;
    let authority = upstream.to_string();
    assert!(authority.starts_with("[::1]:"));
    let result = connect(
        server.address,
        &authority,
        tls_args(&dir, "client"),
        &[],
        b"v6",
    )
    .await;
    assert_eq!(
        (result.code, result.stdout.as_slice()),
        (0, &b"upstream got v6"[..]),
        "{}",
        result.stderr
    );
    assert_eq!(server.next_event().await["authority"], authority);
}

/// An RSA client certificate with a PKCS#1 key, made by openssl under an openssl CA, against
/// an ECDSA server certificate under the same CA (both with URI SANs only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pkcs1_and_ecdsa_certificates_from_openssl() {
    let dir = scratch("openssl");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed (scripts/install-test-deps)");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca-cert.pem",
        "-days",
        "2",
        "-subj",
        "/O=cluster.local",
    ]);
    let issue = |name: &str, identity: &str, newkey: &[&str]| {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=URI:{identity}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"),
        )
        .unwrap();
        let key = format!("default-{name}-key.pem");
        let csr = format!("{name}.csr");
        let cert = format!("default-{name}-cert.pem");
        let ext = format!("{name}.ext");
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/O=cluster.local",
        ];
        args.extend_from_slice(newkey);
        run(&args);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca-cert.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    };
    issue(
        "server",
        SERVER,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    );
    issue("client", CLIENT, &["-newkey", "rsa:2048"]);
    // Convert the client key to PKCS#1 ("BEGIN RSA PRIVATE KEY").
    run(&[
        "rsa",
        "-in",
        "default-client-key.pem",
        "-out",
        "default-client-key.pem",
        "-traditional",
    ]);
    let key = std::fs::read_to_string(dir.join("default-client-key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");

    let server = serve(&dir, "127.0.0.1:0", &["--echo"]).await;
    let result = connect(
        server.address,
        "10.0.0.1:80",
        tls_args(&dir, "client"),
        &["--expect-identity", SERVER],
        b"rsa",
    )
    .await;
    assert_eq!(
        (result.code, result.stdout.as_slice()),
        (0, &b"rsa"[..]),
        "{}",
        result.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_promptly_on_sigterm() {
    let dir = scratch("sigterm");
    dev_ca(&dir).await;
    let mut server = serve(&dir, "127.0.0.1:0", &["--echo"]).await;
    server.terminate_and_expect_clean_exit().await;
}

fn tls_args_for(dir: &Path, stem: &str) -> Vec<String> {
    let path = |suffix: &str| {
        dir.join(format!("{stem}-{suffix}.pem"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    vec![
        "--cert".into(),
        path("cert"),
        "--key".into(),
        path("key"),
        "--ca".into(),
        dir.join("ca-cert.pem").to_str().unwrap().to_owned(),
    ]
}
