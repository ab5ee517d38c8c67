//! Incremental, sans-IO parsing of PROXY protocol headers with version detection.

use super::error::ProxyHeaderError;
use super::header::ProxyHeader;
use super::{v1, v2};

/// Which versions a listener accepts. The specification requires a receiver to be configured
/// for PROXY protocol; it never guesses whether a header is present at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptVersions {
    /// Only the text form.
    V1,
    /// Only the binary form.
    V2,
    /// Either form, told apart by the first byte (the spec's "v2 receivers SHOULD accept v1").
    #[default]
    Both,
}

/// How forgiving the parser is about TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Every TLV must be well framed and every registered TLV type must have a valid value;
    /// otherwise the header is rejected.
    #[default]
    Strict,
    /// A malformed TLV region is cut at the first malformed TLV and registered types with invalid
    /// values are exposed as [`Tlv::Other`](super::Tlv::Other). The CRC32C is still enforced, as
    /// the specification requires.
    Lenient,
}

/// Parser configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accepted versions.
    pub versions: AcceptVersions,
    /// TLV strictness.
    pub strictness: Strictness,
    /// The largest v2 header accepted, in bytes, signature included (at most 16 + 65535).
    pub max_v2_len: usize,
}

/// The default [`ParseOptions::max_v2_len`]: room for an identity, an SSL TLV with its
/// sub-TLVs and padding, and still a bound on what a connection may make the receiver buffer.
pub const DEFAULT_MAX_V2_LEN: usize = 4096;

/// The longest v1 header, CRLF included.
pub const V1_MAX_LEN: usize = 107;

/// The shortest header of either version (`PROXY UNKNOWN\r\n`): reading this many bytes can
/// never consume payload.
pub const MIN_HEADER_LEN: usize = 15;

/// The result of feeding the bytes received so far to the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseStatus<'a> {
    /// More bytes are needed. The header is at least `needed` bytes long in total, so reading
    /// up to `needed` bytes (counting those already buffered) never consumes payload.
    Incomplete {
        /// A lower bound on the total header length.
        needed: usize,
    },
    /// A complete header that occupies the first `len` bytes of the input.
    Complete {
        /// The header.
        header: ProxyHeader<'a>,
        /// How many input bytes it took.
        len: usize,
    },
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            versions: AcceptVersions::Both,
            strictness: Strictness::Strict,
            max_v2_len: DEFAULT_MAX_V2_LEN,
        }
    }
}

impl ParseOptions {
    /// Options accepting only v2 (what a sandwiched waypoint behind ztunnel needs).
    pub fn v2_only() -> Self {
        ParseOptions {
            versions: AcceptVersions::V2,
            ..Self::default()
        }
    }
}

/// Parses a PROXY header from the start of `input`.
///
/// Never reads past the header: bytes after `len` are payload and belong to the application.
pub fn parse<'a>(
    input: &'a [u8],
    options: &ParseOptions,
) -> Result<ParseStatus<'a>, ProxyHeaderError> {
    let Some(&first) = input.first() else {
        return Ok(ParseStatus::Incomplete {
            needed: MIN_HEADER_LEN,
        });
    };
    if first == v2::SIGNATURE[0] {
        if options.versions == AcceptVersions::V1 {
            return Err(ProxyHeaderError::VersionNotAccepted("v2"));
        }
        v2::parse(input, options)
    } else if first == v1::PREFIX[0] {
        if options.versions == AcceptVersions::V2 {
            return Err(ProxyHeaderError::VersionNotAccepted("v1"));
        }
        v1::parse(input)
    } else {
        Err(ProxyHeaderError::NotProxyProtocol)
    }
}
