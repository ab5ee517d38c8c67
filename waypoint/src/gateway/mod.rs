//! The gateway product, assembled: a configuration source with hot reload, inbound sockets
//! whose HTTP requests go through [`Respond`](crate::respond::Respond) and
//! [`GatewayRequestPath`](crate::inbound::GatewayRequestPath) (route selection, the
//! SecurityPolicy, the rule's filters) to the [`Forwarder`](crate::outbound::Forwarder), the
//! admin endpoint, the remote JWKS fetcher, the external authorizers' client and the OpenID
//! providers' client. The `gateway` example binary is this module plus a command line.

mod authorizer;
mod fetch;
mod identity_provider;
mod redis_counters;
pub(crate) mod remote_jwks;

pub use authorizer::PooledAuthorizers;
pub use identity_provider::ProviderClient;
pub use redis_counters::{RateLimitBackend, RedisCounters};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use routing::loader::LoadError;
use routing::resolve::ResolveOptions;

use crate::admin;
pub use crate::admin::AdminState;
pub use crate::config::{ConfigSource, Fingerprint, Snapshot};
use crate::config::{LastReloadError, NameChanges, NameResolver, ReloadTicker};
pub use crate::inbound::{ApplyReport, SocketKey, Sockets, UnavailableSocket, group_listeners};
pub use crate::metrics::GatewayMetrics;

