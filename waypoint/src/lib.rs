//! Assembly of a gateway, waypoint or node proxy from the `hbone`, `routing` and `mesh-policy`
//! crates.
//!
//! Built so far: [`gateway`], a standalone Gateway API gateway (configuration store with hot
//! reload, HTTP listeners sharing sockets by address and port, forwarding to Service
//! endpoints, admin endpoint and metrics), which the `gateway` example binary runs.
//!
//! Still to come: PROXY protocol and HBONE termination for the waypoint and ztunnel binaries.
//! It is the only library crate allowed to compose the other three (see ARCHITECTURE.md).

pub mod gateway;
