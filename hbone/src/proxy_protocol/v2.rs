//! PROXY protocol v2: the binary form with address families and TLVs.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::error::{BuildError, ProxyHeaderError};
use super::header::{
    Addresses, Command, ProxyHeader, Transport, UNIX_PATH_LEN, UnixAddresses, Version,
};
use super::parse::{ParseOptions, ParseStatus, Strictness};
use super::tlv::{self, RawTlv, TLV_HEADER_LEN, Tlv, TlvError};

/// The 12-byte v2 signature.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Signature, version/command, family/transport and length.
pub const FIXED_LEN: usize = 16;

const MAX_BODY_LEN: usize = u16::MAX as usize;

/// Parses a v2 header from the start of `input` (which starts with the signature's first byte).
pub(super) fn parse<'a>(
    input: &'a [u8],
    options: &ParseOptions,
) -> Result<ParseStatus<'a>, ProxyHeaderError> {
    let Some(fixed) = input.first_chunk::<FIXED_LEN>() else {
        let signature_len = input.len().min(SIGNATURE.len());
        if input[..signature_len] != SIGNATURE[..signature_len] {
            return Err(ProxyHeaderError::NotProxyProtocol);
        }
        return Ok(ParseStatus::Incomplete { needed: FIXED_LEN });
    };
    if fixed[..SIGNATURE.len()] != SIGNATURE {
        return Err(ProxyHeaderError::NotProxyProtocol);
    }
    let [.., version_command, family_transport, len_high, len_low] = *fixed;
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::UnsupportedVersion(version_command >> 4));
    }
    let command = match version_command & 0x0F {
        0x0 => Command::Local,
        0x1 => Command::Proxy,
        other => return Err(ProxyHeaderError::UnknownCommand(other)),
    };
    let transport = match family_transport & 0x0F {
        0x0 => Transport::Unspec,
        0x1 => Transport::Stream,
        0x2 => Transport::Datagram,
        other => return Err(ProxyHeaderError::UnknownTransport(other)),
    };
    let family = family_transport >> 4;
    let address_len = match family {
        0x0 => 0,
        0x1 => 12,
        0x2 => 36,
        0x3 => 2 * UNIX_PATH_LEN,
        other => return Err(ProxyHeaderError::UnknownFamily(other)),
    };
    let total_len = FIXED_LEN + usize::from(u16::from_be_bytes([len_high, len_low]));
    if total_len > options.max_v2_len {
        return Err(ProxyHeaderError::TooLong {
            len: total_len,
            max: options.max_v2_len,
        });
    }
    let Some(header) = input.get(..total_len) else {
        return Ok(ParseStatus::Incomplete { needed: total_len });
    };
    let body = &header[FIXED_LEN..];
    let Some((address_block, tlv_region)) = body.split_at_checked(address_len) else {
        return Err(ProxyHeaderError::AddressBlockTooShort {
            needed: address_len,
            available: body.len(),
        });
    };
    // For AF_UNSPEC the address block is empty and the rest of the body is TLVs: that is what
    // ztunnel sends for mixed IPv4/IPv6 endpoints (TLV 0xD0 after an empty block). The `ppp`
    // crate instead treats such a body as opaque address bytes and would lose the identity.
    let addresses = parse_addresses(family, address_block);
    let tlv_offset = FIXED_LEN + address_len;
    let ScannedTlvs {
        region: tlv_region,
        crc32c,
        peer_identity,
    } = scan_tlvs(tlv_region, tlv_offset, options.strictness)?;
    if let Some(Crc32cField {
        expected,
        value_offset,
    }) = crc32c
    {
        let computed = crc32c_with_zeroed_field(header, value_offset);
        if computed != expected {
            return Err(ProxyHeaderError::Crc32cMismatch { expected, computed });
        }
    }
    let header = ProxyHeader::from_parts(
        Version::V2,
        command,
        transport,
        addresses,
        Cow::Borrowed(tlv_region),
        peer_identity,
    );
    Ok(ParseStatus::Complete {
        header,
        len: total_len,
    })
}

