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
//! The pipeline, from configuration to requests:
//!
//! 1. [`model`]: plain data for Gateway API and core objects; [`loader`] reads it from
//!    Kubernetes YAML with the API server's defaults.
//! 2. [`resolve`]: attachment, hostname intersection, ReferenceGrants, backends and status
//!    conditions, producing [`compiled`] gateways and listeners.
//! 3. [`router`]: the `Router` tower service choosing listener, rule, filters and backend
//!    (and `MeshRouter`, the same by destination Service and caller namespace for GAMMA),
//!    built on [`http_route`] (matching, precedence, the compiled [`RouteTable`](http_route::RouteTable)),
//!    [`filters`] and [`backends`].
//!
//! Not yet served: GRPCRoute method matches without a service or by regular expression
//! (`Accepted=False/UnsupportedValue`), mirroring and retrying requests that have a body.
//! `RegularExpression` path, header and query matches are supported (whole-value, the `regex`
//! crate's RE2-like syntax, bounded size); regex paths rank below every prefix. The crate depends on no other workspace crate.

pub mod backends;
pub mod compiled;
pub mod filters;
pub mod http_route;
pub mod loader;
pub mod model;
pub mod resolve;
pub mod router;
pub mod slot;
pub mod tls_names;
