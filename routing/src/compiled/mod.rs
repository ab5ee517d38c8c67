//! What resolution produces and the data plane runs: validated, defaulted, reference-resolved
//! listeners, rules, filters and backends. Immutable; a new configuration builds new values.

mod backend;
mod listener;
mod mesh;
mod names;
mod rule;
pub mod unix_socket;

pub use backend::{
    Backend, BackendProtocol, BackendSubjectAltName, BackendTls, BackendTlsProtocol,
    BackendTlsVersions, Endpoint, TlsRoots,
};
pub use listener::{
    Certificate, ClientValidation, CompiledGateway, CompiledListener, L4Backends, ListenerProtocol,
    ListenerRoutes,
};
pub use mesh::{HttpRouteTable, MeshPort, MeshRoutes, MeshService};
pub use names::{BackendNames, LookupFamily, NamedEndpoint, WrittenEndpoint};
pub use rule::{HttpFilter, HttpRule, Mirror, RetryPolicy, RouteTimeouts};
