//! Istio's standard L7 metrics as a waypoint reports them (`reporter="waypoint"`):
//! `istio_requests_total`, `istio_request_duration_milliseconds`, `istio_request_bytes` and
//! `istio_response_bytes`, with Istio's labels (the `istio_tcp_*` label set plus
//! `response_code` and `grpc_response_status`). Bytes are the body bytes that crossed the
//! waypoint; a request is recorded when its response body ends (or is dropped). Label sets
//! are capped (10 000): further ones are counted with the peer-derived labels `unknown`.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hbone::metrics::TrafficLabels;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The labels of one request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Source, destination, protocol, security policy.
    #[prometheus(flatten)]
    pub traffic: TrafficLabels,
    /// The HTTP status.
    pub response_code: u16,
    /// The gRPC status, `-` for plain HTTP.
    pub grpc_response_status: String,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The four metrics, registered under `istio_`.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    request_bytes: HistogramFamily,
    response_bytes: HistogramFamily,
    label_sets: Arc<Mutex<HashSet<RequestLabels>>>,
}

/// The most label sets kept before new ones are folded into overflow labels.
const MAX_LABEL_SETS: usize = 10_000;

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
    ])
}

fn bytes_histogram() -> Histogram {
    Histogram::new((0..9).map(|power| 10f64.powi(power)))
}

impl RequestMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = RequestMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            request_bytes: Family::new_with_constructor(bytes_histogram as fn() -> Histogram),
            response_bytes: Family::new_with_constructor(bytes_histogram as fn() -> Histogram),
            label_sets: Arc::default(),
        };
        let istio = registry.sub_registry_with_prefix("istio");
        istio.register(
            "requests",
            "Total number of requests",
            metrics.requests.clone(),
        );
        istio.register(
            "request_duration_milliseconds",
            "Duration of requests in milliseconds",
            metrics.duration.clone(),
        );
        istio.register(
            "request_bytes",
            "Size of HTTP request bodies",
            metrics.request_bytes.clone(),
        );
        istio.register(
            "response_bytes",
            "Size of HTTP response bodies",
            metrics.response_bytes.clone(),
        );
        metrics
    }

    /// Records one finished request.
    pub fn record(&self, labels: RequestLabels, started: Instant, request: u64, response: u64) {
        self.series(labels).record(started, request, response);
    }

    /// The four metrics of one label set, to record into without looking labels up again.
    pub fn series(&self, labels: RequestLabels) -> Series {
        let labels = self.within_cap(labels);
        Series {
            requests: self.requests.get_or_create(&labels).clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            request_bytes: self.request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.response_bytes.get_or_create(&labels).clone(),
        }
    }

    fn within_cap(&self, labels: RequestLabels) -> RequestLabels {
        let Ok(mut sets) = self.label_sets.lock() else {
            return overflow(labels);
        };
        if sets.contains(&labels) {
            return labels;
        }
        let chosen = if sets.len() < MAX_LABEL_SETS {
            labels
        } else {
            overflow(labels)
        };
        sets.insert(chosen.clone());
        chosen
    }
}

/// One label set's metrics (handles sharing the registered values).
#[derive(Debug, Clone)]
pub struct Series {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl Series {
    /// Records one finished request.
    pub fn record(&self, started: Instant, request: u64, response: u64) {
        self.requests.inc();
        self.duration
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        self.request_bytes.observe(request as f64);
        self.response_bytes.observe(response as f64);
    }
}

/// One outcome of a connection's requests and its series.
type KnownSeries = (u16, Option<String>, bool, Series);

/// The series of one connection's requests, by response code, gRPC status and protocol:
/// the labels are built once per distinct outcome, not per request.
#[derive(Debug)]
pub struct ConnectionSeries {
    metrics: RequestMetrics,
    base: TrafficLabels,
    known: Mutex<Vec<KnownSeries>>,
}

impl ConnectionSeries {
    /// Series for requests with `base` labels.
    pub fn new(metrics: RequestMetrics, base: TrafficLabels) -> Self {
        ConnectionSeries {
            metrics,
            base,
            known: Mutex::new(Vec::new()),
        }
    }

    /// The series of a request that got `code` (and `grpc_status`), over gRPC or not.
    pub fn series(&self, code: u16, grpc_status: Option<&str>, grpc: bool) -> Series {
        if let Ok(known) = self.known.lock()
            && let Some((.., series)) = known
                .iter()
                .find(|(c, g, p, _)| *c == code && g.as_deref() == grpc_status && *p == grpc)
        {
            return series.clone();
        }
        let mut traffic = self.base.clone();
        if grpc {
            "grpc".clone_into(&mut traffic.request_protocol);
        }
        let series = self.metrics.series(RequestLabels {
            traffic,
            response_code: code,
            grpc_response_status: grpc_status.unwrap_or("-").to_owned(),
        });
        if let Ok(mut known) = self.known.lock()
            && known.len() < 64
        {
            known.push((code, grpc_status.map(str::to_owned), grpc, series.clone()));
        }
        series
    }
}

fn overflow(labels: RequestLabels) -> RequestLabels {
    RequestLabels {
        traffic: labels.traffic.overflow(),
        ..labels
    }
}

/// Counts the bytes of a body; shared with the response that records them.
#[derive(Debug, Clone, Default)]
pub struct ByteCount(Arc<std::sync::atomic::AtomicU64>);

impl ByteCount {
    /// The bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.0
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A body that counts its data bytes into a [`ByteCount`] and runs `on_end` once, when it
/// ends or is dropped.
#[pin_project::pin_project(PinnedDrop)]
pub struct CountedBody<B, F: FnOnce(u64)> {
    #[pin]
    inner: B,
    count: ByteCount,
    on_end: Option<F>,
}

impl<B, F: FnOnce(u64)> CountedBody<B, F> {
    /// Wraps `inner`.
    pub fn new(inner: B, count: ByteCount, on_end: Option<F>) -> Self {
        CountedBody {
            inner,
            count,
            on_end,
        }
    }
}

impl<B, F> Body for CountedBody<B, F>
where
    B: Body<Data = Bytes>,
    F: FnOnce(u64),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.add(data.len());
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(on_end) = this.on_end.take() {
                    on_end(this.count.get());
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[pin_project::pinned_drop]
impl<B, F: FnOnce(u64)> PinnedDrop for CountedBody<B, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(on_end) = this.on_end.take() {
            on_end(this.count.get());
        }
    }
}