/// Decodes the address block of `family` (the caller checked its length).
fn parse_addresses(family: u8, block: &[u8]) -> Addresses {
    match family {
        0x1 => match block.first_chunk::<12>() {
            Some(&[s0, s1, s2, s3, d0, d1, d2, d3, sp0, sp1, dp0, dp1]) => Addresses::Ipv4 {
                source: SocketAddrV4::new(
                    Ipv4Addr::new(s0, s1, s2, s3),
                    u16::from_be_bytes([sp0, sp1]),
                ),
                destination: SocketAddrV4::new(
                    Ipv4Addr::new(d0, d1, d2, d3),
                    u16::from_be_bytes([dp0, dp1]),
                ),
            },
            None => Addresses::Unspec,
        },
        0x2 => {
            let source = block.first_chunk::<16>();
            let destination = block.get(16..).and_then(<[u8]>::first_chunk::<16>);
            let ports = block.get(32..).and_then(<[u8]>::first_chunk::<4>);
            match (source, destination, ports) {
                (Some(source), Some(destination), Some(&[sp0, sp1, dp0, dp1])) => Addresses::Ipv6 {
                    source: SocketAddrV6::new(
                        Ipv6Addr::from(*source),
                        u16::from_be_bytes([sp0, sp1]),
                        0,
                        0,
                    ),
                    destination: SocketAddrV6::new(
                        Ipv6Addr::from(*destination),
                        u16::from_be_bytes([dp0, dp1]),
                        0,
                        0,
                    ),
                },
                _ => Addresses::Unspec,
            }
        }
        0x3 => {
            let source = block.first_chunk::<UNIX_PATH_LEN>();
            let destination = block
                .get(UNIX_PATH_LEN..)
                .and_then(<[u8]>::first_chunk::<UNIX_PATH_LEN>);
            match (source, destination) {
                (Some(source), Some(destination)) => Addresses::Unix(Box::new(UnixAddresses {
                    source: *source,
                    destination: *destination,
                })),
                _ => Addresses::Unspec,
            }
        }
        _ => Addresses::Unspec,
    }
}

/// One pass over the TLV region: checks framing and (strict mode) every registered value, and
/// finds the first well-formed CRC32C TLV (its value and its offset in the header).
///
/// Strict mode rejects the first malformed TLV; lenient mode cuts the region before it.
fn scan_tlvs(
    region: &[u8],
    region_offset: usize,
    strictness: Strictness,
) -> Result<ScannedTlvs<'_>, ProxyHeaderError> {
    let mut crc32c = None;
    let mut peer_identity = None;
    let mut offset = 0;
    while let Some(&[kind, high, low]) = region.get(offset..offset + TLV_HEADER_LEN) {
        let value_start = offset + TLV_HEADER_LEN;
        let value_end = value_start + usize::from(u16::from_be_bytes([high, low]));
        let Some(value) = region.get(value_start..value_end) else {
            break;
        };
        let decoded = match strictness {
            Strictness::Strict => Some(Tlv::decode(RawTlv { kind, value })?),
            Strictness::Lenient if kind == tlv::ISTIO_PEER_IDENTITY => {
                Tlv::decode(RawTlv { kind, value }).ok()
            }
            Strictness::Lenient => None,
        };
        if let (Some(Tlv::PeerIdentity(identity)), None) = (decoded, peer_identity) {
            peer_identity = Some(identity);
        }
        if kind == tlv::CRC32C
            && crc32c.is_none()
            && let Ok(bytes) = <[u8; 4]>::try_from(value)
        {
            crc32c = Some(Crc32cField {
                expected: u32::from_be_bytes(bytes),
                value_offset: region_offset + value_start,
            });
        }
        offset = value_end;
    }
    if offset < region.len() && strictness == Strictness::Strict {
        return Err(TlvError::Truncated { offset }.into());
    }
    Ok(ScannedTlvs {
        region: &region[..offset],
        crc32c,
        peer_identity,
    })
}

/// The outcome of [`scan_tlvs`].
struct ScannedTlvs<'a> {
    /// The well-framed TLVs (the whole region in strict mode).
    region: &'a [u8],
    /// The first well-formed CRC32C TLV.
    crc32c: Option<Crc32cField>,
    /// The first TLV 0xD0 that is valid UTF-8.
    peer_identity: Option<&'a str>,
}

/// Where a CRC32C TLV sits in a header and what it says.
struct Crc32cField {
    expected: u32,
    /// Offset of the 4-byte value from the start of the header.
    value_offset: usize,
}

fn crc32c_with_zeroed_field(header: &[u8], value_offset: usize) -> u32 {
    let crc = crc32c::crc32c(&header[..value_offset]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &header[value_offset + 4..])
}

/// Writes a v2 header into a caller-owned buffer, without allocating when the buffer has room.
///
/// ```
/// use hbone::proxy_protocol::{Addresses, Command, Transport, V2Builder};
///
/// let mut buffer = Vec::with_capacity(128);
/// let addresses = Addresses::from_socket_addrs(
///     "10.0.0.1:40000".parse()?,
///     "10.10.0.1:80".parse()?,
/// );
/// let len = V2Builder::new(&mut buffer, Command::Proxy, Transport::Stream, &addresses)
///     .peer_identity("spiffe://cluster.local/ns/default/sa/client")?
///     .finish();
/// assert_eq!(len, 74);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct V2Builder<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    /// Offset from `start` of a CRC32C value to fill in when the header is finished.
    crc32c_value_offset: Option<usize>,
}

