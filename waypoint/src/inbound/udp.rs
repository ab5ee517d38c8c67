//! UDP forwarding for UDP listeners: each client address gets a session with a connected
//! upstream socket to one endpoint of a backend chosen by weight; replies go back to the
//! client. Sessions end after [`IDLE_TIMEOUT`] without traffic; at most [`MAX_SESSIONS`] exist
//! at once (datagrams of further clients are dropped).

use crate::outbound::EndpointPicker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use routing::backends::BackendChoice;
use routing::compiled::ListenerRoutes;
use routing::router::ListenerSet;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a session lives without datagrams in either direction.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most concurrent sessions per socket.
pub(crate) const MAX_SESSIONS: usize = 16_384;

struct Session {
    upstream: Arc<UdpSocket>,
    last_seen: Instant,
    replies: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

/// Serves a UDP socket until the task is dropped; `current` gives the listener set in force
/// when a session opens.
pub(crate) async fn udp_loop(
    socket: UdpSocket,
    current: impl Fn() -> Arc<ListenerSet>,
    endpoints: &EndpointPicker,
) {
    let socket = Arc::new(socket);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buffer = vec![0u8; 65_535];
    let mut sweep = tokio::time::interval(IDLE_TIMEOUT / 4);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((len, client)) = received else { continue };
                if !sessions.contains_key(&client) {
                    if sessions.len() >= MAX_SESSIONS {
                        continue;
                    }
                    let Some(session) = open_session(&socket, client, &current(), endpoints).await else {
                        continue; // no route or no backend: the datagram is dropped
                    };
                    sessions.insert(client, session);
                }
                if let Some(session) = sessions.get_mut(&client) {
                    session.last_seen = Instant::now();
                    let _ = session.upstream.send(&buffer[..len]).await;
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                sessions.retain(|_, session| now.duration_since(session.last_seen) < IDLE_TIMEOUT && !session.replies.is_finished());
            }
        }
    }
}

async fn open_session(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    listeners: &ListenerSet,
    endpoints: &EndpointPicker,
) -> Option<Session> {
    let ListenerRoutes::Stream(Some(backends)) = &listeners.listeners().first()?.routes else {
        return None;
    };
    let BackendChoice::Forward(backend) = backends.choose(rand::random()) else {
        return None;
    };
    let endpoint = endpoints.pick(backend)?;
    let local: SocketAddr = if endpoint.address.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let upstream = Arc::new(UdpSocket::bind(local).await.ok()?);
    upstream.connect(endpoint.address).await.ok()?;
    let replies = tokio::spawn(relay_replies(
        Arc::clone(&upstream),
        Arc::clone(socket),
        client,
    ));
    Some(Session {
        upstream,
        last_seen: Instant::now(),
        replies,
    })
}

/// Copies the upstream's datagrams back to the client until the session idles out.
async fn relay_replies(upstream: Arc<UdpSocket>, socket: Arc<UdpSocket>, client: SocketAddr) {
    let mut buffer = vec![0u8; 65_535];
    while let Ok(Ok(len)) = tokio::time::timeout(IDLE_TIMEOUT, upstream.recv(&mut buffer)).await {
        if socket.send_to(&buffer[..len], client).await.is_err() {
            return;
        }
    }
}
