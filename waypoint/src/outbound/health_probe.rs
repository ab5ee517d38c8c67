//! [`EndpointProber`]: the active health checks' probes (BackendTrafficPolicy
//! `healthCheck.active`), opened through the same [`Connect`] the forwarder uses — so a mesh
//! waypoint probes through HBONE as it forwards. HTTP probes are one HTTP/1.1 request
//! (`User-Agent: Envoy/HC`, `Connection: close`) whose status must be expected and whose
//! first 1 024 body bytes must contain the expected payload; TCP probes connect, send the
//! payload and read (at most 64 KiB) until the expected answer is found; gRPC probes make one
//! `grpc.health.v1.Health/Check` call over HTTP/2 and must hear `SERVING`. What counts as no
//! answer and what as an unhealthy answer is [`ProbeOutcome`]'s. The same prober streams
//! endpoints' out-of-band load reports (`load_reports.rs`) and appends the checks' event logs
//! to their files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_policy::traffic::balance::active::{
    ActiveCheck, GrpcProbe, HttpProbe, Probe, ProbeEndpoints, ProbeFuture, ProbeOutcome,
    RESPONSE_BUFFER_SIZE, TcpProbe,
};
use mesh_policy::traffic::balance::grpc_health;
use mesh_policy::traffic::balance::orca_oob::{LoadSink, ReportStreamFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::Connect;

/// The most a TCP probe reads looking for its answer.
const TCP_RECEIVE_LIMIT: usize = 64 * 1024;

/// Probes endpoints through a connector (the caller bounds each probe with the check's
/// timeout).
#[derive(Clone)]
pub struct EndpointProber<C> {
    connector: C,
}

impl<C> std::fmt::Debug for EndpointProber<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointProber").finish_non_exhaustive()
    }
}

impl<C: Connect> EndpointProber<C> {
    /// A prober connecting with `connector`.
    pub fn new(connector: C) -> Self {
        EndpointProber { connector }
    }
}

impl<C: Connect> ProbeEndpoints for EndpointProber<C> {
    fn probe(&self, address: SocketAddr, check: Arc<ActiveCheck>) -> ProbeFuture {
        let connector = self.connector.clone();
        Box::pin(async move {
            let Ok(io) = connector.connect(address).await else {
                return ProbeOutcome::Failed;
            };
            match &check.probe {
                Probe::Http(http) => probe_http(io, address, http).await,
                Probe::Tcp(tcp) => probe_tcp(io, tcp).await,
                Probe::Grpc(grpc) => probe_grpc(io, address, grpc).await,
            }
        })
    }

    fn stream_load_reports(
        &self,
        address: SocketAddr,
        period: Duration,
        sink: LoadSink,
    ) -> ReportStreamFuture {
        Box::pin(super::load_reports::stream_reports(
            self.connector.clone(),
            address,
            period,
            sink,
        ))
    }

    fn log_health_event(&self, path: &str, line: String) {
        let path = path.to_owned();
        // Off the runtime's threads: a file, or a pipe, may block.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || append_line(&path, &line));
        }
    }
}

/// Appends `line` and a newline to the file at `path` (created if missing) in one write, so
/// that lines from several checks do not interleave.
fn append_line(path: &str, line: &str) {
    use std::io::Write;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let _ = file.write_all(format!("{line}\n").as_bytes());
}

async fn probe_http<IO>(io: IO, address: SocketAddr, probe: &HttpProbe) -> ProbeOutcome
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await
    else {
        return ProbeOutcome::Failed;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let host = probe
        .hostname
        .clone()
        .unwrap_or_else(|| address.to_string());
    let Ok(uri) = probe.path.parse::<Uri>() else {
        return ProbeOutcome::Unhealthy;
    };
    let body = Full::new(Bytes::from(probe.request_body.clone().unwrap_or_default()));
    let mut request = Request::new(body);
    *request.method_mut() = probe.method.clone();
    *request.uri_mut() = uri;
    let Ok(host) = HeaderValue::try_from(host) else {
        return ProbeOutcome::Unhealthy;
    };
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(USER_AGENT, HeaderValue::from_static("Envoy/HC"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let Ok(response) = sender.send_request(request).await else {
        return ProbeOutcome::Failed;
    };
    let status = response.status().as_u16();
    if !probe.expected_statuses.contains(&status) {
        return if probe.retriable_statuses.contains(&status) {
            ProbeOutcome::Failed
        } else {
            ProbeOutcome::Unhealthy
        };
    }
    let Some(expected) = &probe.expected_body else {
        return ProbeOutcome::Passed;
    };
    let Ok((seen, _)) = read_body(response.into_body(), RESPONSE_BUFFER_SIZE).await else {
        return ProbeOutcome::Failed;
    };
    if contains(&seen, expected) {
        ProbeOutcome::Passed
    } else {
        ProbeOutcome::Unhealthy
    }
}

/// One `grpc.health.v1.Health/Check` call over HTTP/2 with prior knowledge.
async fn probe_grpc<IO>(io: IO, address: SocketAddr, probe: &GrpcProbe) -> ProbeOutcome
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok((mut sender, connection)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await
    else {
        return ProbeOutcome::Failed;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(address.to_string())
        .path_and_query(grpc_health::CHECK_PATH)
        .build()
    else {
        return ProbeOutcome::Failed;
    };
    let mut request = Request::new(Full::new(grpc_health::check_request_body(&probe.service)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, HeaderValue::from_static("Envoy/HC"));
    let Ok(response) = sender.send_request(request).await else {
        return ProbeOutcome::Failed;
    };
    let (parts, body) = response.into_parts();
    match read_body(body, grpc_health::MAX_ANSWER_BYTES + 1).await {
        Ok((seen, _)) if seen.len() > grpc_health::MAX_ANSWER_BYTES => ProbeOutcome::Unhealthy,
        Ok((seen, trailers)) => {
            grpc_health::judge(parts.status, &parts.headers, &seen, trailers.as_ref())
        }
        Err(()) => ProbeOutcome::Failed,
    }
}

/// Reads a body until its end or `limit` bytes (the rest is not read): what was read, and
/// the trailers if the end came first. Err: the body broke off.
async fn read_body(
    mut body: hyper::body::Incoming,
    limit: usize,
) -> Result<(Vec<u8>, Option<HeaderMap>), ()> {
    let mut seen = Vec::new();
    while seen.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let room = limit - seen.len();
                    seen.extend_from_slice(&data[..data.len().min(room)]);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Ok((seen, Some(trailers)));
                    }
                }
            },
            Some(Err(_)) => return Err(()),
            None => break,
        }
    }
    Ok((seen, None))
}

