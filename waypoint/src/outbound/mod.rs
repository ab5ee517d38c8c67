//! Outbound: from a routed request (or an accepted stream) to an endpoint of the chosen
//! backend — the [`Forwarder`] (lean HTTP/1.1 pool, h2c, backend TLS, upgrades) generic over
//! a [`Connect`] ([`TcpConnect`], or [`HboneConnect`] for HBONE tunnels), the one
//! [`EndpointPicker`], the active health checks' [`EndpointProber`], and typed [`UpstreamError`](routing::router::UpstreamError)s for
//! every failure.

mod backend_tls;
mod backend_verifier;
mod body_error;
mod connect;
mod connect_tunnel;
mod deadline_body;
mod endpoints;
mod forward;
mod h2_pool;
mod hbone_connect;
mod health_probe;
mod http1_pool;
mod idle_timeout;
mod load_reports;
mod proxied_tls;
mod socket_stream;

pub use body_error::BodyError;
pub(crate) use connect::set_socket_buffers;
pub use connect::{Connect, ConnectOptions, SocketStream, TcpConnect, UnixSockets};
pub use deadline_body::DeadlineBody;
pub use endpoints::EndpointPicker;
pub use forward::{Forwarder, ForwarderLimits, PreserveHeaderCase, ResponseBody, full_body};
pub(crate) use forward::{proxy_preface, remove_hop_by_hop};
pub use hbone_connect::{EndpointIdentities, HBONE_PORT, HboneConnect};
pub use health_probe::EndpointProber;
pub use http1_pool::PoolLimits;
pub use idle_timeout::{BodyIdleTimeout, IdleTimeoutBody};
