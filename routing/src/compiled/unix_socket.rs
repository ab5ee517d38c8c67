//! Envoy Gateway `Backend` endpoints on Unix domain sockets (`endpoints[].unix.path`). The
//! forwarder, its pools and the balancers name endpoints by socket address, so a socket path
//! is given a stand-in address: one of the IPv6 discard-only prefix `100::/64` (RFC 6666,
//! never routed), its last 64 bits a fixed hash of the path — the same path gets the same
//! address in every configuration, so that pools and health survive reloads. The runtime's
//! connector opens the path for that address ([`Config::backend_unix_sockets`](crate::model::Config::backend_unix_sockets)
//! lists them).
//!
//! ```
//! use routing::compiled::unix_socket::{is_unix_socket_address, unix_socket_address};
//!
//! let address = unix_socket_address("/run/app.sock");
//! assert!(is_unix_socket_address(&address));
//! assert_eq!(address, unix_socket_address("/run/app.sock"));
//! assert_ne!(address, unix_socket_address("/run/other.sock"));
//! ```

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_PATH_BYTES: usize = 107;

/// The first 64 bits of every stand-in address (`100::/64`).
const PREFIX: u64 = 0x0100_0000_0000_0000;

/// The stand-in address of the socket at `path`.
pub fn unix_socket_address(path: &str) -> SocketAddr {
    // FNV-1a: fixed, so that the address is the same in every process and configuration.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let bits = (u128::from(PREFIX) << 64) | u128::from(hash);
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(bits), 0, 0, 0))
}

/// Whether `address` stands in for a Unix socket.
pub fn is_unix_socket_address(address: &SocketAddr) -> bool {
    match address {
        SocketAddr::V6(v6) => u128::from(*v6.ip()) >> 64 == u128::from(PREFIX),
        SocketAddr::V4(_) => false,
    }
}
