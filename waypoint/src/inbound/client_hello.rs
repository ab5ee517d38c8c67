//! The server name (SNI) of a TLS ClientHello, read without terminating TLS, for TLS
//! passthrough listeners. The sans-IO reader is `mesh-policy`'s, which also gives JA3/JA4
//! fingerprints the lists they hash.

pub use mesh_policy::traffic::client_hello::{
    ClientHelloError, MAX_CLIENT_HELLO_BYTES, server_name,
};
