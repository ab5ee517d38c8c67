//! The node proxy (a ztunnel in dedicated mode): its configuration in ztunnel's local format,
//! the state indexed from it, and the sans-IO decisions for outbound and inbound connections.

pub mod inbound;
mod live;
pub mod local_config;
pub mod outbound;
pub mod proxy;
pub mod snapshot;
pub mod state;
