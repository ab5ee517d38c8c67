//! `hbonecat proxy-listen`: a PROXY protocol receiver that reports each header as a JSON line.

use std::net::SocketAddr;

use examples_support::json_lines::print_json_line;
use examples_support::shutdown::terminate_signal;
use hbone::proxy_protocol::{
    AcceptorConfig, Addresses, Command, ProxyHeader, RawTlv, SslSubTlv, SslTlv, Tlv, Version,
    read_proxy_header,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::Failure;

/// Arguments of `proxy-listen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (IPv4 or bracketed IPv6).
    #[arg(long)]
    listen: SocketAddr,
    /// Forward each connection's payload to this address (bidirectionally).
    #[arg(long, conflicts_with = "echo")]
    forward: Option<SocketAddr>,
    /// Echo each connection's payload back (the default).
    #[arg(long)]
    echo: bool,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(Failure::general)?;
    let local = listener.local_addr().map_err(Failure::general)?;
    let shutdown = terminate_signal().map_err(Failure::general)?;
    tokio::pin!(shutdown);
    eprintln!("hbonecat: listening on {local}");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted.map_err(Failure::general)?;
                tokio::spawn(serve_connection(stream, args.forward));
            }
            _ = &mut shutdown => return Ok(()),
        }
    }
}

async fn serve_connection(mut stream: TcpStream, forward: Option<SocketAddr>) {
    let header = match read_proxy_header(&mut stream, &AcceptorConfig::default()).await {
        Ok(header) => header,
        Err(error) => {
            print_json_line(&json!({"event": "proxy_error", "error": error.to_string()}));
            return;
        }
    };
    print_json_line(&header_json(&header));
    // Payload bytes that arrived with the header are still in the socket: the acceptor never
    // reads past the header.
    let _ = match forward {
        Some(upstream) => match TcpStream::connect(upstream).await {
            Ok(mut upstream) => tokio::io::copy_bidirectional(&mut stream, &mut upstream)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        },
        None => echo(&mut stream).await,
    };
}

async fn echo(stream: &mut TcpStream) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.split();
    tokio::io::copy(&mut reader, &mut writer).await?;
    writer.shutdown().await
}

fn header_json(header: &ProxyHeader<'_>) -> Value {
    let mut event = json!({
        "event": "proxy_header",
        "version": match header.version { Version::V1 => 1, Version::V2 => 2 },
        "command": match header.command { Command::Proxy => "PROXY", Command::Local => "LOCAL" },
        "src": header.addresses.source().map(|a| a.to_string()),
        "dst": header.addresses.destination().map(|a| a.to_string()),
        "tlvs": header.raw_tlvs().map(tlv_json).collect::<Vec<_>>(),
    });
    if let Addresses::Unix(unix) = &header.addresses {
        event["src"] = json!(unix_path(&unix.source));
        event["dst"] = json!(unix_path(&unix.destination));
    }
    let ssl = header.tlvs().find_map(|tlv| match tlv {
        Tlv::Ssl(ssl) => Some(ssl),
        _ => None,
    });
    if let Some(ssl) = ssl {
        event["ssl"] = ssl_json(&ssl);
    }
    event
}

/// The SSL TLV parsed: the client bits by name, the verify result, each known sub-TLV by
/// name (`version`, `cn`, `cipher`, `sig_alg`, `key_alg`), and every sub-TLV raw in `tlvs`.
fn ssl_json(ssl: &SslTlv<'_>) -> Value {
    let flags: Vec<&str> = [(0x01, "ssl"), (0x02, "cert_conn"), (0x04, "cert_sess")]
        .into_iter()
        .filter(|(bit, _)| ssl.client & bit != 0)
        .map(|(_, name)| name)
        .collect();
    let mut parsed = json!({
        "client": ssl.client,
        "client_flags": flags,
        "verify": ssl.verify,
        "verified": ssl.verify == 0,
        "tlvs": ssl.raw_sub_tlvs().map(tlv_json).collect::<Vec<_>>(),
    });
    for sub in ssl.sub_tlvs() {
        let (name, value) = match sub {
            SslSubTlv::Version(value) => ("version", value),
            SslSubTlv::CommonName(value) => ("cn", value),
            SslSubTlv::Cipher(value) => ("cipher", value),
            SslSubTlv::SignatureAlgorithm(value) => ("sig_alg", value),
            SslSubTlv::KeyAlgorithm(value) => ("key_alg", value),
            _ => continue,
        };
        parsed[name] = json!(value);
    }
    parsed
}

/// `{"type": 208, "hex": "…", "utf8": "…"}`; `utf8` only when the value is valid UTF-8.
fn tlv_json(tlv: RawTlv<'_>) -> Value {
    let hex: String = tlv.value.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut value = json!({"type": tlv.kind, "hex": hex});
    if let Ok(text) = std::str::from_utf8(tlv.value) {
        value["utf8"] = json!(text);
    }
    value
}

fn unix_path(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}
