//! Hostname intersection between a listener and a route (gateway-api spec §1.1 item 4).

use crate::http_route::hostname_covers;

/// The effective hostnames of a route on a listener: for each route hostname that intersects
/// the listener's, the more specific of the two. `None` when the route has hostnames and none
/// intersects (the route does not attach there); an empty list means every host.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let Some(listener) = listener.filter(|l| !l.is_empty()) else {
        return Some(route.iter().map(|h| h.to_ascii_lowercase()).collect());
    };
    let listener = listener.to_ascii_lowercase();
    if route.is_empty() {
        return Some(vec![listener]);
    }
    let mut effective: Vec<String> = Vec::new();
    for hostname in route {
        let hostname = hostname.to_ascii_lowercase();
        if let Some(found) = more_specific_if_intersecting(&listener, &hostname)
            && !effective.contains(&found)
        {
            effective.push(found);
        }
    }
    (!effective.is_empty()).then_some(effective)
}

/// Checks route hostnames against the API's pattern: DNS labels of lowercase letters, digits
/// and `-`, with an optional leading `*.` wildcard; no IP addresses, no ports.
pub(crate) fn validate_hostnames(hostnames: &[String]) -> Result<(), String> {
    for hostname in hostnames {
        let name = hostname.strip_prefix("*.").unwrap_or(hostname);
        if hostname.len() > 253 || !is_precise_hostname(name) {
            return Err(format!("invalid hostname {hostname:?}"));
        }
    }
    Ok(())
}

/// Whether `name` is a precise host name: DNS labels of lowercase letters, digits and `-`, at
/// most 253 bytes, no wildcard, not an IP address.
pub(crate) fn is_precise_hostname(name: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(label_ok)
}

fn more_specific_if_intersecting(listener: &str, route: &str) -> Option<String> {
    match (listener.starts_with("*."), route.starts_with("*.")) {
        (false, false) => (listener == route).then(|| route.to_owned()),
        (false, true) => hostname_covers(route, listener).then(|| listener.to_owned()),
        (true, false) => hostname_covers(listener, route).then(|| route.to_owned()),
        (true, true) => {
            // Both `*.suffix`: the longer suffix is the more specific when it ends with the other.
            if route.ends_with(&listener[1..]) {
                Some(route.to_owned())
            } else if listener.ends_with(&route[1..]) {
                Some(listener.to_owned())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn the_more_specific_side_is_kept() {
        assert_eq!(
            intersect(Some("very.specific.com"), &hosts(&["*.specific.com"])),
            Some(hosts(&["very.specific.com"]))
        );
        assert_eq!(
            intersect(Some("*.com"), &hosts(&["*.example.com"])),
            Some(hosts(&["*.example.com"]))
        );
        assert_eq!(
            intersect(Some("*.example.com"), &hosts(&["*.com"])),
            Some(hosts(&["*.example.com"]))
        );
        assert_eq!(
            intersect(
                Some("*.example.com"),
                &hosts(&["a.b.example.com", "example.com"])
            ),
            Some(hosts(&["a.b.example.com"])),
            "wildcards cover one or more labels, never the bare suffix"
        );
    }

    #[test]
    fn unset_sides_match_everything_and_disjoint_sides_do_not_attach() {
        assert_eq!(intersect(None, &hosts(&["a.com"])), Some(hosts(&["a.com"])));
        assert_eq!(intersect(Some("a.com"), &[]), Some(hosts(&["a.com"])));
        assert_eq!(intersect(None, &[]), Some(vec![]));
        assert_eq!(
            intersect(Some("a.com"), &hosts(&["b.com", "*.a.com"])),
            None
        );
        assert_eq!(intersect(Some("*.foo.com"), &hosts(&["*.bar.com"])), None);
    }
}
