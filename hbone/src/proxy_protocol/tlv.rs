//! PROXY protocol v2 TLVs: registered types, Istio's peer identity, raw and typed views.
//!
//! A TLV is `type` (1 byte), `length` (2 bytes, big-endian, value length only) and `value`.
//! Iteration is over a region the parser has already validated, so it never fails: in lenient
//! mode a known type whose value did not validate is surfaced as [`Tlv::Other`].

/// `PP2_TYPE_ALPN`: the application protocol negotiated by the client.
pub const ALPN: u8 = 0x01;
/// `PP2_TYPE_AUTHORITY`: the host name the client asked for (typically SNI), UTF-8.
pub const AUTHORITY: u8 = 0x02;
/// `PP2_TYPE_CRC32C`: CRC32c of the whole header with this value zeroed.
pub const CRC32C: u8 = 0x03;
/// `PP2_TYPE_NOOP`: padding, ignored.
pub const NOOP: u8 = 0x04;
/// `PP2_TYPE_UNIQUE_ID`: an opaque connection identifier of at most 128 bytes.
pub const UNIQUE_ID: u8 = 0x05;
/// `PP2_TYPE_SSL`: TLS facts about the client connection, with nested sub-TLVs.
pub const SSL: u8 = 0x20;
/// `PP2_TYPE_NETNS`: the network namespace name, US-ASCII.
pub const NETNS: u8 = 0x30;
/// Istio's `PROXY_PROTOCOL_AUTHORITY_TLV`: the client's SPIFFE ID, as ztunnel sends it.
pub const ISTIO_PEER_IDENTITY: u8 = 0xD0;

/// `PP2_SUBTYPE_SSL_VERSION`: the TLS version, US-ASCII (e.g. `TLSv1.3`).
pub const SSL_VERSION: u8 = 0x21;
/// `PP2_SUBTYPE_SSL_CN`: the client certificate's Common Name, UTF-8.
pub const SSL_CN: u8 = 0x22;
/// `PP2_SUBTYPE_SSL_CIPHER`: the cipher name, US-ASCII.
pub const SSL_CIPHER: u8 = 0x23;
/// `PP2_SUBTYPE_SSL_SIG_ALG`: the certificate's signature algorithm, US-ASCII.
pub const SSL_SIG_ALG: u8 = 0x24;
/// `PP2_SUBTYPE_SSL_KEY_ALG`: the certificate's key algorithm, US-ASCII.
pub const SSL_KEY_ALG: u8 = 0x25;

/// `PP2_CLIENT_SSL`: the client connected over TLS.
pub const CLIENT_SSL: u8 = 0x01;
/// `PP2_CLIENT_CERT_CONN`: the client presented a certificate on this connection.
pub const CLIENT_CERT_CONN: u8 = 0x02;
/// `PP2_CLIENT_CERT_SESS`: the client presented a certificate at least once in this session.
pub const CLIENT_CERT_SESS: u8 = 0x04;

/// The largest UNIQUE_ID value the specification allows.
pub const UNIQUE_ID_MAX_LEN: usize = 128;

/// The size of a TLV's type and length fields.
pub const TLV_HEADER_LEN: usize = 3;

/// One TLV as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTlv<'a> {
    /// The type byte.
    pub kind: u8,
    /// The value bytes.
    pub value: &'a [u8],
}

