//! The parts of a request that HTTPRoute matching reads.

use http::{HeaderMap, Method};

/// A borrowed view of a request for matching: host (port ignored), path and query, method,
/// headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The `Host` (or `:authority`), possibly with a port.
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The method.
    pub method: &'a Method,
    /// The headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    /// The view of an `http::Request`: the host from the URI's authority, else the `Host`
    /// header.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        let host = request
            .uri()
            .authority()
            .map(|authority| authority.as_str())
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or_default();
        RequestView {
            host,
            path: request.uri().path(),
            query: request.uri().query(),
            method: request.method(),
            headers: request.headers(),
        }
    }

    /// The host without its port, for matching (the request keeps it unmodified).
    pub fn host_without_port(&self) -> &'a str {
        strip_port(self.host)
    }

    /// The first value of query parameter `name` (case-sensitive), if present.
    pub fn first_query_value(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; a host without a port is returned as is.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_ignored_and_query_values_are_first_wins() {
        let request = http::Request::builder()
            .uri("http://example.com:1234/p?animal=whale&ANIMAL=dolphin&animal=shark&flag")
            .body(())
            .unwrap();
        let view = RequestView::of(&request);
        assert_eq!(
            view.host, "example.com:1234",
            "kept unmodified for the backend"
        );
        assert_eq!(view.host_without_port(), "example.com");
        assert_eq!(view.first_query_value("animal"), Some("whale"));
        assert_eq!(view.first_query_value("ANIMAL"), Some("dolphin"));
        assert_eq!(view.first_query_value("flag"), Some(""));
        assert_eq!(view.first_query_value("Animal"), None);
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
