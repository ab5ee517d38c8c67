//! `hbonecat serve`: an HBONE server printing one JSON line per tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use examples_support::json_lines::print_json_line;
use examples_support::shutdown::terminate_signal;
use hbone::connect_headers::Authority;
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer, HboneServerConfig};
use http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::Failure;
use super::tls_args::{TlsArgs, hbone_tls};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Forward every tunnel here instead of to its authority.
    #[arg(long, conflicts_with = "echo")]
    forward: Option<SocketAddr>,
    /// Echo every tunnel's bytes back.
    #[arg(long)]
    echo: bool,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let certificate = args.tls.load()?;
    let tls = hbone_tls()
        .server_config(&certificate)
        .map_err(Failure::tls)?;
    let (forward, echo) = (args.forward, args.echo);
    let service = tower::service_fn(move |request: ConnectRequest| async move {
        Ok::<_, Infallible>(decide(&request, forward, echo).await)
    });
    let config = HboneServerConfig {
        drain_deadline: Duration::from_secs(1),
        ..HboneServerConfig::default()
    };
    let server = HboneServer::new(Arc::new(tls), service)
        .with_config(config)
        .with_observer(|request, status| print_json_line(&tunnel_event(request, status)));
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(Failure::general)?;
    let shutdown = terminate_signal().map_err(Failure::general)?;
    eprintln!(
        "hbonecat: listening on {}",
        listener.local_addr().map_err(Failure::general)?
    );
    server
        .serve(listener, shutdown)
        .await
        .map_err(Failure::general)
}

async fn decide(
    request: &ConnectRequest,
    forward: Option<SocketAddr>,
    echo: bool,
) -> ConnectDecision {
    if echo {
        return ConnectDecision::serve(|stream| async move {
            let (mut reader, mut writer) = tokio::io::split(stream);
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        });
    }
    if let Some(upstream) = forward {
        return ConnectDecision::forward(upstream);
    }
    let upstream = match &request.authority {
        Authority::Socket(address) => Some(*address),
        Authority::Host { host, port } => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .ok()
            .and_then(|mut a| a.next()),
    };
    match upstream {
        Some(upstream) => ConnectDecision::forward(upstream),
        None => ConnectDecision::Reject(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// `{"event":"tunnel","peer_identity":…,"authority":…,"headers":{…},"status":200}`.
fn tunnel_event(request: &ConnectRequest, status: StatusCode) -> Value {
    let mut headers = Map::new();
    for name in request.headers.keys() {
        let values: Vec<&str> = request
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap_or_default())
            .collect();
        headers.insert(name.as_str().to_owned(), json!(values.join(", ")));
    }
    json!({
        "event": "tunnel",
        "peer_identity": request.peer_identity.as_ref().map(|id| id.to_string()),
        "authority": request.authority.to_string(),
        "headers": headers,
        "status": status.as_u16(),
    })
}
