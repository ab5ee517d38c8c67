//! Outbound: from a routed request (or an accepted stream) to an endpoint of the chosen
//! backend — the [`Forwarder`] (lean HTTP/1.1 pool, h2c, backend TLS, upgrades), the one
//! [`EndpointPicker`], and typed [`UpstreamError`](routing::router::UpstreamError)s for
//! every failure.

mod backend_tls;
mod endpoints;
mod forward;
mod http1_pool;

pub use endpoints::EndpointPicker;
pub use forward::{Forwarder, ResponseBody};
