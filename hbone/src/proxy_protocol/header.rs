//! The decoded PROXY protocol header, shared by v1 and v2.

use std::borrow::Cow;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use super::tlv::{RawTlvs, Tlv, Tlvs};

/// The protocol version a header was received in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The human-readable text form (`PROXY TCP4 …\r\n`).
    V1,
    /// The binary form with TLVs.
    V2,
}

/// The v2 command. v1 headers are always [`Command::Proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The connection was made by the proxy itself (e.g. a health check): the receiver uses the
    /// real socket addresses and ignores the address block.
    Local,
    /// The connection is relayed on behalf of a client: the addresses are the client's.
    Proxy,
}

/// The transport protocol nibble of the v2 family byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unspecified (`0x0`).
    Unspec,
    /// `SOCK_STREAM`, i.e. TCP (`0x1`).
    Stream,
    /// `SOCK_DGRAM`, i.e. UDP (`0x2`).
    Datagram,
}

/// The length of one UNIX socket path field in a v2 address block.
pub const UNIX_PATH_LEN: usize = 108;

/// The source and destination addresses carried by a header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// No addresses (AF_UNSPEC, v1 `UNKNOWN`, or a LOCAL header without an address block).
    Unspec,
    /// IPv4 endpoints (family `0x1`, v1 `TCP4`).
    Ipv4 {
        /// The original client.
        source: SocketAddrV4,
        /// The original destination.
        destination: SocketAddrV4,
    },
    /// IPv6 endpoints (family `0x2`, v1 `TCP6`).
    Ipv6 {
        /// The original client.
        source: SocketAddrV6,
        /// The original destination.
        destination: SocketAddrV6,
    },
    /// UNIX socket paths (family `0x3`), each a NUL-padded 108-byte field.
    Unix(Box<UnixAddresses>),
}

/// The UNIX socket paths of a family `0x3` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnixAddresses {
    /// The source path field as sent (NUL-padded).
    pub source: [u8; UNIX_PATH_LEN],
    /// The destination path field as sent (NUL-padded).
    pub destination: [u8; UNIX_PATH_LEN],
}

/// A decoded PROXY protocol header.
///
/// Parsing borrows the TLV bytes from the input (no allocation); [`ProxyHeader::into_owned`]
/// detaches a header from its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader<'a> {
    /// The version it was received in (or is to be written in).
    pub version: Version,
    /// LOCAL or PROXY.
    pub command: Command,
    /// The transport protocol.
    pub transport: Transport,
    /// The original endpoints.
    pub addresses: Addresses,
    tlvs: Cow<'a, [u8]>,
    /// The first TLV 0xD0 that is valid UTF-8, kept when the TLVs are scanned so reading it
    /// costs nothing (it is what a sandwiched waypoint reads on every connection).
    peer_identity: Option<Cow<'a, str>>,
}

impl Addresses {
    /// The addresses of a connection from `source` to `destination`.
    ///
    /// Mixed families (one IPv4, one IPv6) give [`Addresses::Unspec`], which is what ztunnel
    /// sends in that case (hbone spec §4.1). IPv4-mapped IPv6 addresses are not unmapped.
    pub fn from_socket_addrs(source: SocketAddr, destination: SocketAddr) -> Self {
        match (source, destination) {
            (SocketAddr::V4(source), SocketAddr::V4(destination)) => Addresses::Ipv4 {
                source,
                destination,
            },
            (SocketAddr::V6(source), SocketAddr::V6(destination)) => Addresses::Ipv6 {
                source,
                destination,
            },
            _ => Addresses::Unspec,
        }
    }

    /// The source as a socket address, for the IP families.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Addresses::Ipv4 { source, .. } => Some(SocketAddr::V4(*source)),
            Addresses::Ipv6 { source, .. } => Some(SocketAddr::V6(*source)),
            Addresses::Unspec | Addresses::Unix(_) => None,
        }
    }

    /// The destination as a socket address, for the IP families.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self {
            Addresses::Ipv4 { destination, .. } => Some(SocketAddr::V4(*destination)),
            Addresses::Ipv6 { destination, .. } => Some(SocketAddr::V6(*destination)),
            Addresses::Unspec | Addresses::Unix(_) => None,
        }
    }

    /// The v2 family nibble (`0x0`–`0x3`).
    pub fn family_nibble(&self) -> u8 {
        match self {
            Addresses::Unspec => 0x0,
            Addresses::Ipv4 { .. } => 0x1,
            Addresses::Ipv6 { .. } => 0x2,
            Addresses::Unix(_) => 0x3,
        }
    }

    /// The length of the v2 address block for this family.
    pub fn v2_len(&self) -> usize {
        match self {
            Addresses::Unspec => 0,
            Addresses::Ipv4 { .. } => 12,
            Addresses::Ipv6 { .. } => 36,
            Addresses::Unix(_) => 2 * UNIX_PATH_LEN,
        }
    }
}

