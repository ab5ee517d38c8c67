//! The fields of a TLS ClientHello that name a server or identify a client (RFC 8446 §4.1.2,
//! RFC 6066 §3), read from the bytes a client sends first, before any TLS library sees them.
//! Sans-IO: give it the bytes received so far. TLS passthrough listeners read the server name
//! ([`server_name`]); JA3/JA4 fingerprints ([`super::tls_fingerprint`]) read the lists.

use std::borrow::Cow;

/// The most bytes read while looking for a ClientHello, record headers included (64 KiB, as
/// Envoy's TLS inspector allows by default): a ClientHello may span several records.
pub const MAX_CLIENT_HELLO_BYTES: usize = 1 << 16;

/// The largest TLS record payload (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

/// Why no ClientHello could be read.
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

/// `server_name` (RFC 6066).
const SERVER_NAME: u16 = 0x0000;
/// `supported_groups` (RFC 8422, RFC 8446).
const SUPPORTED_GROUPS: u16 = 0x000a;
/// `ec_point_formats` (RFC 8422).
const EC_POINT_FORMATS: u16 = 0x000b;
/// `signature_algorithms` (RFC 8446).
const SIGNATURE_ALGORITHMS: u16 = 0x000d;
/// `application_layer_protocol_negotiation` (RFC 7301).
const ALPN: u16 = 0x0010;
/// `supported_versions` (RFC 8446).
const SUPPORTED_VERSIONS: u16 = 0x002b;

/// What a ClientHello offers, in the client's order. Every list is bounded by the record's
/// 16 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// Cipher suites.
    pub cipher_suites: Vec<u16>,
    /// Extension types.
    pub extensions: Vec<u16>,
    /// The SNI host name, lower-cased (`None`: no `host_name` entry).
    pub server_name: Option<String>,
    /// `supported_groups`.
    pub supported_groups: Vec<u16>,
    /// `ec_point_formats`.
    pub point_formats: Vec<u8>,
    /// `signature_algorithms`.
    pub signature_algorithms: Vec<u16>,
    /// `supported_versions`.
    pub supported_versions: Vec<u16>,
    /// The first ALPN protocol offered (`None`: no ALPN extension or an empty list).
    pub first_alpn: Option<Vec<u8>>,
}

/// Whether `value` is a GREASE value (RFC 8701: 0x?A?A with equal bytes).
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// The SNI host name in the ClientHello at the start of `bytes` (lowercased); `Ok(None)` when
/// the client sent none.
pub fn server_name(bytes: &[u8]) -> Result<Option<String>, ClientHelloError> {
    Ok(ClientHello::parse(bytes)?.server_name)
}

impl ClientHello {
    /// Reads the ClientHello at the start of `bytes`, in one handshake record or spread over
    /// several (at most [`MAX_CLIENT_HELLO_BYTES`] in all).
    pub fn parse(bytes: &[u8]) -> Result<Self, ClientHelloError> {
        Self::parse_message(&handshake_message(bytes)?)
    }

    /// Reads a bare ClientHello handshake message (its 4-byte header, then the body), as QUIC
    /// carries it in CRYPTO frames without TLS records (RFC 9001 §4); bytes after the message
    /// are not read.
    pub fn parse_message(message: &[u8]) -> Result<Self, ClientHelloError> {
        let header = message.get(..4).ok_or(ClientHelloError::Incomplete)?;
        if header[0] != 1 {
            return Err(ClientHelloError::NotClientHello);
        }
        let body =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        let body = message
            .get(4..4 + body)
            .ok_or(ClientHelloError::Incomplete)?;
        let mut hello = Reader(body);
        let mut parsed = ClientHello {
            legacy_version: hello.u16()?,
            ..ClientHello::default()
        };
        hello.take(32)?; // random
        let session_id = usize::from(hello.u8()?);
        hello.take(session_id)?;
        let suites_len = usize::from(hello.u16()?);
        parsed.cipher_suites = Reader(hello.take(suites_len)?).u16s()?;
        let compression = usize::from(hello.u8()?);
        hello.take(compression)?;
        if hello.0.is_empty() {
            return Ok(parsed); // no extensions
        }
        let extensions_len = usize::from(hello.u16()?);
        let mut extensions = Reader(hello.take(extensions_len)?);
        while !extensions.0.is_empty() {
            let kind = extensions.u16()?;
            let len = usize::from(extensions.u16()?);
            let body = extensions.take(len)?;
            parsed.extensions.push(kind);
            parsed.read_extension(kind, body)?;
        }
        Ok(parsed)
    }

