//! `hbonecat connect`: one HBONE tunnel between stdin/stdout and a server.

use std::net::SocketAddr;
use std::sync::Arc;

use hbone::client::{HboneClientError, HboneConnector, HboneTarget};
use hbone::connect_headers::Authority;
use hbone::identity::SpiffeId;
use http::{HeaderName, HeaderValue};
use tokio::io::AsyncWriteExt;

use super::Failure;
use super::tls_args::{TlsArgs, hbone_tls};

/// Arguments of `connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The HBONE server (next hop), HOST:PORT.
    #[arg(long)]
    to: String,
    /// The CONNECT authority, IP:PORT (IPv6 bracketed) or HOST:PORT.
    #[arg(long)]
    authority: Authority,
    #[command(flatten)]
    tls: TlsArgs,
    /// An identity the server may present (repeatable; any one matches). Without it, any
    /// certificate that chains to --ca is accepted.
    #[arg(long = "expect-identity")]
    expected: Vec<SpiffeId>,
    /// An extra request header NAME:VALUE (split at the first ':'; repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let certificate = Arc::new(args.tls.load()?);
    let next_hop = resolve(&args.to).await?;
    let mut target = HboneTarget::new(next_hop, args.authority, args.expected, certificate)
        .map_err(Failure::tls)?;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| Failure::general(format!("--header `{header}` is not NAME:VALUE")))?;
        let name = HeaderName::try_from(name.trim()).map_err(Failure::general)?;
        let value = HeaderValue::try_from(value.trim()).map_err(Failure::general)?;
        target.extra_headers.append(name, value);
    }
    let connector = HboneConnector::new(hbone_tls());
    let stream = connector.open(&target).await.map_err(|error| match error {
        HboneClientError::Status(status) => Failure::status(status.as_u16()),
        error if error.is_tls() => Failure::tls(error),
        error => Failure::general(error),
    })?;
    let (mut from_server, mut to_server) = tokio::io::split(stream);
    // stdin EOF sends END_STREAM; we keep reading until the server ends its side.
    let upload = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let copied = tokio::io::copy(&mut stdin, &mut to_server).await;
        let _ = to_server.shutdown().await;
        copied
    });
    let mut stdout = tokio::io::stdout();
    let downloaded = tokio::io::copy(&mut from_server, &mut stdout).await;
    stdout.flush().await.map_err(Failure::general)?;
    upload.abort();
    downloaded.map(|_| ()).map_err(Failure::general)
}

async fn resolve(address: &str) -> Result<SocketAddr, Failure> {
    tokio::net::lookup_host(address)
        .await
        .map_err(Failure::general)?
        .next()
        .ok_or_else(|| Failure::general(format!("{address} resolves to no address")))
}
