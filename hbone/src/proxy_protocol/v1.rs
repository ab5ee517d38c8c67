//! PROXY protocol v1: the text form `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use super::error::{BuildError, ProxyHeaderError};
use super::header::{Addresses, Command, ProxyHeader, Transport, Version};
use super::parse::{MIN_HEADER_LEN, ParseStatus, V1_MAX_LEN};

/// Every v1 header starts with these bytes.
pub const PREFIX: &[u8; 6] = b"PROXY ";

/// Parses a v1 line from the start of `input`.
pub(super) fn parse(input: &[u8]) -> Result<ParseStatus<'_>, ProxyHeaderError> {
    let prefix_len = input.len().min(PREFIX.len());
    if input[..prefix_len] != PREFIX[..prefix_len] {
        return Err(ProxyHeaderError::NotProxyProtocol);
    }
    let window = &input[..input.len().min(V1_MAX_LEN)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if window.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::TooLong {
                len: window.len(),
                max: V1_MAX_LEN,
            });
        }
        return Ok(ParseStatus::Incomplete {
            needed: MIN_HEADER_LEN.max(input.len() + 1),
        });
    };
    if newline < PREFIX.len() || window[newline - 1] != b'\r' {
        return Err(ProxyHeaderError::V1Malformed("line must end with CRLF"));
    }
    let line = std::str::from_utf8(&window[PREFIX.len()..newline - 1])
        .map_err(|_| ProxyHeaderError::V1Malformed("not ASCII"))?;
    let (transport, addresses) = parse_line(line)?;
    let header = ProxyHeader::from_parts(
        Version::V1,
        Command::Proxy,
        transport,
        addresses,
        std::borrow::Cow::Borrowed(&[]),
        None,
    );
    Ok(ParseStatus::Complete {
        header,
        len: newline + 1,
    })
}

fn parse_line(line: &str) -> Result<(Transport, Addresses), ProxyHeaderError> {
    let malformed = ProxyHeaderError::V1Malformed;
    if !line.is_ascii() || line.bytes().any(|b| b.is_ascii_control()) {
        return Err(malformed("control or non-ASCII characters"));
    }
    let mut fields = line.split(' ');
    let protocol = fields.next().unwrap_or_default();
    if protocol == "UNKNOWN" {
        // "the receiver must ignore anything presented before the CRLF is found"
        return Ok((Transport::Unspec, Addresses::Unspec));
    }
    let (Some(source), Some(destination), Some(source_port), Some(destination_port), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed(
            "expected `TCP4|TCP6 <src> <dst> <sport> <dport>`",
        ));
    };
    let source_port = parse_port(source_port)?;
    let destination_port = parse_port(destination_port)?;
    let addresses = match protocol {
        "TCP4" => Addresses::Ipv4 {
            source: SocketAddrV4::new(parse_ip::<Ipv4Addr>(source)?, source_port),
            destination: SocketAddrV4::new(parse_ip::<Ipv4Addr>(destination)?, destination_port),
        },
        "TCP6" => Addresses::Ipv6 {
            source: SocketAddrV6::new(parse_ip::<Ipv6Addr>(source)?, source_port, 0, 0),
            destination: SocketAddrV6::new(
                parse_ip::<Ipv6Addr>(destination)?,
                destination_port,
                0,
                0,
            ),
        },
        _ => return Err(malformed("protocol must be TCP4, TCP6 or UNKNOWN")),
    };
    Ok((Transport::Stream, addresses))
}

fn parse_ip<T: FromStr>(text: &str) -> Result<T, ProxyHeaderError> {
    text.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("invalid address for the protocol"))
}

/// A port is 0–65535 in decimal without leading zeros.
fn parse_port(text: &str) -> Result<u16, ProxyHeaderError> {
    let invalid = ProxyHeaderError::V1Malformed("port must be 0-65535 without leading zeros");
    if text.is_empty() || text.len() > 5 || (text.len() > 1 && text.starts_with('0')) {
        return Err(invalid);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid);
    }
    text.parse().map_err(|_| invalid)
}

/// Appends the v1 line for `addresses` to `out`; returns its length.
pub fn write(out: &mut Vec<u8>, addresses: &Addresses) -> Result<usize, BuildError> {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = match addresses {
        Addresses::Unspec => out.write_all(b"PROXY UNKNOWN\r\n"),
        Addresses::Ipv4 {
            source,
            destination,
        } => write!(
            out,
            "PROXY TCP4 {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        ),
        Addresses::Ipv6 {
            source,
            destination,
        } => write!(
            out,
            "PROXY TCP6 {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        ),
        Addresses::Unix(_) => return Err(BuildError::NotRepresentableInV1("UNIX addresses")),
    };
    Ok(out.len() - start)
}
