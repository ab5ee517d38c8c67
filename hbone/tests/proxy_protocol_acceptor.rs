//! The PROXY acceptor and writer over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use hbone::proxy_protocol::{
    AcceptError, AcceptorConfig, Addresses, ParseOptions, ProxiedConnection, ProxyHeader,
    ProxyHeaderError, ProxyProtocolLayer, V2Builder, Version, read_proxy_header,
    write_proxy_header,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt, service_fn};

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

fn identity_header() -> Vec<u8> {
    let mut wire = Vec::new();
    let header = ProxyHeader::proxied_stream(
        "10.0.0.1:40000".parse().unwrap(),
        "10.10.0.1:80".parse().unwrap(),
    );
    V2Builder::new(
        &mut wire,
        header.command,
        header.transport,
        &header.addresses,
    )
    .peer_identity(IDENTITY)
    .unwrap()
    .finish_with_crc32c()
    .unwrap();
    wire
}

async fn read_rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    rest
}

#[tokio::test]
async fn header_and_payload_in_one_segment_leave_the_payload_untouched() {
    for header in [
        identity_header(),
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n".to_vec(),
    ] {
        let (mut client, mut server) = pair().await;
        client
            .write_all(&[&header[..], b"payload bytes"].concat())
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let parsed = read_proxy_header(&mut server, &AcceptorConfig::default())
            .await
            .unwrap();
        assert!(parsed.addresses.source().is_some());
        assert_eq!(read_rest(&mut server).await, b"payload bytes");
    }
}

#[tokio::test]
async fn a_slow_sender_is_read_byte_by_byte_without_consuming_payload() {
    for header in [identity_header(), b"PROXY UNKNOWN\r\n".to_vec()] {
        let (mut client, mut server) = pair().await;
        let sender = tokio::spawn(async move {
            for byte in header.iter().chain(b"xyz") {
                client.write_all(&[*byte]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            client.shutdown().await.unwrap();
        });
        let parsed = read_proxy_header(&mut server, &AcceptorConfig::default())
            .await
            .unwrap();
        assert!(matches!(parsed.version, Version::V1 | Version::V2));
        assert_eq!(read_rest(&mut server).await, b"xyz");
        sender.await.unwrap();
    }
}

#[tokio::test]
async fn a_stalled_sender_times_out() {
    let (mut client, mut server) = pair().await;
    client.write_all(&identity_header()[..20]).await.unwrap();
    let config = AcceptorConfig {
        timeout: Duration::from_millis(200),
        ..AcceptorConfig::default()
    };
    let started = std::time::Instant::now();
    let error = read_proxy_header(&mut server, &config).await.unwrap_err();
    assert!(matches!(error, AcceptError::Timeout(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(client);
}

#[tokio::test]
async fn early_close_garbage_and_oversize_are_typed_errors() {
    let (mut client, mut server) = pair().await;
    client.write_all(&identity_header()[..20]).await.unwrap();
    client.shutdown().await.unwrap();
    let error = read_proxy_header(&mut server, &AcceptorConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(error, AcceptError::ClosedEarly(20)), "{error}");

    let (mut client, mut server) = pair().await;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let error = read_proxy_header(&mut server, &AcceptorConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AcceptError::InvalidHeader(ProxyHeaderError::NotProxyProtocol)
        ),
        "{error}"
    );

    let (mut client, mut server) = pair().await;
    let mut huge = Vec::new();
    V2Builder::new(
        &mut huge,
        hbone::proxy_protocol::Command::Proxy,
        hbone::proxy_protocol::Transport::Stream,
        &Addresses::Unspec,
    )
    .noop(10_000)
    .unwrap()
    .finish();
    client.write_all(&huge[..16]).await.unwrap();
    let config = AcceptorConfig {
        parse: ParseOptions {
            max_v2_len: 1024,
            ..ParseOptions::default()
        },
        ..AcceptorConfig::default()
    };
    let error = read_proxy_header(&mut server, &config).await.unwrap_err();
    assert!(
        matches!(
            error,
            AcceptError::InvalidHeader(ProxyHeaderError::TooLong { .. })
        ),
        "rejected from the length field alone: {error}"
    );
}

#[tokio::test]
async fn the_layer_hands_header_and_stream_to_the_inner_service() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let header = ProxyHeader::proxied_stream(
            "192.0.2.1:1234".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
        );
        write_proxy_header(&mut stream, &header).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await.unwrap();
        reply
    });
    let inner = service_fn(|mut connection: ProxiedConnection<TcpStream>| async move {
        let mut payload = [0u8; 4];
        connection.stream.read_exact(&mut payload).await?;
        connection.stream.write_all(b"pong").await?;
        Ok::<_, std::io::Error>((connection.header, payload))
    });
    let mut service = ProxyProtocolLayer::default().layer(inner);
    let (stream, _) = listener.accept().await.unwrap();
    let (header, payload) = service.ready().await.unwrap().call(stream).await.unwrap();
    assert_eq!(
        header.addresses.source(),
        Some("192.0.2.1:1234".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(&payload, b"ping");
    assert_eq!(&client.await.unwrap(), b"pong");
}