impl<'o> V2Builder<'o> {
    /// Starts a header at the end of `out`: signature, command, family and addresses.
    pub fn new(
        out: &'o mut Vec<u8>,
        command: Command,
        transport: Transport,
        addresses: &Addresses,
    ) -> Self {
        let start = out.len();
        let command_nibble = match command {
            Command::Local => 0x0,
            Command::Proxy => 0x1,
        };
        out.reserve(FIXED_LEN + addresses.v2_len());
        out.extend_from_slice(&SIGNATURE);
        out.push(0x20 | command_nibble);
        out.push(addresses.family_nibble() << 4 | transport.nibble());
        out.extend_from_slice(&[0, 0]);
        match addresses {
            Addresses::Unspec => {}
            Addresses::Ipv4 {
                source,
                destination,
            } => push_endpoints(
                out,
                &source.ip().octets(),
                &destination.ip().octets(),
                [source.port(), destination.port()],
            ),
            Addresses::Ipv6 {
                source,
                destination,
            } => push_endpoints(
                out,
                &source.ip().octets(),
                &destination.ip().octets(),
                [source.port(), destination.port()],
            ),
            Addresses::Unix(unix) => {
                out.extend_from_slice(&unix.source);
                out.extend_from_slice(&unix.destination);
            }
        }
        V2Builder {
            out,
            start,
            crc32c_value_offset: None,
        }
    }

    /// Appends a TLV with any type and value. On error the buffer is left as it was before
    /// [`V2Builder::new`].
    pub fn tlv(mut self, kind: u8, value: &[u8]) -> Result<Self, BuildError> {
        self.begin_tlv(kind, value.len())?;
        self.out.extend_from_slice(value);
        Ok(self)
    }

    /// Appends a typed TLV, validating its value as the parser would.
    pub fn push(self, tlv: Tlv<'_>) -> Result<Self, BuildError> {
        match tlv {
            Tlv::Alpn(value) => self.alpn(value),
            Tlv::Authority(value) => self.authority(value),
            Tlv::Crc32c(value) => self.tlv(tlv::CRC32C, &value.to_be_bytes()),
            Tlv::Noop(value) => self.tlv(tlv::NOOP, value),
            Tlv::UniqueId(value) => self.unique_id(value),
            Tlv::Ssl(ssl) => {
                let subs: Vec<RawTlv<'_>> = ssl.raw_sub_tlvs().collect();
                self.ssl(ssl.client, ssl.verify, &subs)
            }
            Tlv::Netns(value) => self.netns(value),
            Tlv::PeerIdentity(value) => self.peer_identity(value),
            Tlv::Other(raw) => self.tlv(raw.kind, raw.value),
        }
    }

    /// Appends the ALPN TLV (`0x01`).
    pub fn alpn(self, protocol: &[u8]) -> Result<Self, BuildError> {
        if protocol.is_empty() {
            return Err(self.reject(tlv::ALPN, "empty ALPN"));
        }
        self.tlv(tlv::ALPN, protocol)
    }

    /// Appends the AUTHORITY TLV (`0x02`).
    pub fn authority(self, host: &str) -> Result<Self, BuildError> {
        self.tlv(tlv::AUTHORITY, host.as_bytes())
    }

    /// Appends the UNIQUE_ID TLV (`0x05`), at most 128 bytes.
    pub fn unique_id(self, id: &[u8]) -> Result<Self, BuildError> {
        if id.len() > tlv::UNIQUE_ID_MAX_LEN {
            return Err(self.reject(tlv::UNIQUE_ID, "longer than 128 bytes"));
        }
        self.tlv(tlv::UNIQUE_ID, id)
    }

    /// Appends the NETNS TLV (`0x30`), US-ASCII.
    pub fn netns(self, namespace: &str) -> Result<Self, BuildError> {
        if !namespace.is_ascii() {
            return Err(self.reject(tlv::NETNS, "not US-ASCII"));
        }
        self.tlv(tlv::NETNS, namespace.as_bytes())
    }

    /// Appends Istio's peer identity TLV (`0xD0`): the client's SPIFFE ID.
    pub fn peer_identity(self, spiffe_id: &str) -> Result<Self, BuildError> {
        self.tlv(tlv::ISTIO_PEER_IDENTITY, spiffe_id.as_bytes())
    }

    /// Appends a NOOP TLV (`0x04`) of `len` zero bytes.
    pub fn noop(mut self, len: usize) -> Result<Self, BuildError> {
        self.begin_tlv(tlv::NOOP, len)?;
        self.out.resize(self.out.len() + len, 0);
        Ok(self)
    }

