//! ztunnel-compatible TCP metrics (hbone spec §7), registered in the embedder's registry.
//!
//! Names (after the `istio` prefix and prometheus-client's `_total` suffix):
//! `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//! `istio_tcp_received_bytes_total` (downstream → upstream), `istio_tcp_sent_bytes_total`
//! (upstream → downstream), `istio_tcp_connections_failed_total`; all with the sidecar-compatible
//! label set, `unknown` where a value is not known.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::connect_headers::baggage_members;
use crate::identity::SpiffeId;

/// Which side reports: the client of a tunnel (`source`) or its server (`destination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reporter {
    /// The outbound side.
    source,
    /// The inbound side.
    destination,
}

/// The `response_flags` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlags {
    /// `-`: no failure.
    None,
    /// `DENY`: refused by policy.
    Deny,
    /// `CONNECT`: the upstream could not be connected.
    Connect,
}

/// The sidecar-compatible label set of every `istio_tcp_*` metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
#[allow(missing_docs)]
pub struct TrafficLabels {
    pub reporter: Reporter,
    pub source_workload: String,
    pub source_canonical_service: String,
    pub source_canonical_revision: String,
    pub source_workload_namespace: String,
    pub source_principal: String,
    pub source_app: String,
    pub source_version: String,
    pub source_cluster: String,
    pub destination_service: String,
    pub destination_service_namespace: String,
    pub destination_service_name: String,
    pub destination_workload: String,
    pub destination_canonical_service: String,
    pub destination_canonical_revision: String,
    pub destination_workload_namespace: String,
    pub destination_principal: String,
    pub destination_app: String,
    pub destination_version: String,
    pub destination_cluster: String,
    pub request_protocol: String,
    pub response_flags: String,
    pub connection_security_policy: String,
}

/// The counters, cheap to clone (shared families).
#[derive(Debug, Clone, Default)]
pub struct TcpMetrics {
    opened: Family<TrafficLabels, Counter>,
    closed: Family<TrafficLabels, Counter>,
    received_bytes: Family<TrafficLabels, Counter>,
    sent_bytes: Family<TrafficLabels, Counter>,
    failed: Family<TrafficLabels, Counter>,
}

const UNKNOWN: &str = "unknown";

impl TrafficLabels {
    /// Labels for an mTLS connection reported by `reporter`, between two identities (either may
    /// be unknown); every other label `unknown`, protocol `tcp`, flags `-`.
    pub fn new(
        reporter: Reporter,
        source: Option<&SpiffeId>,
        destination: Option<&SpiffeId>,
    ) -> Self {
        let unknown = || UNKNOWN.to_owned();
        let principal = |id: Option<&SpiffeId>| id.map_or_else(unknown, |id| id.to_string());
        let namespace =
            |id: Option<&SpiffeId>| id.map_or_else(unknown, |id| id.namespace().to_owned());
        TrafficLabels {
            reporter,
            source_workload: unknown(),
            source_canonical_service: unknown(),
            source_canonical_revision: unknown(),
            source_workload_namespace: namespace(source),
            source_principal: principal(source),
            source_app: unknown(),
            source_version: unknown(),
            source_cluster: unknown(),
            destination_service: unknown(),
            destination_service_namespace: unknown(),
            destination_service_name: unknown(),
            destination_workload: unknown(),
            destination_canonical_service: unknown(),
            destination_canonical_revision: unknown(),
            destination_workload_namespace: namespace(destination),
            destination_principal: principal(destination),
            destination_app: unknown(),
            destination_version: unknown(),
            destination_cluster: unknown(),
            request_protocol: "tcp".to_owned(),
            response_flags: "-".to_owned(),
            connection_security_policy: if source.is_some() {
                "mutual_tls"
            } else {
                UNKNOWN
            }
            .to_owned(),
        }
    }

    /// Fills source labels from a request's `baggage` (used when the source workload cannot be
    /// looked up): cluster, namespace, workload, canonical service and revision.
    pub fn with_source_baggage(mut self, baggage: &str) -> Self {
        for (key, value) in baggage_members(baggage) {
            let slot = match key {
                "k8s.cluster.name" => &mut self.source_cluster,
                "k8s.namespace.name" => &mut self.source_workload_namespace,
                "k8s.deployment.name" | "k8s.cronjob.name" | "k8s.pod.name" | "k8s.job.name" => {
                    &mut self.source_workload
                }
                "service.name" => &mut self.source_canonical_service,
                "service.version" => &mut self.source_canonical_revision,
                _ => continue,
            };
            value.clone_into(slot);
        }
        self
    }

    /// Sets the `response_flags` label.
    pub fn with_response_flags(mut self, flags: ResponseFlags) -> Self {
        self.response_flags = match flags {
            ResponseFlags::None => "-",
            ResponseFlags::Deny => "DENY",
            ResponseFlags::Connect => "CONNECT",
        }
        .to_owned();
        self
    }
}

impl TcpMetrics {
    /// Registers the metrics under the `istio` prefix of `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = TcpMetrics::default();
        let istio = registry.sub_registry_with_prefix("istio");
        istio.register(
            "tcp_connections_opened",
            "The total number of TCP connections opened",
            metrics.opened.clone(),
        );
        istio.register(
            "tcp_connections_closed",
            "The total number of TCP connections closed",
            metrics.closed.clone(),
        );
        istio.register(
            "tcp_received_bytes",
            "The size of total bytes received during request in case of a TCP connection",
            metrics.received_bytes.clone(),
        );
        istio.register(
            "tcp_sent_bytes",
            "The size of total bytes sent during response in case of a TCP connection",
            metrics.sent_bytes.clone(),
        );
        istio.register(
            "tcp_connections_failed",
            "The total number of failed TCP connections",
            metrics.failed.clone(),
        );
        metrics
    }

    /// Counts a connection opened.
    pub fn opened(&self, labels: &TrafficLabels) {
        self.opened.get_or_create(labels).inc();
    }

    /// Counts a connection closed with its byte counts (downstream → upstream, and back).
    pub fn closed(&self, labels: &TrafficLabels, received: u64, sent: u64) {
        self.closed.get_or_create(labels).inc();
        self.received_bytes.get_or_create(labels).inc_by(received);
        self.sent_bytes.get_or_create(labels).inc_by(sent);
    }

    /// Counts a connection that failed (the labels carry the response flags).
    pub fn failed(&self, labels: &TrafficLabels) {
        self.failed.get_or_create(labels).inc();
    }
}
