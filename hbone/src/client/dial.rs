//! Opening one HBONE connection: TCP, mTLS without SNI, HTTP/2, and the task that drives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::HboneConnectorConfig;
use super::error::HboneClientError;
use super::target::HboneTarget;
use crate::keepalive::keepalive;
use crate::tls::HboneTls;

/// A dialled HTTP/2 connection: the handle that opens streams, and a flag that the driver
/// task clears when the connection ends.
#[derive(Debug, Clone)]
pub(crate) struct Dialled {
    pub(crate) send: h2::client::SendRequest<Bytes>,
    pub(crate) alive: Arc<AtomicBool>,
    /// The local end of the TCP connection (none for an inner double-HBONE connection).
    pub(crate) local_address: Option<std::net::SocketAddr>,
}

impl Dialled {
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
    }
}

/// Connects TCP to the target's next hop (with the configured timeout), then TLS and HTTP/2.
pub(crate) async fn dial(
    target: &HboneTarget,
    tls: &HboneTls,
    config: &HboneConnectorConfig,
) -> Result<Dialled, HboneClientError> {
    let next_hop = target.next_hop;
    let connect = crate::socket::connect_tcp(next_hop, config.mark);
    let tcp = tokio::time::timeout(config.connect_timeout, connect)
        .await
        .map_err(|_| HboneClientError::ConnectTimeout {
            next_hop,
            timeout: config.connect_timeout,
        })?
        .map_err(|source| HboneClientError::Connect { next_hop, source })?;
    let local_address = tcp.local_addr().ok();
    let mut dialled = handshake(tcp, target, tls, config).await?;
    dialled.local_address = local_address;
    Ok(dialled)
}

/// TLS and HTTP/2 over any byte stream (a TCP connection, or an outer tunnel for double HBONE).
pub(crate) async fn handshake<IO>(
    io: IO,
    target: &HboneTarget,
    tls: &HboneTls,
    config: &HboneConnectorConfig,
) -> Result<Dialled, HboneClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client_config =
        tls.client_config(&target.certificate, target.expected_identities.clone())?;
    // No SNI is sent; the name only satisfies the API (ztunnel passes 0.0.0.0 as well).
    let name = ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into());
    let stream = TlsConnector::from(Arc::new(client_config))
        .connect(name, io)
        .await
        .map_err(HboneClientError::Tls)?;
    let (send, mut connection) = config
        .h2
        .client_builder()
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(HboneClientError::H2Handshake)?;
    let alive = Arc::new(AtomicBool::new(true));
    let keepalive = keepalive(
        connection.ping_pong(),
        config.h2.ping_interval,
        config.h2.ping_timeout,
    );
    let driver_alive = alive.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = &mut connection => {}
            () = keepalive => {}
        }
        driver_alive.store(false, Ordering::Release);
    });
    Ok(Dialled {
        send,
        alive,
        local_address: None,
    })
}
