//! The shared runtime the data-plane products are assembled from, on top of the `hbone`,
//! `routing` and `mesh-policy` crates:
//!
//! - [`inbound`]: sockets shared per address and port, HTTP/1.1 + h2 serving with limits,
//!   TLS termination by SNI, TLS passthrough, TCP and UDP, HBONE and PROXY termination;
//! - [`outbound`]: the forwarder (pools, backend TLS, upgrades) over a connector (TCP or
//!   HBONE), the one endpoint picker, typed upstream errors;
//! - [`config`]: configuration sources, immutable snapshots, change detection;
//! - [`respond`]: the one place request-path errors become HTTP or gRPC answers;
//! - [`admin`] and [`metrics`];
//! - the products as thin assemblies: [`gateway`] (a standalone Gateway API gateway, run by the
//!   `gateway` example binary), [`node`] (the node proxy, a ztunnel: `ztunnel` binary) and
//!   [`mesh`] (the L7 mesh waypoint, HBONE and sandwich: `waypoint` binary).
//!
//! The request path of the gateway: inbound socket → hyper → [`respond::Respond`] →
//! `routing::router::Router` (select → rule filters → dispatch) → [`outbound::Forwarder`].
//! It is the only library crate allowed to compose the other three (see ARCHITECTURE.md).

pub mod admin;
pub mod config;
pub mod explain;
pub mod gateway;
pub mod inbound;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod respond;
mod rustls_names;
