//! Out-of-band ORCA load reports (BackendTrafficPolicy `backendUtilization.outOfBand`, Envoy's
//! `enable_oob_load_report`), sans-IO: the `xds.service.orca.v3.OpenRcaService/StreamCoreMetrics`
//! request that asks an endpoint for a report every period, and [`ReportFrames`], which cuts
//! the server-streamed answer into `OrcaLoadReport` messages. The stream itself is the
//! embedder's I/O ([`ProbeEndpoints::stream_load_reports`](super::active::ProbeEndpoints)).
//!
//! ```
//! use mesh_policy::traffic::balance::orca_oob::{ReportFrames, stream_request_body};
//! use std::time::Duration;
//!
//! let request = stream_request_body(Duration::from_secs(10));
//! assert_eq!(request[0], 0, "an uncompressed gRPC message");
//! let mut frames = ReportFrames::default();
//! // A report with cpu_utilization 0.5 and rps_fractional 10, split over two chunks.
//! let message = [0x09, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0x31, 0, 0, 0, 0, 0, 0, 0x24, 0x40];
//! let mut framed = vec![0, 0, 0, 0, message.len() as u8];
//! framed.extend(message);
//! assert!(frames.push(&framed[..7]).unwrap().is_empty());
//! let loads = frames.push(&framed[7..]).unwrap();
//! assert_eq!((loads[0].cpu, loads[0].rps), (0.5, 10.0));
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use super::active::ProbeEndpoints;
use super::utilization::{EndpointWeights, OrcaLoad, decode_report};

/// Where a stream's reports go: `false` when no more are wanted (the balancer is gone).
pub type LoadSink = Box<dyn FnMut(OrcaLoad) -> bool + Send>;

/// A report stream in progress.
pub type ReportStreamFuture = Pin<Box<dyn Future<Output = ReportStreamEnd> + Send>>;

/// How a report stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStreamEnd {
    /// It could not open or broke off (after `reports` reports): it is opened again.
    Broken {
        /// Reports received before the end.
        reports: u64,
    },
    /// The endpoint does not serve the method (gRPC `UNIMPLEMENTED`): not asked again, as
    /// in Envoy.
    Unimplemented,
    /// The sink wanted no more.
    Unwanted,
}

/// The first wait before a broken stream is opened again; it doubles up to
/// [`MAX_RETRY_WAIT`] while streams break without a report.
pub const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);

/// The longest wait between attempts.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// `backendUtilization.outOfBand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutOfBand {
    /// How often each endpoint is asked to report (`reportingPeriod`, 10 s).
    pub period: Duration,
    /// The port the stream goes to instead of the endpoint's (`port`: a reporting sidecar).
    pub port: Option<u16>,
}

/// Streams every endpoint's reports into `weights` on the current tokio runtime, each
/// stream through `prober` and opened again when it breaks, until `weights` is dropped.
pub fn start_streams(
    out_of_band: OutOfBand,
    prober: &Arc<dyn ProbeEndpoints>,
    endpoints: &[SocketAddr],
    weights: &Arc<EndpointWeights>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for (index, endpoint) in endpoints.iter().enumerate() {
        let mut address = *endpoint;
        if let Some(port) = out_of_band.port {
            address.set_port(port);
        }
        runtime.spawn(stream_endpoint(
            out_of_band.period,
            Arc::clone(prober),
            address,
            index,
            Arc::downgrade(weights),
        ));
    }
}

