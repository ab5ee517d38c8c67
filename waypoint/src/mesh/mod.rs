//! The mesh waypoint (Istio ambient's L7 proxy, and the sandwich behind a ztunnel): endpoint
//! identities from Pods, HTTP sniffing, and the assembly.

pub mod identities;
pub mod metrics;
pub mod sniff;
pub mod waypoint;
