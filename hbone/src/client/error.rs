//! Errors of the HBONE client.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HboneClientError {
    /// The TCP connection to the next hop timed out.
    #[error(
        "connection to {next_hop} timed out after {timeout:?}, maybe a NetworkPolicy is blocking HBONE port 15008"
    )]
    ConnectTimeout {
        /// The next hop.
        next_hop: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The TCP connection to the next hop failed.
    #[error("connecting to {next_hop}: {source}")]
    Connect {
        /// The next hop.
        next_hop: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The client's TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] crate::tls::TlsConfigError),
    /// The TLS handshake failed, e.g. the server's identity is not among the expected ones.
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake: {0}")]
    H2Handshake(h2::Error),
    /// The CONNECT request failed before a response (e.g. the server rejected our certificate
    /// after the TLS 1.3 handshake, or the connection went away).
    #[error("CONNECT: {0}")]
    Request(h2::Error),
    /// The CONNECT request could not be built (e.g. an invalid header).
    #[error("CONNECT request: {0}")]
    InvalidRequest(String),
    /// The server answered with a status other than 200.
    #[error("http status: {0}")]
    Status(StatusCode),
}

impl HboneClientError {
    /// True when the failure is TLS: a handshake failure, a bad configuration, or a TLS alert
    /// received while waiting for the CONNECT response (a client certificate rejected after a
    /// TLS 1.3 handshake).
    pub fn is_tls(&self) -> bool {
        match self {
            HboneClientError::Tls(_) | HboneClientError::TlsConfig(_) => true,
            // TLS errors (alerts included) reach h2 as InvalidData I/O errors; h2 keeps only
            // their kind and message, so the kind is what is left to recognise them by.
            HboneClientError::Request(error) | HboneClientError::H2Handshake(error) => error
                .get_io()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData),
            _ => false,
        }
    }
}
