//! Forwarding a routed request to one endpoint of its [`SelectedBackend`]: HTTP/1.1 or HTTP/2
//! (by `appProtocol`; cleartext, or TLS under a BackendTLSPolicy), pooled connections,
//! hop-by-hop headers removed, `Host` kept as sent (HTTP/2: as `:authority`).

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hbone::peer::Peer;
use hbone::proxy_protocol::{ProxyHeader, Version as ProxyVersion};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::compiled::{BackendProtocol, BackendTls};
use routing::router::{
    ConnectTunnels, MatchBackendScheme, MatchedRoute, SelectedBackend, SelectedEndpoint,
    UpstreamConnection, UpstreamError, UpstreamErrorKind, UpstreamProxyProtocol, UseClientProtocol,
};

use super::body_error::BodyError;
use rustls::crypto::CryptoProvider;

use super::backend_tls::{BackendTlsClients, TlsSpeech};
use super::connect::ConnectOptions;
use super::connect::{Connect, TcpConnect, UriConnector};
use super::deadline_body::DeadlineBody;
use super::endpoints::EndpointPicker;
use super::h2_pool::{H2Pool, H2PoolError, StreamPlace};
use super::http1_pool::{Http1Pool, Http1PoolError, PoolClass, PoolLimits};
use super::idle_timeout::IdleTimeoutBody;

/// Asks the forwarder to keep the case of header names on HTTP/1.1 both ways — the request's
/// to the backend, the backend's response's to the client — as a request extension (set by
/// the inbound side for listeners whose ClientTrafficPolicy has `http1.preserveHeaderCase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreserveHeaderCase;

/// The body of every request and response the gateway forwards.
pub type ResponseBody = BoxBody<Bytes, BodyError>;

/// A [`ResponseBody`] of `bytes`.
pub fn full_body(bytes: Bytes) -> ResponseBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

/// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1; `Trailer`
/// is end to end: it declares the trailers hyper's HTTP/1 encoder may write).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The forwarding service: an HTTP/1.1 and an h2c connection pool, round-robin over
/// endpoints, every connection opened through the connector `C` (TCP by default; an
/// [`HboneConnect`](super::HboneConnect) puts every request into HBONE tunnels).
pub struct Forwarder<C = TcpConnect> {
    /// Shared by every clone: a clone per request costs one reference count.
    inner: Arc<Pools<C>>,
}