/// How to run a gateway.
#[derive(Debug)]
pub struct GatewayOptions {
    /// The configuration.
    pub source: ConfigSource,
    /// Serve only Gateways of this class.
    pub gateway_class: Option<String>,
    /// The GatewayClass `controllerName` this gateway owns
    /// ([`DEFAULT_CONTROLLER_NAME`](routing::resolve::DEFAULT_CONTROLLER_NAME) by default).
    pub controller_name: String,
    /// The admin endpoint's address.
    pub admin: SocketAddr,
    /// How often to check the configuration files for changes.
    pub reload_interval: Duration,
    /// How long connections may take to finish after shutdown is requested.
    pub drain_timeout: Duration,
    /// How long, once shutdown is requested, the gateway keeps accepting while it fails its
    /// health checks (ClientTrafficPolicy `healthCheck.path` and the admin `/ready` answer
    /// 503, HTTP/1 responses close their connections) before it stops accepting and drains
    /// (Envoy Gateway's `shutdown.minDrainDuration`; zero: stop at once).
    pub min_drain_duration: Duration,
    /// The crypto provider for HTTPS listeners.
    pub crypto: Arc<rustls::crypto::CryptoProvider>,
    /// The embedder's metrics registry: the gateway registers its `gateway_*` metrics in it,
    /// and the admin endpoint's `/metrics` serves all of it.
    pub registry: prometheus_client::registry::Registry,
    /// Told one line per request a policy refuses (method, host, path, status, response
    /// flag, the deciding policy and rule); `None`: refusals are only counted.
    pub denial_log: Option<crate::inbound::DenialLog>,
    /// Where global rate limits are counted; `None`: policies with a global limit are
    /// invalid.
    pub rate_limit: Option<RateLimitBackend>,
    /// The zone this gateway runs in (`topology.kubernetes.io/zone` of its node), for
    /// BackendTrafficPolicy `zoneAware.preferLocal`; `None`: no request prefers a zone.
    pub zone: Option<String>,
    /// The DNS server that resolves the host names of Envoy Gateway `Backend`s (`None`: the
    /// system's `/etc/resolv.conf`; the hosts file is read either way).
    pub dns_server: Option<SocketAddr>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The initial configuration is invalid.
    #[error("configuration rejected: {0}")]
    Config(#[from] LoadError),
    /// The admin socket could not be bound.
    #[error("cannot bind the admin endpoint {address}: {error}")]
    Admin {
        /// The address.
        address: SocketAddr,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// The process cannot set itself up (no randomness for OIDC sessions).
    #[error("cannot start: {0}")]
    Setup(String),
}

/// What the gateway tells its operator (one line each; the binary prints them on stderr).
pub trait GatewayEvents: Send + Sync {
    /// A line of log.
    fn log(&self, line: &str);
}

impl<F: Fn(&str) + Send + Sync> GatewayEvents for F {
    fn log(&self, line: &str) {
        self(line)
    }
}

/// Runs a gateway until `shutdown` resolves, then drains connections (up to
/// `drain_timeout`) and returns.
pub async fn run_gateway(
    options: GatewayOptions,
    events: &dyn GatewayEvents,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    // One handle per remoteJWKS URL, refreshed below, kept across reloads.
    let jwks_registry = Arc::new(mesh_policy::security::jwt::JwksRegistry::default());
    // The Unix sockets of Envoy Gateway Backends, by stand-in address: the forwarder and the
    // health checks open them; each loaded configuration says which there are.
    let unix_sockets = crate::outbound::UnixSockets::default();
    let providers = ProviderClient::new(Arc::clone(&options.crypto));
    let resolve_options = ResolveOptions {
        gateway_class: options.gateway_class.clone(),
        controller_name: options.controller_name.clone(),
        // Envoy Gateway's SecurityPolicies, ClientTrafficPolicies and BackendTrafficPolicies
        // of each configuration fill the listener and rule slots.
        policies: Some(Arc::new(routing::slot::PolicyCompilers(vec![
            // Active health checks probe over plain TCP, as the forwarder connects; global
            // rate limits count in Redis.
            Arc::new(mesh_policy::traffic::TrafficPolicies::with_runtime(
                mesh_policy::traffic::compile::TrafficRuntime {
                    prober: Some(Arc::new(crate::outbound::EndpointProber::new(
                        crate::outbound::TcpConnect::default()
                            .with_unix_sockets(unix_sockets.clone()),
                    ))),
                    counters: match &options.rate_limit {
                        None => None,
                        Some(backend) => {
                            Some(Arc::new(RedisCounters::new(backend).map_err(|e| {
                                GatewayError::Setup(format!("--rate-limit-redis: {e}"))
                            })?))
                        }
                    },
                    endpoint_ages: Default::default(),
                    verdicts: Default::default(),
                    ejections: Default::default(),
                    local_zone: options.zone.as_deref().map(Arc::from),
                },
            )),
            Arc::new(mesh_policy::security::SecurityPolicies::with_runtime(
                mesh_policy::security::SecurityRuntime {
                    remote_jwks: Some(Arc::clone(&jwks_registry)),
                    authorizer: Some(Arc::new(PooledAuthorizers::default())),
                    oidc: Some(mesh_policy::security::oidc::OidcRuntime {
                        client: Arc::new(providers.clone()),
                        secret: mesh_policy::security::oidc::SessionSecret::random()
                            .map_err(|e| GatewayError::Setup(e.to_string()))?,
                    }),
                },
            )),
        ]))),
    };
    let loaded = options.source.fingerprint();
    let resolver = match options.dns_server {
        Some(server) => NameResolver::with_server(server),
        None => NameResolver::system(),
    };
    let snapshot = options
        .source
        .load_resolving_names(&resolve_options, 1, &resolver)
        .await?;
    for warning in &snapshot.warnings {
        events.log(&format!("warning: {warning}"));
    }
    let mut registry = options.registry;
    let metrics = Arc::new(GatewayMetrics::register(&mut registry));
    metrics.config_loaded(true, 1);
    let admin_listener =
        admin::bind_admin(options.admin)
            .await
            .map_err(|error| GatewayError::Admin {
                address: options.admin,
                error,
            })?;
    let mut sockets = Sockets::with_unix_sockets(
        Arc::clone(&metrics),
        Arc::clone(&options.crypto),
        unix_sockets.clone(),
    );
    if let Some(log) = options.denial_log.clone() {
        sockets.log_denials(log);
    }
    let mut snapshot = snapshot;
    unix_sockets.replace(snapshot.config.backend_unix_sockets());
    let report = sockets.apply(&snapshot.resolution.gateways).await;
    record_report(&report, &mut snapshot, events);
    let state = Arc::new(AdminState {
        snapshot: ArcSwap::from_pointee(snapshot),
        ready: false.into(),
        last_error: LastReloadError::default(),
        metrics: Arc::clone(&metrics),
        registry,
    });
    let admin_address = admin_listener.local_addr().unwrap_or(options.admin);
    let admin_task = tokio::spawn(admin::serve_admin(admin_listener, Arc::clone(&state)));
    let provider_state = Arc::clone(&state);
    providers.serve_from(move || provider_state.snapshot.load_full());
    let jwks_state = Arc::clone(&state);
    let jwks_task = tokio::spawn(remote_jwks::refresh_forever(
        jwks_registry,
        move || jwks_state.snapshot.load_full(),
        Arc::clone(&options.crypto),
    ));
    // Ready once every listener is served (a later reload may complete it).
    state.ready.store(report.complete(), Ordering::Release);
    let mut addresses = sockets.addresses();
    addresses.sort();
    for key in addresses {
        let transport = if key.udp { "udp" } else { "tcp" };
        events.log(&format!("listening on {} ({transport})", key.address));
    }
    events.log(&format!("admin on {admin_address}"));

    // The host names of Envoy Gateway Backends are resolved again on their schedules (TTLs,
    // BackendTrafficPolicy `dns`); new answers reload the configuration.
    let name_changes = NameChanges::default();
    let names_state = Arc::clone(&state);
    let names_task = tokio::spawn(name_changes.clone().watch(resolver.clone(), move || {
        names_state.snapshot.load().served_names()
    }));
    tokio::pin!(shutdown);
    let mut ticker = ReloadTicker::new(options.reload_interval, (loaded, 0));
    while ticker
        .settled_change(shutdown.as_mut(), || {
            (options.source.fingerprint(), name_changes.count())
        })
        .await
    {
        reload(
            &options.source,
            &resolve_options,
            &resolver,
            &state,
            (&mut sockets, &unix_sockets),
            events,
        )
        .await;
    }

    events.log("draining");
    state.ready.store(false, Ordering::Release);
    if !options.min_drain_duration.is_zero() {
        sockets.fail_health_checks();
        tokio::time::sleep(options.min_drain_duration).await;
    }
    sockets.drain();
    let deadline = tokio::time::Instant::now() + options.drain_timeout;
    while metrics.active_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin_task.abort();
    jwks_task.abort();
    names_task.abort();
    Ok(())
}

/// Loads the changed configuration and swaps it in, or keeps the old one with the error.
async fn reload(
    source: &ConfigSource,
    resolve_options: &ResolveOptions,
    resolver: &NameResolver,
    state: &AdminState,
    (sockets, unix_sockets): (&mut Sockets, &crate::outbound::UnixSockets),
    events: &dyn GatewayEvents,
) {
    let generation = state.snapshot.load().generation + 1;
    let outcome = match source
        .load_resolving_names(resolve_options, generation, resolver)
        .await
    {
        Err(error) => Err(error.to_string()),
        Ok(mut snapshot) => {
            unix_sockets.replace(snapshot.config.backend_unix_sockets());
            let report = sockets.apply(&snapshot.resolution.gateways).await;
            record_report(&report, &mut snapshot, events);
            state.ready.store(report.complete(), Ordering::Release);
            Ok(snapshot)
        }
    };
    match outcome {
        Ok(snapshot) => {
            for warning in &snapshot.warnings {
                events.log(&format!("warning: {warning}"));
            }
            events.log(&format!("configuration generation {generation} loaded"));
            state.metrics.config_loaded(true, generation);
            state.snapshot.store(Arc::new(snapshot));
            state.last_error.record(None);
        }
        Err(message) => {
            events.log(&format!(
                "configuration rejected, still serving the previous one: {message}"
            ));
            state.metrics.config_loaded(false, generation);
            state.last_error.record(Some(message));
        }
    }
}

/// Logs what the sockets could not serve and records it in the listeners' conditions
/// (`Accepted=False`, `Programmed=False`, reason `PortUnavailable` for sockets that could not be
/// bound or whose certificates did not load; `ProtocolConflict` for skipped listeners).
fn record_report(report: &ApplyReport, snapshot: &mut Snapshot, events: &dyn GatewayEvents) {
    use routing::resolve::Condition;
    let mut mark = |gateway: &str, listener: &str, reason: &'static str, message: &str| {
        let statuses = snapshot.resolution.statuses.iter_mut();
        for status in statuses.filter(|s| s.kind == "Gateway" && s.object.to_string() == gateway) {
            for entry in status.listeners.iter_mut().filter(|l| l.name == listener) {
                entry
                    .conditions
                    .retain(|c| c.condition_type != "Accepted" && c.condition_type != "Programmed");
                entry
                    .conditions
                    .push(Condition::failed("Accepted", reason, message));
                entry
                    .conditions
                    .push(Condition::failed("Programmed", "Invalid", message));
            }
        }
    };
    for skipped in &report.skipped {
        events.log(&format!(
            "warning: listener {skipped} shares a socket with another protocol; not served"
        ));
        if let Some((gateway, listener)) = skipped.rsplit_once('/') {
            mark(
                gateway,
                listener,
                "ProtocolConflict",
                "another protocol holds this address and port",
            );
        }
    }
    for unavailable in &report.unavailable {
        events.log(&format!(
            "error: {} ({}) not served: {}",
            unavailable.key.address,
            if unavailable.key.udp { "udp" } else { "tcp" },
            unavailable.reason
        ));
        for (gateway, listener) in &unavailable.listeners {
            mark(
                &gateway.to_string(),
                listener,
                "PortUnavailable",
                &unavailable.reason,
            );
        }
    }
    // The Gateway itself is Programmed only if at least one of its listeners is served.
    for status in snapshot
        .resolution
        .statuses
        .iter_mut()
        .filter(|s| s.kind == "Gateway")
    {
        let none_served = !status.listeners.is_empty()
            && status.listeners.iter().all(|listener| {
                listener
                    .conditions
                    .iter()
                    .any(|c| c.condition_type == "Programmed" && !c.is_true())
            });
        let programmed = status
            .conditions
            .iter()
            .any(|c| c.condition_type == "Programmed" && c.is_true());
        if none_served && programmed {
            status
                .conditions
                .retain(|c| c.condition_type != "Programmed");
            status.conditions.push(Condition::failed(
                "Programmed",
                "NoResources",
                "no listener of this Gateway could be served",
            ));
        }
    }
}
