//! Reference selection: the maximum-precedence candidate whose match holds.

use super::precedence::{MatchSpecificity, Precedence, RouteOrder, hostname_rank};
use super::request::RequestView;
use super::rule_match::HttpRouteMatch;

/// One `(route, rule, match)` attached to the listener (or Service port) being routed.
#[derive(Debug, Clone)]
pub struct Candidate<T> {
    /// The route's effective (listener-intersected) hostnames; empty matches every host.
    pub hostnames: Vec<String>,
    /// The match.
    pub route_match: HttpRouteMatch,
    /// Route age, name, rule and match index, for the tie-breaks.
    pub order: RouteOrder,
    /// What the caller wants back (e.g. the rule to apply).
    pub target: T,
}

/// The candidate the Gateway API picks for `request`, if any (none: 404). Linear in the number
/// of candidates.
pub fn select<'c, T>(
    candidates: &'c [Candidate<T>],
    request: &RequestView<'_>,
) -> Option<&'c Candidate<T>> {
    let host = request.host_without_port();
    candidates
        .iter()
        .filter_map(|candidate| {
            let hostname = hostname_rank(&candidate.hostnames, host)?;
            if !candidate.route_match.matches(request) {
                return None;
            }
            let precedence = Precedence {
                hostname,
                specificity: MatchSpecificity::of(&candidate.route_match),
                order: candidate.order.clone(),
            };
            Some((precedence, candidate))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, candidate)| candidate)
}
