//! HBONE's PING keepalive (hbone spec §1.4), shared by the client and the server: PINGs are sent
//! regardless of data activity, as ztunnel does.

use std::time::Duration;

use h2::{Ping, PingPong};

/// PINGs every `interval`; resolves when one is not answered within `timeout` (or pinging
/// fails), never otherwise.
pub(crate) async fn keepalive(ping_pong: Option<PingPong>, interval: Duration, timeout: Duration) {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => continue,
            Ok(Err(_)) | Err(_) => return,
        }
    }
}