/// One endpoint's stream, opened again after a wait whenever it breaks.
async fn stream_endpoint(
    period: Duration,
    prober: Arc<dyn ProbeEndpoints>,
    address: SocketAddr,
    index: usize,
    weights: Weak<EndpointWeights>,
) {
    let mut wait = FIRST_RETRY_WAIT;
    while weights.strong_count() > 0 {
        let into = Weak::clone(&weights);
        let sink: LoadSink = Box::new(move |load| match into.upgrade() {
            Some(weights) => {
                weights.report(index, &load);
                true
            }
            None => false,
        });
        let stream = prober.stream_load_reports(address, period, sink);
        // A quiet stream still ends soon after the balancer does.
        let gone = async {
            while weights.strong_count() > 0 {
                tokio::time::sleep(period.min(MAX_RETRY_WAIT)).await;
            }
        };
        let end = tokio::select! {
            end = stream => end,
            () = gone => return,
        };
        match end {
            ReportStreamEnd::Unimplemented | ReportStreamEnd::Unwanted => return,
            ReportStreamEnd::Broken { reports } => {
                if reports > 0 {
                    wait = FIRST_RETRY_WAIT;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
        }
    }
}

/// The method's path.
pub const STREAM_PATH: &str = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics";

/// The largest report message taken (reports are a few hundred bytes).
pub const MAX_REPORT_BYTES: usize = 64 * 1024;

/// Envoy's default reporting period.
pub const DEFAULT_REPORTING_PERIOD: Duration = Duration::from_secs(10);

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `xds.service.orca.v3.OrcaLoadReportRequest`.
#[derive(Clone, PartialEq, Message)]
struct OrcaLoadReportRequest {
    #[prost(message, optional, tag = "1")]
    report_interval: Option<ProtoDuration>,
}

/// The request body: one uncompressed gRPC message asking for a report every `period`.
pub fn stream_request_body(period: Duration) -> Bytes {
    let message = OrcaLoadReportRequest {
        report_interval: Some(ProtoDuration {
            seconds: i64::try_from(period.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(period.subsec_nanos()).unwrap_or(0),
        }),
    };
    let length = message.encoded_len();
    let mut body = BytesMut::with_capacity(5 + length);
    body.put_u8(0);
    body.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    message.encode_raw(&mut body);
    body.freeze()
}

/// Why a report stream is given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportStreamError {
    /// A message was compressed, which the request did not offer.
    #[error("a compressed report, which was not asked for")]
    Compressed,
    /// A message announced more than [`MAX_REPORT_BYTES`].
    #[error("a report of {0} bytes, over the {MAX_REPORT_BYTES}-byte bound")]
    TooLarge(u32),
}

/// Cuts a server-streamed body into report messages, whatever the chunking.
#[derive(Debug, Default)]
pub struct ReportFrames {
    /// Bytes of an unfinished frame (at most a prefix and [`MAX_REPORT_BYTES`]).
    pending: BytesMut,
    /// Why the stream can be read no further.
    failed: Option<ReportStreamError>,
}

impl ReportFrames {
    /// Takes the next body chunk; returns the loads of the messages it completed (a message
    /// that does not decode to usable values is skipped, as Envoy skips a bad report). A bad
    /// frame ends the stream: the loads before it in the chunk are still returned, and the
    /// error comes on the next push (see [`ReportFrames::error`]).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<OrcaLoad>, ReportStreamError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.pending.extend_from_slice(chunk);
        let mut loads = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(load)) => loads.extend(load),
                Ok(None) => return Ok(loads),
                Err(error) => {
                    self.pending.clear();
                    self.failed = Some(error.clone());
                    return match loads.is_empty() {
                        true => Err(error),
                        false => Ok(loads),
                    };
                }
            }
        }
    }

    /// Why the stream can be read no further, if a bad frame came.
    pub fn error(&self) -> Option<&ReportStreamError> {
        self.failed.as_ref()
    }

    /// The next whole frame's load (`Some(None)`: a frame without a usable report), or
    /// `None` when it has not all arrived.
    fn next_frame(&mut self) -> Result<Option<Option<OrcaLoad>>, ReportStreamError> {
        let Some(prefix) = self.pending.get(..5) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(ReportStreamError::Compressed);
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let size = usize::try_from(length).unwrap_or(usize::MAX);
        if size > MAX_REPORT_BYTES {
            return Err(ReportStreamError::TooLarge(length));
        }
        if self.pending.len() < 5 + size {
            return Ok(None);
        }
        let frame = self.pending.split_to(5 + size);
        Ok(Some(decode_report(&frame[5..])))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::super::active::{ActiveCheck, ProbeFuture, ProbeOutcome};
    use super::super::utilization::UtilizationParams;
    use super::*;

    /// Streams that report once then break, then answer UNIMPLEMENTED; each endpoint's
    /// CPU utilization is a tenth of its address's last octet.
    #[derive(Debug, Default)]
    struct Scripted {
        opened: Mutex<HashMap<SocketAddr, usize>>,
    }

    impl ProbeEndpoints for Scripted {
        fn probe(&self, _address: SocketAddr, _check: Arc<ActiveCheck>) -> ProbeFuture {
            Box::pin(async { ProbeOutcome::Passed })
        }

        fn stream_load_reports(
            &self,
            address: SocketAddr,
            _period: Duration,
            mut sink: LoadSink,
        ) -> ReportStreamFuture {
            let opened = {
                let mut opened = self.opened.lock().unwrap();
                let count = opened.entry(address).or_default();
                *count += 1;
                *count
            };
            let cpu = match address.ip() {
                std::net::IpAddr::V4(v4) => f64::from(v4.octets()[3]) / 10.0,
                std::net::IpAddr::V6(_) => 1.0,
            };
            Box::pin(async move {
                if opened > 1 {
                    return ReportStreamEnd::Unimplemented;
                }
                let load = OrcaLoad {
                    cpu,
                    rps: 100.0,
                    ..OrcaLoad::default()
                };
                match sink(load) {
                    true => ReportStreamEnd::Broken { reports: 1 },
                    false => ReportStreamEnd::Unwanted,
                }
            })
        }

        fn log_health_event(&self, _path: &str, _line: String) {}
    }

    #[tokio::test(start_paused = true)]
    async fn reports_reach_the_weights_broken_streams_reopen_and_unimplemented_ones_stop() {
        let prober = Arc::new(Scripted::default());
        let dyn_prober: Arc<dyn ProbeEndpoints> = prober.clone();
        let endpoints: Vec<SocketAddr> = vec![
            "10.0.0.5:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        let params = UtilizationParams {
            blackout: Duration::ZERO,
            ..UtilizationParams::default()
        };
        let weights = Arc::new(EndpointWeights::new(Arc::new(params), 2));
        let out_of_band = OutOfBand {
            period: Duration::from_secs(10),
            port: Some(9090),
        };
        start_streams(out_of_band, &dyn_prober, &endpoints, &weights);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // rps / cpu: 100 / 0.5 and 100 / 0.2.
        assert_eq!(&weights.current()[..], &[200.0, 500.0]);
        let opened = prober.opened.lock().unwrap().clone();
        let sidecar = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 9090);
        assert_eq!(opened.get(&sidecar("10.0.0.5")), Some(&2), "{opened:?}");
        assert_eq!(opened.get(&sidecar("10.0.0.2")), Some(&2), "{opened:?}");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(prober.opened.lock().unwrap().values().sum::<usize>(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_with_its_weights() {
        /// A stream that never reports.
        #[derive(Debug, Default)]
        struct Quiet(Mutex<usize>);
        impl ProbeEndpoints for Quiet {
            fn probe(&self, _address: SocketAddr, _check: Arc<ActiveCheck>) -> ProbeFuture {
                Box::pin(async { ProbeOutcome::Passed })
            }
            fn stream_load_reports(
                &self,
                _address: SocketAddr,
                _period: Duration,
                _sink: LoadSink,
            ) -> ReportStreamFuture {
                *self.0.lock().unwrap() += 1;
                Box::pin(std::future::pending())
            }
            fn log_health_event(&self, _path: &str, _line: String) {}
        }
        let prober = Arc::new(Quiet::default());
        let dyn_prober: Arc<dyn ProbeEndpoints> = prober.clone();
        let weights = Arc::new(EndpointWeights::new(
            Arc::new(UtilizationParams::default()),
            1,
        ));
        let out_of_band = OutOfBand {
            period: Duration::from_secs(1),
            port: None,
        };
        start_streams(
            out_of_band,
            &dyn_prober,
            &["10.0.0.1:80".parse().unwrap()],
            &weights,
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(Arc::strong_count(&prober), 3, "held by the stream's task");
        drop(weights);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(Arc::strong_count(&prober), 2, "the task ended");
        assert_eq!(*prober.0.lock().unwrap(), 1);
    }

    #[test]
    fn the_request_names_the_period() {
        let body = stream_request_body(Duration::from_millis(1500));
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert_eq!(body.len(), 5 + length);
        let request = OrcaLoadReportRequest::decode(&body[5..]).unwrap();
        assert_eq!(
            request.report_interval,
            Some(ProtoDuration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn frames_are_cut_across_chunks_and_bad_ones_refused() {
        let report = |cpu: f64| {
            // cpu_utilization (1, double), rps_fractional (6, double) = 100.
            let mut message = vec![0x09];
            message.extend(cpu.to_le_bytes());
            message.push(0x31);
            message.extend(100f64.to_le_bytes());
            let mut framed = vec![0];
            framed.extend((message.len() as u32).to_be_bytes());
            framed.extend(message);
            framed
        };
        let mut stream = report(0.25);
        stream.extend(report(0.75));
        stream.extend(report(-1.0)); // unusable: skipped
        stream.extend(report(0.5));
        let mut frames = ReportFrames::default();
        let mut seen = Vec::new();
        for chunk in stream.chunks(3) {
            seen.extend(frames.push(chunk).unwrap().into_iter().map(|l| l.cpu));
        }
        assert_eq!(seen, [0.25, 0.75, 0.5]);

        let mut frames = ReportFrames::default();
        assert_eq!(
            frames.push(&[1, 0, 0, 0, 1, 0]),
            Err(ReportStreamError::Compressed)
        );
        // A good report before a bad frame in one chunk is kept; the error follows.
        let mut frames = ReportFrames::default();
        let mut chunk = report(0.5);
        chunk.extend([1, 0, 0, 0, 1, 0]);
        assert_eq!(frames.push(&chunk).unwrap().len(), 1);
        assert_eq!(frames.error(), Some(&ReportStreamError::Compressed));
        assert_eq!(
            frames.push(&report(0.5)),
            Err(ReportStreamError::Compressed)
        );
        let mut frames = ReportFrames::default();
        assert_eq!(
            frames.push(&[0, 0, 0x10, 0, 1]),
            Err(ReportStreamError::TooLarge(0x0010_0001))
        );
    }
}
