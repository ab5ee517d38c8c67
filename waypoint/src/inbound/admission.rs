//! How a gateway socket admits connections, from its listeners' ClientTrafficPolicies: the
//! connection limit (`connection.connectionLimit`: over it, a connection is held for the close
//! delay and closed unanswered), TCP keepalive (`tcpKeepalive`), whether a PROXY header
//! comes first (`proxyProtocol`), and the HTTP limits (`headers.maxRequestHeaderLimit`: larger
//! heads get 431; `timeout.http.requestHeadersReceivedTimeout`: slower heads close the
//! connection; `idleTimeout`: connections without requests close; `requestReceivedTimeout`:
//! requests not answered in time get 408 (504 once received whole); `streamIdleTimeout`: bodies that stall are
//! cut; `timeout.tcp.idleTimeout`: relayed TCP and TLS streams end after that long without a
//! byte (1 h by default); `connectionLimit.maxConnectionDuration` and `maxRequestsPerConnection`: a connection
//! is closed gracefully when either is used up; `maxStreamDuration`: a request past it gets
//! 408 (504 once received whole), or its response body is cut; `http2`: the windows and stream limit
//! announced; `http1.preserveHeaderCase`: header names keep their case; `http1.enableTrailers`: HTTP/1
//! trailers proxied, else dropped). Listeners sharing a socket share one
//! connection manager (as
//! in Envoy), so the strictest settings of their policies apply to the socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_policy::traffic::AttachedClientTraffic;
use mesh_policy::traffic::compile::{ConnectionLimit, ProxyProtocolMode, TcpKeepalive};
use mesh_policy::traffic::http2_settings::InvalidMessageAction;
use mesh_policy::traffic::tls_fingerprint::FingerprintKinds;
use routing::router::ListenerSet;
use tokio::net::TcpStream;

use super::http::HttpLimits;

/// A socket's admission settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Admission {
    /// Whether connections start with a PROXY header.
    pub(super) proxy_protocol: Option<ProxyProtocolMode>,
    /// TCP keepalive on accepted connections.
    pub(super) tcp_keepalive: Option<TcpKeepalive>,
    /// `SO_RCVBUF` and `SO_SNDBUF` of accepted connections (the smallest a policy asks).
    pub(super) socket_buffer: Option<u32>,
    /// The most connections open at once.
    pub(super) connection_limit: Option<ConnectionLimit>,
    /// Limits on each HTTP connection.
    pub(super) http: HttpLimits,
    /// Whether a policy's `X-Forwarded-Client-Cert` handling needs each TLS client's
    /// certificate described.
    pub(super) client_certificates: bool,
    /// The TLS fingerprints a policy of the socket's listeners asks for.
    pub(super) fingerprints: FingerprintKinds,
    /// How long a relayed TCP or TLS stream may go without a byte either way.
    pub(super) tcp_idle_timeout: Option<Duration>,
    /// Connections accepted in a row before the accept loop lets other tasks run (0: no
    /// limit).
    pub(super) accepts_in_a_row: u32,
}

/// Envoy Gateway's `connection.maxAcceptPerSocketEvent` when no policy sets it.
const DEFAULT_ACCEPTS_IN_A_ROW: u32 = 1;

/// Counts the connections an accept loop takes in a row, and says when to let other tasks run
/// (ClientTrafficPolicy `connection.maxAcceptPerSocketEvent`).
#[derive(Debug, Default)]
pub(super) struct AcceptBatch {
    taken: u32,
}

impl AcceptBatch {
    /// Counts one accepted connection; `true` when `limit` (0: none) is reached and the loop
    /// should yield before accepting more.
    pub(super) fn took_one(&mut self, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        self.taken += 1;
        if self.taken >= limit {
            self.taken = 0;
            return true;
        }
        false
    }
}

