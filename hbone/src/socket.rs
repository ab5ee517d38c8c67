//! Opening outbound TCP connections the way a node proxy needs them: `TCP_NODELAY`, and an
//! optional firewall mark (`SO_MARK`) so that capture rules can tell the proxy's own
//! connections from the workload's (ztunnel marks its sockets 0x539).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

/// The mark ztunnel puts on its own sockets (1337).
pub const ZTUNNEL_MARK: u32 = 0x539;

/// Connects to `address` with `TCP_NODELAY`, marking the socket with `mark` first (Linux,
/// needs `CAP_NET_ADMIN`; elsewhere a mark is an `Unsupported` error).
pub async fn connect_tcp(address: SocketAddr, mark: Option<u32>) -> io::Result<TcpStream> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(mark) = mark {
        set_mark(&socket, mark)?;
    }
    socket.set_nodelay(true)?;
    socket.connect(address).await
}

#[cfg(target_os = "linux")]
fn set_mark(socket: &TcpSocket, mark: u32) -> io::Result<()> {
    socket2::SockRef::from(socket).set_mark(mark)
}

#[cfg(not(target_os = "linux"))]
fn set_mark(_: &TcpSocket, _: u32) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}
