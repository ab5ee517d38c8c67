//! ztunnel-compatible TCP metrics (hbone spec §7), registered in the embedder's registry.
//!
//! Names (after the `istio` prefix and prometheus-client's `_total` suffix):
//! `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//! `istio_tcp_received_bytes_total` (downstream → upstream), `istio_tcp_sent_bytes_total`
//! (upstream → downstream), `istio_tcp_connections_failed_total`; all with the sidecar-compatible
//! label set, `unknown` where a value is not known.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

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
    /// A waypoint (Istio's L7 metrics from ambient waypoints).
    waypoint,
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

/// The most distinct label sets the families hold by default; beyond it, new label sets are
/// counted under [`TrafficLabels::overflow`] (peer-supplied `baggage` must not grow memory).
pub const DEFAULT_MAX_LABEL_SETS: usize = 10_000;

/// The longest label value kept from a peer's `baggage` (a Kubernetes DNS name's limit);
/// longer values, or values with other characters than `[A-Za-z0-9._-]`, become `unknown`.
pub const MAX_BAGGAGE_VALUE_BYTES: usize = 253;

/// The counters, cheap to clone (shared families).
#[derive(Debug, Clone)]
pub struct TcpMetrics {
    opened: Family<TrafficLabels, Counter>,
    closed: Family<TrafficLabels, Counter>,
    received_bytes: Family<TrafficLabels, Counter>,
    sent_bytes: Family<TrafficLabels, Counter>,
    failed: Family<TrafficLabels, Counter>,
    /// The label sets in use, to cap their number.
    label_sets: Arc<Mutex<HashSet<TrafficLabels>>>,
    max_label_sets: usize,
}

impl Default for TcpMetrics {
    fn default() -> Self {
        TcpMetrics {
            opened: Family::default(),
            closed: Family::default(),
            received_bytes: Family::default(),
            sent_bytes: Family::default(),
            failed: Family::default(),
            label_sets: Arc::default(),
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
        }
    }
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
            *slot = if is_plain_label_value(value) {
                value.to_owned()
            } else {
                UNKNOWN.to_owned()
            };
        }
        self
    }

    /// The label set new series beyond the cap are counted under: this one with every
    /// peer-derived source label `unknown`.
    pub fn overflow(&self) -> TrafficLabels {
        let mut labels = self.clone();
        for slot in [
            &mut labels.source_cluster,
            &mut labels.source_workload_namespace,
            &mut labels.source_workload,
            &mut labels.source_canonical_service,
            &mut labels.source_canonical_revision,
        ] {
            UNKNOWN.clone_into(slot);
        }
        labels
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
    /// Registers the metrics under the `istio` prefix of `registry`, holding at most
    /// [`DEFAULT_MAX_LABEL_SETS`] label sets.
    pub fn register(registry: &mut Registry) -> Self {
        TcpMetrics::register_with_cap(registry, DEFAULT_MAX_LABEL_SETS)
    }

    /// Registers the metrics, holding at most `max_label_sets` distinct label sets.
    pub fn register_with_cap(registry: &mut Registry, max_label_sets: usize) -> Self {
        let metrics = TcpMetrics {
            max_label_sets,
            ..TcpMetrics::default()
        };
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
        let labels = self.within_cap(labels);
        self.opened.get_or_create(&labels).inc();
    }

    /// Counts a connection closed with its byte counts (downstream → upstream, and back).
    pub fn closed(&self, labels: &TrafficLabels, received: u64, sent: u64) {
        let labels = self.within_cap(labels);
        self.closed.get_or_create(&labels).inc();
        self.received_bytes.get_or_create(&labels).inc_by(received);
        self.sent_bytes.get_or_create(&labels).inc_by(sent);
    }

    /// Counts a connection that failed (the labels carry the response flags).
    pub fn failed(&self, labels: &TrafficLabels) {
        let labels = self.within_cap(labels);
        self.failed.get_or_create(&labels).inc();
    }

    /// How many distinct label sets are in use.
    pub fn label_sets(&self) -> usize {
        self.label_sets.lock().map_or(0, |sets| sets.len())
    }

    /// `labels`, or their overflow set when the cap is reached and they are new.
    fn within_cap(&self, labels: &TrafficLabels) -> TrafficLabels {
        let Ok(mut sets) = self.label_sets.lock() else {
            return labels.overflow();
        };
        if sets.contains(labels) {
            return labels.clone();
        }
        let chosen = if sets.len() < self.max_label_sets {
            labels.clone()
        } else {
            labels.overflow()
        };
        // The overflow set itself may take one place beyond the cap.
        sets.insert(chosen.clone());
        chosen
    }
}

/// Whether a peer-supplied value may become a label value as it is.
fn is_plain_label_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_BAGGAGE_VALUE_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
