//! `hbonecat proxy-send`: connects, sends a PROXY header, then pipes stdin and stdout.

use std::net::SocketAddr;
use std::str::FromStr;

use hbone::proxy_protocol::{Addresses, Command, Transport, V2Builder, tlv, write_v1};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Failure;

/// Arguments of `proxy-send`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to connect.
    #[arg(long)]
    to: SocketAddr,
    /// The source address the header announces.
    #[arg(long)]
    src: SocketAddr,
    /// The destination address the header announces.
    #[arg(long)]
    dst: SocketAddr,
    /// A TLV as DECIMAL_TYPE=UTF8_VALUE, in wire order; `3=` adds a computed CRC32C.
    #[arg(long = "tlv", value_name = "TYPE=VALUE")]
    tlvs: Vec<TlvArg>,
    /// Send the v1 text header instead of v2 (no TLVs).
    #[arg(long)]
    v1: bool,
}

/// One `--tlv TYPE=VALUE` argument.
#[derive(Debug, Clone)]
struct TlvArg {
    kind: u8,
    value: String,
}

impl FromStr for TlvArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, value) = text.split_once('=').ok_or("expected TYPE=VALUE")?;
        let kind = kind
            .parse()
            .map_err(|_| format!("TLV type `{kind}` is not a number 0-255"))?;
        Ok(TlvArg {
            kind,
            value: value.to_owned(),
        })
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let header = encode_header(&args)?;
    let stream = TcpStream::connect(args.to)
        .await
        .map_err(Failure::general)?;
    let (mut from_peer, mut to_peer) = stream.into_split();
    // The header goes out in one write, before any payload.
    to_peer.write_all(&header).await.map_err(Failure::general)?;
    let upload = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        tokio::io::copy(&mut stdin, &mut to_peer).await?;
        to_peer.shutdown().await
    });
    let mut stdout = tokio::io::stdout();
    let downloaded = tokio::io::copy(&mut from_peer, &mut stdout).await;
    stdout.flush().await.map_err(Failure::general)?;
    upload.abort();
    downloaded.map(|_| ()).map_err(Failure::general)
}

fn encode_header(args: &Args) -> Result<Vec<u8>, Failure> {
    let addresses = Addresses::from_socket_addrs(args.src, args.dst);
    let mut out = Vec::with_capacity(256);
    if args.v1 {
        if !args.tlvs.is_empty() {
            return Err(Failure::general("--v1 cannot carry TLVs"));
        }
        write_v1(&mut out, &addresses).map_err(Failure::general)?;
        return Ok(out);
    }
    let mut builder = V2Builder::new(&mut out, Command::Proxy, Transport::Stream, &addresses);
    for tlv_arg in &args.tlvs {
        builder = if tlv_arg.kind == tlv::CRC32C && tlv_arg.value.is_empty() {
            builder.crc32c()
        } else {
            builder.tlv(tlv_arg.kind, tlv_arg.value.as_bytes())
        }
        .map_err(Failure::general)?;
    }
    builder.finish();
    Ok(out)
}