impl<C> Clone for Forwarder<C> {
    fn clone(&self) -> Self {
        Forwarder {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Bounds on forwarding, with Envoy-like defaults: the HTTP/1.1 pool's caps and timeouts
/// (its `response_idle_timeout` applies to every response the forwarder relays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwarderLimits {
    /// The pool's caps and timeouts.
    pub pool: PoolLimits,
}

struct Pools<C> {
    limits: ForwarderLimits,
    connector: C,
    http1: Client<UriConnector<C>, ResponseBody>,
    h2: H2Pool<C>,
    tls: BackendTlsClients<C>,
    plain: Arc<Http1Pool<C>>,
    endpoints: EndpointPicker,
}

impl Forwarder<TcpConnect> {
    /// A forwarder with empty pools and the default limits; backends under a
    /// BackendTLSPolicy use `crypto`.
    pub fn new(crypto: Arc<CryptoProvider>) -> Self {
        Forwarder::with_limits(crypto, ForwarderLimits::default())
    }

    /// A forwarder with empty pools bounded by `limits`, connecting over TCP within the
    /// pool's connect timeout.
    pub fn with_limits(crypto: Arc<CryptoProvider>, limits: ForwarderLimits) -> Self {
        let connector = TcpConnect::new(limits.pool.connect_timeout);
        Forwarder::with_connector(connector, crypto, limits)
    }
}

impl<C: Connect> Forwarder<C> {
    /// A forwarder with empty pools bounded by `limits` whose connections are opened by
    /// `connector` (backend TLS, when a policy asks for it, runs over its streams).
    pub fn with_connector(
        connector: C,
        crypto: Arc<CryptoProvider>,
        limits: ForwarderLimits,
    ) -> Self {
        let uri_connector = UriConnector::new(connector.clone());
        let http1 = Client::builder(TokioExecutor::new()).build(uri_connector);
        let h2 = H2Pool::new(connector.clone());
        Forwarder {
            inner: Arc::new(Pools {
                limits,
                http1,
                h2,
                tls: BackendTlsClients::new(crypto, connector.clone()),
                plain: Arc::new(Http1Pool::new(limits.pool, connector.clone())),
                connector,
                endpoints: EndpointPicker::default(),
            }),
        }
    }

    /// The connector every connection is opened with (shared with the stream relays).
    pub fn connector(&self) -> &C {
        &self.inner.connector
    }

    /// Closes idle HTTP/1.1 connections to endpoints not in `live` (called on reload).
    pub fn retain_endpoints(&self, live: &HashSet<SocketAddr>) {
        self.inner.plain.retain_endpoints(live);
        self.inner.h2.retain_endpoints(live);
    }

    /// Open HTTP/1.1 connections (busy and idle) to `endpoint` in the lean pool.
    pub fn open_connections(&self, endpoint: SocketAddr) -> usize {
        self.inner.plain.open_connections(endpoint)
    }

    /// Idle HTTP/1.1 connections to `endpoint` in the lean pool.
    pub fn idle_connections(&self, endpoint: SocketAddr) -> usize {
        self.inner.plain.idle_connections(endpoint)
    }

    /// The endpoint picker shared with the TCP, TLS-passthrough and UDP sockets.
    pub fn endpoints(&self) -> &EndpointPicker {
        &self.inner.endpoints
    }

    async fn forward(
        self,
        mut request: Request<ResponseBody>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        let Some(backend) = request.extensions_mut().remove::<SelectedBackend>() else {
            return Err(unroutable("no backend was selected for the request"));
        };
        // A route policy's balancer may have chosen the endpoint already.
        let selected = request.extensions().get::<SelectedEndpoint>();
        let chosen = selected.and_then(|selected| selected.of(&backend));
        // The endpoint the balancer expects the next try to take (predictive preconnect).
        let predicted = selected
            .and_then(|selected| selected.predicted_of(&backend))
            .map(|next| next.address);
        let Some(endpoint) = chosen.or_else(|| self.inner.endpoints.pick(&backend)) else {
            return Err(UpstreamError::new(UpstreamErrorKind::Refused));
        };
        // Keep the authority the client sent as the Host header (HTTP/2 clients send
        // `:authority` only).
        if !request.headers().contains_key(header::HOST)
            && let Some(authority) = request.uri().authority()
            && let Ok(host) = HeaderValue::try_from(authority.as_str())
        {
            request.headers_mut().insert(header::HOST, host);
        }
        // CONNECT, on a route that allows it: a tunnel to the endpoint.
        if request.method() == http::Method::CONNECT {
            let Some(tunnels) = request.extensions().get::<ConnectTunnels>().copied() else {
                return Err(unroutable("CONNECT is not allowed on this route"));
            };
            if backend.tls.is_some() {
                return Err(unroutable("CONNECT to TLS backends is not supported"));
            }
            let upstream = request
                .extensions()
                .get::<UpstreamConnection>()
                .copied()
                .unwrap_or_default();
            let options = ConnectOptions::of(&upstream);
            remove_hop_by_hop(request.headers_mut());
            return super::connect_tunnel::tunnel(
                &self.inner.connector,
                endpoint.address,
                options,
                tunnels.terminate,
                request,
            )
            .await;
        }
        // An HTTP/1.1 upgrade (WebSocket) is passed through: the Upgrade header survives, and
        // on 101 both upgraded connections are spliced.
        let upgrade = upgrade_protocol(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        remove_hop_by_hop(request.headers_mut());
        let upgrading = upgrade.is_some();
        if let Some(protocol) = upgrade {
            request.headers_mut().insert(header::UPGRADE, protocol);
            request
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        // The path and query move over unchanged (never re-parsed or normalized): in origin
        // form on the lean pool, which writes the URI as the request target; in absolute form
        // (the endpoint's address) for hyper-util's clients, which connect by it.
        // The backend's appProtocol, unless a policy asks for the client's protocol.
        let protocol = match (
            request.extensions().get::<UseClientProtocol>(),
            request.version(),
        ) {
            (Some(_), http::Version::HTTP_2) => BackendProtocol::H2c,
            (Some(_), _) if backend.protocol == BackendProtocol::H2c => BackendProtocol::Http1,
            _ => backend.protocol,
        };
        let upstream = request
            .extensions()
            .get::<UpstreamConnection>()
            .copied()
            .unwrap_or_default();
        let proxy_protocol = upstream.proxy_protocol;
        // HTTP/2 on the pool: h2c, and h2 over TLS unless a PROXY header asks for a
        // connection of the request's own.
        let pooled_h2 = protocol == BackendProtocol::H2c
            && !upgrading
            && (backend.tls.is_none() || proxy_protocol.is_none());
        let legacy_client =
            !pooled_h2 && (backend.tls.is_some() || upgrading || protocol == BackendProtocol::H2c);
        let target = if pooled_h2 {
            // The client's authority as `:authority`; no `Host` beside it (RFC 9113 §8.3.1).
            let scheme = upstream_scheme(&request, backend.tls.is_some());
            let authority = request
                .headers_mut()
                .remove(header::HOST)
                .and_then(|host| Authority::try_from(host.as_bytes()).ok());
            match authority {
                Some(authority) => with_authority(request.uri(), scheme, authority),
                None => absolute_form(request.uri(), scheme, endpoint.address),
            }
        } else if legacy_client {
            let scheme = upstream_scheme(&request, backend.tls.is_some());
            absolute_form(request.uri(), scheme, endpoint.address)
        } else {
            origin_form(request.uri())
        };
        let Some(target) = target else {
            return Err(unroutable("the request target cannot be rewritten"));
        };
        *request.uri_mut() = target;
        let tls = backend.tls.is_some();
        let idle = upstream
            .stream_idle_timeout
            .unwrap_or(self.inner.limits.pool.response_idle_timeout);
        let deadline = upstream
            .max_stream_duration
            .map(|limit| tokio::time::Instant::now() + limit);
        if proxy_protocol.is_some()
            && (upgrading || (backend.tls.is_none() && protocol == BackendProtocol::H2c))
        {
            // A PROXY header goes on a connection of the request's own, which the lean
            // HTTP/1.1 path and the TLS path open (not the h2c and upgrade clients).
            return Err(unroutable(
                "a PROXY header is sent to HTTP/1.1 and TLS backends only",
            ));
        }
        let sent = match (&backend.tls, protocol) {
            (Some(policy), protocol) => {
                // A Backend's `tls` without `sni`: the request's host is sent and verified
                // (Envoy Gateway's default).
                let named_by_host;
                let policy: &BackendTls = if policy.server_name.is_empty() {
                    named_by_host = BackendTls {
                        server_name: request_host(&request)
                            .ok_or_else(|| UpstreamError::new(UpstreamErrorKind::Tls))?,
                        ..BackendTls::clone(policy)
                    };
                    &named_by_host
                } else {
                    policy
                };
                // HTTPS to the backend: gRPC and HTTP/2 backends get h2 in ALPN, the others
                // (and upgrades) http/1.1.
                let h2_only = protocol == BackendProtocol::H2c && !upgrading;
                *request.version_mut() = if h2_only {
                    http::Version::HTTP_2
                } else {
                    http::Version::HTTP_11
                };
                // The Gateway's `tls.backend` client certificate, if it has one.
                let client_certificate = request
                    .extensions()
                    .get::<MatchedRoute>()
                    .and_then(|matched| matched.listener.as_ref())
                    .and_then(|listener| listener.backend_client_certificate.clone());
                let clients = &self.inner.tls;
                let windows = upstream.http2;
                let options = ConnectOptions::of(&upstream);
                // A Backend's own client certificate, else the Gateway's.
                let certificate = policy
                    .client_certificate
                    .as_ref()
                    .or(client_certificate.as_ref());
                if let Some(version) = proxy_protocol {
                    // A connection of the request's own, its PROXY header before TLS.
                    let preface = proxy_preface(version, request.extensions().get::<Peer>())?;
                    let speech = match (h2_only, upgrading) {
                        (true, _) => TlsSpeech::Http2,
                        (false, true) => TlsSpeech::Http1,
                        (false, false) => TlsSpeech::Negotiated,
                    };
                    let Some(config) = clients.config(policy, speech, certificate) else {
                        return Err(UpstreamError::new(UpstreamErrorKind::Tls));
                    };
                    let sent = super::proxied_tls::send_once(
                        clients.connector(),
                        endpoint.address,
                        options,
                        &preface,
                        config,
                        request,
                    )
                    .await;
                    sent.and_then(|response| boxed(Ok::<_, hyper::Error>(response), tls, idle))
                } else if h2_only {
                    // HTTP/2 over TLS on the pool, with the client's `:authority`.
                    let Some(pool_tls) = clients.h2_tls(policy, certificate) else {
                        return Err(UpstreamError::new(UpstreamErrorKind::Tls));
                    };
                    let sent = self
                        .inner
                        .h2
                        .send(endpoint.address, request, windows, options, Some(&pool_tls))
                        .await;
                    h2_answer(sent, tls, idle)
                } else {
                    let Some(client) = clients.client(policy, certificate, options, upgrading)
                    else {
                        return Err(UpstreamError::new(UpstreamErrorKind::Tls));
                    };
                    boxed(client.request(request).await, tls, idle)
                }
            }
            (None, BackendProtocol::H2c) if !upgrading => {
                *request.version_mut() = http::Version::HTTP_2;
                let options = ConnectOptions::of(&upstream);
                let sent = self
                    .inner
                    .h2
                    .send(endpoint.address, request, upstream.http2, options, None)
                    .await;
                h2_answer(sent, tls, idle)
            }
            (None, _) if upgrading => {
                *request.version_mut() = http::Version::HTTP_11;
                boxed(self.inner.http1.request(request).await, tls, idle)
            }
            (None, _) => {
                // The common case: HTTP/1.1 on the lean pool.
                *request.version_mut() = http::Version::HTTP_11;
                let class = PoolClass::of(
                    &upstream,
                    request.extensions().get::<PreserveHeaderCase>().is_some(),
                );
                let timeout = upstream.connect_timeout;
                let plain = &self.inner.plain;
                if let Some(next) = predicted {
                    plain.warm(next, class, timeout);
                }
                match proxy_protocol {
                    None => plain.send(endpoint.address, request, class, timeout).await,
                    Some(version) => {
                        let preface = proxy_preface(version, request.extensions().get::<Peer>())?;
                        plain
                            .send_once(endpoint.address, request, class, timeout, &preface)
                            .await
                    }
                }
                .map(|response| match upstream.stream_idle_timeout {
                    // The pool's own cut is the default; a policy's comes on top.
                    Some(idle) => response.map(|body| IdleTimeoutBody::new(body, idle).boxed()),
                    None => response,
                })
                .map_err(|error| match error {
                    Http1PoolError::Connect(typed) => typed,
                    other => upstream_error(other, false),
                })
            }
        };
        let mut response = match deadline {
            None => sent?,
            Some(deadline) => sent?.map(|body| DeadlineBody::new(body, deadline).boxed()),
        };
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client_upgrade)) = (switched, client_upgrade) {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(splice_upgraded(client_upgrade, backend_upgrade));
            return Ok(response);
        }
        remove_hop_by_hop(response.headers_mut());
        Ok(response)
    }
}

/// The PROXY header naming `peer` — the client and the address it connected to — in
/// `version` (without a peer, or with mixed address families: `UNKNOWN` / `UNSPEC`).
pub(crate) fn proxy_preface(
    version: UpstreamProxyProtocol,
    peer: Option<&Peer>,
) -> Result<Vec<u8>, UpstreamError> {
    let addresses = match peer {
        Some(peer) => {
            let destination = peer.destination.unwrap_or_else(|| {
                let unspecified: std::net::IpAddr = match peer.address {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                };
                SocketAddr::new(unspecified, 0)
            });
            (peer.address, destination)
        }
        None => {
            let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
            (unspecified, unspecified)
        }
    };
    let mut header = ProxyHeader::proxied_stream(addresses.0, addresses.1);
    if version == UpstreamProxyProtocol::V1 {
        header.version = ProxyVersion::V1;
    }
    let mut preface = Vec::with_capacity(64);
    header
        .encode(&mut preface)
        .map_err(|error| UpstreamError::with_source(UpstreamErrorKind::Protocol, error))?;
    Ok(preface)
}

/// `/path?query` of `uri` (`/` when it has none).
fn origin_form(uri: &Uri) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path_and_query(uri));
    Uri::from_parts(parts).ok()
}

