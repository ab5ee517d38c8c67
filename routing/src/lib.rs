//! Gateway API routing for data planes built from tower layers.
//!
//! ```
//! use http::Method;
//! use routing::http_route::{Candidate, HttpRouteMatch, PathMatch, RequestView, RouteOrder, select};
//!
//! let order = |rule| RouteOrder { created: 0, namespaced_name: "default/shop".into(), rule, index: 0 };
//! let candidates = [
//!     Candidate { hostnames: vec![], route_match: HttpRouteMatch::path(PathMatch::prefix("/")?), order: order(0), target: "home" },
//!     Candidate { hostnames: vec![], route_match: HttpRouteMatch::path(PathMatch::exact("/cart")?), order: order(1), target: "cart" },
//! ];
//! let request = http::Request::get("http://shop.example.com/cart").body(())?;
//! let chosen = select(&candidates, &RequestView::of(&request));
//! assert_eq!(chosen.map(|c| c.target), Some("cart"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Built so far: [`http_route`], the HTTPRoute match predicates, the Gateway API's full
//! precedence order (`shared/spec/gateway-api.md` §1.2–1.3), a reference selection and a
//! compiled route table; [`filters`], the header-modifier, redirect and path-rewrite semantics
//! (§1.4); [`backends`], weighted backend choice with the 500/503 shares (§1.5).
//!
//! Still to come (the routing issue): the data-plane model of Gateway, HTTPRoute, GRPCRoute,
//! TLSRoute, TCPRoute, UDPRoute, ReferenceGrant, BackendTLSPolicy and the core objects; the YAML
//! loader; attachment and status; a compiled route table whose lookup cost does not grow with
//! the number of routes; filters as tower layers; the `Router` service. The crate depends on no
//! other workspace crate.

pub mod backends;
pub mod filters;
pub mod http_route;
pub mod loader;
pub mod model;
