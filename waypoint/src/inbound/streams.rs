//! TLS passthrough and TCP forwarding: a connection is matched to a route (by SNI for TLS, by
//! the listener for TCP), a backend chosen by weight, one of its endpoints connected, and the
//! bytes copied both ways. Anything that does not match — no SNI, an unknown name, an invalid
//! or empty backend — is refused by closing the connection (spec §2.2, §2.3).

use std::sync::Arc;
use std::time::Duration;

use hbone::peer::Peer;
use mesh_policy::traffic::AttachedBackendTraffic;
use mesh_policy::traffic::compile::RouteTraffic;
use routing::backends::BackendChoice;
use routing::compiled::{Backend, CompiledListener, L4Backends, ListenerRoutes};
use routing::model::ObjectKey;
use routing::resolve::hostname_covers;
use routing::router::ListenerSet;
use routing::router::{LocalFailure, PolicyBalancer, RequestHead, TryOutcome, choose_backend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client_hello::{ClientHelloError, MAX_CLIENT_HELLO_BYTES, server_name};
use super::prefixed::PrefixedStream;
use super::stream_idle::StreamActivity;
use super::tls::Terminators;
use crate::outbound::{Connect, ConnectOptions, EndpointPicker, proxy_preface};

/// How long a client may take to send its ClientHello, and a backend to accept.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection of a TLS socket: the listener and TLSRoute chosen by the
/// ClientHello's SNI; passed through as it is, or — for a listener in Terminate mode — TLS
/// terminated with the listener's certificate and the plaintext forwarded.
pub(crate) async fn passthrough<C: Connect>(
    mut client: TcpStream,
    peer: Peer,
    listeners: Arc<ListenerSet>,
    endpoints: &EndpointPicker,
    connector: &C,
    terminators: &Terminators,
    idle: Option<Duration>,
) {
    let mut hello = Vec::with_capacity(2048);
    let name = match tokio::time::timeout(SETUP_TIMEOUT, read_server_name(&mut client, &mut hello))
        .await
    {
        Ok(Ok(Some(name))) => name,
        _ => return, // no SNI, not TLS, too slow: refuse
    };
    let Some(listener) = listeners.for_host(&name) else {
        return;
    };
    let ListenerRoutes::Tls(entries) = &listener.routes else {
        return;
    };
    let Some((_, backends)) = entries
        .iter()
        .find(|(pattern, _)| hostname_covers(pattern, &name))
    else {
        return;
    };
    let relay = Relay {
        peer,
        listener,
        endpoints,
        connector,
        idle,
    };
    if !listener.tls_terminate {
        relay.forward(client, backends, &hello).await;
        return;
    }
    let key = (
        listener.gateway.clone(),
        listener.listener_set.clone(),
        listener.name.clone(),
    );
    let Some(acceptor) = terminators.get(&key) else {
        return;
    };
    let replayed = PrefixedStream::new(hello, client);
    if let Ok(Ok(tls)) = tokio::time::timeout(SETUP_TIMEOUT, acceptor.accept(replayed)).await {
        relay.forward(tls, backends, &[]).await;
    }
}

/// Serves one TCP connection of a TCP listener, from `peer` (its address, or the one a PROXY
/// header gave), as [`Relay::forward`] says.
pub(crate) async fn tcp<C: Connect>(
    client: TcpStream,
    peer: Peer,
    listeners: Arc<ListenerSet>,
    endpoints: &EndpointPicker,
    connector: &C,
    idle: Option<Duration>,
) {
    let Some(listener) = listeners.listeners().first() else {
        return;
    };
    let ListenerRoutes::Stream(Some(backends)) = &listener.routes else {
        return;
    };
    let relay = Relay {
        peer,
        listener,
        endpoints,
        connector,
        idle,
    };
    relay.forward(client, backends, &[]).await;
}

/// Reads until the ClientHello's server name is known.
async fn read_server_name(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<Option<String>, ClientHelloError> {
    let mut chunk = [0u8; 2048];
    loop {
        match server_name(buffer) {
            Err(ClientHelloError::Incomplete) if buffer.len() < MAX_CLIENT_HELLO_BYTES => {}
            other => return other,
        }
        let read = client
            .read(&mut chunk)
            .await
            .map_err(|_| ClientHelloError::Incomplete)?;
        if read == 0 {
            return Err(ClientHelloError::Incomplete);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// What relaying one connection of an L4 listener needs.
struct Relay<'a, C> {
    /// The client (or the address a PROXY header gave).
    peer: Peer,
    /// The listener that accepted it.
    listener: &'a CompiledListener,
    endpoints: &'a EndpointPicker,
    connector: &'a C,
    /// How long the relay may go without a byte either way.
    idle: Option<Duration>,
}

impl<C: Connect> Relay<'_, C> {
    /// Chooses a backend, connects to one of its endpoints, sends `already_read` and copies
    /// both ways. The backend's BackendTrafficPolicy, if its route has one, sets how its
    /// endpoint is connected — the connect timeout, TCP keepalive, and a PROXY header naming
    /// the client first — and, with a `loadBalancer` or `healthCheck`, which endpoint: the
    /// policy's balancer picks it (by the client's address for a consistent hash; never one
    /// that failed its checks or was ejected) and hears whether connecting to it failed.
    /// Without a balancer each endpoint is tried in turn until one accepts.
    async fn forward<S>(self, client: S, backends: &L4Backends, already_read: &[u8])
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let scope = Some((&self.listener.gateway, self.listener.name.as_str()));
        fn traffic_of<'b>(
            backend: &'b Backend,
            scope: Option<(&ObjectKey, &str)>,
        ) -> Option<&'b RouteTraffic> {
            let attached = backend.policy.get::<AttachedBackendTraffic>()?;
            attached.for_listener(scope)
        }
        // The rule's balancer (copied into each backend's slot) judges the health that
        // splits traffic between primary and fallback backends.
        let rule_balancer = backends
            .ready()
            .next()
            .and_then(|backend| traffic_of(backend, scope)?.balancer.as_ref());
        let chosen = choose_backend(
            backends,
            rule_balancer.map(|b| &*b.0),
            rand::random(),
            [false; 2],
        );
        let BackendChoice::Forward(backend) = chosen.choice else {
            return;
        };
        let traffic = traffic_of(backend, scope);
        let upstream = traffic
            .and_then(|traffic| traffic.policy.upstream_connection())
            .unwrap_or_default();
        let preface = match upstream.proxy_protocol {
            None => Vec::new(),
            Some(version) => match proxy_preface(version, Some(&self.peer)) {
                Ok(preface) => preface,
                Err(_) => return,
            },
        };
        let options = ConnectOptions {
            timeout: Some(upstream.connect_timeout.unwrap_or(SETUP_TIMEOUT)),
            ..ConnectOptions::of(&upstream)
        };
        let Some(PolicyBalancer(balancer)) = traffic.and_then(|t| t.balancer.as_ref()) else {
            let connected = connect_in_turn(backend, self.endpoints, self.connector, options);
            if let Some(upstream) = connected.await {
                relay(client, upstream, [&preface, already_read], self.idle).await;
            }
            return;
        };
        let mut head = http::Request::new(());
        head.extensions_mut().insert(self.peer);
        let Some(pick) = balancer.pick_in_level(backend, &RequestHead::of(&head), chosen.panic)
        else {
            return;
        };
        let Some(endpoint) = backend.endpoints.get(pick.endpoint) else {
            return;
        };
        match self.connector.connect_with(endpoint.address, options).await {
            Err(_) => {
                if let Some(ticket) = pick.ticket {
                    ticket.finish(Some(TryOutcome::LocalFailure(LocalFailure::Connect)));
                }
            }
            Ok(upstream) => {
                relay(client, upstream, [&preface, already_read], self.idle).await;
                if let Some(ticket) = pick.ticket {
                    // A relayed connection is a success (HTTP's 200) to outlier detection.
                    ticket.finish(Some(TryOutcome::Answered(200)));
                }
            }
        }
    }
}

/// Sends the `first` bytes upstream (a PROXY header, then what the client already sent), then
/// copies both ways until both sides close, or nothing has moved either way for `idle`.
async fn relay<S, U>(client: S, mut upstream: U, first: [&[u8]; 2], idle: Option<Duration>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    for bytes in first {
        if upstream.write_all(bytes).await.is_err() {
            return;
        }
    }
    let activity = StreamActivity::new();
    let mut client = activity.watch(client);
    let mut upstream = activity.watch(upstream);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = activity.idle_for(idle) => {}
    }
}

/// A connection to one of `backend`'s endpoints, each tried once from the one whose turn it
/// is, with `options` (each attempt within its timeout).
async fn connect_in_turn<C: Connect>(
    backend: &Backend,
    endpoints: &EndpointPicker,
    connector: &C,
    options: ConnectOptions,
) -> Option<C::Io> {
    for endpoint in endpoints.in_turn(backend) {
        if let Ok(stream) = connector.connect_with(endpoint.address, options).await {
            return Some(stream);
        }
    }
    None
}