/// The `:scheme` an HTTP/2 backend gets (HTTP/1.1 sends none): the client's, as Envoy
/// preserves it — the request's own on HTTP/2, else `https` when the gateway marked the
/// request `x-forwarded-proto: https` — or, under [`MatchBackendScheme`], that of the
/// connection to the backend.
/// The client's host name, lower case, without port: its `Host` (the target now names the
/// endpoint), else — on the HTTP/2 pool, where `Host` became the target's authority — the
/// target's authority.
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let authority = match request.headers().get(http::header::HOST) {
        Some(host) => host
            .to_str()
            .ok()?
            .parse::<Authority>()
            .ok()?
            .host()
            .to_owned(),
        None => request.uri().authority()?.host().to_owned(),
    };
    let host = authority.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn upstream_scheme<B>(request: &Request<B>, backend_tls: bool) -> Scheme {
    let https = if request.extensions().get::<MatchBackendScheme>().is_some() {
        backend_tls
    } else {
        match request.uri().scheme_str() {
            Some(scheme) => scheme.eq_ignore_ascii_case("https"),
            None => request
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https")),
        }
    };
    if https { Scheme::HTTPS } else { Scheme::HTTP }
}

/// `{scheme}://{endpoint}/path?query` of `uri`.
fn absolute_form(uri: &Uri, scheme: Scheme, endpoint: SocketAddr) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(Authority::try_from(endpoint.to_string()).ok()?);
    parts.path_and_query = Some(path_and_query(uri));
    Uri::from_parts(parts).ok()
}

