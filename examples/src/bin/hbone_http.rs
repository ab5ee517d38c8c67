//! `hbone_http`: an HBONE server whose tunnels carry HTTP, served through the same request
//! path as the gateway's — `HttpInTunnels` (HBONE termination, the tunnel's `Peer` in each
//! request) → `Respond` → `Router` (route selection, filters, dispatch) → the `Forwarder` —
//! to an echo backend. It is what a waypoint does with a tunnel, in ~150 lines.
//!
//! ```text
//! hbonecat dev-ca --out /tmp/ca --identity spiffe://cluster.local/ns/default/sa/client \
//!                 --identity spiffe://cluster.local/ns/default/sa/server
//! cargo run -p examples --bin hbone_http -- --cert /tmp/ca/default-server-cert.pem \
//!     --key /tmp/ca/default-server-key.pem --ca /tmp/ca/ca-cert.pem --listen 127.0.0.1:15008
//! printf 'GET /hello HTTP/1.1\r\nhost: echo.example\r\nconnection: close\r\n\r\n' |
//!   hbonecat connect --to 127.0.0.1:15008 --authority 10.0.0.1:80 \
//!     --cert /tmp/ca/default-client-cert.pem --key /tmp/ca/default-client-key.pem \
//!     --ca /tmp/ca/ca-cert.pem
//! ```
//!
//! You should see an HTTP/1.1 200 whose JSON body is the echo backend's view of the request,
//! with the `x-tunnelled` header the HTTPRoute's filter added and the tunnel's client
//! identity in `x-client-identity`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use examples_support::echo::{EchoIdentity, serve_echo};
use hbone::peer::Peer;
use hbone::server::HboneServer;
use hbone::tls::{HboneTls, WorkloadCertificate};
use http::HeaderValue;
use routing::router::Router;
use tokio::net::TcpListener;
use tower::ServiceExt;
use waypoint::inbound::HttpInTunnels;
use waypoint::outbound::{Forwarder, ResponseBody};
use waypoint::respond::Respond;

/// An HBONE server serving each tunnel's HTTP through Gateway API routing.
#[derive(Debug, Parser)]
#[command(name = "hbone_http")]
struct Args {
    /// Address to listen on for HBONE.
    #[arg(long, default_value = "127.0.0.1:15008")]
    listen: SocketAddr,
    /// This server's certificate chain (PEM, leaf first).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// The root certificate(s) clients must chain to (PEM).
    #[arg(long)]
    ca: PathBuf,
}

/// The routes applied to every tunnel's requests; `{port}` is the echo backend's.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tunnels}
spec:
  gatewayClassName: demo
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo}
spec:
  parentRefs: [{name: tunnels}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-tunnelled, value: hbone}]}
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: {port}}]
";

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hbone_http: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificate = WorkloadCertificate::from_pem_files(&args.cert, &args.key, &args.ca)
        .map_err(|e| e.to_string())?;
    let tls = HboneTls::new(Arc::clone(&provider))
        .server_config(&certificate)
        .map_err(|e| e.to_string())?;
    let echo = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let echo_port = echo.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(serve_echo(
        echo,
        EchoIdentity {
            namespace: "default".into(),
            pod: "echo-0".into(),
        },
    ));
    let yaml = ROUTES.replace("{port}", &echo_port.to_string());
    let listeners = examples_support::routes::first_gateway_listeners("routes.yaml", &yaml)?;
    let router = Respond::new(Router::new(listeners, Forwarder::new(provider)));
    // Each request carries its tunnel's `Peer`; the client identity becomes a header.
    let http = tower::service_fn(move |mut request: http::Request<ResponseBody>| {
        let identity = request
            .extensions()
            .get::<Peer>()
            .and_then(|peer| peer.identity.as_ref())
            .and_then(|id| HeaderValue::try_from(id.to_string()).ok());
        if let Some(identity) = identity {
            request.headers_mut().insert("x-client-identity", identity);
        }
        router.clone().oneshot(request)
    });
    let service = HttpInTunnels::new(http);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "hbone_http: listening on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let shutdown = examples_support::shutdown::terminate_signal().map_err(|e| e.to_string())?;
    HboneServer::new(Arc::new(tls), service)
        .serve(listener, shutdown)
        .await
        .map_err(|e| e.to_string())
}
