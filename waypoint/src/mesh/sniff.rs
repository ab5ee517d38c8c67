//! Telling HTTP from opaque TCP on a stream the client speaks first: an HTTP/2 connection
//! preface, or an HTTP/1.x request line's method token followed by a space. Reads at most
//! 24 bytes and waits at most [`SNIFF_TIMEOUT`] (a server-first protocol sends nothing: it is
//! opaque); the bytes read are returned to be replayed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a silent client is waited for before its stream is treated as opaque.
pub const SNIFF_TIMEOUT: Duration = Duration::from_millis(500);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest method token recognised (`OPTIONS`, `CONNECT`, extension methods up to 16).
const MAX_METHOD: usize = 16;

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
    /// Anything else.
    Opaque,
}

impl Sniffed {
    /// Whether the stream is served as HTTP.
    pub fn is_http(self) -> bool {
        self != Sniffed::Opaque
    }
}

/// Classifies `bytes`; `None` when more are needed.
pub fn classify(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.is_empty() {
        return None;
    }
    let preface_len = bytes.len().min(H2_PREFACE.len());
    if bytes[..preface_len] == H2_PREFACE[..preface_len] {
        return (bytes.len() >= H2_PREFACE.len()).then_some(Sniffed::Http2);
    }
    let token = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match bytes.get(token) {
        Some(b' ') if token > 0 => Some(Sniffed::Http1),
        None if token < MAX_METHOD => None,
        _ => Some(Sniffed::Opaque),
    }
}

/// Reads the first bytes of `stream` until they classify (or the client falls silent).
pub async fn sniff<S: AsyncRead + Unpin>(stream: &mut S) -> (Sniffed, Vec<u8>) {
    let mut buffer = Vec::with_capacity(H2_PREFACE.len());
    let deadline = tokio::time::Instant::now() + SNIFF_TIMEOUT;
    loop {
        if let Some(kind) = classify(&buffer) {
            return (kind, buffer);
        }
        let mut chunk = [0u8; 24];
        let room = H2_PREFACE.len().saturating_sub(buffer.len()).max(1);
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await;
        match read {
            Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            // Closed, failed or silent: whatever it is, it is not HTTP.
            _ => return (Sniffed::Opaque, buffer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_recognised_from_its_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Sniffed::Http1));
        assert_eq!(classify(b"OPTIONS "), Some(Sniffed::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Sniffed::Http2)
        );
        assert_eq!(classify(b"PRI * HTTP/2"), None);
        assert_eq!(
            classify(b"\x16\x03\x01\x02\x00"),
            Some(Sniffed::Opaque),
            "TLS"
        );
        assert_eq!(classify(b"get / HTTP/1.1"), Some(Sniffed::Opaque));
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Some(Sniffed::Opaque));
        assert_eq!(classify(b"ABCDEFGHIJKLMNOPQ"), Some(Sniffed::Opaque));
    }

    #[tokio::test]
    async fn a_silent_client_is_opaque_and_read_bytes_are_kept() {
        let (_client, mut server) = tokio::io::duplex(64);
        assert_eq!(sniff(&mut server).await, (Sniffed::Opaque, Vec::new()));
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"POST /x HTTP/1.1\r\n")
            .await
            .unwrap();
        let (kind, read) = sniff(&mut server).await;
        assert_eq!(kind, Sniffed::Http1);
        assert!(b"POST /x HTTP/1.1\r\n".starts_with(&read));
    }
}