    /// Appends the SSL TLV (`0x20`) with its `client` bits, `verify` result and sub-TLVs.
    pub fn ssl(self, client: u8, verify: u32, sub_tlvs: &[RawTlv<'_>]) -> Result<Self, BuildError> {
        let mut value =
            Vec::with_capacity(5 + sub_tlvs.iter().map(|s| 3 + s.value.len()).sum::<usize>());
        value.push(client);
        value.extend_from_slice(&verify.to_be_bytes());
        for sub in sub_tlvs {
            let Ok(len) = u16::try_from(sub.value.len()) else {
                return Err(self.reject(tlv::SSL, "sub-TLV longer than 65535 bytes"));
            };
            value.push(sub.kind);
            value.extend_from_slice(&len.to_be_bytes());
            value.extend_from_slice(sub.value);
        }
        self.tlv(tlv::SSL, &value)
    }

    /// Appends a CRC32C TLV (`0x03`) at this position; its value is computed by
    /// [`V2Builder::finish`] over the whole header with the field zeroed.
    pub fn crc32c(mut self) -> Result<Self, BuildError> {
        self.begin_tlv(tlv::CRC32C, 4)?;
        self.crc32c_value_offset = Some(self.out.len() - self.start);
        self.out.extend_from_slice(&[0; 4]);
        Ok(self)
    }

    /// Finishes the header: writes the length field (and the CRC32C, if one was added) and
    /// returns the header's length.
    pub fn finish(self) -> usize {
        let V2Builder {
            out,
            start,
            crc32c_value_offset,
        } = self;
        let body_len = out.len() - start - FIXED_LEN;
        // begin_tlv keeps body_len <= 65535.
        let len = u16::try_from(body_len).unwrap_or(u16::MAX);
        out[start + 14..start + 16].copy_from_slice(&len.to_be_bytes());
        if let Some(value_offset) = crc32c_value_offset {
            let crc = crc32c_with_zeroed_field(&out[start..], value_offset);
            out[start + value_offset..start + value_offset + 4].copy_from_slice(&crc.to_be_bytes());
        }
        out.len() - start
    }

    /// Appends a CRC32C TLV (`0x03`) and finishes the header with the checksum filled in.
    pub fn finish_with_crc32c(self) -> Result<usize, BuildError> {
        Ok(self.crc32c()?.finish())
    }

    /// Writes a TLV's type and length after checking that the body stays within 65535 bytes.
    fn begin_tlv(&mut self, kind: u8, value_len: usize) -> Result<(), BuildError> {
        let body_len = self.out.len() - self.start - FIXED_LEN + TLV_HEADER_LEN + value_len;
        let Ok(len) = u16::try_from(value_len) else {
            self.out.truncate(self.start);
            return Err(BuildError::TooLong(body_len));
        };
        if body_len > MAX_BODY_LEN {
            self.out.truncate(self.start);
            return Err(BuildError::TooLong(body_len));
        }
        self.out.push(kind);
        self.out.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn reject(self, kind: u8, reason: &'static str) -> BuildError {
        self.out.truncate(self.start);
        BuildError::InvalidTlvValue { kind, reason }
    }
}

/// Appends an IP address block: source address, destination address, then the two ports, all
/// in network byte order.
fn push_endpoints(out: &mut Vec<u8>, source: &[u8], destination: &[u8], ports: [u16; 2]) {
    out.extend_from_slice(source);
    out.extend_from_slice(destination);
    out.extend_from_slice(&ports[0].to_be_bytes());
    out.extend_from_slice(&ports[1].to_be_bytes());
}

/// Appends `header` as v2 to `out`, TLVs copied as they are except that a CRC32C TLV is
/// recomputed over the bytes written; returns the header's length.
pub(super) fn write(out: &mut Vec<u8>, header: &ProxyHeader<'_>) -> Result<usize, BuildError> {
    let start = out.len();
    let mut builder = V2Builder::new(out, header.command, header.transport, &header.addresses);
    let tlv_offset = builder.out.len() - start;
    let body_len = tlv_offset - FIXED_LEN + header.tlv_bytes().len();
    if body_len > MAX_BODY_LEN {
        builder.out.truncate(start);
        return Err(BuildError::TooLong(body_len));
    }
    builder.out.extend_from_slice(header.tlv_bytes());
    // The region was framed by the parser, so scanning it leniently cannot fail.
    if let Ok(ScannedTlvs {
        crc32c: Some(Crc32cField { value_offset, .. }),
        ..
    }) = scan_tlvs(header.tlv_bytes(), tlv_offset, Strictness::Lenient)
    {
        builder.crc32c_value_offset = Some(value_offset);
    }
    Ok(builder.finish())
}
