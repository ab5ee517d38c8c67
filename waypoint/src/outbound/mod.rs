//! Outbound: from a routed request (or an accepted stream) to an endpoint of the chosen
//! backend — the [`Forwarder`] (lean HTTP/1.1 pool, h2c, backend TLS, upgrades), the one
//! [`EndpointPicker`], and typed [`UpstreamError`](routing::router::UpstreamError)s for
//! every failure.

mod backend_tls;
mod backend_verifier;
mod body_error;
mod endpoints;
mod forward;
mod http1_pool;
mod idle_timeout;

pub use body_error::BodyError;
pub use endpoints::EndpointPicker;
pub use forward::{Forwarder, ForwarderLimits, ResponseBody};
pub use http1_pool::PoolLimits;
pub use idle_timeout::{BodyIdleTimeout, IdleTimeoutBody};
