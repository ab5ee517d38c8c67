//! Table-driven tests of the PROXY codec, one row per rule (hbone spec §4, checklist 17–20).

use super::*;
use std::net::SocketAddr;

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

fn complete(input: &[u8], options: &ParseOptions) -> (ProxyHeader<'static>, usize) {
    match parse(input, options) {
        Ok(ParseStatus::Complete { header, len }) => (header.into_owned(), len),
        other => panic!("expected a complete header, got {other:?}"),
    }
}

fn error(input: &[u8], options: &ParseOptions) -> ProxyHeaderError {
    match parse(input, options) {
        Err(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn v2(command_byte: u8, family_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command_byte);
    out.push(family_byte);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

const IPV4_BLOCK: [u8; 12] = [10, 0, 0, 1, 10, 10, 0, 1, 0x9c, 0x40, 0, 80];

/// Checklist 17: the exact bytes ztunnel sends (spec §4.1 worked example).
#[test]
fn v2_writer_matches_the_ztunnel_example_byte_for_byte() {
    let mut expected = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00,
        0x3a, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x0a, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x50, 0xd0, 0x00,
        0x2b,
    ];
    expected.extend_from_slice(IDENTITY.as_bytes());
    assert_eq!(expected.len(), 74);

    let source: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let destination: SocketAddr = "10.10.0.1:80".parse().unwrap();
    let addresses = Addresses::from_socket_addrs(source, destination);
    let mut out = b"prefix".to_vec();
    let len = V2Builder::new(&mut out, Command::Proxy, Transport::Stream, &addresses)
        .peer_identity(IDENTITY)
        .unwrap()
        .finish();
    assert_eq!(len, 74);
    assert_eq!(&out[..6], b"prefix", "the builder appends");
    assert_eq!(&out[6..], &expected[..]);

    let mut sandwich = Vec::new();
    ProxyHeader::sandwich(source, destination, Some(IDENTITY))
        .encode(&mut sandwich)
        .unwrap();
    assert_eq!(
        sandwich, expected,
        "ProxyHeader::sandwich builds the same bytes"
    );

    let (header, len) = complete(&expected, &ParseOptions::default());
    assert_eq!(len, 74);
    assert_eq!(header.addresses.source(), Some(source));
    assert_eq!(header.addresses.destination(), Some(destination));
    assert_eq!(header.peer_identity(), Some(IDENTITY));
}

/// Checklist 18: mixed IPv4/IPv6 endpoints give AF_UNSPEC|STREAM with no address block, as
/// ztunnel (through ppp 2.3) sends.
#[test]
fn v2_writer_mixed_families_is_unspec_with_empty_address_block() {
    let addresses =
        Addresses::from_socket_addrs("10.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap());
    let mut out = Vec::new();
    V2Builder::new(&mut out, Command::Proxy, Transport::Stream, &addresses)
        .peer_identity(IDENTITY)
        .unwrap()
        .finish();
    assert_eq!(out[13], 0x01);
    assert_eq!(u16::from_be_bytes([out[14], out[15]]), 3 + 43);
    let (header, _) = complete(&out, &ParseOptions::default());
    assert_eq!(header.addresses, Addresses::Unspec);
    assert_eq!(
        header.peer_identity(),
        Some(IDENTITY),
        "TLVs follow an empty address block"
    );
}

/// Checklist 19: the v2 reader's rejections.
#[test]
fn v2_reader_rejects_invalid_headers() {
    let options = ParseOptions::default();
    let rows: Vec<(&str, Vec<u8>, ProxyHeaderError)> = vec![
        (
            "version 1 nibble",
            v2(0x11, 0x11, &IPV4_BLOCK),
            ProxyHeaderError::UnsupportedVersion(1),
        ),
        (
            "version 3 nibble",
            v2(0x31, 0x11, &IPV4_BLOCK),
            ProxyHeaderError::UnsupportedVersion(3),
        ),
        (
            "unknown command",
            v2(0x22, 0x11, &IPV4_BLOCK),
            ProxyHeaderError::UnknownCommand(2),
        ),
        (
            "unknown family",
            v2(0x21, 0x41, &IPV4_BLOCK),
            ProxyHeaderError::UnknownFamily(4),
        ),
        (
            "unknown transport",
            v2(0x21, 0x13, &IPV4_BLOCK),
            ProxyHeaderError::UnknownTransport(3),
        ),
        (
            "address block shorter than the family needs",
            v2(0x21, 0x21, &IPV4_BLOCK),
            ProxyHeaderError::AddressBlockTooShort {
                needed: 36,
                available: 12,
            },
        ),
        (
            "truncated TLV",
            v2(
                0x21,
                0x11,
                &[&IPV4_BLOCK[..], &[0xd0, 0x00, 0x05, b'a']].concat(),
            ),
            ProxyHeaderError::Tlv(TlvError::Truncated { offset: 0 }),
        ),
        (
            "broken signature",
            [&V2_SIGNATURE[..11], &[0x0b, 0x21, 0x11, 0, 0]].concat(),
            ProxyHeaderError::NotProxyProtocol,
        ),
        (
            "over the size limit",
            v2(
                0x21,
                0x11,
                &[&IPV4_BLOCK[..], &[0x04, 0x10, 0x00], &[0u8; 4096][..]].concat(),
            ),
            ProxyHeaderError::TooLong {
                len: 16 + 12 + 3 + 4096,
                max: DEFAULT_MAX_V2_LEN,
            },
        ),
    ];
    for (rule, input, expected) in rows {
        assert_eq!(error(&input, &options), expected, "{rule}");
    }
}

/// Checklist 19: the size limit is checked from the length field, before the body arrives.
#[test]
fn v2_size_limit_applies_before_the_body_is_buffered() {
    let mut input = v2(0x21, 0x11, &[]);
    input[14..16].copy_from_slice(&60_000u16.to_be_bytes());
    let options = ParseOptions {
        max_v2_len: 1024,
        ..ParseOptions::default()
    };
    assert_eq!(
        error(&input, &options),
        ProxyHeaderError::TooLong {
            len: 60_016,
            max: 1024
        }
    );
}

/// Checklist 19: every address family and both commands.
#[test]
fn v2_reader_address_families_and_commands() {
    let ipv6_block: Vec<u8> = [
        [0x20, 0x01, 0x0d, 0xb8].as_slice(),
        &[0; 11],
        &[1],
        &[0; 15],
        &[2],
        &[0, 1, 0, 2],
    ]
    .concat();
    let mut unix_block = vec![0u8; 216];
    unix_block[..4].copy_from_slice(b"/src");
    unix_block[108..112].copy_from_slice(b"/dst");
    let options = ParseOptions::default();

    let (h, _) = complete(&v2(0x21, 0x11, &IPV4_BLOCK), &options);
    assert_eq!(
        (h.command, h.transport),
        (Command::Proxy, Transport::Stream)
    );
    assert_eq!(
        h.addresses.source(),
        Some("10.0.0.1:40000".parse().unwrap())
    );

    let (h, _) = complete(&v2(0x21, 0x22, &ipv6_block), &options);
    assert_eq!(h.transport, Transport::Datagram);
    assert_eq!(
        h.addresses.source(),
        Some("[2001:db8::1]:1".parse().unwrap())
    );
    assert_eq!(h.addresses.destination(), Some("[::2]:2".parse().unwrap()));

    let (h, _) = complete(&v2(0x21, 0x31, &unix_block), &options);
    let Addresses::Unix(unix) = &h.addresses else {
        panic!("{h:?}")
    };
    assert_eq!(&unix.source[..5], b"/src\0");
    assert_eq!(&unix.destination[..5], b"/dst\0");

    let (h, len) = complete(&v2(0x20, 0x00, &[]), &options);
    assert_eq!(
        (h.command, h.addresses.clone(), len),
        (Command::Local, Addresses::Unspec, 16)
    );

    // LOCAL with an address block: the receiver must still skip `len` bytes.
    let (h, len) = complete(
        &[v2(0x20, 0x11, &IPV4_BLOCK), b"payload".to_vec()].concat(),
        &options,
    );
    assert_eq!((h.command, len), (Command::Local, 28));
}

/// Checklist 19: registered TLVs are typed, unknown ones are kept raw, in wire order.
#[test]
fn v2_reader_decodes_every_registered_tlv() {
    let mut wire = Vec::new();
    let sub_tlvs = [
        RawTlv {
            kind: tlv::SSL_VERSION,
            value: b"TLSv1.3",
        },
        RawTlv {
            kind: tlv::SSL_CN,
            value: b"client.example",
        },
        RawTlv {
            kind: tlv::SSL_CIPHER,
            value: b"TLS_AES_128_GCM_SHA256",
        },
        RawTlv {
            kind: tlv::SSL_SIG_ALG,
            value: b"ECDSA-SHA256",
        },
        RawTlv {
            kind: tlv::SSL_KEY_ALG,
            value: b"EC256",
        },
    ];
    V2Builder::new(
        &mut wire,
        Command::Proxy,
        Transport::Stream,
        &Addresses::Unspec,
    )
    .alpn(b"h2")
    .and_then(|b| b.authority("example.com"))
    .and_then(|b| b.noop(5))
    .and_then(|b| b.unique_id(b"conn-42"))
    .and_then(|b| b.ssl(tlv::CLIENT_SSL | tlv::CLIENT_CERT_CONN, 0, &sub_tlvs))
    .and_then(|b| b.netns("blue"))
    .and_then(|b| b.peer_identity(IDENTITY))
    .and_then(|b| b.tlv(0xE3, &[1, 2, 3]))
    .unwrap()
    .finish_with_crc32c()
    .unwrap();
    let (header, _) = complete(&wire, &ParseOptions::default());
    let tlvs: Vec<Tlv<'_>> = header.tlvs().collect();
    assert_eq!(tlvs.len(), 9);
    assert_eq!(tlvs[0], Tlv::Alpn(b"h2"));
    assert_eq!(tlvs[1], Tlv::Authority("example.com"));
    assert_eq!(tlvs[2], Tlv::Noop(&[0; 5]));
    assert_eq!(tlvs[3], Tlv::UniqueId(b"conn-42"));
    let Tlv::Ssl(ssl) = tlvs[4] else {
        panic!("{:?}", tlvs[4])
    };
    assert!(ssl.is_tls());
    assert_eq!((ssl.client, ssl.verify), (0x03, 0));
    assert_eq!(
        ssl.sub_tlvs().collect::<Vec<_>>(),
        vec![
            SslSubTlv::Version("TLSv1.3"),
            SslSubTlv::CommonName("client.example"),
            SslSubTlv::Cipher("TLS_AES_128_GCM_SHA256"),
            SslSubTlv::SignatureAlgorithm("ECDSA-SHA256"),
            SslSubTlv::KeyAlgorithm("EC256"),
        ]
    );
    assert_eq!(tlvs[5], Tlv::Netns("blue"));
    assert_eq!(tlvs[6], Tlv::PeerIdentity(IDENTITY));
    assert_eq!(
        tlvs[7],
        Tlv::Other(RawTlv {
            kind: 0xE3,
            value: &[1, 2, 3]
        })
    );
    assert!(matches!(tlvs[8], Tlv::Crc32c(_)));
    assert_eq!(header.alpn(), Some(&b"h2"[..]));
    assert_eq!(header.authority(), Some("example.com"));
    assert_eq!(header.unique_id(), Some(&b"conn-42"[..]));
    assert_eq!(
        header.raw_tlvs().map(|t| t.kind).collect::<Vec<_>>(),
        [1, 2, 4, 5, 0x20, 0x30, 0xd0, 0xe3, 3]
    );
}

/// Checklist 19: CRC32C is verified, and a corrupted header is rejected.
#[test]
fn v2_crc32c_is_verified() {
    let mut wire = Vec::new();
    let addresses =
        Addresses::from_socket_addrs("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
    V2Builder::new(&mut wire, Command::Proxy, Transport::Stream, &addresses)
        .peer_identity(IDENTITY)
        .unwrap()
        .finish_with_crc32c()
        .unwrap();
    complete(&wire, &ParseOptions::default());
    for strictness in [Strictness::Strict, Strictness::Lenient] {
        let mut corrupted = wire.clone();
        corrupted[17] ^= 0x01; // a byte of the source address
        let options = ParseOptions {
            strictness,
            ..ParseOptions::default()
        };
        assert!(
            matches!(
                error(&corrupted, &options),
                ProxyHeaderError::Crc32cMismatch { .. }
            ),
            "{strictness:?}"
        );
    }
}

/// A known CRC32C vector: the RFC 3720 check value of "123456789" is 0xE3069283.
#[test]
fn crc32c_implementation_matches_the_standard_check_value() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

/// Strict mode rejects malformed registered TLVs; lenient mode exposes them raw and cuts a
/// malformed region at the first bad TLV.
#[test]
fn strict_and_lenient_tlv_handling() {
    let bad_values: [(u8, &[u8]); 6] = [
        (tlv::ALPN, b""),
        (tlv::AUTHORITY, b"\xff"),
        (tlv::CRC32C, b"\x00\x00"),
        (tlv::UNIQUE_ID, &[7; 129]),
        (tlv::SSL, b"\x01\x00"),
        (tlv::NETNS, "é".as_bytes()),
    ];
    for (kind, value) in bad_values {
        let len = u16::try_from(value.len()).unwrap().to_be_bytes();
        let body = [&IPV4_BLOCK[..], &[kind, len[0], len[1]], value].concat();
        let input = v2(0x21, 0x11, &body);
        assert!(
            matches!(error(&input, &ParseOptions::default()), ProxyHeaderError::Tlv(TlvError::InvalidValue { kind: k, .. }) if k == kind),
            "strict rejects type {kind:#x}"
        );
        let lenient = ParseOptions {
            strictness: Strictness::Lenient,
            ..ParseOptions::default()
        };
        let (header, _) = complete(&input, &lenient);
        assert_eq!(
            header.tlvs().collect::<Vec<_>>(),
            vec![Tlv::Other(RawTlv { kind, value })]
        );
    }
    let body = [&IPV4_BLOCK[..], &[0xd0, 0, 1, b'x'], &[0xd1, 0, 9, b'y']].concat();
    let input = v2(0x21, 0x11, &body);
    let lenient = ParseOptions {
        strictness: Strictness::Lenient,
        ..ParseOptions::default()
    };
    let (header, len) = complete(&input, &lenient);
    assert_eq!(len, input.len(), "the whole declared length is consumed");
    assert_eq!(
        header.tlvs().collect::<Vec<_>>(),
        vec![Tlv::PeerIdentity("x")]
    );
}

/// Checklist 20: the v1 reader.
#[test]
fn v1_reader_rules() {
    let options = ParseOptions::default();
    let accepted: [(&[u8], Addresses); 4] = [
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            Addresses::from_socket_addrs(
                "192.168.0.1:56324".parse().unwrap(),
                "192.168.0.11:443".parse().unwrap(),
            ),
        ),
        (
            b"PROXY TCP6 ffff:f::1 2001:db8::2 0 65535\r\n",
            Addresses::from_socket_addrs(
                "[ffff:f::1]:0".parse().unwrap(),
                "[2001:db8::2]:65535".parse().unwrap(),
            ),
        ),
        (b"PROXY UNKNOWN\r\n", Addresses::Unspec),
        (
            b"PROXY UNKNOWN ffff:f::1 2001:db8::2 1 2\r\n",
            Addresses::Unspec,
        ),
    ];
    for (input, addresses) in accepted {
        let with_payload = [input, b"GET /"].concat();
        let (header, len) = complete(&with_payload, &options);
        assert_eq!((header.version, len), (Version::V1, input.len()));
        assert_eq!(
            header.addresses,
            addresses,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    let full_ipv6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let longest_tcp6 = format!("PROXY TCP6 {full_ipv6} {full_ipv6} 65535 65535\r\n");
    assert_eq!(complete(longest_tcp6.as_bytes(), &options).1, 104);
    let longest = format!("PROXY UNKNOWN {full_ipv6} {full_ipv6} 65535 65535\r\n");
    assert_eq!(longest.len(), V1_MAX_LEN, "the spec's worst case");
    complete(longest.as_bytes(), &options);

    let rejected: [(&str, &[u8]); 13] = [
        ("LF without CR", b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\n"),
        ("lower-case protocol", b"PROXY tcp4 1.1.1.1 2.2.2.2 1 2\r\n"),
        ("unknown protocol", b"PROXY UDP4 1.1.1.1 2.2.2.2 1 2\r\n"),
        ("IPv6 address in TCP4", b"PROXY TCP4 ::1 ::2 1 2\r\n"),
        (
            "IPv4 address in TCP6",
            b"PROXY TCP6 1.1.1.1 2.2.2.2 1 2\r\n",
        ),
        (
            "leading zero in port",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 01 2\r\n",
        ),
        (
            "leading zero in address",
            b"PROXY TCP4 01.1.1.1 2.2.2.2 1 2\r\n",
        ),
        (
            "port out of range",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 65536 2\r\n",
        ),
        ("signed port", b"PROXY TCP4 1.1.1.1 2.2.2.2 +1 2\r\n"),
        ("double space", b"PROXY TCP4  1.1.1.1 2.2.2.2 1 2\r\n"),
        ("missing port", b"PROXY TCP4 1.1.1.1 2.2.2.2 1\r\n"),
        ("extra field", b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2 3\r\n"),
        ("wrong prefix", b"PROXZ TCP4 1.1.1.1 2.2.2.2 1 2\r\n"),
    ];
    for (rule, input) in rejected {
        assert!(parse(input, &options).is_err(), "{rule}");
    }
    let too_long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 120]].concat();
    assert_eq!(
        error(&too_long, &options),
        ProxyHeaderError::TooLong { len: 107, max: 107 }
    );
}

/// Receivers are configured, never auto-detecting: a listener set to one version rejects the
/// other, and bytes that are neither are rejected.
#[test]
fn accepted_versions_are_enforced() {
    let v1 = b"PROXY UNKNOWN\r\n";
    let v2_local = v2(0x20, 0x00, &[]);
    let only_v2 = ParseOptions::v2_only();
    let only_v1 = ParseOptions {
        versions: AcceptVersions::V1,
        ..ParseOptions::default()
    };
    assert_eq!(
        error(v1, &only_v2),
        ProxyHeaderError::VersionNotAccepted("v1")
    );
    assert_eq!(
        error(&v2_local, &only_v1),
        ProxyHeaderError::VersionNotAccepted("v2")
    );
    assert_eq!(
        error(b"GET / HTTP/1.1\r\n", &ParseOptions::default()),
        ProxyHeaderError::NotProxyProtocol
    );
}

/// Fed byte by byte, the parser asks for more with a bound that never exceeds the header length
/// (so a reader never consumes payload), then completes.
#[test]
fn incremental_parsing_never_overreads() {
    let mut v2_wire = Vec::new();
    let addresses =
        Addresses::from_socket_addrs("[::1]:1".parse().unwrap(), "[::2]:2".parse().unwrap());
    V2Builder::new(&mut v2_wire, Command::Proxy, Transport::Stream, &addresses)
        .peer_identity(IDENTITY)
        .unwrap()
        .finish_with_crc32c()
        .unwrap();
    let inputs: [&[u8]; 4] = [
        &v2_wire,
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        &v2(0x20, 0x00, &[]),
    ];
    for input in inputs {
        for end in 0..input.len() {
            match parse(&input[..end], &ParseOptions::default()) {
                Ok(ParseStatus::Incomplete { needed }) => {
                    assert!(
                        needed > end && needed <= input.len(),
                        "needed {needed} at {end}"
                    )
                }
                other => panic!("prefix of {end} bytes: {other:?}"),
            }
        }
        let (_, len) = complete(input, &ParseOptions::default());
        assert_eq!(len, input.len());
    }
}

/// A decoded header encodes back to the same bytes.
#[test]
fn encode_round_trips() {
    let mut wire = Vec::new();
    let addresses =
        Addresses::from_socket_addrs("10.1.2.3:4".parse().unwrap(), "10.5.6.7:8".parse().unwrap());
    V2Builder::new(&mut wire, Command::Proxy, Transport::Stream, &addresses)
        .authority("a.example")
        .unwrap()
        .finish_with_crc32c()
        .unwrap();
    let inputs: [&[u8]; 3] = [
        &wire,
        b"PROXY TCP4 1.2.3.4 5.6.7.8 9 10\r\n",
        b"PROXY UNKNOWN\r\n",
    ];
    for input in inputs {
        let (header, _) = complete(input, &ParseOptions::default());
        let mut out = Vec::new();
        header.encode(&mut out).unwrap();
        assert_eq!(out, input);
    }
}

/// The builder rejects what a parser would reject, and leaves the buffer as it found it.
#[test]
fn builder_rejections_restore_the_buffer() {
    let mut out = b"keep".to_vec();
    let result = V2Builder::new(
        &mut out,
        Command::Proxy,
        Transport::Stream,
        &Addresses::Unspec,
    )
    .unique_id(&[0; 129]);
    assert!(matches!(
        result,
        Err(BuildError::InvalidTlvValue {
            kind: tlv::UNIQUE_ID,
            ..
        })
    ));
    assert_eq!(out, b"keep");
    let result = V2Builder::new(
        &mut out,
        Command::Proxy,
        Transport::Stream,
        &Addresses::Unspec,
    )
    .noop(65_000)
    .and_then(|b| b.noop(600));
    assert!(matches!(result, Err(BuildError::TooLong(_))));
    assert_eq!(out, b"keep");
    let mut out = Vec::new();
    let len = V2Builder::new(
        &mut out,
        Command::Proxy,
        Transport::Stream,
        &Addresses::Unspec,
    )
    .noop(65_532)
    .unwrap()
    .finish();
    assert_eq!(len, 16 + 65_535, "the largest body fits exactly");
    let unix = Addresses::Unix(Box::new(UnixAddresses {
        source: [0; 108],
        destination: [0; 108],
    }));
    assert!(matches!(
        write_v1(&mut out, &unix),
        Err(BuildError::NotRepresentableInV1(_))
    ));
}

/// A CRC32C TLV may sit anywhere among the TLVs; its value covers the finished header.
#[test]
fn crc32c_placeholder_keeps_its_position() {
    let mut wire = Vec::new();
    V2Builder::new(
        &mut wire,
        Command::Proxy,
        Transport::Stream,
        &Addresses::Unspec,
    )
    .crc32c()
    .and_then(|b| b.peer_identity(IDENTITY))
    .unwrap()
    .finish();
    let (header, _) = complete(&wire, &ParseOptions::default());
    let kinds: Vec<u8> = header.raw_tlvs().map(|t| t.kind).collect();
    assert_eq!(kinds, [tlv::CRC32C, tlv::ISTIO_PEER_IDENTITY]);
    let mut corrupted = wire.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    assert!(matches!(
        error(&corrupted, &ParseOptions::default()),
        ProxyHeaderError::Crc32cMismatch { .. }
    ));
}