impl Admission {
    /// The settings of `listeners`' policies: PROXY required if one requires it (else
    /// optional if one allows it), the first keepalive, the smallest limit.
    pub(super) fn of(listeners: &ListenerSet) -> Self {
        let policies = || {
            listeners
                .listeners()
                .iter()
                .filter_map(|l| l.policy.get::<AttachedClientTraffic>())
                .map(|attached| &attached.0)
        };
        Admission {
            proxy_protocol: policies()
                .filter_map(|policy| policy.proxy_protocol)
                .max_by_key(|mode| *mode == ProxyProtocolMode::Required),
            tcp_keepalive: policies().find_map(|policy| policy.tcp_keepalive),
            socket_buffer: policies().filter_map(|policy| policy.socket_buffer).min(),
            connection_limit: policies()
                .filter_map(|policy| policy.connection_limit)
                .min_by_key(|limit| limit.max),
            client_certificates: policies().any(|policy| policy.xfcc.needs_client()),
            fingerprints: policies()
                .filter_map(|policy| policy.tls.as_ref())
                .fold(FingerprintKinds::default(), |kinds, tls| {
                    kinds.union(tls.fingerprints)
                }),
            // The smallest limit a policy sets (0, no limit, only when every one says so).
            accepts_in_a_row: {
                let set: Vec<u32> = policies()
                    .filter_map(|policy| policy.max_accept_per_socket_event)
                    .collect();
                match (set.iter().copied().filter(|&n| n > 0).min(), set.is_empty()) {
                    (Some(limit), _) => limit,
                    (None, true) => DEFAULT_ACCEPTS_IN_A_ROW,
                    (None, false) => 0,
                }
            },
            tcp_idle_timeout: {
                let explicit = || policies().filter_map(|policy| policy.tcp_idle_timeout);
                match explicit().flatten().min() {
                    Some(timeout) => Some(timeout),
                    None if explicit().next().is_some() => None,
                    None => Some(super::stream_idle::DEFAULT_TCP_IDLE_TIMEOUT),
                }
            },
            http: {
                let defaults = HttpLimits::default();
                HttpLimits {
                    max_header_bytes: policies()
                        .filter_map(|policy| policy.max_request_header_bytes)
                        .min()
                        .unwrap_or(defaults.max_header_bytes),
                    header_read_timeout: policies()
                        .filter_map(|policy| policy.request_headers_timeout)
                        .min()
                        .unwrap_or(defaults.header_read_timeout),
                    idle_timeout: {
                        let explicit = || policies().filter_map(|policy| policy.idle_timeout);
                        match explicit().flatten().min() {
                            Some(timeout) => Some(timeout),
                            None if explicit().next().is_some() => None,
                            None => defaults.idle_timeout,
                        }
                    },
                    request_timeout: policies()
                        .filter_map(|policy| policy.request_received_timeout)
                        .min(),
                    stream_idle_timeout: policies()
                        .filter_map(|policy| policy.stream_idle_timeout)
                        .min(),
                    max_connection_duration: policies()
                        .filter_map(|policy| policy.max_connection_duration)
                        .min(),
                    max_requests_per_connection: policies()
                        .filter_map(|policy| policy.max_requests_per_connection)
                        .min(),
                    max_stream_duration: policies()
                        .filter_map(|policy| policy.max_stream_duration)
                        .min(),
                    h2_stream_window: policies().find_map(|p| p.http2.initial_stream_window),
                    h2_connection_window: policies()
                        .find_map(|p| p.http2.initial_connection_window),
                    h2_max_concurrent_streams: policies()
                        .filter_map(|p| p.http2.max_concurrent_streams)
                        .min(),
                    h2_terminate_connection_on_invalid: policies()
                        .find_map(|p| p.http2.on_invalid_message)
                        .is_none_or(|action| action == InvalidMessageAction::TerminateConnection),
                    preserve_header_case: policies().any(|p| p.preserve_header_case),
                    http1_trailers: policies().any(|p| p.enable_trailers),
                    envoy_headers: policies().any(|p| p.envoy_headers),
                }
            },
        }
    }

    /// With `open` connections already, the close delay of a new one over the limit, or `None`
    /// when it is admitted.
    pub(super) fn refusal(&self, open: &AtomicU64) -> Option<Duration> {
        let limit = self.connection_limit?;
        (open.load(Ordering::Relaxed) >= limit.max).then_some(limit.close_delay)
    }

    /// Sets the accepted socket's options.
    pub(super) fn prepare(&self, stream: &TcpStream) {
        let _ = stream.set_nodelay(true);
        if let Some(keepalive) = self.tcp_keepalive {
            let settings = socket2::TcpKeepalive::new()
                .with_time(keepalive.idle)
                .with_interval(keepalive.interval)
                .with_retries(keepalive.probes);
            let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&settings);
        }
        if let Some(bytes) = self.socket_buffer {
            let _ = crate::outbound::set_socket_buffers(stream, bytes);
        }
    }
}

/// The most refused connections held open for their close delay at once, per socket; past it
/// a refused connection is closed at once (a flood over the limit cannot pile up sockets).
pub(super) const MAX_HELD_REFUSALS: u64 = 1024;

/// Closes a connection refused by the limit: after `delay`, unless `held` already counts
/// [`MAX_HELD_REFUSALS`] connections waiting so (then at once).
pub(super) fn close_refused(stream: TcpStream, delay: Duration, held: &Arc<AtomicU64>) {
    if delay.is_zero() || held.load(Ordering::Relaxed) >= MAX_HELD_REFUSALS {
        return;
    }
    let waiting = OpenConnection::count(held);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        drop((stream, waiting));
    });
}

/// One open connection, counted in its socket's total until dropped.
pub(super) struct OpenConnection(Arc<AtomicU64>);

impl OpenConnection {
    /// Counts one more connection in `open`.
    pub(super) fn count(open: &Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(open))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_batches_yield_at_the_limit() {
        let mut batch = AcceptBatch::default();
        let yields: Vec<bool> = (0..6).map(|_| batch.took_one(3)).collect();
        assert_eq!(yields, [false, false, true, false, false, true]);
        let mut one = AcceptBatch::default();
        assert!((0..4).all(|_| one.took_one(1)), "1: after every connection");
        let mut unlimited = AcceptBatch::default();
        assert!((0..1000).all(|_| !unlimited.took_one(0)), "0: never");
    }

    #[test]
    fn the_limit_counts_open_connections() {
        let admission = Admission {
            connection_limit: Some(ConnectionLimit {
                max: 2,
                close_delay: Duration::from_millis(5),
            }),
            ..Admission::default()
        };
        let open = Arc::new(AtomicU64::new(0));
        let first = OpenConnection::count(&open);
        assert_eq!(admission.refusal(&open), None);
        let _second = OpenConnection::count(&open);
        assert_eq!(admission.refusal(&open), Some(Duration::from_millis(5)));
        drop(first);
        assert_eq!(admission.refusal(&open), None);
        assert_eq!(Admission::default().refusal(&open), None);
    }

    #[tokio::test]
    async fn refused_connections_held_for_their_delay_are_capped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let held = Arc::new(AtomicU64::new(MAX_HELD_REFUSALS - 1));
        let client = TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        close_refused(accepted, Duration::from_secs(60), &held);
        assert_eq!(held.load(Ordering::Relaxed), MAX_HELD_REFUSALS);
        // At the cap: the next one is closed at once, not held.
        let mut second = TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        close_refused(accepted, Duration::from_secs(60), &held);
        assert_eq!(held.load(Ordering::Relaxed), MAX_HELD_REFUSALS);
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut second, &mut byte),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(read, 0, "closed at once");
        drop(client);
    }
}
