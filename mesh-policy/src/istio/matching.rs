//! Istio's string and path matching (policy.md §4.1): exact, `abc*` prefix, `*abc` suffix,
//! `*` presence; hosts case-insensitive; paths also as URI templates (`{*}` one segment,
//! `{**}` any number of segments, last only).

use std::net::IpAddr;

use crate::l4::Cidr;

/// Whether `value` matches the Istio pattern.
pub fn string_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return !value.is_empty();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

/// Hosts compare case-insensitively (and a `:port` on the value is ignored).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    string_matches(&pattern.to_ascii_lowercase(), &host.to_ascii_lowercase())
}

/// Paths: the query is not part of the path; templates with `{*}`/`{**}`, else the string
/// forms.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if pattern.contains('{') {
        return template_matches(pattern, path);
    }
    string_matches(pattern, path)
}

fn template_matches(pattern: &str, path: &str) -> bool {
    let mut patterns = pattern.split('/');
    let mut segments = path.split('/');
    loop {
        match (patterns.next(), segments.next()) {
            (Some("{**}"), _) => return patterns.next().is_none(),
            (Some("{*}"), Some(segment)) if !segment.is_empty() => {}
            (Some(expected), Some(segment)) if expected == segment => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// An IP against `ip` or `ip/len` blocks.
pub fn ip_matches(block: &str, ip: IpAddr) -> bool {
    match block.parse::<Cidr>() {
        Ok(cidr) => cidr.contains(ip),
        Err(_) => block.parse::<IpAddr>().is_ok_and(|exact| exact == ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_string_forms() {
        assert!(string_matches("*", "x"));
        assert!(!string_matches("*", ""));
        assert!(string_matches("/api/*", "/api/items"));
        assert!(string_matches("*.example.com", "a.example.com"));
        assert!(string_matches("GET", "GET"));
        assert!(!string_matches("GET", "get"));
        assert!(host_matches("Shop.Example", "shop.example:8080"));
        assert!(path_matches("/items", "/items?x=1"));
        assert!(path_matches("/users/{*}/orders", "/users/7/orders"));
        assert!(!path_matches("/users/{*}/orders", "/users//orders"));
        assert!(path_matches("/static/{**}", "/static/a/b/c"));
        assert!(path_matches("/static/{**}", "/static/"));
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3".parse().unwrap()));
        assert!(ip_matches("10.1.2.3", "10.1.2.3".parse().unwrap()));
    }
}
