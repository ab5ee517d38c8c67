//! Assembly of a gateway, waypoint or node proxy from the `hbone`, `routing` and `mesh-policy`
//! crates.
//!
//! This crate will own listeners, PROXY protocol and HBONE termination, the configuration store
//! with hot reload (immutable snapshots), and the admin and metrics endpoints that the example
//! binaries are built from.
//!
//! Nothing is implemented yet. It is the only library crate allowed to compose the other three
//! (see ARCHITECTURE.md).
