//! The PROXY protocol v1 and v2 (HAProxy's `proxy-protocol.txt`), sans-IO.
//!
//! - [`parse`] reads a header incrementally from the bytes received so far: it answers
//!   [`ParseStatus::Incomplete`] with a lower bound of the header's length (so a reader can fetch
//!   more without ever consuming payload), [`ParseStatus::Complete`] with the header and its
//!   length, or a typed [`ProxyHeaderError`] after which the connection must be closed.
//! - [`V2Builder`] writes a v2 header with TLVs into a reused buffer without allocating;
//!   [`write_v1`] writes the text form; [`ProxyHeader::encode`] writes a decoded header back.
//! - [`read_proxy_header`] and [`ProxyProtocolLayer`] read a header off an accepted stream with
//!   a timeout, never consuming a payload byte; [`write_proxy_header`] sends one in one write.
//! - TLVs have a typed view ([`Tlv`], with Istio's peer identity `0xD0`, SSL and its sub-TLVs) and
//!   a raw one ([`RawTlv`]); CRC32C is verified on parse and generated on demand.
//!
//! ```
//! use hbone::proxy_protocol::{parse, ParseOptions, ParseStatus, ProxyHeader, V2Builder};
//!
//! let mut wire = Vec::new();
//! let header = ProxyHeader::proxied_stream("10.0.0.1:40000".parse()?, "10.10.0.1:80".parse()?);
//! V2Builder::new(&mut wire, header.command, header.transport, &header.addresses)
//!     .peer_identity("spiffe://cluster.local/ns/default/sa/client")?
//!     .finish_with_crc32c()?;
//! wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
//!
//! let ParseStatus::Complete { header, len } = parse(&wire, &ParseOptions::default())? else {
//!     unreachable!("the whole header is there");
//! };
//! assert_eq!(header.peer_identity(), Some("spiffe://cluster.local/ns/default/sa/client"));
//! assert_eq!(&wire[len..], b"GET / HTTP/1.1\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod acceptor;
mod error;
mod header;
mod parse;
pub mod tlv;
mod v1;
mod v2;
pub mod writer;

#[cfg(test)]
mod tests;

pub use acceptor::{
    AcceptError, AcceptorConfig, HeaderStream, ProxiedConnection, ProxyProtocolAcceptor,
    ProxyProtocolLayer, read_proxy_header,
};
pub use error::{BuildError, ProxyHeaderError};
pub use header::{
    Addresses, Command, ProxyHeader, Transport, UNIX_PATH_LEN, UnixAddresses, Version,
};
pub use parse::{
    AcceptVersions, DEFAULT_MAX_V2_LEN, MIN_HEADER_LEN, ParseOptions, ParseStatus, Strictness,
    V1_MAX_LEN, parse,
};
pub use tlv::{RawTlv, RawTlvs, SslSubTlv, SslTlv, Tlv, TlvError, Tlvs};
pub use v1::{PREFIX as V1_PREFIX, write as write_v1};
pub use v2::{FIXED_LEN as V2_FIXED_LEN, SIGNATURE as V2_SIGNATURE, V2Builder};
pub use writer::{SendError, write_proxy_header};

impl ProxyHeader<'_> {
    /// Appends this header to `out` in its [`version`](ProxyHeader::version); returns its length.
    /// v2 TLVs are copied as received; v1 cannot carry TLVs or UNIX addresses.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<usize, BuildError> {
        match self.version {
            Version::V1 if !self.tlv_bytes().is_empty() => {
                Err(BuildError::NotRepresentableInV1("TLVs"))
            }
            Version::V1 => v1::write(out, &self.addresses),
            Version::V2 => v2::write(out, self),
        }
    }
}
