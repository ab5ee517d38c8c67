//! UDP forwarding for UDP listeners: each client address gets a session with a connected
//! upstream socket to one endpoint of a backend chosen by weight (and by the UDPRoute's
//! BackendTrafficPolicy balancer, when it has one); replies go back to the client. Sessions end after [`IDLE_TIMEOUT`] without traffic; at most [`MAX_SESSIONS`] exist
//! at once per socket (datagrams of further clients are dropped). Each session holds one
//! 64 KiB reply buffer (a datagram may be that large), so a socket's sessions hold at most
//! 64 MiB.

use crate::outbound::EndpointPicker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_policy::traffic::AttachedBackendTraffic;
use mesh_policy::traffic::client_ip::ClientAddress;
use routing::backends::BackendChoice;
use routing::compiled::{Backend, CompiledListener, ListenerRoutes};
use routing::router::{ListenerSet, PolicyBalancer, RequestHead, choose_backend};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a session lives without datagrams in either direction.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most concurrent sessions per socket.
pub(crate) const MAX_SESSIONS: usize = 1024;

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
    udp_loop_with_cap(socket, current, endpoints, MAX_SESSIONS).await;
}

/// [`udp_loop`] with at most `max_sessions` sessions.
async fn udp_loop_with_cap(
    socket: UdpSocket,
    current: impl Fn() -> Arc<ListenerSet>,
    endpoints: &EndpointPicker,
    max_sessions: usize,
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
                    if sessions.len() >= max_sessions {
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
    let listener = listeners.listeners().first()?;
    // The UDPRoute's BackendTrafficPolicy balancer (one for the rule, in each backend's
    // slot): by the client's address for a consistent hash, never an endpoint failing its
    // checks; fallback backends as the others' health asks.
    let balancer = backends
        .ready()
        .next()
        .and_then(|backend| policy_balancer(backend, listener));
    let chosen = choose_backend(
        backends,
        balancer.map(|b| &*b.0),
        rand::random(),
        [false; 2],
    );
    let BackendChoice::Forward(backend) = chosen.choice else {
        return None;
    };
    let endpoint = match balancer {
        Some(PolicyBalancer(balancer)) => {
            let mut head = http::Request::new(());
            head.extensions_mut().insert(ClientAddress(client.ip()));
            let pick = balancer.pick_in_level(backend, &RequestHead::of(&head), chosen.panic)?;
            backend.endpoints.get(pick.endpoint)?
        }
        None => endpoints.pick(backend)?,
    };
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

/// The balancer of `backend`'s BackendTrafficPolicy on `listener`, if it has one.
fn policy_balancer<'a>(
    backend: &'a Backend,
    listener: &CompiledListener,
) -> Option<&'a PolicyBalancer> {
    backend
        .policy
        .get::<AttachedBackendTraffic>()?
        .for_listener(Some((&listener.gateway, listener.name.as_str())))?
        .balancer
        .as_ref()
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use routing::backends::{BackendState, WeightedBackend, WeightedBackends};
    use routing::compiled::{
        Backend, BackendProtocol, CompiledListener, Endpoint, ListenerProtocol,
    };
    use routing::model::ObjectKey;

    use super::*;

    /// One UDP listener routing to the backend at `address`.
    fn listeners(address: SocketAddr) -> Arc<ListenerSet> {
        let backend = Backend {
            service: ObjectKey::new("ns", "dns"),
            port: 53,
            endpoints: vec![Endpoint {
                address,
                pod: None,
                zone: None,
            }]
            .into(),
            protocol: BackendProtocol::Http1,
            tls: None,
            filters: Vec::new(),
            policy: Default::default(),
            cluster_address: None,
            names: None,
        };
        let backends = WeightedBackends::new(vec![WeightedBackend::primary(
            1,
            BackendState::Ready(Arc::new(backend)),
        )]);
        Arc::new(ListenerSet::new(vec![CompiledListener {
            gateway: ObjectKey::new("ns", "gw"),
            listener_set: None,
            name: "udp".into(),
            hostname: None,
            port: 53,
            protocol: ListenerProtocol::Udp,
            certificates: Vec::new(),
            tls_terminate: false,
            routes: ListenerRoutes::Stream(Some(Arc::new(backends))),
            client_validation: None,
            backend_client_certificate: None,
            policy: Default::default(),
        }]))
    }

    #[tokio::test]
    async fn sessions_beyond_the_cap_are_not_opened() {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let backend_address = backend.local_addr().unwrap();
        let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gateway_address = gateway.local_addr().unwrap();
        let set = listeners(backend_address);
        tokio::spawn(async move {
            let endpoints = EndpointPicker::default();
            udp_loop_with_cap(gateway, move || Arc::clone(&set), &endpoints, 3).await;
        });
        let mut clients = Vec::new();
        for _ in 0..8 {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client.send_to(b"query", gateway_address).await.unwrap();
            clients.push(client);
        }
        let mut sources = HashSet::new();
        let mut buffer = [0u8; 64];
        while let Ok(Ok((_, from))) =
            tokio::time::timeout(Duration::from_millis(300), backend.recv_from(&mut buffer)).await
        {
            sources.insert(from);
        }
        assert_eq!(
            sources.len(),
            3,
            "one upstream socket per session, three sessions"
        );
    }
}
