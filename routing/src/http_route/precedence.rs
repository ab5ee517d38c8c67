//! The Gateway API's precedence order among matching HTTPRoute matches (gateway-api spec §1.3),
//! as one `Ord` key: the winner is the maximum. Counts are per match, not per rule.
//!
//! 1. most characters in a matching non-wildcard hostname;
//! 2. most characters in a matching hostname;
//! 3. `Exact` path over `PathPrefix`;
//! 4. longer `PathPrefix` value;
//! 5. a method match present;
//! 6. more header matches;
//! 7. more query-parameter matches;
//! 8. oldest route;
//! 9. alphabetical `namespace/name`;
//! 10. first rule, then first match, in list order.

use std::cmp::Ordering;

use super::path::PathMatch;
use super::rule_match::HttpRouteMatch;

/// How well a route's hostnames match a request's host (criteria 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HostnameRank {
    /// Characters of the matching non-wildcard hostname (0 if the match is a wildcard or the
    /// route has no hostnames).
    pub exact_chars: usize,
    /// Characters of the matching hostname.
    pub chars: usize,
}

/// The static part of a match's rank (criteria 3 to 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MatchSpecificity {
    exact_path: bool,
    prefix_len: usize,
    has_method: bool,
    headers: usize,
    query_params: usize,
}

/// Where a match stands among routes, rules and matches (criteria 8 to 10); smaller is older or
/// earlier, and wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteOrder {
    /// The route's creation time (any monotonic unit; a loader without timestamps uses load
    /// order).
    pub created: u64,
    /// `namespace/name` of the route.
    pub namespaced_name: String,
    /// The rule's index in the route.
    pub rule: usize,
    /// The match's index in the rule.
    pub index: usize,
}

/// The full precedence key of one candidate for one request. Greater wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Precedence {
    /// Criteria 1–2 (depend on the request's host).
    pub hostname: HostnameRank,
    /// Criteria 3–7.
    pub specificity: MatchSpecificity,
    /// Criteria 8–10 (compared in reverse: the older or earlier wins).
    pub order: RouteOrder,
}

impl MatchSpecificity {
    /// The specificity of a match.
    pub fn of(route_match: &HttpRouteMatch) -> Self {
        let (exact_path, prefix_len) = match route_match.path_match() {
            PathMatch::Exact(_) => (true, 0),
            PathMatch::PathPrefix(value) => (false, value.len()),
            // Implementation-specific: below every prefix (even `/`), as regexes come last.
            PathMatch::RegularExpression(_) => (false, 0),
        };
        MatchSpecificity {
            exact_path,
            prefix_len,
            has_method: route_match.has_method(),
            headers: route_match.header_count(),
            query_params: route_match.query_param_count(),
        }
    }
}

impl Ord for Precedence {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hostname
            .cmp(&other.hostname)
            .then_with(|| self.specificity.cmp(&other.specificity))
            .then_with(|| other.order.cmp(&self.order))
    }
}

impl PartialOrd for Precedence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The best rank among `hostnames` that match `host` (port already stripped); `None` when none
/// matches. Route hostnames are ORed; an empty list matches every host with rank zero. A
/// wildcard `*.example.com` matches one or more labels before `.example.com`, never
/// `example.com` itself. Comparison is case-insensitive.
pub fn hostname_rank<S: AsRef<str>>(hostnames: &[S], host: &str) -> Option<HostnameRank> {
    if hostnames.is_empty() {
        return Some(HostnameRank::default());
    }
    hostnames
        .iter()
        // An empty hostname is invalid in the API and matches nothing.
        .filter(|hostname| !hostname.as_ref().is_empty())
        .filter_map(|hostname| {
            let hostname = hostname.as_ref();
            // Only `*.` starts a wildcard (the API rejects other uses of `*`); the suffix keeps
            // its leading dot.
            match hostname.strip_prefix("*.").map(|_| &hostname[1..]) {
                Some(suffix) => {
                    let matches = ends_with_after_more(host, suffix);
                    matches.then_some(HostnameRank {
                        exact_chars: 0,
                        chars: hostname.len(),
                    })
                }
                None => host.eq_ignore_ascii_case(hostname).then_some(HostnameRank {
                    exact_chars: hostname.len(),
                    chars: hostname.len(),
                }),
            }
        })
        .max()
}

/// Whether `host` (no wildcard) is covered by `pattern`: equal to it, or, for `*suffix`, ending
/// in `suffix` after at least one more character (`*.example.com` covers one or more labels).
/// ASCII case-insensitive, without allocating.
pub fn hostname_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => ends_with_after_more(host, suffix),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Whether `host` is longer than `suffix` and ends with it, ignoring ASCII case.
fn ends_with_after_more(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len()
        && host.is_char_boundary(host.len() - suffix.len())
        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}
