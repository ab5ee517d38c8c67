//! `ztunnel`: a node proxy in Istio ztunnel's dedicated mode (one workload, no CNI, no xDS),
//! configured with ztunnel's own local configuration file.
//!
//! ```text
//! ztunnel --config LOCAL.yaml --cert CERT.pem --key KEY.pem --ca ROOT.pem \
//!         [--workload NS/NAME[/SA]] [--admin 127.0.0.1:15000] [--bind IP] [--socks5 ADDR]
//! ```
//!
//! Without `--config`, `LOCAL_XDS_PATH` names the file; without `--workload`,
//! `PROXY_WORKLOAD_INFO=ns/name/sa` names the workload (both as ztunnel reads them). The file
//! is watched: a valid change is applied, a bad one refused while the old state serves.
//! Listeners: 15001 outbound capture (iptables REDIRECT), 15006 inbound plaintext, 15008
//! inbound HBONE, 15080 SOCKS5, 15021 `/healthz/ready`, 15020 `/metrics`, 15000 admin
//! (`/config_dump`). Its own sockets carry mark 0x539 (`--mark 0` to disable; setting a mark
//! needs CAP_NET_ADMIN).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hbone::tls::{HboneTls, WorkloadCertificate};
use waypoint::node::proxy::{NodeAddresses, NodeOptions, run_node};
use waypoint::node::snapshot::{LocalConfigSource, WorkloadSelector};

/// A ztunnel-compatible node proxy.
#[derive(Debug, Parser)]
#[command(name = "ztunnel", version)]
struct Args {
    /// ztunnel local configuration (default: $LOCAL_XDS_PATH).
    #[arg(long, value_name = "LOCAL.yaml")]
    config: Option<PathBuf>,
    /// The proxied workload's certificate chain (PEM, leaf first).
    #[arg(long, value_name = "CERT.pem")]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The mesh's root certificate(s) (PEM).
    #[arg(long, value_name = "ROOT.pem")]
    ca: PathBuf,
    /// The workload proxied for, `namespace/name[/serviceAccount]` (default:
    /// $PROXY_WORKLOAD_INFO).
    #[arg(long, value_name = "NS/NAME")]
    workload: Option<String>,
    /// Admin endpoint (`/config_dump`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// The address the traffic, readiness and metrics listeners bind
    /// (15001, 15006, 15008, 15021, 15020).
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V6(Ipv6Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// The SOCKS5 listener ("off" to disable).
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:15080")]
    socks5: String,
    /// The proxy's network (ztunnel's NETWORK).
    #[arg(long, value_name = "NAME", default_value = "")]
    network: String,
    /// The firewall mark on the proxy's own sockets (0: none).
    #[arg(long, value_name = "MARK", default_value_t = hbone::socket::ZTUNNEL_MARK)]
    mark: u32,
    /// How often to check the configuration file for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    reload_interval_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ztunnel: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = match args.config {
        Some(path) => path,
        None => std::env::var_os("LOCAL_XDS_PATH")
            .map(PathBuf::from)
            .ok_or("--config or LOCAL_XDS_PATH is required")?,
    };
    let workload = match args.workload {
        Some(text) => text,
        None => std::env::var("PROXY_WORKLOAD_INFO")
            .map_err(|_| "--workload or PROXY_WORKLOAD_INFO is required")?,
    };
    let workload: WorkloadSelector = workload.parse().map_err(|e| format!("{e}"))?;
    let socks5 = match args.socks5.as_str() {
        "off" => None,
        text => Some(
            text.parse()
                .map_err(|_| format!("--socks5 {text:?} is not an address or \"off\""))?,
        ),
    };
    let certificate = WorkloadCertificate::from_pem_files(&args.cert, &args.key, &args.ca)
        .map_err(|e| e.to_string())?;
    let addresses = NodeAddresses {
        socks5,
        admin: args.admin,
        ..NodeAddresses::ztunnel(args.bind)
    };
    let options = NodeOptions {
        source: LocalConfigSource::File(config),
        workload,
        certificate: Arc::new(certificate),
        tls: HboneTls::new(Arc::new(rustls::crypto::ring::default_provider())),
        addresses,
        network: args.network,
        mark: (args.mark != 0).then_some(args.mark),
        reload_interval: Duration::from_millis(args.reload_interval_ms.max(10)),
        registry: prometheus_client::registry::Registry::default(),
    };
    let shutdown = examples_support::shutdown::terminate_signal()
        .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    let log = |line: &str| eprintln!("ztunnel: {line}");
    run_node(options, &log, shutdown)
        .await
        .map_err(|e| e.to_string())
}
