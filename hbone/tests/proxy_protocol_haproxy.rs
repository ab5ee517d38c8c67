//! Interop with HAProxy 2.6 (an independent PROXY protocol implementation), both directions:
//! HAProxy sends PROXY v2 with TLVs to our acceptor, and HAProxy accepts ours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use hbone::proxy_protocol::{
    AcceptorConfig, Addresses, Command as ProxyCommand, SslSubTlv, Tlv, Transport, V2Builder,
    Version, read_proxy_header, tlv,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

/// HAProxy terminates TLS (SNI `example.com`, ALPN `h2`) and sends PROXY v2 with the unique-id,
/// authority, ssl (with sub-TLVs) and crc32c TLVs; our acceptor reads all of them, verifies the
/// CRC32C and leaves the payload untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_send_proxy_v2_with_tlvs_is_accepted() {
    let dir = support::scratch_dir("haproxy-send");
    let pem = support::self_signed_pem(&dir, "example.com");
    let ours = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours_address = ours.local_addr().unwrap();
    let (_haproxy, frontend) = support::start_haproxy(&dir, |frontend| {
        format!(
            "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend tls_in\n  bind {frontend} ssl crt {pem} alpn h2,http/1.1\n\
         \x20 unique-id-format conn-%ci-%cp\n  default_backend ours\n\
         backend ours\n  server s1 {ours} send-proxy-v2 proxy-v2-options ssl,unique-id,authority,crc32c,ssl-cipher,cert-sig,cert-key\n",
            pem = pem.display(),
            ours = ours_address,
        )
    });

    // An independent TLS client: Python's ssl module, with SNI and ALPN.
    let script = format!(
        "import socket, ssl, sys\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         ctx.set_alpn_protocols(['h2'])\n\
         raw = socket.create_connection(('127.0.0.1', {port}))\n\
         s = ctx.wrap_socket(raw, server_hostname='example.com')\n\
         print(s.getsockname()[1], flush=True)\n\
         s.sendall(b'hello through haproxy')\n\
         print(s.recv(100).decode(), flush=True)\n",
        port = frontend.port()
    );
    let client = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), ours.accept())
        .await
        .expect("HAProxy connected to us")
        .unwrap();
    let header = read_proxy_header(&mut stream, &AcceptorConfig::default())
        .await
        .unwrap();
    let mut payload = vec![0u8; 21];
    stream.read_exact(&mut payload).await.unwrap();
    assert_eq!(payload, b"hello through haproxy");
    stream.write_all(b"ack").await.unwrap();
    drop(stream);
    let output = client.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    let client_port: u16 = lines.next().unwrap().parse().unwrap();
    assert_eq!(lines.next(), Some("ack"));

    assert_eq!(
        (header.version, header.command),
        (Version::V2, ProxyCommand::Proxy)
    );
    assert_eq!(
        header.addresses.source(),
        Some(SocketAddr::from(([127, 0, 0, 1], client_port)))
    );
    assert_eq!(header.addresses.destination(), Some(frontend));
    assert_eq!(header.authority(), Some("example.com"));
    assert_eq!(header.alpn(), Some(&b"h2"[..]));
    assert_eq!(
        header.unique_id(),
        Some(format!("conn-127.0.0.1-{client_port}").as_bytes())
    );
    let kinds: Vec<u8> = header.raw_tlvs().map(|t| t.kind).collect();
    assert!(
        kinds.contains(&tlv::CRC32C),
        "HAProxy sent a CRC32C, which we verified: {kinds:?}"
    );
    let ssl = header
        .tlvs()
        .find_map(|t| match t {
            Tlv::Ssl(ssl) => Some(ssl),
            _ => None,
        })
        .expect("SSL TLV");
    assert!(ssl.is_tls());
    let subs: Vec<SslSubTlv<'_>> = ssl.sub_tlvs().collect();
    assert!(subs.contains(&SslSubTlv::Version("TLSv1.3")), "{subs:?}");
    assert!(
        subs.iter()
            .any(|s| matches!(s, SslSubTlv::Cipher(c) if c.starts_with("TLS_AES"))),
        "{subs:?}"
    );
}

/// Writes a v2 header from `source` to `destination` (TLV 0xD0 and CRC32C included) and a payload
/// to HAProxy's `accept-proxy` frontend; returns the v1 line HAProxy relays to our backend.
async fn relay_through_haproxy(
    source: SocketAddr,
    destination: SocketAddr,
    corrupt_crc: bool,
) -> Option<String> {
    let dir = support::scratch_dir(&format!("haproxy-accept-{}", source.port()));
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_address = backend.local_addr().unwrap();
    let (_haproxy, frontend) = support::start_haproxy(&dir, |frontend| {
        format!(
            "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend proxy_in\n  bind {frontend} accept-proxy\n  default_backend ours\n\
         backend ours\n  server s1 {backend} send-proxy\n",
            backend = backend_address,
        )
    });

    let mut wire = Vec::new();
    V2Builder::new(
        &mut wire,
        ProxyCommand::Proxy,
        Transport::Stream,
        &Addresses::from_socket_addrs(source, destination),
    )
    .peer_identity(IDENTITY)
    .unwrap()
    .authority("svc.example")
    .unwrap()
    .finish_with_crc32c()
    .unwrap();
    if corrupt_crc {
        let last = wire.len() - 1;
        wire[last] ^= 0xff;
    }
    let mut client = TcpStream::connect(frontend).await.unwrap();
    // A single write, as the spec requires of senders. HAProxy may reset the connection as soon
    // as it rejects the header: that is a rejection, not a test failure.
    if client
        .write_all(&[&wire[..], b"payload"].concat())
        .await
        .is_err()
    {
        return None;
    }

    let accepted = tokio::time::timeout(Duration::from_secs(3), backend.accept()).await;
    let (mut stream, _) = accepted.ok()?.ok()?;
    let mut relayed = Vec::new();
    let mut buf = [0u8; 256];
    while !relayed.ends_with(b"payload") {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        relayed.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(relayed).unwrap();
    Some(text.strip_suffix("payload").unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_accepts_our_v2_ipv4_header_with_crc32c() {
    let line = relay_through_haproxy(
        "192.0.2.7:4321".parse().unwrap(),
        "198.51.100.9:8443".parse().unwrap(),
        false,
    )
    .await;
    assert_eq!(
        line.as_deref(),
        Some("PROXY TCP4 192.0.2.7 198.51.100.9 4321 8443\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_accepts_our_v2_ipv6_header() {
    let line = relay_through_haproxy(
        "[2001:db8::7]:4321".parse().unwrap(),
        "[2001:db8::9]:443".parse().unwrap(),
        false,
    )
    .await;
    assert_eq!(
        line.as_deref(),
        Some("PROXY TCP6 2001:db8::7 2001:db8::9 4321 443\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_rejects_our_header_with_a_corrupted_crc32c() {
    let line = relay_through_haproxy(
        "192.0.2.8:4321".parse().unwrap(),
        "198.51.100.9:8443".parse().unwrap(),
        true,
    )
    .await;
    assert_eq!(
        line, None,
        "HAProxy must drop a header whose CRC32C does not match"
    );
}