/// `uri` in absolute form with `authority` (the client's, for HTTP/2's `:authority`).
fn with_authority(uri: &Uri, scheme: Scheme, authority: Authority) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query(uri));
    Uri::from_parts(parts).ok()
}

fn path_and_query(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// A legacy-client answer with its body boxed (and cut after the idle timeout), or its
/// failure typed.
fn boxed<E>(
    answer: Result<Response<hyper::body::Incoming>, E>,
    tls: bool,
    idle: Duration,
) -> Result<Response<ResponseBody>, UpstreamError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    answer
        .map(|response| {
            response.map(|body| IdleTimeoutBody::new(body.map_err(BodyError::new), idle).boxed())
        })
        .map_err(|error| upstream_error(error, tls))
}

/// The answer of an HTTP/2 pool: typed errors, and a stream limit's place kept with the
/// response body until it ends.
fn h2_answer(
    sent: Result<(Response<hyper::body::Incoming>, Option<StreamPlace>), H2PoolError>,
    tls: bool,
    idle: Duration,
) -> Result<Response<ResponseBody>, UpstreamError> {
    match sent {
        Err(H2PoolError::Connect(typed)) => Err(typed),
        Err(H2PoolError::Http(error)) => Err(upstream_error(error, tls)),
        Ok((response, None)) => boxed(Ok::<_, hyper::Error>(response), tls, idle),
        Ok((response, Some(place))) => {
            boxed(Ok::<_, hyper::Error>(response), tls, idle).map(|response| {
                response.map(|body| {
                    body.map_frame(move |frame| {
                        let _held = &place;
                        frame
                    })
                    .boxed()
                })
            })
        }
    }
}

