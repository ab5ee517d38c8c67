//! `HTTPRequestRedirectFilter`: the `Location` of a redirect (gateway-api spec §1.4).

use super::path_modifier::PathModifier;

/// The statuses a redirect may use (301 and 302 Core; 303, 307, 308 Extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RedirectStatus {
    /// 301 Moved Permanently.
    MovedPermanently,
    /// 302 Found (the default).
    #[default]
    Found,
    /// 303 See Other.
    SeeOther,
    /// 307 Temporary Redirect.
    TemporaryRedirect,
    /// 308 Permanent Redirect.
    PermanentRedirect,
}

/// A RequestRedirect filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RequestRedirect {
    /// `http` or `https`; default: the request's scheme.
    pub scheme: Option<String>,
    /// Default: the request's host without its port.
    pub hostname: Option<String>,
    /// Default: the request's path unchanged.
    pub path: Option<PathModifier>,
    /// Default: see [`RequestRedirect::location`].
    pub port: Option<u16>,
    /// Default 302.
    pub status: RedirectStatus,
}

/// What a redirect reads from the request and the listener.
#[derive(Debug, Clone, Copy)]
pub struct RedirectContext<'a> {
    /// The request's scheme (`http` or `https`).
    pub scheme: &'a str,
    /// The request's host, port stripped.
    pub host: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The request's query string, kept on the redirect (the API leaves it unspecified).
    pub query: Option<&'a str>,
    /// The port of the listener the request arrived on.
    pub listener_port: u16,
    /// The rule's `PathPrefix` value, for `ReplacePrefixMatch`.
    pub matched_prefix: &'a str,
}

impl RedirectStatus {
    /// The numeric status.
    pub fn code(self) -> u16 {
        match self {
            RedirectStatus::MovedPermanently => 301,
            RedirectStatus::Found => 302,
            RedirectStatus::SeeOther => 303,
            RedirectStatus::TemporaryRedirect => 307,
            RedirectStatus::PermanentRedirect => 308,
        }
    }
}

impl RequestRedirect {
    /// The `Location` header value. Port: an explicit `port` wins; else, when `scheme` is set,
    /// that scheme's well-known port; else the listener's port (not the request's). The port
    /// is omitted for http:80 and https:443.
    pub fn location(&self, context: &RedirectContext<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(context.scheme);
        let host = self.hostname.as_deref().unwrap_or(context.host);
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => port,
            (None, Some(scheme)) => well_known_port(scheme),
            (None, None) => context.listener_port,
        };
        let path = match &self.path {
            Some(modifier) => modifier.apply(context.path, context.matched_prefix),
            None => context.path.to_owned(),
        };
        let port_part = if port == well_known_port(scheme) {
            String::new()
        } else {
            format!(":{port}")
        };
        let query_part = context
            .query
            .map(|query| format!("?{query}"))
            .unwrap_or_default();
        format!("{scheme}://{host}{port_part}{path}{query_part}")
    }
}

fn well_known_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(scheme: &'static str, listener_port: u16) -> RedirectContext<'static> {
        RedirectContext {
            scheme,
            host: "example.com",
            path: "/docs/page",
            query: None,
            listener_port,
            matched_prefix: "/docs",
        }
    }

    /// The port rules and the examples of spec §1.4.
    #[test]
    fn location_port_rules() {
        let https = || Some("https".to_owned());
        let rows: [(RequestRedirect, RedirectContext<'static>, &str); 6] = [
            (
                RequestRedirect::default(),
                context("http", 8080),
                "http://example.com:8080/docs/page",
            ),
            (
                RequestRedirect {
                    scheme: https(),
                    ..Default::default()
                },
                context("http", 8080),
                "https://example.com/docs/page",
            ),
            (
                RequestRedirect {
                    scheme: https(),
                    port: Some(8443),
                    ..Default::default()
                },
                context("http", 8080),
                "https://example.com:8443/docs/page",
            ),
            (
                RequestRedirect::default(),
                context("https", 443),
                "https://example.com/docs/page",
            ),
            (
                RequestRedirect::default(),
                context("http", 80),
                "http://example.com/docs/page",
            ),
            (
                RequestRedirect {
                    port: Some(80),
                    scheme: https(),
                    ..Default::default()
                },
                context("http", 8080),
                "https://example.com:80/docs/page",
            ),
        ];
        for (redirect, context, expected) in rows {
            assert_eq!(redirect.location(&context), expected, "{redirect:?}");
        }
    }

    #[test]
    fn hostname_path_query_and_status() {
        let redirect = RequestRedirect {
            hostname: Some("new.example.com".to_owned()),
            path: Some(PathModifier::ReplacePrefixMatch("/manual".to_owned())),
            status: RedirectStatus::MovedPermanently,
            ..Default::default()
        };
        let context = RedirectContext {
            query: Some("a=1"),
            ..context("http", 80)
        };
        assert_eq!(
            redirect.location(&context),
            "http://new.example.com/manual/page?a=1"
        );
        assert_eq!(redirect.status.code(), 301);
        assert_eq!(RequestRedirect::default().status.code(), 302);
    }
}
