//! End-to-end tests of `hbonecat proxy-listen` and `proxy-send`: the real binary, real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use support::{Running, run_with_stdin, start_listening};

use std::net::SocketAddr;
use std::time::Duration;

use hbone::proxy_protocol::{
    Addresses, Command as ProxyCommand, RawTlv, Transport, V2Builder, tlv,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

async fn proxy_listen(listen: &str, extra: &[&str]) -> Running {
    let mut args = vec!["proxy-listen", "--listen", listen];
    args.extend_from_slice(extra);
    start_listening(args).await
}

async fn proxy_send(to: SocketAddr, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>) {
    let to = to.to_string();
    let mut all = vec!["proxy-send", "--to", &to];
    all.extend_from_slice(args);
    let finished = run_with_stdin(all, stdin).await;
    (finished.code, finished.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_send_to_proxy_listen_reports_the_header_and_echoes() {
    let mut listener = proxy_listen("127.0.0.1:0", &["--echo"]).await;
    let tlv_identity = format!("208={IDENTITY}");
    let (code, stdout) = proxy_send(
        listener.address,
        &[
            "--src",
            "10.0.0.1:40000",
            "--dst",
            "10.10.0.1:80",
            "--tlv",
            &tlv_identity,
            "--tlv",
            "3=",
        ],
        b"hello\n",
    )
    .await;
    assert_eq!((code, stdout.as_slice()), (0, &b"hello\n"[..]));
    let event = listener.next_event().await;
    assert_eq!(event["event"], "proxy_header");
    assert_eq!(event["version"], 2);
    assert_eq!(event["command"], "PROXY");
    assert_eq!(event["src"], "10.0.0.1:40000");
    assert_eq!(event["dst"], "10.10.0.1:80");
    let tlvs = event["tlvs"].as_array().unwrap();
    assert_eq!(tlvs.len(), 2);
    assert_eq!(tlvs[0]["type"], 208);
    assert_eq!(tlvs[0]["utf8"], IDENTITY);
    assert_eq!(
        tlvs[0]["hex"],
        IDENTITY
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(tlvs[1]["type"], 3, "CRC32C is listed in wire order");
    assert_eq!(tlvs[1]["hex"].as_str().unwrap().len(), 8);
    let first_key = event.as_object().unwrap().keys().next().unwrap().clone();
    assert_eq!(first_key, "event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_v1_and_ssl_tlv_are_reported() {
    let mut listener = proxy_listen("[::1]:0", &[]).await;
    let (code, stdout) = proxy_send(
        listener.address,
        &[
            "--src",
            "[2001:db8::1]:1",
            "--dst",
            "[2001:db8::2]:443",
            "--v1",
        ],
        b"x",
    )
    .await;
    assert_eq!(
        (code, stdout.as_slice()),
        (0, &b"x"[..]),
        "echo is the default"
    );
    let event = listener.next_event().await;
    assert_eq!(
        (event["version"].clone(), event["src"].clone()),
        (1.into(), "[2001:db8::1]:1".into())
    );
    assert_eq!(event["dst"], "[2001:db8::2]:443");

    // An SSL TLV with sub-TLVs, written with the library (argv cannot carry its NUL bytes).
    let mut wire = Vec::new();
    V2Builder::new(
        &mut wire,
        ProxyCommand::Proxy,
        Transport::Stream,
        &Addresses::from_socket_addrs("[::1]:5".parse().unwrap(), "[::1]:6".parse().unwrap()),
    )
    .ssl(
        tlv::CLIENT_SSL | tlv::CLIENT_CERT_CONN,
        0,
        &[
            RawTlv {
                kind: tlv::SSL_VERSION,
                value: b"TLSv1.3",
            },
            RawTlv {
                kind: 0x2f,
                value: &[0xff],
            },
        ],
    )
    .unwrap()
    .finish();
    let mut stream = TcpStream::connect(listener.address).await.unwrap();
    // Payload in the same segment as the header is not lost.
    stream
        .write_all(&[&wire[..], b"same segment"].concat())
        .await
        .unwrap();
    let mut echoed = [0u8; 12];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"same segment");
    let event = listener.next_event().await;
    assert_eq!(event["src"], "[::1]:5");
    assert_eq!(event["tlvs"][0]["type"], 32);
    assert_eq!(event["ssl"]["client"], 3);
    assert_eq!(event["ssl"]["verify"], 0);
    let subs = event["ssl"]["tlvs"].as_array().unwrap();
    assert_eq!(subs[0]["type"], 33);
    assert_eq!(subs[0]["utf8"], "TLSv1.3");
    assert_eq!(subs[1]["hex"], "ff");
    assert!(subs[1].get("utf8").is_none(), "utf8 only for valid UTF-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_header_is_reported_and_the_connection_closed() {
    let mut listener = proxy_listen("127.0.0.1:0", &["--echo"]).await;
    let mut stream = TcpStream::connect(listener.address).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let event = listener.next_event().await;
    assert_eq!(event["event"], "proxy_error");
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("not a PROXY protocol header")
    );
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without echoing: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_relays_to_the_upstream() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = upstream.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        stream
            .write_all(&[b"upstream saw: ", &request[..]].concat())
            .await
            .unwrap();
    });
    let mut listener =
        proxy_listen("127.0.0.1:0", &["--forward", &upstream_address.to_string()]).await;
    let (code, stdout) = proxy_send(
        listener.address,
        &["--src", "1.2.3.4:5", "--dst", "5.6.7.8:9"],
        b"data",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        stdout, b"upstream saw: data",
        "the header is not forwarded, the payload is"
    );
    assert_eq!(listener.next_event().await["src"], "1.2.3.4:5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_listen_exits_promptly_on_sigterm() {
    let mut listener = proxy_listen("127.0.0.1:0", &[]).await;
    listener.terminate_and_expect_clean_exit().await;
}

/// Runs `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (scripts/install-test-deps installs it)");
    assert!(status.success(), "openssl {args:?}");
}

/// Regression: HAProxy's SSL TLV for a client with a certificate (VERSION, CN, CIPHER,
/// SIG_ALG and KEY_ALG sub-TLVs) was shown only as raw sub-TLVs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_client_certificate_details_are_shown_parsed() {
    let dir = support::scratch("haproxy-client-cert");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=test-ca",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    for (name, cn) in [("server", "localhost"), ("client", "alice")] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={cn}");
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &subject],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
            ],
        );
    }
    let pem = [
        std::fs::read(dir.join("server.crt")).unwrap(),
        std::fs::read(dir.join("server.key")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("server.pem"), pem).unwrap();

    let mut listener = proxy_listen("127.0.0.1:0", &["--echo"]).await;
    let frontend = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend tls_in\n  bind {frontend} ssl crt {pem} ca-file {ca} verify optional\n  default_backend ours\n\
         backend ours\n  server s1 {ours} send-proxy-v2 proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key\n",
        pem = dir.join("server.pem").display(),
        ca = dir.join("ca.crt").display(),
        ours = listener.address,
    );
    std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
    let _haproxy = tokio::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(dir.join("haproxy.cfg"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy runs (scripts/install-test-deps installs it)");
    for _ in 0..100 {
        if TcpStream::connect(frontend).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &frontend.to_string()])
        .args(["-cert", "client.crt", "-key", "client.key"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();

    let event = listener.next_event().await;
    let ssl = &event["ssl"];
    assert_eq!(ssl["cn"], "alice", "{event}");
    assert!(
        ssl["version"].as_str().unwrap().starts_with("TLSv1."),
        "{ssl}"
    );
    assert!(!ssl["cipher"].as_str().unwrap().is_empty(), "{ssl}");
    assert_eq!(ssl["sig_alg"], "ecdsa-with-SHA256", "{ssl}");
    assert!(ssl["key_alg"].as_str().unwrap().starts_with("EC"), "{ssl}");
    let flags = ssl["client_flags"].as_array().unwrap();
    assert!(
        flags.contains(&"ssl".into()) && flags.contains(&"cert_conn".into()),
        "{ssl}"
    );
    assert_eq!(ssl["verified"], true, "the client certificate was verified");
    drop(stdin);
    let _ = client.kill().await;
}