/// A request that cannot be sent at all (the stack is misassembled).
fn unroutable(message: &'static str) -> UpstreamError {
    UpstreamError::with_source(UpstreamErrorKind::Protocol, message)
}

/// Types a failure to reach the backend by its cause: TLS (a TLS backend's connection
/// failed, or rustls said so), refused, timed out, reset, or an invalid answer.
pub(crate) fn upstream_error<E>(error: E, tls: bool) -> UpstreamError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let kind = classify(&error, tls);
    UpstreamError::with_source(kind, error)
}

fn classify(error: &(dyn std::error::Error + 'static), tls: bool) -> UpstreamErrorKind {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut connecting = false;
    while let Some(current) = cause {
        // The connector typed it already.
        if let Some(typed) = current.downcast_ref::<UpstreamError>() {
            return typed.kind();
        }
        if current.downcast_ref::<rustls::Error>().is_some() {
            return UpstreamErrorKind::Tls;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable => {
                    return UpstreamErrorKind::Refused;
                }
                ErrorKind::TimedOut => return UpstreamErrorKind::Timeout,
                ErrorKind::InvalidData if tls => return UpstreamErrorKind::Tls,
                _ => {}
            }
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return UpstreamErrorKind::Timeout;
            }
            if hyper.is_parse() || hyper.is_parse_status() {
                return UpstreamErrorKind::Protocol;
            }
        }
        if let Some(legacy) = current.downcast_ref::<hyper_util::client::legacy::Error>() {
            connecting |= legacy.is_connect();
        }
        if let Some(pool) = current.downcast_ref::<Http1PoolError>() {
            if matches!(pool, Http1PoolError::Overloaded(_)) {
                return UpstreamErrorKind::Overloaded;
            }
            connecting |= matches!(pool, Http1PoolError::Connect(_));
        }
        cause = current.source();
    }
    match (connecting, tls) {
        (true, true) => UpstreamErrorKind::Tls,
        (true, false) => UpstreamErrorKind::Refused,
        (false, _) => UpstreamErrorKind::Reset,
    }
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` with `Upgrade: X`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Copies bytes both ways between the client's and the backend's upgraded connections.
pub(super) async fn splice_upgraded(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
) {
    if let (Ok(client), Ok(backend)) = (client.await, backend.await) {
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    }
}

/// Removes hop-by-hop headers, including those named by `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl<C: Connect> tower::Service<Request<ResponseBody>> for Forwarder<C> {
    type Response = Response<ResponseBody>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ResponseBody>) -> Self::Future {
        let forwarder = self.clone();
        Box::pin(forwarder.forward(request))
    }
}
