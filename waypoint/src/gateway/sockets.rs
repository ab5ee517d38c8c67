//! Sockets: one per address and port, shared by the listeners (of any Gateway) bound there;
//! each serves HTTP/1.1 and h2c through a [`Router`] over the socket's current
//! [`ListenerSet`], which a reload swaps without touching connections in flight.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use routing::compiled::{CompiledGateway, CompiledListener, ListenerProtocol};
use routing::router::{ListenerSet, Router};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::forward::Forwarder;
use super::metrics::GatewayMetrics;

/// The listeners of every Gateway grouped by the socket they share.
pub fn group_listeners(gateways: &[CompiledGateway]) -> HashMap<SocketAddr, Vec<CompiledListener>> {
    let mut groups: HashMap<SocketAddr, Vec<CompiledListener>> = HashMap::new();
    for gateway in gateways {
        let all_interfaces = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        let addresses: &[IpAddr] = if gateway.addresses.is_empty() {
            &all_interfaces
        } else {
            &gateway.addresses
        };
        for listener in &gateway.listeners {
            if listener.protocol != ListenerProtocol::Http {
                continue; // HTTPS, TLS, TCP and UDP are not served yet.
            }
            for ip in addresses {
                groups
                    .entry(SocketAddr::new(*ip, listener.port))
                    .or_default()
                    .push(listener.clone());
            }
        }
    }
    groups
}

/// The bound sockets.
pub struct Sockets {
    bound: HashMap<SocketAddr, BoundSocket>,
    forwarder: Forwarder,
    metrics: Arc<GatewayMetrics>,
    /// Flips to true to ask every connection to finish gracefully.
    draining: watch::Sender<bool>,
}

struct BoundSocket {
    listeners: Arc<ArcSwap<ListenerSet>>,
    accept_loop: JoinHandle<()>,
}

impl Sockets {
    /// No sockets yet.
    pub fn new(metrics: Arc<GatewayMetrics>) -> Self {
        Sockets {
            bound: HashMap::new(),
            forwarder: Forwarder::new(),
            metrics,
            draining: watch::channel(false).0,
        }
    }

    /// Serves `gateways`: binds new addresses (all before changing anything, so that a failed
    /// bind leaves the old configuration serving), swaps the listener sets of kept ones, and
    /// stops accepting on removed ones (their connections finish).
    pub async fn apply(
        &mut self,
        gateways: &[CompiledGateway],
    ) -> Result<(), (SocketAddr, io::Error)> {
        let groups = group_listeners(gateways);
        let mut new_sockets = Vec::new();
        for address in groups.keys() {
            if !self.bound.contains_key(address) {
                new_sockets.push((*address, bind(*address).map_err(|e| (*address, e))?));
            }
        }
        let removed: Vec<SocketAddr> = self
            .bound
            .keys()
            .filter(|address| !groups.contains_key(address))
            .copied()
            .collect();
        for address in removed {
            if let Some(socket) = self.bound.remove(&address) {
                socket.accept_loop.abort();
            }
        }
        let mut new_sockets: HashMap<SocketAddr, TcpListener> = new_sockets.into_iter().collect();
        for (address, listeners) in groups {
            let set = Arc::new(ListenerSet::new(listeners));
            if let Some(socket) = self.bound.get(&address) {
                socket.listeners.store(set);
            } else if let Some(tcp) = new_sockets.remove(&address) {
                let listeners = Arc::new(ArcSwap::new(set));
                let accept_loop = tokio::spawn(accept_loop(
                    tcp,
                    Arc::clone(&listeners),
                    self.forwarder.clone(),
                    Arc::clone(&self.metrics),
                    self.draining.subscribe(),
                ));
                self.bound.insert(
                    address,
                    BoundSocket {
                        listeners,
                        accept_loop,
                    },
                );
            }
        }
        Ok(())
    }

    /// The bound addresses.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.bound.keys().copied().collect()
    }

    /// Stops accepting and asks every connection to finish its requests and close.
    pub fn drain(&mut self) {
        for (_, socket) in self.bound.drain() {
            socket.accept_loop.abort();
        }
        let _ = self.draining.send(true);
    }
}

/// A listening socket with SO_REUSEADDR, so that a restarted gateway can bind at once.
fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn accept_loop(
    tcp: TcpListener,
    listeners: Arc<ArcSwap<ListenerSet>>,
    forwarder: Forwarder,
    metrics: Arc<GatewayMetrics>,
    draining: watch::Receiver<bool>,
) {
    loop {
        let Ok((stream, _peer)) = tcp.accept().await else {
            // Out of file descriptors and similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics.connection_opened();
        let listeners = Arc::clone(&listeners);
        let forwarder = forwarder.clone();
        let metrics = Arc::clone(&metrics);
        let mut draining = draining.clone();
        tokio::spawn(async move {
            let service_metrics = Arc::clone(&metrics);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let router = Router::new(listeners.load_full(), forwarder.clone());
                let metrics = Arc::clone(&service_metrics);
                async move {
                    let response = router.oneshot(request).await;
                    if let Ok(response) = &response {
                        metrics.request_served(response.status().as_u16());
                    }
                    response
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = wait_for_drain(&mut draining) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            metrics.connection_closed();
        });
    }
}

/// Resolves once draining starts (or the sender is gone).
async fn wait_for_drain(draining: &mut watch::Receiver<bool>) {
    while !*draining.borrow_and_update() {
        if draining.changed().await.is_err() {
            return;
        }
    }
}
