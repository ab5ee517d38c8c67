//! B4 (performance spec §6): PROXY protocol parse and build, ours against the `ppp` crate
//! (ztunnel's PROXY implementation), measured in the same run.
//!
//! Parse cases do the work a receiver needs: validate the header, then find Istio's peer
//! identity (TLV 0xD0). For `ppp` that is `Header::try_from` plus a TLV walk; ours validates
//! every TLV up front (strict mode). Build cases write a header with the identity TLV; ours
//! reuses one buffer (no allocation), `ppp`'s builder allocates a fresh `Vec` per header.
//!
//! Run: `cargo bench -p hbone --bench proxy_protocol` (or `scripts/bench` for the ratio table).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use hbone::proxy_protocol::{
    Addresses, Command, ParseOptions, ParseStatus, Transport, V2Builder, parse, tlv, write_v1,
};

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

struct Case {
    name: &'static str,
    source: SocketAddr,
    destination: SocketAddr,
    identity: bool,
}

const fn case(name: &'static str, identity: bool, v6: bool) -> (&'static str, bool, bool) {
    (name, identity, v6)
}

fn cases() -> Vec<Case> {
    [
        case("tcp4_identity", true, false),
        case("tcp6_identity", true, true),
        case("tcp4_bare", false, false),
    ]
    .into_iter()
    .map(|(name, identity, v6)| {
        let (source, destination) = if v6 {
            ("[2001:db8::1]:40000", "[2001:db8::2]:80")
        } else {
            ("10.0.0.1:40000", "10.10.0.1:80")
        };
        Case {
            name,
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            identity,
        }
    })
    .collect()
}

fn ours_build(out: &mut Vec<u8>, case: &Case) -> usize {
    let addresses = Addresses::from_socket_addrs(case.source, case.destination);
    let builder = V2Builder::new(out, Command::Proxy, Transport::Stream, &addresses);
    if case.identity {
        builder.peer_identity(IDENTITY).unwrap().finish()
    } else {
        builder.finish()
    }
}

fn ppp_build(case: &Case) -> Vec<u8> {
    let builder = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (case.source, case.destination),
    );
    let builder = if case.identity {
        builder
            .write_tlv(tlv::ISTIO_PEER_IDENTITY, IDENTITY.as_bytes())
            .unwrap()
    } else {
        builder
    };
    builder.build().unwrap()
}

fn parse_benches(c: &mut Criterion) {
    let options = ParseOptions::default();
    for case in cases() {
        let mut wire = Vec::new();
        ours_build(&mut wire, &case);
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut group = c.benchmark_group(format!("proxy_v2_parse/{}", case.name));
        group.bench_function("ours", |b| {
            b.iter(|| {
                let Ok(ParseStatus::Complete { header, len }) = parse(black_box(&wire), &options)
                else {
                    panic!("benchmark input must parse");
                };
                black_box((
                    header.addresses.source(),
                    header.peer_identity().map(str::len),
                    len,
                ))
            })
        });
        group.bench_function("baseline-ppp", |b| {
            b.iter(|| {
                let header = ppp::v2::Header::try_from(black_box(&wire[..])).unwrap();
                let identity = header.tlvs().find_map(|t| match t {
                    Ok(t) if t.kind == tlv::ISTIO_PEER_IDENTITY => {
                        std::str::from_utf8(&t.value).ok().map(str::len)
                    }
                    _ => None,
                });
                black_box((header.addresses, identity, header.len()))
            })
        });
        group.finish();
    }
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /";
    let mut group = c.benchmark_group("proxy_v1_parse/tcp4");
    group.bench_function("ours", |b| {
        b.iter(|| black_box(parse(black_box(line), &options).unwrap()))
    });
    group.bench_function("baseline-ppp", |b| {
        b.iter(|| black_box(ppp::HeaderResult::parse(black_box(line))))
    });
    group.finish();
}

fn build_benches(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("proxy_v2_build/{}", case.name));
        let mut reused = Vec::with_capacity(256);
        group.bench_function("ours", |b| {
            b.iter(|| {
                reused.clear();
                black_box(ours_build(&mut reused, black_box(&case)));
            })
        });
        group.bench_function("baseline-ppp", |b| {
            b.iter(|| black_box(ppp_build(black_box(&case))))
        });
        group.finish();
    }
    let addresses = Addresses::from_socket_addrs(
        "192.168.0.1:56324".parse().unwrap(),
        "192.168.0.11:443".parse().unwrap(),
    );
    let mut group = c.benchmark_group("proxy_v1_build/tcp4");
    let mut reused = Vec::with_capacity(128);
    group.bench_function("ours", |b| {
        b.iter(|| {
            reused.clear();
            black_box(write_v1(&mut reused, black_box(&addresses)).unwrap());
        })
    });
    let theirs = ppp::v1::Addresses::new_tcp4([192, 168, 0, 1], [192, 168, 0, 11], 56324, 443);
    group.bench_function("baseline-ppp", |b| {
        b.iter(|| black_box(ppp::v1::Addresses::to_string(black_box(&theirs))))
    });
    group.finish();
}

criterion_group!(benches, parse_benches, build_benches);
criterion_main!(benches);