    /// Records what the extension `kind` with `body` says, for the extensions read.
    fn read_extension(&mut self, kind: u16, body: &[u8]) -> Result<(), ClientHelloError> {
        let mut body = Reader(body);
        match kind {
            SERVER_NAME => self.server_name = body.host_name()?,
            SUPPORTED_GROUPS => self.supported_groups = body.u16_list()?,
            SIGNATURE_ALGORITHMS => self.signature_algorithms = body.u16_list()?,
            EC_POINT_FORMATS => {
                let len = usize::from(body.u8()?);
                self.point_formats = body.take(len)?.to_vec();
            }
            SUPPORTED_VERSIONS => {
                let len = usize::from(body.u8()?);
                self.supported_versions = Reader(body.take(len)?).u16s()?;
            }
            ALPN => {
                let len = usize::from(body.u16()?);
                let mut list = Reader(body.take(len)?);
                if !list.0.is_empty() {
                    let first = usize::from(list.u8()?);
                    self.first_alpn = Some(list.take(first)?.to_vec());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The ClientHello handshake message (its 4-byte header, then the body) at the start of
/// `bytes`: borrowed when one record holds it, else joined from the payloads of the
/// consecutive handshake records that carry it.
fn handshake_message(bytes: &[u8]) -> Result<Cow<'_, [u8]>, ClientHelloError> {
    let mut records = bytes;
    let mut payloads: Vec<&[u8]> = Vec::new();
    let mut held = 0;
    let mut wanted = None;
    loop {
        let header = records.get(..5).ok_or(ClientHelloError::Incomplete)?;
        if header[0] != 22 || header[1] != 3 {
            return Err(match payloads.is_empty() {
                true => ClientHelloError::NotClientHello,
                false => ClientHelloError::Malformed,
            });
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Err(ClientHelloError::Malformed);
        }
        let payload = records
            .get(5..5 + len)
            .ok_or(ClientHelloError::Incomplete)?;
        records = &records[5 + len..];
        payloads.push(payload);
        held += len;
        if wanted.is_none() && held >= 4 {
            let head: Vec<u8> = payloads
                .iter()
                .flat_map(|p| p.iter())
                .take(4)
                .copied()
                .collect();
            if head[0] != 1 {
                return Err(ClientHelloError::NotClientHello);
            }
            let body =
                usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            // The records' headers count against the bound too.
            if 4 + body + 5 * (4 + body).div_ceil(MAX_RECORD) > MAX_CLIENT_HELLO_BYTES {
                return Err(ClientHelloError::Malformed);
            }
            wanted = Some(4 + body);
        }
        match wanted {
            Some(wanted) if held >= wanted => {
                return Ok(match payloads.as_slice() {
                    [one] => Cow::Borrowed(&one[..wanted]),
                    many => {
                        let mut joined = many.concat();
                        joined.truncate(wanted);
                        Cow::Owned(joined)
                    }
                });
            }
            _ => {}
        }
    }
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

    /// The rest as big-endian 16-bit values (an odd length is malformed).
    fn u16s(&mut self) -> Result<Vec<u16>, ClientHelloError> {
        if !self.0.len().is_multiple_of(2) {
            return Err(ClientHelloError::Malformed);
        }
        let values = self
            .0
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        self.0 = &[];
        Ok(values)
    }

    /// A list of 16-bit values behind a 16-bit length.
    fn u16_list(&mut self) -> Result<Vec<u16>, ClientHelloError> {
        let len = usize::from(self.u16()?);
        Reader(self.take(len)?).u16s()
    }

    /// The first `host_name` of a `server_name` extension body, lower-cased.
    fn host_name(&mut self) -> Result<Option<String>, ClientHelloError> {
        let list_len = usize::from(self.u16()?);
        let mut list = Reader(self.take(list_len)?);
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
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, with `name` as SNI.
    pub(crate) fn rustls_client_hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
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
    fn reads_the_lists_of_a_real_client_hello() {
        let hello = ClientHello::parse(&rustls_client_hello("a.test")).unwrap();
        assert_eq!(hello.legacy_version, 0x0303);
        // rustls offers TLS 1.3 suites first, and TLS 1.3 and 1.2.
        assert_eq!(hello.cipher_suites[0] >> 8, 0x13);
        assert_eq!(hello.supported_versions, [0x0304, 0x0303]);
        assert!(hello.supported_groups.contains(&0x001d), "X25519");
        assert!(hello.signature_algorithms.contains(&0x0403), "ECDSA P-256");
        assert_eq!(hello.first_alpn.as_deref(), Some(&b"h2"[..]));
        assert!(hello.extensions.contains(&SERVER_NAME));
        assert!(hello.extensions.contains(&ALPN));
    }

    /// `hello` (one record) re-framed as records of at most `size` payload bytes.
    fn in_records(hello: &[u8], size: usize) -> Vec<u8> {
        let mut framed = Vec::new();
        for piece in hello[5..].chunks(size) {
            framed.extend_from_slice(&[22, 3, 1]);
            framed.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(piece);
        }
        framed
    }

    #[test]
    fn reads_a_client_hello_spread_over_several_records() {
        let hello = rustls_client_hello("split.example");
        let whole = ClientHello::parse(&hello).unwrap();
        for size in [1, 3, 100, 256] {
            let framed = in_records(&hello, size);
            assert_eq!(ClientHello::parse(&framed).as_ref(), Ok(&whole), "{size}");
            for cut in [framed.len() / 2, framed.len() - 1] {
                assert_eq!(
                    ClientHello::parse(&framed[..cut]),
                    Err(ClientHelloError::Incomplete),
                    "{size} cut at {cut}"
                );
            }
        }
        // A record of another type in the middle is not part of a ClientHello.
        let mut framed = in_records(&hello, 100);
        framed[105] = 23;
        assert_eq!(
            ClientHello::parse(&framed),
            Err(ClientHelloError::Malformed)
        );
    }

    #[test]
    fn a_client_hello_larger_than_the_bound_is_refused_before_it_is_read() {
        // A header announcing a 100 000-byte ClientHello, in a first record of 4 bytes.
        let framed = [22, 3, 1, 0, 4, 1, 0x01, 0x86, 0xa0];
        assert_eq!(
            ClientHello::parse(&framed),
            Err(ClientHelloError::Malformed)
        );
        let empty_record = [22, 3, 1, 0, 0];
        assert_eq!(
            ClientHello::parse(&empty_record),
            Err(ClientHelloError::Malformed)
        );
    }

    #[test]
    fn rejects_what_is_not_a_client_hello() {
        assert_eq!(
            server_name(b"GET / HTTP/1.1\r\n"),
            Err(ClientHelloError::NotClientHello)
        );
        let mut hello = rustls_client_hello("a.test");
        hello[6] = 0xff; // the ClientHello's length now exceeds any bound
        assert_eq!(server_name(&hello), Err(ClientHelloError::Malformed));
        assert_eq!(
            server_name(&[22, 3, 1, 0, 4, 1, 0, 0, 0]),
            Err(ClientHelloError::Malformed),
            "an empty ClientHello body"
        );
    }

    #[test]
    fn grease_values_are_those_of_rfc_8701() {
        let grease: Vec<u16> = (0..=0xffff).filter(|v| is_grease(*v)).collect();
        assert_eq!(grease.len(), 16);
        assert_eq!(grease[0], 0x0a0a);
        assert_eq!(grease[15], 0xfafa);
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301));
    }
}
