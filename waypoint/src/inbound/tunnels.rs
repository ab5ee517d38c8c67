//! HBONE termination: each CONNECT stream an [`HboneServer`](hbone::server::HboneServer)
//! accepts is served as HTTP — the same `serve_http` path as a TCP or TLS connection — with
//! the tunnel's [`Peer`] (mTLS identity, `forwarded` client, `:authority`) in every request.
//! Which CONNECTs to accept (authority checks, L4 policy) is the assembly's decision, made
//! before it hands the request to [`HttpInTunnels`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hbone::h2_stream::H2Stream;
use hbone::peer::Peer;
use hbone::server::{ConnectDecision, ConnectRequest};
use http::{Request, Response};
use tokio::sync::watch;

use super::http::{HttpLimits, serve_http};
use crate::outbound::ResponseBody;

/// A `Service<ConnectRequest>` answering every CONNECT with 200 and serving the stream's
/// HTTP/1.1 or HTTP/2 through `service`.
#[derive(Debug, Clone)]
pub struct HttpInTunnels<S> {
    service: S,
    limits: HttpLimits,
    drain: Option<watch::Receiver<bool>>,
}

impl<S> HttpInTunnels<S> {
    /// Tunnels served through `service` with the default limits and no drain signal.
    pub fn new(service: S) -> Self {
        HttpInTunnels {
            service,
            limits: HttpLimits::default(),
            drain: None,
        }
    }

    /// The same, with `limits` on every tunnel's HTTP.
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same, finishing each tunnel's requests in flight and closing it once `drain`
    /// turns true.
    pub fn with_drain(mut self, drain: watch::Receiver<bool>) -> Self {
        self.drain = Some(drain);
        self
    }
}

impl<S> tower::Service<ConnectRequest> for HttpInTunnels<S>
where
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = ConnectDecision;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<ConnectDecision, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        let peer = Peer::from_connect(&request);
        let service = self.service.clone();
        let limits = self.limits;
        let drain = self.drain.clone();
        let decision = ConnectDecision::serve(move |stream: H2Stream| {
            serve_with_peer(stream, service, peer, limits, drain)
        });
        Box::pin(async move { Ok(decision) })
    }
}

/// Serves `io` as HTTP through `service`, `peer` inserted into every request, until the
/// client closes it or `drain` turns true.
pub async fn serve_with_peer<IO, S>(
    io: IO,
    service: S,
    peer: Peer,
    limits: HttpLimits,
    drain: Option<watch::Receiver<bool>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = tower_http::add_extension::AddExtension::new(service, peer);
    let drain = async move {
        match drain {
            Some(mut drain) => wait_for_true(&mut drain).await,
            None => std::future::pending().await,
        }
    };
    serve_http(io, service, limits, drain).await;
}

/// Resolves once the flag is true (or its sender is gone).
pub(crate) async fn wait_for_true(flag: &mut watch::Receiver<bool>) {
    while !*flag.borrow_and_update() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}
