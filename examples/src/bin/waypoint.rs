//! `waypoint`: an Istio-ambient L7 waypoint for a namespace or a Service — HBONE from
//! ztunnels, or sandwiched behind a co-located ztunnel that hands it PROXY v2.
//!
//! ```text
//! waypoint --config PATH [--config …] --cert CERT.pem --key KEY.pem --ca ROOT.pem \
//!          [--hbone-listen 0.0.0.0:15008] [--proxy-listen 127.0.0.1:15088] [--admin 127.0.0.1:15000]
//! ```
//!
//! Configuration is Kubernetes YAML (Services, EndpointSlices, Pods, HTTPRoute and GRPCRoute
//! with Service parentRefs), watched and reloaded. HTTP is routed by the GAMMA rules (no
//! route: the Service itself) and sent over HBONE to each endpoint's `:15008`, expecting its
//! Pod's identity; in sandwich mode (`--proxy-listen`) it leaves as plain TCP for the
//! co-located ztunnel to capture, and the HBONE listener is off unless `--hbone-listen` is
//! given. Other TCP is forwarded at L4.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hbone::tls::{HboneTls, WorkloadCertificate};
use routing::model::ObjectKey;
use waypoint::config::ConfigSource;
use waypoint::mesh::waypoint::{MeshWaypointOptions, run_mesh_waypoint};

/// An ambient-mesh L7 waypoint.
#[derive(Debug, Parser)]
#[command(name = "waypoint", version)]
struct Args {
    /// Kubernetes YAML file or directory (repeatable).
    #[arg(long = "config", value_name = "PATH", required = true)]
    configs: Vec<PathBuf>,
    /// The waypoint's certificate chain (PEM, leaf first).
    #[arg(long, value_name = "CERT.pem")]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The mesh's root certificate(s) (PEM).
    #[arg(long, value_name = "ROOT.pem")]
    ca: PathBuf,
    /// The HBONE listener (default 0.0.0.0:15008; off in sandwich mode unless given).
    #[arg(long, value_name = "ADDR")]
    hbone_listen: Option<SocketAddr>,
    /// Sandwich mode: accept PROXY v2 from the co-located ztunnel here (Istio: 15088).
    #[arg(long, value_name = "ADDR")]
    proxy_listen: Option<SocketAddr>,
    /// Admin endpoint (`/ready`, `/status`, `/config_dump`, `/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// The waypoint's own Gateway, `namespace/name`, which AuthorizationPolicy `targetRefs`
    /// name (default: the certificate's namespace and service account, as Istio names a
    /// waypoint's service account after its Gateway).
    #[arg(long, value_name = "NS/NAME")]
    gateway: Option<String>,
    /// The trust domain of the endpoints' identities.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// How often to check the configuration files for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    reload_interval_ms: u64,
    /// Print one line on stderr per request a policy refuses: the client's identity, method,
    /// host, path, status, response flag, and the policy that decided.
    #[arg(long)]
    log_denials: bool,
    /// The zone this waypoint runs in (its node's `topology.kubernetes.io/zone`): with a
    /// BackendTrafficPolicy `zoneAware.preferLocal` on a mesh route, requests prefer
    /// endpoints whose EndpointSlice `zone` is this one. Without it, no request prefers a zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("waypoint: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let hbone_listen = match (args.hbone_listen, args.proxy_listen) {
        (Some(address), _) => Some(address),
        (None, None) => Some(SocketAddr::from(([0, 0, 0, 0], 15008))),
        (None, Some(_)) => None,
    };
    let certificate = WorkloadCertificate::from_pem_files(&args.cert, &args.key, &args.ca)
        .map_err(|e| e.to_string())?;
    let gateway = match &args.gateway {
        Some(text) => {
            let (namespace, name) = text
                .split_once('/')
                .ok_or_else(|| format!("--gateway {text:?} is not namespace/name"))?;
            ObjectKey::new(namespace, name)
        }
        None => {
            let identity = certificate.identity().map_err(|e| e.to_string())?;
            ObjectKey::new(identity.namespace(), identity.service_account())
        }
    };
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let options = MeshWaypointOptions {
        source: ConfigSource::Paths(args.configs),
        certificate: Arc::new(certificate),
        tls: HboneTls::new(Arc::clone(&crypto)),
        hbone_listen,
        proxy_listen: args.proxy_listen,
        admin: args.admin,
        trust_domain: args.trust_domain,
        gateway,
        reload_interval: Duration::from_millis(args.reload_interval_ms.max(10)),
        crypto,
        registry: prometheus_client::registry::Registry::default(),
        denial_log: args.log_denials.then(|| {
            waypoint::inbound::DenialLog(Arc::new(|line: &str| eprintln!("waypoint: {line}")))
        }),
        zone: args.zone,
    };
    let shutdown = examples_support::shutdown::terminate_signal()
        .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    let log = |line: &str| eprintln!("waypoint: {line}");
    run_mesh_waypoint(options, &log, shutdown)
        .await
        .map_err(|e| e.to_string())
}
