//! The server name (SNI) of a TLS ClientHello, read without terminating TLS, for TLS
//! passthrough listeners (RFC 8446 §4.1.2, RFC 6066 §3). Sans-IO: give it the bytes received
//! so far.

/// The most bytes read while looking for a ClientHello (one full TLS record plus its header).
pub const MAX_CLIENT_HELLO_BYTES: usize = 5 + (1 << 14);

/// Why no server name could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientHelloError {
    /// More bytes are needed.
    #[error("incomplete ClientHello")]
    Incomplete,
    /// The bytes are not a TLS handshake record holding a ClientHello.
    #[error("not a TLS ClientHello")]
    NotClientHello,
    /// The ClientHello is malformed.
    #[error("malformed ClientHello")]
    Malformed,
}

/// The SNI host name in the ClientHello at the start of `bytes` (lowercased); `Ok(None)` when
/// the client sent none. The ClientHello must fit in the first record.
pub fn server_name(bytes: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let header = bytes.get(..5).ok_or(ClientHelloError::Incomplete)?;
    if header[0] != 22 || header[1] != 3 {
        return Err(ClientHelloError::NotClientHello);
    }
    let record_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if record_len > 1 << 14 {
        return Err(ClientHelloError::Malformed);
    }
    let record = bytes
        .get(5..5 + record_len)
        .ok_or(ClientHelloError::Incomplete)?;
    let mut reader = Reader(record);
    if reader.u8()? != 1 {
        return Err(ClientHelloError::NotClientHello);
    }
    let hello_len = reader.u24()?;
    let mut hello = Reader(reader.take(hello_len)?);
    hello.take(2 + 32)?; // legacy_version, random
    let session_id = usize::from(hello.u8()?);
    hello.take(session_id)?;
    let suites = usize::from(hello.u16()?);
    hello.take(suites)?;
    let compression = usize::from(hello.u8()?);
    hello.take(compression)?;
    if hello.0.is_empty() {
        return Ok(None); // no extensions
    }
    let extensions_len = usize::from(hello.u16()?);
    let mut extensions = Reader(hello.take(extensions_len)?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let len = usize::from(extensions.u16()?);
        let mut body = Reader(extensions.take(len)?);
        if kind != 0 {
            continue;
        }
        let list_len = usize::from(body.u16()?);
        let mut list = Reader(body.take(list_len)?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name_len = usize::from(list.u16()?);
            let name = list.take(name_len)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).map_err(|_| ClientHelloError::Malformed)?;
                if name.is_empty() || !name.is_ascii() {
                    return Err(ClientHelloError::Malformed);
                }
                return Ok(Some(name.to_ascii_lowercase()));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// A cursor over a byte slice whose reads fail with `Malformed` past the end (the record's
/// length was already checked, so running short means the lengths inside lie).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], ClientHelloError> {
        if self.0.len() < len {
            return Err(ClientHelloError::Malformed);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ClientHelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ClientHelloError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u24(&mut self) -> Result<usize, ClientHelloError> {
        let bytes = self.take(3)?;
        Ok(usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, with `name` as SNI.
    fn rustls_client_hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn reads_the_server_name_of_a_real_client_hello() {
        let hello = rustls_client_hello("Shop.Example.com");
        assert_eq!(server_name(&hello), Ok(Some("shop.example.com".into())));
        for cut in [0, 3, 5, 40, hello.len() - 1] {
            assert_eq!(
                server_name(&hello[..cut]),
                Err(ClientHelloError::Incomplete),
                "{cut}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_client_hello() {
        assert_eq!(
            server_name(b"GET / HTTP/1.1\r\n"),
            Err(ClientHelloError::NotClientHello)
        );
        let mut hello = rustls_client_hello("a.test");
        hello[6] = 0xff; // the ClientHello's length now exceeds the record
        assert_eq!(server_name(&hello), Err(ClientHelloError::Malformed));
        assert_eq!(
            server_name(&[22, 3, 1, 0, 4, 1, 0, 0, 0]),
            Err(ClientHelloError::Malformed)
        );
    }
}
