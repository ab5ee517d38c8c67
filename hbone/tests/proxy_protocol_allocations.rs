//! The PROXY codec's hot paths do not allocate: parsing borrows from the input, and building
//! writes into a caller's reused buffer (performance spec B4).
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::alloc::System;

use hbone::proxy_protocol::{
    Addresses, Command, ParseOptions, ParseStatus, Transport, V2Builder, parse,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/client";

fn build(out: &mut Vec<u8>, addresses: &Addresses) -> usize {
    V2Builder::new(out, Command::Proxy, Transport::Stream, addresses)
        .peer_identity(IDENTITY)
        .unwrap()
        .authority("example.com")
        .unwrap()
        .finish_with_crc32c()
        .unwrap()
}

// The allocator statistics are process-wide, so this file has its own single-threaded main
// (`harness = false`): nothing else runs inside the measured region.
fn main() {
    parse_and_build_into_a_reused_buffer_do_not_allocate();
    println!("test parse_and_build_into_a_reused_buffer_do_not_allocate ... ok");
    println!("1 passed, 0 failed");
}

fn parse_and_build_into_a_reused_buffer_do_not_allocate() {
    let addresses = Addresses::from_socket_addrs(
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::2]:80".parse().unwrap(),
    );
    let options = ParseOptions::default();
    let mut buffer = Vec::with_capacity(256);
    build(&mut buffer, &addresses);

    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        buffer.clear();
        build(&mut buffer, &addresses);
        let Ok(ParseStatus::Complete { header, len }) = parse(&buffer, &options) else {
            panic!("must parse");
        };
        assert_eq!(len, buffer.len());
        assert_eq!(header.peer_identity(), Some(IDENTITY));
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "{stats:?}"
    );
}
