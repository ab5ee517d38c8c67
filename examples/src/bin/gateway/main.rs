//! `gateway`: a standalone Kubernetes Gateway API gateway.
//!
//! ```text
//! gateway                                  # quick start: embedded config, echo backends, :8080
//! gateway --config DIR_OR_FILE [--config …] [--admin 127.0.0.1:15000] [--gateway-class NAME]
//!         [--rate-limit-redis redis://127.0.0.1:6379 [--rate-limit-timeout-ms 20] [--rate-limit-fail-closed]]
//!         [--zone ZONE] [--min-drain-ms MS] [--dns-server ADDR:PORT]
//! ```
//!
//! Configuration files are Kubernetes YAML (Gateway, HTTPRoute, Service, EndpointSlice, …);
//! they are watched and reloaded when they change. The admin endpoint serves `/ready`,
//! `/status`, `/config_dump`, `/metrics` and `/debug/authorize` (why a request would be
//! denied). SIGTERM drains connections and exits.

mod quickstart;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use waypoint::gateway::{ConfigSource, GatewayOptions, run_gateway};

/// A standalone Gateway API gateway (HTTPRoute over HTTP listeners; see the README).
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    /// Kubernetes YAML file or directory (repeatable). Without any, serve the quick start.
    #[arg(long = "config", value_name = "PATH")]
    configs: Vec<PathBuf>,
    /// Admin endpoint address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Serve only the Gateways of this GatewayClass.
    #[arg(long, value_name = "NAME")]
    gateway_class: Option<String>,
    /// The GatewayClass controllerName this gateway owns: only classes naming it are
    /// Accepted, and Gateways of another controller's class are not served.
    #[arg(long, value_name = "NAME", default_value = routing::resolve::DEFAULT_CONTROLLER_NAME)]
    controller_name: String,
    /// Runtime worker threads; default: one per available CPU. With 1, a single-threaded
    /// runtime serves everything (the cheapest per request).
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// How often to check the configuration files for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    reload_interval_ms: u64,
    /// Print one line on stderr per request a policy refuses: method, host, path (then the TLS
    /// client's `ja3=`/`ja4=` when a ClientTrafficPolicy's `tls.fingerprints` computes them),
    /// status, response flag, and the policy and rule that decided.
    #[arg(long)]
    log_denials: bool,
    /// Count BackendTrafficPolicy global rate limits in this Redis (`redis://host:port`);
    /// gateways given the same Redis share the limits. Without it, policies with a global
    /// limit are invalid.
    #[arg(long, value_name = "URL")]
    rate_limit_redis: Option<String>,
    /// How long a request waits for Redis before the failure mode applies, in milliseconds
    /// (Envoy Gateway's default, 20).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 20,
        requires = "rate_limit_redis"
    )]
    rate_limit_timeout_ms: u64,
    /// When Redis fails, answer 500 instead of letting requests pass (the default).
    #[arg(long, requires = "rate_limit_redis")]
    rate_limit_fail_closed: bool,
    /// The zone this gateway runs in (its node's `topology.kubernetes.io/zone`): with a
    /// BackendTrafficPolicy `zoneAware.preferLocal`, requests prefer endpoints whose
    /// EndpointSlice `zone` is this one. Without it, no request prefers a zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// The DNS server that resolves the host names of Envoy Gateway `Backend`s (UDP, then TCP
    /// for truncated answers), instead of those in /etc/resolv.conf; the hosts file is read
    /// either way.
    #[arg(long, value_name = "ADDR:PORT")]
    dns_server: Option<std::net::SocketAddr>,
    /// After SIGTERM, keep accepting for this many milliseconds while failing health checks
    /// (a ClientTrafficPolicy `healthCheck.path` and the admin `/ready` answer 503, HTTP/1.1
    /// responses close their connections), then stop accepting and drain (Envoy Gateway's
    /// `shutdown.minDrainDuration`). 0: stop accepting at once.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    min_drain_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = match args.worker_threads {
        Some(0) => {
            eprintln!("gateway: --worker-threads must be at least 1");
            return ExitCode::FAILURE;
        }
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let shutdown = examples_support::shutdown::terminate_signal()
        .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    let (source, _echo_tasks) = if args.configs.is_empty() {
        let quick = quickstart::start()
            .await
            .map_err(|e| format!("cannot start the quick-start echo backends: {e}"))?;
        println!("{}", quickstart::TRY_IT);
        (quick.source, quick.echo_tasks)
    } else {
        (ConfigSource::Paths(args.configs), Vec::new())
    };
    let options = GatewayOptions {
        source,
        gateway_class: args.gateway_class,
        controller_name: args.controller_name,
        admin: args.admin,
        reload_interval: Duration::from_millis(args.reload_interval_ms.max(10)),
        drain_timeout: Duration::from_secs(5),
        min_drain_duration: Duration::from_millis(args.min_drain_ms),
        crypto: std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        registry: prometheus_client::registry::Registry::default(),
        denial_log: args.log_denials.then(|| {
            waypoint::inbound::DenialLog(std::sync::Arc::new(|line: &str| {
                eprintln!("gateway: {line}")
            }))
        }),
        rate_limit: args
            .rate_limit_redis
            .map(|url| waypoint::gateway::RateLimitBackend {
                url,
                timeout: Duration::from_millis(args.rate_limit_timeout_ms.max(1)),
                fail_closed: args.rate_limit_fail_closed,
            }),
        zone: args.zone,
        dns_server: args.dns_server,
    };
    let log = |line: &str| eprintln!("gateway: {line}");
    run_gateway(options, &log, shutdown)
        .await
        .map_err(|e| e.to_string())
}
