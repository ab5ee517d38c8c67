//! HTTPRoute matching semantics, sans-IO (gateway-api spec §1.2–1.3), including
//! implementation-specific regular expressions ([`Pattern`]).
//!
//! - [`PathMatch`], [`HttpRouteMatch`]: the predicates of one match (path AND headers AND
//!   query parameters AND method).
//! - [`Precedence`]: the spec's full precedence order as an `Ord` key; [`hostname_rank`]
//!   computes its hostname part for a request.
//! - [`select`]: the reference selection over a list of candidates (a linear scan: the
//!   semantics the compiled route table must reproduce, and its benchmark baseline).
//! - [`RouteTable`]: the compiled table, indexed by hostname and path, choosing what
//!   [`select`] chooses at a cost that does not grow with the number of routes.

mod path;
mod pattern;
mod precedence;
mod request;
mod rule_match;
mod select;
mod table;

#[cfg(test)]
mod tests;

pub use path::{MAX_PATH_LEN, PathMatch, PathValueError};
pub use pattern::{Pattern, PatternError};
pub use precedence::{
    HostnameRank, MatchSpecificity, Precedence, RouteOrder, hostname_covers, hostname_rank,
};
pub use request::RequestView;
pub use rule_match::{HeaderMatch, HttpRouteMatch, QueryParamMatch, ValueMatch};
pub use select::{Candidate, select};
pub use table::RouteTable;
