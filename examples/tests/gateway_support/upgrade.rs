//! Upgrade backends — every `Upgrade` request switched to an echo of raw bytes (what a
//! WebSocket connection is to a proxy), in clear text or behind TLS — and a client asking for
//! an upgrade.

use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upgrade echo on 127.0.0.1; returns its port.
pub async fn upgrade_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_upgrades(stream));
        }
    });
    port
}

/// An upgrade echo behind TLS (rustls, ALPN `http/1.1`) with `cert` and `key`; returns its
/// port.
pub async fn upgrade_echo_tls(cert: &Path, key: &Path) -> u16 {
    let config = super::tls::server_config(cert, key, &[b"http/1.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_upgrades(tls).await;
                }
            });
        }
    });
    port
}

/// Answers each request on `io` with 101 and echoes the upgraded bytes.
async fn serve_upgrades<IO>(io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(
        |mut request: http::Request<hyper::body::Incoming>| async move {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                let (mut reader, mut writer) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
            let response = http::Response::builder()
                .status(101)
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        },
    );
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// Asks `port` to upgrade `host`'s `/chat` to `protocol`; the answer's head (lower case) and
/// the connection.
pub async fn ask_upgrade(port: u16, host: &str, protocol: &str) -> (String, tokio::net::TcpStream) {
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // A WebSocket handshake's own headers (RFC 6455 §4.1) when it is one.
    let websocket = if protocol == "websocket" {
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n{websocket}\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    (
        String::from_utf8(head).unwrap().to_ascii_lowercase(),
        client,
    )
}
