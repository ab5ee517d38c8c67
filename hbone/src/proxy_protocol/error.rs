//! Errors of the PROXY protocol codec.

use super::tlv::TlvError;

/// Why bytes are not an acceptable PROXY protocol header.
///
/// Every variant means the connection must be closed: the specification forbids processing data
/// without a complete valid header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The bytes start with neither the v2 signature nor `PROXY `.
    #[error("not a PROXY protocol header")]
    NotProxyProtocol,
    /// A v1 header arrived where only v2 is accepted, or the reverse.
    #[error("PROXY protocol {0} is not accepted on this listener")]
    VersionNotAccepted(&'static str),
    /// The v2 version nibble is not 2.
    #[error("unsupported PROXY v2 version nibble {0:#x}")]
    UnsupportedVersion(u8),
    /// The v2 command nibble is neither LOCAL nor PROXY.
    #[error("unknown PROXY v2 command {0:#x}")]
    UnknownCommand(u8),
    /// The v2 family nibble is not one of UNSPEC, INET, INET6, UNIX.
    #[error("unknown PROXY v2 address family {0:#x}")]
    UnknownFamily(u8),
    /// The v2 transport nibble is not one of UNSPEC, STREAM, DGRAM.
    #[error("unknown PROXY v2 transport protocol {0:#x}")]
    UnknownTransport(u8),
    /// The header is longer than the configured limit.
    #[error("PROXY header of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The header length (declared, for v2; read so far, for v1).
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The v2 length field is too small for the declared address family.
    #[error("PROXY v2 address block needs {needed} bytes but the header has {available}")]
    AddressBlockTooShort {
        /// Bytes the family needs.
        needed: usize,
        /// Bytes the length field declares.
        available: usize,
    },
    /// A TLV is malformed (strict mode), or a registered TLV has an invalid value.
    #[error("invalid PROXY v2 TLV: {0}")]
    Tlv(#[from] TlvError),
    /// The CRC32C TLV does not match the header.
    #[error("PROXY v2 CRC32C mismatch: header says {expected:#010x}, computed {computed:#010x}")]
    Crc32cMismatch {
        /// The checksum carried in the TLV.
        expected: u32,
        /// The checksum of the received header.
        computed: u32,
    },
    /// The v1 line does not follow the grammar.
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
}

/// Why a header cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The v2 length field cannot hold the addresses and TLVs (more than 65535 bytes).
    #[error("PROXY v2 header body would be {0} bytes, more than 65535")]
    TooLong(usize),
    /// A registered TLV type was given a value its definition does not allow.
    #[error("invalid value for TLV type {kind:#04x}: {reason}")]
    InvalidTlvValue {
        /// The TLV type.
        kind: u8,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// v1 can carry only TCP over IPv4 or IPv6 (or UNKNOWN), and no TLVs.
    #[error("PROXY v1 cannot carry {0}")]
    NotRepresentableInV1(&'static str),
}
