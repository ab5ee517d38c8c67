//! SOCKS5 (RFC 1928) as ztunnel's port 15080 speaks it: no authentication, `CONNECT` only,
//! IPv4, IPv6 and domain-name targets; success is answered before the upstream is
//! connected (as Istio's ztunnel does). The parser is sans-IO and bounded: a greeting is at
//! most 257 bytes, a request at most 262.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xFF;
const CONNECT: u8 = 0x01;

/// The longest greeting (version, count, 255 methods).
pub const MAX_GREETING: usize = 2 + 255;
/// The longest request (header, a 255-byte domain with its length, the port).
pub const MAX_REQUEST: usize = 4 + 1 + 255 + 2;

/// A request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socks5Target {
    /// An address.
    Address(SocketAddr),
    /// A host name and port, to be resolved by the proxy.
    Domain(String, u16),
}

/// Why a SOCKS5 handshake failed; [`reply_code`](Socks5Error::reply_code) is what the client
/// is told when a reply is still due.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Socks5Error {
    /// Not version 5.
    #[error("not SOCKS5 (version byte {0})")]
    Version(u8),
    /// The client offers no "no authentication" method.
    #[error("no acceptable authentication method")]
    NoAcceptableMethod,
    /// A command other than CONNECT.
    #[error("command {0} not supported")]
    Command(u8),
    /// An unknown address type.
    #[error("address type {0} not supported")]
    AddressType(u8),
    /// A domain name that is empty or not UTF-8.
    #[error("invalid domain name")]
    Domain,
    /// The domain name resolves to nothing the proxy knows.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The client closed or stalled before a complete message.
    #[error("incomplete SOCKS5 message")]
    Incomplete,
}

impl Socks5Error {
    /// The RFC 1928 reply code for the failure.
    pub fn reply_code(&self) -> u8 {
        match self {
            Socks5Error::Command(_) => 0x07,
            Socks5Error::AddressType(_) => 0x08,
            Socks5Error::UnknownHost(_) => 0x04,
            _ => 0x01,
        }
    }
}

/// Parses a greeting: `Ok(None)` when more bytes are needed, else the bytes it took.
pub fn parse_greeting(bytes: &[u8]) -> Result<Option<usize>, Socks5Error> {
    let [version, count, ..] = bytes else {
        return Ok(None);
    };
    if *version != VERSION {
        return Err(Socks5Error::Version(*version));
    }
    let len = 2 + usize::from(*count);
    let Some(methods) = bytes.get(2..len) else {
        return Ok(None);
    };
    if methods.contains(&NO_AUTHENTICATION) {
        Ok(Some(len))
    } else {
        Err(Socks5Error::NoAcceptableMethod)
    }
}

/// Parses a request: `Ok(None)` when more bytes are needed, else the target and the bytes
/// it took.
pub fn parse_request(bytes: &[u8]) -> Result<Option<(Socks5Target, usize)>, Socks5Error> {
    let [version, command, _reserved, address_type, rest @ ..] = bytes else {
        return Ok(None);
    };
    if *version != VERSION {
        return Err(Socks5Error::Version(*version));
    }
    if *command != CONNECT {
        return Err(Socks5Error::Command(*command));
    }
    let port = |at: &[u8]| at.get(..2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let parsed = match *address_type {
        0x01 => rest
            .get(..4)
            .zip(rest.get(4..).and_then(port))
            .map(|(ip, port)| {
                let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
                (
                    Socks5Target::Address(SocketAddr::new(IpAddr::V4(ip), port)),
                    4 + 4 + 2,
                )
            }),
        0x04 => rest
            .get(..16)
            .zip(rest.get(16..).and_then(port))
            .map(|(ip, port)| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(ip);
                let ip = Ipv6Addr::from(octets);
                (
                    Socks5Target::Address(SocketAddr::new(IpAddr::V6(ip), port)),
                    4 + 16 + 2,
                )
            }),
        0x03 => {
            let Some(&len) = rest.first() else {
                return Ok(None);
            };
            let len = usize::from(len);
            match rest.get(1..1 + len).zip(rest.get(1 + len..).and_then(port)) {
                None => None,
                Some((name, port)) => {
                    let name = std::str::from_utf8(name).map_err(|_| Socks5Error::Domain)?;
                    if name.is_empty() {
                        return Err(Socks5Error::Domain);
                    }
                    Some((Socks5Target::Domain(name.to_owned(), port), 4 + 1 + len + 2))
                }
            }
        }
        other => return Err(Socks5Error::AddressType(other)),
    };
    Ok(parsed)
}

/// The reply to a request: `code` 0 is success; the bound address is reported as
/// `0.0.0.0:0`.
pub fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 0x01, 0, 0, 0, 0, 0, 0]
}