/// A TCP exchange: an answer without the expected bytes is no answer (Envoy keeps reading
/// until the timeout or the close).
async fn probe_tcp<IO>(mut io: IO, probe: &TcpProbe) -> ProbeOutcome
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if let Some(send) = &probe.send
        && io.write_all(send).await.is_err()
    {
        return ProbeOutcome::Failed;
    }
    let Some(expected) = &probe.receive else {
        return ProbeOutcome::Passed;
    };
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while seen.len() < TCP_RECEIVE_LIMIT {
        match io.read(&mut buffer).await {
            Ok(0) | Err(_) => return ProbeOutcome::Failed,
            Ok(read) => {
                seen.extend_from_slice(&buffer[..read]);
                if contains(&seen, expected) {
                    return ProbeOutcome::Passed;
                }
            }
        }
    }
    ProbeOutcome::Failed
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;
    use tokio::net::TcpListener;

    use super::*;
    use crate::outbound::TcpConnect;

    fn check(probe: Probe) -> Arc<ActiveCheck> {
        Arc::new(ActiveCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            initial_jitter: Duration::ZERO,
            unhealthy_threshold: 1,
            healthy_threshold: 1,
            port: None,
            probe,
            log: None,
        })
    }

    /// A server answering each connection with `answer` once it has read a request head.
    async fn answering(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !contains(&request, b"\r\n\r\n") && !contains(&request, b"PING") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = stream.write_all(answer).await;
                });
            }
        });
        address
    }

    fn http(statuses: Vec<u16>, body: Option<&[u8]>) -> Probe {
        Probe::Http(HttpProbe {
            path: "/healthz".into(),
            hostname: Some("health.example".into()),
            method: Method::GET,
            expected_statuses: statuses,
            retriable_statuses: Vec::new(),
            expected_body: body.map(<[u8]>::to_vec),
            request_body: None,
        })
    }

    #[tokio::test]
    async fn http_probes_judge_status_and_body() {
        use ProbeOutcome::{Failed, Passed, Unhealthy};
        let prober = EndpointProber::new(TcpConnect::default());
        let ok = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nstatus:up").await;
        let down =
            answering(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let probe = |address, statuses, body| prober.probe(address, check(http(statuses, body)));
        assert_eq!(probe(ok, vec![200], None).await, Passed);
        assert_eq!(probe(ok, vec![200], Some(b"up")).await, Passed);
        assert_eq!(probe(ok, vec![200], Some(b"down")).await, Unhealthy);
        assert_eq!(probe(ok, vec![204], None).await, Unhealthy);
        assert_eq!(probe(down, vec![200], None).await, Unhealthy);
        assert_eq!(probe(down, vec![200, 503], None).await, Passed);
        let mut retriable = http(vec![200], None);
        if let Probe::Http(http) = &mut retriable {
            http.retriable_statuses = vec![503];
        }
        assert_eq!(
            prober.probe(down, check(retriable)).await,
            Failed,
            "a retriable status counts towards the threshold"
        );
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(probe(closed, vec![200], None).await, Failed);
    }

    #[tokio::test]
    async fn tcp_probes_connect_send_and_expect() {
        use ProbeOutcome::{Failed, Passed};
        let prober = EndpointProber::new(TcpConnect::default());
        let pong = answering(b"+PONG\r\n").await;
        let tcp = |send: Option<&[u8]>, receive: Option<&[u8]>| {
            check(Probe::Tcp(TcpProbe {
                send: send.map(<[u8]>::to_vec),
                receive: receive.map(<[u8]>::to_vec),
            }))
        };
        assert_eq!(prober.probe(pong, tcp(None, None)).await, Passed);
        assert_eq!(
            prober
                .probe(pong, tcp(Some(b"PING\r\n"), Some(b"PONG")))
                .await,
            Passed
        );
        assert_eq!(
            prober
                .probe(pong, tcp(Some(b"PING\r\n"), Some(b"NOPE")))
                .await,
            Failed
        );
    }
}
