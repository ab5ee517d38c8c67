//! The gateway's Prometheus metrics, registered in the embedder's registry under `gateway_`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    /// Envoy's response-flag family for the refusal: `UAEX`-like codes are Envoy's; ours
    /// name what refused: `unauthenticated`, `denied`, `policy_invalid`.
    flag: &'static str,
    /// The policy and rule (or check) that decided.
    decided_by: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCodeLabels {
    /// The rule's `routeStatName`.
    route: String,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Requests answered on the rules whose BackendTrafficPolicy names them
/// (`telemetry.metrics.routeStatName`, Envoy's route `stat_prefix`): by code, and how long
/// until the answer's head.
#[derive(Debug, Clone)]
struct RouteStats {
    requests: Family<RouteCodeLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    series: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for RouteStats {
    fn default() -> Self {
        fn histogram() -> Histogram {
            // 0.5 ms to about 33 s, doubling (Envoy's upstream_rq_time spans similar).
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 17,
            ))
        }
        RouteStats {
            requests: Family::default(),
            durations: Family::new_with_constructor(histogram),
            series: std::sync::Arc::default(),
        }
    }
}

/// The most (route name, status code) pairs counted; further ones are counted under the
/// route `other`.
pub const MAX_ROUTE_SERIES: usize = 1000;

/// The most (flag, decided_by) label sets kept; further ones are counted under `other`.
pub const MAX_DENIAL_SERIES: usize = 1000;

/// Requests by status code, policy refusals by deciding policy, connections, configuration
/// loads.
#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    requests: Family<CodeLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    denial_series: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    connections_total: Counter,
    connections_active: Gauge<i64, std::sync::atomic::AtomicI64>,
    config_loads: Family<ResultLabels, Counter>,
    config_generation: Gauge<u64, AtomicU64>,
    routes: RouteStats,
}

impl GatewayMetrics {
    /// Registers every metric in `registry` under the `gateway_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = GatewayMetrics::default();
        let registry = registry.sub_registry_with_prefix("gateway");
        registry.register(
            "http_requests",
            "HTTP requests answered, by status code",
            metrics.requests.clone(),
        );
        registry.register(
            "policy_denials",
            "Requests refused by a policy, by response flag and the policy and rule that decided",
            metrics.denials.clone(),
        );
        registry.register(
            "downstream_connections",
            "Connections accepted",
            metrics.connections_total.clone(),
        );
        registry.register(
            "downstream_connections_active",
            "Connections open",
            metrics.connections_active.clone(),
        );
        registry.register(
            "config_loads",
            "Configuration loads, by result",
            metrics.config_loads.clone(),
        );
        registry.register(
            "route_requests",
            "Requests answered on rules with a BackendTrafficPolicy routeStatName, by route \
             stat name and status code",
            metrics.routes.requests.clone(),
        );
        registry.register(
            "route_request_duration_seconds",
            "Time from a request to its answer's head on rules with a routeStatName",
            metrics.routes.durations.clone(),
        );
        registry.register(
            "config_generation",
            "Generation of the configuration being served",
            metrics.config_generation.clone(),
        );
        metrics
    }

    pub(crate) fn request_served(&self, code: u16) {
        self.requests.get_or_create(&CodeLabels { code }).inc();
    }

    pub(crate) fn policy_refused(&self, refusal: &crate::respond::PolicyRefusal) {
        use std::sync::atomic::Ordering;
        let mut labels = DenialLabels {
            flag: refusal.flag,
            decided_by: refusal.decided_by.clone(),
        };
        // Label sets come from the configuration's policies, but stay capped all the same.
        if self.denials.get(&labels).is_none()
            && self.denial_series.fetch_add(1, Ordering::Relaxed) >= MAX_DENIAL_SERIES
        {
            labels.decided_by = "other".to_owned();
        }
        self.denials.get_or_create(&labels).inc();
    }

    /// Counts an answer with `code` after `elapsed` on the rule named `route`. Each new
    /// (route, code) pair counts towards [`MAX_ROUTE_SERIES`]; past it, new pairs are counted
    /// under the route `other` (whose codes are at most the 900 a status can take).
    pub(crate) fn route_answered(&self, route: &str, code: u16, elapsed: std::time::Duration) {
        use std::sync::atomic::Ordering;
        let mut labels = RouteCodeLabels {
            route: route.to_owned(),
            code,
        };
        if self.routes.requests.get(&labels).is_none()
            && self.routes.series.fetch_add(1, Ordering::Relaxed) >= MAX_ROUTE_SERIES
        {
            labels.route = "other".to_owned();
        }
        self.routes
            .durations
            .get_or_create(&RouteLabels {
                route: labels.route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.routes.requests.get_or_create(&labels).inc();
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_total.inc();
        self.connections_active.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_active.dec();
    }

    pub(crate) fn config_loaded(&self, accepted: bool, generation: u64) {
        let result = if accepted { "accepted" } else { "rejected" };
        self.config_loads
            .get_or_create(&ResultLabels { result })
            .inc();
        if accepted {
            self.config_generation.set(generation);
        }
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> i64 {
        self.connections_active.get()
    }
}
