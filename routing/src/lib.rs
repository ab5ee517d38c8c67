//! Gateway API routing for data planes built from tower layers.
//!
//! This crate will own the Gateway API data-plane model (Gateway, listeners, HTTPRoute,
//! GRPCRoute, TLSRoute, TCPRoute, UDPRoute, ReferenceGrant, BackendTLSPolicy and the core
//! Service/EndpointSlice/Secret objects), route attachment and status conditions, a compiled
//! route table whose lookup cost does not grow with the number of routes, the Gateway API
//! filters as tower layers, and a `Router` service.
//!
//! Nothing is implemented yet: the work is tracked by the routing issue and specified in
//! `shared/spec/gateway-api.md`. The crate exists so the workspace layout and dependency
//! direction (it depends on no other workspace crate) are fixed from the start.