/// Runs the server side of the handshake on `stream` within `timeout`: the greeting
/// answered, the request read and its target resolved with `resolve` (domain names), and
/// success answered. A failure is answered with its reply code where the protocol allows,
/// then returned; the caller closes the connection.
pub async fn accept_socks5<S>(
    stream: &mut S,
    timeout: Duration,
    resolve: impl FnOnce(&str) -> Option<IpAddr>,
) -> Result<SocketAddr, Socks5Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let mut buffer = Vec::with_capacity(64);
        match read_message(stream, &mut buffer, MAX_GREETING, parse_greeting).await {
            Ok(_) => {}
            Err(Socks5Error::NoAcceptableMethod) => {
                let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
                return Err(Socks5Error::NoAcceptableMethod);
            }
            Err(error) => return Err(error),
        }
        stream
            .write_all(&[VERSION, NO_AUTHENTICATION])
            .await
            .map_err(|_| Socks5Error::Incomplete)?;
        buffer.clear();
        let target = match read_message(stream, &mut buffer, MAX_REQUEST, parse_request).await {
            Ok((target, _)) => target,
            Err(error) => {
                let _ = stream.write_all(&reply(error.reply_code())).await;
                return Err(error);
            }
        };
        let address = match target {
            Socks5Target::Address(address) => address,
            Socks5Target::Domain(name, port) => match resolve(&name) {
                Some(ip) => SocketAddr::new(ip, port),
                None => {
                    let error = Socks5Error::UnknownHost(name);
                    let _ = stream.write_all(&reply(error.reply_code())).await;
                    return Err(error);
                }
            },
        };
        stream
            .write_all(&reply(0))
            .await
            .map_err(|_| Socks5Error::Incomplete)?;
        Ok(address)
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(Socks5Error::Incomplete))
}

/// Reads until `parse` completes, never more than `max` bytes and never past the message.
async fn read_message<S, T>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
    max: usize,
    parse: impl Fn(&[u8]) -> Result<Option<T>, Socks5Error>,
) -> Result<T, Socks5Error>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(parsed) = parse(buffer)? {
            return Ok(parsed);
        }
        if buffer.len() >= max {
            return Err(Socks5Error::Incomplete);
        }
        // One byte at a time: the client may pipeline payload after the request, which
        // must stay in the stream (the handshake is a few dozen bytes).
        let byte = stream
            .read_u8()
            .await
            .map_err(|_| Socks5Error::Incomplete)?;
        buffer.push(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_incrementally_and_refuse_what_is_not_supported() {
        assert_eq!(parse_greeting(&[5]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 2]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 2, 0]), Ok(Some(4)));
        assert_eq!(
            parse_greeting(&[5, 1, 2]),
            Err(Socks5Error::NoAcceptableMethod)
        );
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(Socks5Error::Version(4)));
        let ipv4 = [5, 1, 0, 1, 10, 96, 0, 20, 0, 80];
        assert_eq!(
            parse_request(&ipv4),
            Ok(Some((
                Socks5Target::Address("10.96.0.20:80".parse().unwrap()),
                10
            )))
        );
        assert_eq!(parse_request(&ipv4[..9]), Ok(None));
        let mut domain = vec![5, 1, 0, 3, 3];
        domain.extend_from_slice(b"svc");
        domain.extend_from_slice(&[1, 187]);
        assert_eq!(
            parse_request(&domain),
            Ok(Some((Socks5Target::Domain("svc".into(), 443), 10)))
        );
        assert_eq!(parse_request(&[5, 2, 0, 1]), Err(Socks5Error::Command(2)));
        assert_eq!(
            parse_request(&[5, 1, 0, 9]),
            Err(Socks5Error::AddressType(9))
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(Socks5Error::Domain)
        );
        let mut ipv6 = vec![5, 1, 0, 4];
        ipv6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ipv6.extend_from_slice(&[0x1f, 0x90]);
        assert_eq!(
            parse_request(&ipv6),
            Ok(Some((
                Socks5Target::Address("[::1]:8080".parse().unwrap()),
                22
            )))
        );
    }

    #[tokio::test]
    async fn a_handshake_answers_success_and_leaves_the_payload_unread() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let mut request = vec![5, 1, 0, 5, 1, 0, 3, 3];
        request.extend_from_slice(b"svc");
        request.extend_from_slice(&[0, 80]);
        request.extend_from_slice(b"payload");
        client.write_all(&request).await.unwrap();
        let target = accept_socks5(&mut server, Duration::from_secs(1), |name| {
            (name == "svc").then(|| "10.96.0.20".parse().unwrap())
        })
        .await
        .unwrap();
        assert_eq!(target, "10.96.0.20:80".parse().unwrap());
        let mut answers = [0u8; 12];
        client.read_exact(&mut answers).await.unwrap();
        assert_eq!(answers, [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let mut payload = [0u8; 7];
        server.read_exact(&mut payload).await.unwrap();
        assert_eq!(&payload, b"payload");
    }

    #[tokio::test]
    async fn garbage_and_unknown_hosts_get_their_reply_codes() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let refused = accept_socks5(&mut server, Duration::from_secs(1), |_| None).await;
        assert_eq!(refused, Err(Socks5Error::Version(b'G')));

        let (mut client, mut server) = tokio::io::duplex(1024);
        let mut request = vec![5, 1, 0, 5, 1, 0, 3, 7];
        request.extend_from_slice(b"unknown");
        request.extend_from_slice(&[0, 80]);
        client.write_all(&request).await.unwrap();
        let refused = accept_socks5(&mut server, Duration::from_secs(1), |_| None).await;
        assert_eq!(refused, Err(Socks5Error::UnknownHost("unknown".into())));
        let mut answers = [0u8; 12];
        client.read_exact(&mut answers).await.unwrap();
        assert_eq!(answers[3], 0x04, "host unreachable");

        let (_client, mut server) = tokio::io::duplex(1024);
        let stalled = accept_socks5(&mut server, Duration::from_millis(50), |_| None).await;
        assert_eq!(stalled, Err(Socks5Error::Incomplete));
    }
}
