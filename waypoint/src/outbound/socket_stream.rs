//! The stream [`TcpConnect`](super::TcpConnect) opens: TCP, or a Unix domain socket for an
//! Envoy Gateway `Backend`'s `unix` endpoint — named in the routes by its stand-in address
//! (`routing::compiled::unix_socket`) and found here in the [`UnixSockets`] the runtime keeps
//! in step with the loaded configuration.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The Unix socket paths of stand-in addresses, shared by the connectors of one runtime.
#[derive(Debug, Clone, Default)]
pub struct UnixSockets(Arc<RwLock<HashMap<SocketAddr, PathBuf>>>);

impl UnixSockets {
    /// Knows exactly `sockets` from now on (a configuration's
    /// `Config::backend_unix_sockets`).
    pub fn replace(&self, sockets: impl IntoIterator<Item = (SocketAddr, String)>) {
        let table = sockets
            .into_iter()
            .map(|(address, path)| (address, PathBuf::from(path)))
            .collect();
        if let Ok(mut current) = self.0.write() {
            *current = table;
        }
    }

    /// The path `address` stands for, if it stands for one.
    pub(crate) fn path(&self, address: &SocketAddr) -> Option<PathBuf> {
        if !routing::compiled::unix_socket::is_unix_socket_address(address) {
            return None;
        }
        self.0.read().ok()?.get(address).cloned()
    }
}

/// A connected stream to an endpoint.
#[derive(Debug)]
#[pin_project::pin_project(project = SocketStreamProjection)]
pub enum SocketStream {
    /// TCP.
    Tcp(#[pin] TcpStream),
    /// A Unix domain socket.
    Unix(#[pin] UnixStream),
}

impl SocketStream {
    /// The TCP stream, when it is one (socket options apply to it only).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            SocketStream::Tcp(stream) => Some(stream),
            SocketStream::Unix(_) => None,
        }
    }
}

impl AsyncRead for SocketStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.project() {
            SocketStreamProjection::Tcp(stream) => stream.poll_read(cx, buf),
            SocketStreamProjection::Unix(stream) => stream.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SocketStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.project() {
            SocketStreamProjection::Tcp(stream) => stream.poll_write(cx, buf),
            SocketStreamProjection::Unix(stream) => stream.poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.project() {
            SocketStreamProjection::Tcp(stream) => stream.poll_write_vectored(cx, bufs),
            SocketStreamProjection::Unix(stream) => stream.poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            SocketStream::Tcp(stream) => stream.is_write_vectored(),
            SocketStream::Unix(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.project() {
            SocketStreamProjection::Tcp(stream) => stream.poll_flush(cx),
            SocketStreamProjection::Unix(stream) => stream.poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.project() {
            SocketStreamProjection::Tcp(stream) => stream.poll_shutdown(cx),
            SocketStreamProjection::Unix(stream) => stream.poll_shutdown(cx),
        }
    }
}