/// A TLV decoded into its registered type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tlv<'a> {
    /// `0x01`: the negotiated application protocol, e.g. `h2`.
    Alpn(&'a [u8]),
    /// `0x02`: the requested host name.
    Authority(&'a str),
    /// `0x03`: the header checksum (already verified by the parser).
    Crc32c(u32),
    /// `0x04`: padding.
    Noop(&'a [u8]),
    /// `0x05`: an opaque connection identifier.
    UniqueId(&'a [u8]),
    /// `0x20`: TLS facts about the client connection.
    Ssl(SslTlv<'a>),
    /// `0x30`: the network namespace name.
    Netns(&'a str),
    /// `0xD0`: Istio's peer identity, the client's SPIFFE ID.
    PeerIdentity(&'a str),
    /// Any other type, or (lenient mode only) a registered type whose value did not validate.
    Other(RawTlv<'a>),
}

/// The value of a `PP2_TYPE_SSL` TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslTlv<'a> {
    /// Bit field of `CLIENT_SSL`, `CLIENT_CERT_CONN`, `CLIENT_CERT_SESS`.
    pub client: u8,
    /// Zero when the client presented a certificate that was verified.
    pub verify: u32,
    sub_tlvs: &'a [u8],
}

/// A sub-TLV of the SSL TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslSubTlv<'a> {
    /// `0x21`: the TLS version.
    Version(&'a str),
    /// `0x22`: the client certificate's Common Name.
    CommonName(&'a str),
    /// `0x23`: the cipher.
    Cipher(&'a str),
    /// `0x24`: the signature algorithm.
    SignatureAlgorithm(&'a str),
    /// `0x25`: the key algorithm.
    KeyAlgorithm(&'a str),
    /// Any other sub-type, or one whose value is not valid text.
    Other(RawTlv<'a>),
}

/// An iterator over raw TLVs of a validated region.
#[derive(Debug, Clone)]
pub struct RawTlvs<'a> {
    rest: &'a [u8],
}

/// An iterator over typed TLVs of a validated region.
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    raw: RawTlvs<'a>,
}

/// Why a TLV region or value is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// A TLV's declared length runs past the end of the header.
    #[error("TLV at offset {offset} is truncated")]
    Truncated {
        /// Offset of the TLV within the TLV region.
        offset: usize,
    },
    /// A registered TLV type has a value that its definition does not allow.
    #[error("TLV type {kind:#04x} has an invalid value: {reason}")]
    InvalidValue {
        /// The TLV type.
        kind: u8,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl<'a> RawTlvs<'a> {
    /// Iterates over a region of well-framed TLVs (iteration stops at a malformed one).
    pub(crate) fn new(region: &'a [u8]) -> Self {
        RawTlvs { rest: region }
    }
}

impl<'a> Iterator for RawTlvs<'a> {
    type Item = RawTlv<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (tlv, rest) = split_first_tlv(self.rest).ok()??;
        self.rest = rest;
        Some(tlv)
    }
}

impl<'a> Tlvs<'a> {
    pub(crate) fn new(region: &'a [u8]) -> Self {
        Tlvs {
            raw: RawTlvs::new(region),
        }
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        self.raw
            .next()
            .map(|raw| Tlv::decode(raw).unwrap_or(Tlv::Other(raw)))
    }
}

impl<'a> Tlv<'a> {
    /// Decodes a raw TLV into its registered type, validating the value.
    pub fn decode(raw: RawTlv<'a>) -> Result<Self, TlvError> {
        let invalid = |reason| TlvError::InvalidValue {
            kind: raw.kind,
            reason,
        };
        let value = raw.value;
        Ok(match raw.kind {
            ALPN if value.is_empty() => return Err(invalid("empty ALPN")),
            ALPN => Tlv::Alpn(value),
            AUTHORITY => Tlv::Authority(utf8(value).ok_or(invalid("not UTF-8"))?),
            CRC32C => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| invalid("not 4 bytes"))?;
                Tlv::Crc32c(u32::from_be_bytes(bytes))
            }
            NOOP => Tlv::Noop(value),
            UNIQUE_ID if value.len() > UNIQUE_ID_MAX_LEN => {
                return Err(invalid("longer than 128 bytes"));
            }
            UNIQUE_ID => Tlv::UniqueId(value),
            SSL => Tlv::Ssl(SslTlv::decode(value)?),
            NETNS => Tlv::Netns(ascii(value).ok_or(invalid("not US-ASCII"))?),
            ISTIO_PEER_IDENTITY => Tlv::PeerIdentity(utf8(value).ok_or(invalid("not UTF-8"))?),
            _ => Tlv::Other(raw),
        })
    }

    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Tlv::Alpn(_) => ALPN,
            Tlv::Authority(_) => AUTHORITY,
            Tlv::Crc32c(_) => CRC32C,
            Tlv::Noop(_) => NOOP,
            Tlv::UniqueId(_) => UNIQUE_ID,
            Tlv::Ssl(_) => SSL,
            Tlv::Netns(_) => NETNS,
            Tlv::PeerIdentity(_) => ISTIO_PEER_IDENTITY,
            Tlv::Other(raw) => raw.kind,
        }
    }
}

impl<'a> SslTlv<'a> {
    /// An SSL TLV value with already-encoded sub-TLVs (see [`SslSubTlv`]).
    pub fn decode(value: &'a [u8]) -> Result<Self, TlvError> {
        let invalid = |reason| TlvError::InvalidValue { kind: SSL, reason };
        let (&client, rest) = value.split_first().ok_or(invalid("shorter than 5 bytes"))?;
        let (verify, sub_tlvs) = rest
            .split_first_chunk::<4>()
            .ok_or(invalid("shorter than 5 bytes"))?;
        validate_region(sub_tlvs).map_err(|_| invalid("malformed sub-TLVs"))?;
        Ok(SslTlv {
            client,
            verify: u32::from_be_bytes(*verify),
            sub_tlvs,
        })
    }

    /// The nested sub-TLVs in wire order.
    pub fn sub_tlvs(&self) -> impl Iterator<Item = SslSubTlv<'a>> + use<'a> {
        RawTlvs::new(self.sub_tlvs).map(SslSubTlv::decode)
    }

    /// The nested sub-TLVs as raw type/value pairs.
    pub fn raw_sub_tlvs(&self) -> RawTlvs<'a> {
        RawTlvs::new(self.sub_tlvs)
    }

    /// True when the client connected over TLS (`PP2_CLIENT_SSL`).
    pub fn is_tls(&self) -> bool {
        self.client & CLIENT_SSL != 0
    }
}

impl<'a> SslSubTlv<'a> {
    fn decode(raw: RawTlv<'a>) -> Self {
        let Some(text) = utf8(raw.value) else {
            return SslSubTlv::Other(raw);
        };
        match raw.kind {
            SSL_VERSION => SslSubTlv::Version(text),
            SSL_CN => SslSubTlv::CommonName(text),
            SSL_CIPHER => SslSubTlv::Cipher(text),
            SSL_SIG_ALG => SslSubTlv::SignatureAlgorithm(text),
            SSL_KEY_ALG => SslSubTlv::KeyAlgorithm(text),
            _ => SslSubTlv::Other(raw),
        }
    }
}

/// Checks that `region` is a whole sequence of well-framed TLVs.
pub(crate) fn validate_region(region: &[u8]) -> Result<(), TlvError> {
    let mut rest = region;
    while !rest.is_empty() {
        let offset = region.len() - rest.len();
        match split_first_tlv(rest) {
            Ok(Some((_, next))) => rest = next,
            _ => return Err(TlvError::Truncated { offset }),
        }
    }
    Ok(())
}

/// Splits the first TLV off `bytes`: `Ok(None)` at the end, `Err` when it is truncated.
fn split_first_tlv(bytes: &[u8]) -> Result<Option<(RawTlv<'_>, &[u8])>, ()> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let Some((&[kind, high, low], rest)) = bytes.split_first_chunk::<TLV_HEADER_LEN>() else {
        return Err(());
    };
    let len = usize::from(u16::from_be_bytes([high, low]));
    if rest.len() < len {
        return Err(());
    }
    let (value, rest) = rest.split_at(len);
    Ok(Some((RawTlv { kind, value }, rest)))
}

fn utf8(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok()
}

fn ascii(value: &[u8]) -> Option<&str> {
    if value.is_ascii() { utf8(value) } else { None }
}
