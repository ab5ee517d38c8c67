//! TLS passthrough and TCP forwarding: a connection is matched to a route (by SNI for TLS, by
//! the listener for TCP), a backend chosen by weight, one of its endpoints connected, and the
//! bytes copied both ways. Anything that does not match — no SNI, an unknown name, an invalid
//! or empty backend — is refused by closing the connection (spec §2.2, §2.3).

use std::sync::Arc;
use std::time::Duration;

use routing::backends::BackendChoice;
use routing::compiled::{Backend, L4Backends, ListenerRoutes};
use routing::resolve::hostname_covers;
use routing::router::ListenerSet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client_hello::{ClientHelloError, MAX_CLIENT_HELLO_BYTES, server_name};
use super::prefixed::PrefixedStream;
use super::stream_idle::StreamActivity;
use super::tls::Terminators;
use crate::outbound::{Connect, EndpointPicker};

/// How long a client may take to send its ClientHello, and a backend to accept.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection of a TLS socket: the listener and TLSRoute chosen by the
/// ClientHello's SNI; passed through as it is, or — for a listener in Terminate mode — TLS
/// terminated with the listener's certificate and the plaintext forwarded.
pub(crate) async fn passthrough<C: Connect>(
    mut client: TcpStream,
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
    if !listener.tls_terminate {
        forward(client, backends, &hello, endpoints, connector, idle).await;
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
        forward(tls, backends, &[], endpoints, connector, idle).await;
    }
}

/// Serves one TCP connection of a TCP listener.
pub(crate) async fn tcp<C: Connect>(
    client: TcpStream,
    listeners: Arc<ListenerSet>,
    endpoints: &EndpointPicker,
    connector: &C,
    idle: Option<Duration>,
) {
    let backends = listeners
        .listeners()
        .first()
        .and_then(|listener| match &listener.routes {
            ListenerRoutes::Stream(Some(backends)) => Some(Arc::clone(backends)),
            _ => None,
        });
    if let Some(backends) = backends {
        forward(client, &backends, &[], endpoints, connector, idle).await;
    }
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

/// Chooses a backend and an endpoint, sends `already_read` and copies both ways until both
/// sides close, or nothing has moved either way for `idle`.
async fn forward<S: AsyncRead + AsyncWrite + Unpin, C: Connect>(
    client: S,
    backends: &L4Backends,
    already_read: &[u8],
    endpoints: &EndpointPicker,
    connector: &C,
    idle: Option<Duration>,
) {
    let BackendChoice::Forward(backend) = backends.choose(rand::random()) else {
        return;
    };
    let Some(mut upstream) = connect(backend, endpoints, connector).await else {
        return;
    };
    if upstream.write_all(already_read).await.is_err() {
        return;
    }
    let activity = StreamActivity::new();
    let mut client = activity.watch(client);
    let mut upstream = activity.watch(upstream);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = activity.idle_for(idle) => {}
    }
}

async fn connect<C: Connect>(
    backend: &Backend,
    endpoints: &EndpointPicker,
    connector: &C,
) -> Option<C::Io> {
    // Try each endpoint once, starting from the one whose turn it is.
    for endpoint in endpoints.in_turn(backend) {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(SETUP_TIMEOUT, connector.connect(endpoint.address)).await
        {
            return Some(stream);
        }
    }
    None
}