impl Transport {
    /// The v2 transport nibble.
    pub fn nibble(self) -> u8 {
        match self {
            Transport::Unspec => 0x0,
            Transport::Stream => 0x1,
            Transport::Datagram => 0x2,
        }
    }
}

impl<'a> ProxyHeader<'a> {
    /// A header with the given parts and a TLV region that has already been validated.
    pub(super) fn from_parts(
        version: Version,
        command: Command,
        transport: Transport,
        addresses: Addresses,
        tlvs: Cow<'a, [u8]>,
        peer_identity: Option<&'a str>,
    ) -> Self {
        ProxyHeader {
            version,
            command,
            transport,
            addresses,
            tlvs,
            peer_identity: peer_identity.map(Cow::Borrowed),
        }
    }

    /// A v2 PROXY header for a stream relayed from `source` to `destination`, without TLVs.
    pub fn proxied_stream(source: SocketAddr, destination: SocketAddr) -> ProxyHeader<'static> {
        ProxyHeader {
            version: Version::V2,
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses: Addresses::from_socket_addrs(source, destination),
            tlvs: Cow::Borrowed(&[]),
            peer_identity: None,
        }
    }

    /// The header ztunnel writes to a sandwiched proxy (hbone spec §4.1): v2 PROXY over a
    /// stream, from the HBONE peer to the tunnel's target, with TLV `0xD0` carrying the client's
    /// SPIFFE ID when there is one. Mixed IPv4/IPv6 endpoints give AF_UNSPEC, as ztunnel's do.
    pub fn sandwich(
        source: SocketAddr,
        destination: SocketAddr,
        peer_identity: Option<&str>,
    ) -> ProxyHeader<'static> {
        // A SPIFFE ID is far shorter than the 65535 bytes a TLV can hold; a longer value is
        // left out rather than truncated.
        let identity = peer_identity.and_then(|id| Some((id, u16::try_from(id.len()).ok()?)));
        let mut tlvs = Vec::new();
        if let Some((identity, len)) = identity {
            let len = len.to_be_bytes();
            tlvs.reserve(3 + identity.len());
            tlvs.extend_from_slice(&[super::tlv::ISTIO_PEER_IDENTITY, len[0], len[1]]);
            tlvs.extend_from_slice(identity.as_bytes());
        }
        let peer_identity = identity.map(|(identity, _)| Cow::Owned(identity.to_owned()));
        ProxyHeader {
            tlvs: Cow::Owned(tlvs),
            peer_identity,
            ..Self::proxied_stream(source, destination)
        }
    }

    /// The TLVs in wire order, decoded into their types.
    pub fn tlvs(&self) -> Tlvs<'_> {
        Tlvs::new(&self.tlvs)
    }

    /// The TLVs in wire order as raw type/value pairs.
    pub fn raw_tlvs(&self) -> RawTlvs<'_> {
        RawTlvs::new(&self.tlvs)
    }

    /// The encoded TLV region (everything after the address block).
    pub fn tlv_bytes(&self) -> &[u8] {
        &self.tlvs
    }

    /// Istio's peer identity (TLV `0xD0`): the client's SPIFFE ID as ztunnel saw it (the first
    /// such TLV that is valid UTF-8).
    pub fn peer_identity(&self) -> Option<&str> {
        self.peer_identity.as_deref()
    }

    /// The AUTHORITY TLV (`0x02`), typically the client's SNI.
    pub fn authority(&self) -> Option<&str> {
        self.tlvs().find_map(|tlv| match tlv {
            Tlv::Authority(authority) => Some(authority),
            _ => None,
        })
    }

    /// The ALPN TLV (`0x01`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlvs().find_map(|tlv| match tlv {
            Tlv::Alpn(alpn) => Some(alpn),
            _ => None,
        })
    }

    /// The UNIQUE_ID TLV (`0x05`).
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlvs().find_map(|tlv| match tlv {
            Tlv::UniqueId(id) => Some(id),
            _ => None,
        })
    }

    /// Detaches the header from the buffer it was parsed from.
    pub fn into_owned(self) -> ProxyHeader<'static> {
        ProxyHeader {
            version: self.version,
            command: self.command,
            transport: self.transport,
            addresses: self.addresses,
            tlvs: Cow::Owned(self.tlvs.into_owned()),
            peer_identity: self
                .peer_identity
                .map(|identity| Cow::Owned(identity.into_owned())),
        }
    }
}
