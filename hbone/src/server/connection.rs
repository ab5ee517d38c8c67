//! Serving one HBONE connection: TLS, HTTP/2, keepalive, drain, and each CONNECT stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use super::outcome::ConnectRefusal;
use super::request::{ConnectDecision, ConnectRequest};
use super::{HboneServer, ServeConnectionError};
use crate::bridge::bridge_tunnel;
use crate::connect_headers::{Authority, BAGGAGE};
use crate::h2_stream::H2Stream;
use crate::identity::peer_identity;
use crate::keepalive::keepalive;
use crate::metrics::{Reporter, TrafficLabels};
use crate::proxy_protocol::write_proxy_header;

/// Who is on the other end of one HBONE connection.
#[derive(Debug, Clone)]
struct Peer {
    identity: Option<crate::identity::SpiffeId>,
    address: SocketAddr,
    local_address: SocketAddr,
}

impl<S> HboneServer<S>
where
    S: Service<ConnectRequest, Response = ConnectDecision> + Clone + Send + 'static,
    S::Error: std::fmt::Display + Send,
    S::Future: Send,
{
    /// Serves one accepted TCP connection until the peer closes it, keepalive fails, or a drain
    /// (signalled through `drain`) completes or passes its deadline.
    pub async fn serve_connection(
        self,
        tcp: TcpStream,
        mut drain: watch::Receiver<bool>,
    ) -> Result<(), ServeConnectionError> {
        let address = tcp.peer_addr().map_err(ServeConnectionError::Io)?;
        let local_address = tcp.local_addr().map_err(ServeConnectionError::Io)?;
        let _ = tcp.set_nodelay(true);
        let tls_config = self.tls.borrow().clone();
        let accept = tokio_rustls::TlsAcceptor::from(tls_config)
            .accept(tcp)
            .into_fallible();
        let tls = match tokio::time::timeout(self.config.handshake_timeout, accept).await {
            Err(_) => return Err(ServeConnectionError::HandshakeTimeout),
            Ok(Ok(tls)) => tls,
            Ok(Err((error, io))) => {
                lingering_close(io).await;
                return Err(ServeConnectionError::Tls(error));
            }
        };
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(peer_identity);
        let peer = Peer {
            identity,
            address,
            local_address,
        };
        let mut connection = self
            .config
            .h2
            .server_builder()
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(ServeConnectionError::H2)?;
        let keepalive = keepalive(
            connection.ping_pong(),
            self.config.h2.ping_interval,
            self.config.h2.ping_timeout,
        );
        tokio::pin!(keepalive);
        let mut drain_deadline = None;
        loop {
            let deadline = async {
                match drain_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                accepted = connection.accept() => match accepted {
                    Some(Ok((request, respond))) => {
                        let server = self.clone();
                        let peer = peer.clone();
                        tokio::spawn(async move { server.handle_stream(request, respond, peer).await });
                    }
                    Some(Err(error)) if error.is_go_away() || error.is_io() => return Ok(()),
                    Some(Err(error)) => return Err(ServeConnectionError::H2(error)),
                    None => return Ok(()),
                },
                changed = drain.changed(), if drain_deadline.is_none() => {
                    if changed.is_err() || *drain.borrow() {
                        connection.graceful_shutdown();
                        drain_deadline = Some(tokio::time::Instant::now() + self.config.drain_deadline);
                    }
                }
                () = &mut keepalive => {
                    connection.abrupt_shutdown(Reason::NO_ERROR);
                    return Err(ServeConnectionError::KeepaliveTimeout);
                }
                () = deadline => return Ok(()),
            }
        }
    }

    async fn handle_stream(
        self,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        peer: Peer,
    ) {
        let (parts, body) = request.into_parts();
        let connect = match validate(&parts.method, parts.uri.authority().map(|a| a.as_str())) {
            Ok(authority) => ConnectRequest {
                authority,
                peer_identity: peer.identity.clone(),
                peer_address: peer.address,
                local_address: peer.local_address,
                headers: parts.headers,
            },
            Err(refusal) => {
                let _ = respond
                    .send_response(status_response(refusal.status(), &HeaderMap::new()), true);
                return;
            }
        };
        let mut service = self.service.clone();
        let decision = match service.ready().await {
            Ok(ready) => ready.call(connect.clone()).await,
            Err(error) => Err(error),
        };
        let decision = decision.map_err(|error| ConnectRefusal::ServiceFailed(error.to_string()));
        match decision {
            Ok(ConnectDecision::Forward {
                upstream,
                proxy_header,
                response_headers,
                close_when,
            }) => {
                let connected = tokio::time::timeout(
                    self.config.upstream_connect_timeout,
                    crate::socket::connect_tcp(upstream, self.config.upstream_mark),
                )
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                let mut tcp = match connected {
                    Ok(tcp) => tcp,
                    Err(source) => {
                        let refusal = ConnectRefusal::UpstreamConnect { upstream, source };
                        self.refuse(&mut respond, &connect, &refusal);
                        return;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let labels = self.traffic_labels(&connect);
                let accepted = self.accept(
                    &mut respond,
                    &connect,
                    &response_headers,
                    body,
                    labels.as_ref(),
                );
                let Some(mut stream) = accepted else { return };
                let header_written = match proxy_header {
                    Some(header) => write_proxy_header(&mut tcp, &header).await.is_ok(),
                    None => true,
                };
                let (received, sent) = match (header_written, close_when) {
                    (false, _) => (0, 0),
                    (true, None) => bridge_tunnel(&mut stream, &mut tcp)
                        .await
                        .unwrap_or_default(),
                    (true, Some(close_when)) => tokio::select! {
                        bridged = bridge_tunnel(&mut stream, &mut tcp) => bridged.unwrap_or_default(),
                        () = close_when => (0, 0),
                    },
                };
                self.record_closed(labels, received, sent);
            }
            Ok(ConnectDecision::Serve(handler)) => {
                let labels = self.traffic_labels(&connect);
                let accepted = self.accept(
                    &mut respond,
                    &connect,
                    &HeaderMap::new(),
                    body,
                    labels.as_ref(),
                );
                if let Some(stream) = accepted {
                    handler(stream).await;
                    // A local handler's byte counts are its own.
                    self.record_closed(labels, 0, 0);
                }
            }
            Ok(ConnectDecision::Reject(status)) => {
                self.refuse(&mut respond, &connect, &ConnectRefusal::Refused(status));
            }
            Err(refusal) => self.refuse(&mut respond, &connect, &refusal),
        }
    }

    /// Answers 200 and returns the tunnel's stream.
    fn accept(
        &self,
        respond: &mut SendResponse<Bytes>,
        connect: &ConnectRequest,
        headers: &HeaderMap,
        body: RecvStream,
        labels: Option<&TrafficLabels>,
    ) -> Option<H2Stream> {
        let send = respond
            .send_response(status_response(StatusCode::OK, headers), false)
            .ok()?;
        self.observe(connect, StatusCode::OK);
        if let (Some(server_metrics), Some(labels)) = (&self.metrics, labels) {
            server_metrics.metrics.opened(labels);
        }
        Some(H2Stream::new(send, body))
    }

    /// Answers a refusal with no body.
    fn refuse(
        &self,
        respond: &mut SendResponse<Bytes>,
        connect: &ConnectRequest,
        refusal: &ConnectRefusal,
    ) {
        let status = refusal.status();
        let _ = respond.send_response(status_response(status, &HeaderMap::new()), true);
        self.observe(connect, status);
        if let (Some(server_metrics), Some(labels)) = (&self.metrics, self.traffic_labels(connect))
        {
            server_metrics
                .metrics
                .failed(&labels.with_response_flags(refusal.response_flags()));
        }
    }

    /// The metric labels of a CONNECT, if metrics are on.
    fn traffic_labels(&self, connect: &ConnectRequest) -> Option<TrafficLabels> {
        let server_metrics = self.metrics.as_ref()?;
        let baggage = connect
            .headers
            .get(BAGGAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let labels = TrafficLabels::new(
            Reporter::destination,
            connect.peer_identity.as_ref(),
            server_metrics.local_identity.as_ref(),
        )
        .with_source_baggage(baggage);
        Some(labels)
    }

    fn record_closed(&self, labels: Option<TrafficLabels>, received: u64, sent: u64) {
        if let (Some(server_metrics), Some(labels)) = (&self.metrics, labels) {
            server_metrics.metrics.closed(&labels, received, sent);
        }
    }

    fn observe(&self, connect: &ConnectRequest, status: StatusCode) {
        if let Some(observer) = &self.observer {
            observer(connect, status);
        }
    }
}

fn validate(method: &Method, authority: Option<&str>) -> Result<Authority, ConnectRefusal> {
    if method != Method::CONNECT {
        return Err(ConnectRefusal::NotConnect(method.clone()));
    }
    Ok(authority.ok_or(ConnectRefusal::MissingAuthority)?.parse()?)
}

fn status_response(status: StatusCode, headers: &HeaderMap) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response.headers_mut().clone_from(headers);
    response
}

/// Closes a connection whose handshake failed so that the peer reads our alert: half-close,
/// then discard what the peer had already sent (with TLS 1.3 a client sends its first request
/// right after its Finished). Closing with unread bytes would make the kernel answer with a
/// reset, which can destroy the alert before the client reads it.
async fn lingering_close<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) {
    let _ = io.shutdown().await;
    let mut discard = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(read) = io.read(&mut discard).await {
            if read == 0 {
                return;
            }
        }
    })
    .await;
}

/// The observer type, re-exported from the module root.
pub(super) type Observer = Arc<dyn Fn(&ConnectRequest, StatusCode) + Send + Sync>;
