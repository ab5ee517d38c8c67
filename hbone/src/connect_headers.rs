//! The HBONE CONNECT request's rules, sans-IO (hbone spec §1.5–1.6): authority forms, and the
//! `forwarded`, `traceparent` and `baggage` headers.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The `forwarded` request header.
pub const FORWARDED: &str = "forwarded";
/// The `baggage` request and response header.
pub const BAGGAGE: &str = "baggage";
/// The `traceparent` request header.
pub const TRACEPARENT: &str = "traceparent";
/// The header on the inner CONNECT of double HBONE naming the client's network.
pub const X_FORWARDED_NETWORK: &str = "x-forwarded-network";

/// The target of a CONNECT: the final `ip:port`, or `host:port` for double HBONE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Authority {
    /// An IP address and port (IPv6 written bracketed).
    Socket(SocketAddr),
    /// A host name (e.g. a service FQDN) and port.
    Host {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

/// Why an authority is not acceptable (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// No `:port`, or an unparseable port.
    #[error("authority `{0}` has no valid port")]
    MissingPort(String),
    /// An empty host, or one with characters a host name cannot have.
    #[error("authority `{0}` has no valid host")]
    InvalidHost(String),
}

impl FromStr for Authority {
    type Err = AuthorityError;

    /// Tries `ip:port` first (IPv6 bracketed), then requires a host and a port.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(socket) = text.parse::<SocketAddr>() {
            return Ok(Authority::Socket(socket));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| AuthorityError::MissingPort(text.to_owned()))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|_| !port.starts_with('+'))
            .ok_or_else(|| AuthorityError::MissingPort(text.to_owned()))?;
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid_host {
            return Err(AuthorityError::InvalidHost(text.to_owned()));
        }
        Ok(Authority::Host {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authority::Socket(socket) => write!(f, "{socket}"),
            Authority::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Authority {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Authority::Socket(socket) => socket.port(),
            Authority::Host { port, .. } => *port,
        }
    }
}

/// The `forwarded` value the client sends: `for="<client ip:port>"`, plus `;host=<fqdn>` when
/// the client addressed a service by name (RFC 7239; IPv6 bracketed inside the quotes).
pub fn forwarded_value(client: SocketAddr, host: Option<&str>) -> String {
    match host {
        Some(host) => format!("for=\"{client}\";host={host}"),
        None => format!("for=\"{client}\""),
    }
}

/// The `for=` parameter of a `forwarded` value as a socket address (`for="1.2.3.4:5"`,
/// `for="[::1]:5"`); `None` for obfuscated or port-less values.
pub fn forwarded_for(value: &str) -> Option<SocketAddr> {
    forwarded_parameter(value, "for")?.parse().ok()
}

/// The `host=` parameter of a `forwarded` value, quotes stripped; the only part an HBONE server
/// reads. Non-ASCII values are ignored.
pub fn forwarded_host(value: &str) -> Option<&str> {
    forwarded_parameter(value, "host")
}

/// The parameter `wanted` of the first element of a `forwarded` value, quotes stripped.
fn forwarded_parameter<'a>(value: &'a str, wanted: &str) -> Option<&'a str> {
    let element = value.split(',').next()?;
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case(wanted) {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (value.is_ascii() && !value.is_empty()).then_some(value)
    })
}

/// A W3C trace context parent, `00-<32 hex trace id>-<16 hex parent id>-00`. ztunnel traces
/// connections, not requests: each tunnelled connection gets a fresh random one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id.
    pub trace_id: u128,
    /// The parent (span) id.
    pub parent_id: u64,
}

/// The length of a `traceparent` value; any other length is replaced by a fresh one.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// A fresh random trace parent.
    pub fn random() -> Self {
        TraceParent {
            trace_id: rand::random(),
            parent_id: rand::random(),
        }
    }

    /// Parses a `traceparent` value of exactly 55 characters with version and flags `00`.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != TRACEPARENT_LEN {
            return None;
        }
        let mut parts = value.split('-');
        let (Some("00"), Some(trace), Some(parent), Some(_flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if trace.len() != 32 || parent.len() != 16 || !hex(trace) || !hex(parent) {
            return None;
        }
        Some(TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-00", self.trace_id, self.parent_id)
    }
}

/// The `key=value` members of a `baggage` value, in order; members without `=` are skipped.
pub fn baggage_members(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|member| {
        let (key, value) = member.split_once('=')?;
        let value = value.split(';').next().unwrap_or_default();
        Some((key.trim(), value.trim())).filter(|(key, _)| !key.is_empty())
    })
}

/// Builds a `baggage` value from `key=value` pairs, omitting empty values (as ztunnel does).
pub fn baggage_value<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    members
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checklist 5: IPv6 authorities bracketed, hostname authorities accepted, bad ones refused.
    #[test]
    fn authority_forms() {
        let rows: [(&str, Option<&str>); 10] = [
            ("10.244.0.42:8080", Some("10.244.0.42:8080")),
            ("[fd00::1]:8080", Some("[fd00::1]:8080")),
            (
                "remote.default.svc.cluster.local:8080",
                Some("remote.default.svc.cluster.local:8080"),
            ),
            ("fd00::1:8080", None),
            ("10.0.0.1", None),
            ("host:", None),
            (":80", None),
            ("host:99999", None),
            ("host:+80", None),
            ("bad host:80", None),
        ];
        for (text, expected) in rows {
            let parsed = text.parse::<Authority>().ok().map(|a| a.to_string());
            assert_eq!(parsed.as_deref(), expected, "{text}");
        }
    }

    /// Checklist 6: `forwarded: for="ip:port"[;host=fqdn]`, and the server reads only `host=`.
    #[test]
    fn forwarded_header() {
        let v4: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:40000".parse().unwrap();
        assert_eq!(forwarded_value(v4, None), "for=\"10.0.0.1:40000\"");
        assert_eq!(
            forwarded_value(v6, Some("svc.ns.svc.cluster.local")),
            "for=\"[fd00::1]:40000\";host=svc.ns.svc.cluster.local"
        );
        assert_eq!(forwarded_host("for=\"1.2.3.4:5\";host=a.b"), Some("a.b"));
        assert_eq!(forwarded_host("for=x;host=\"a.b\""), Some("a.b"));
        assert_eq!(forwarded_host("for=\"1.2.3.4:5\""), None);
        assert_eq!(forwarded_host("host=ü"), None);
        assert_eq!(
            forwarded_for(&forwarded_value(v6, Some("a.b"))),
            Some(v6),
            "what we send is what we read"
        );
        assert_eq!(
            forwarded_for("for=\"10.0.0.1:40000\", for=9.9.9.9"),
            Some(v4)
        );
        assert_eq!(forwarded_for("for=_hidden"), None);
        assert_eq!(forwarded_for("for=\"10.0.0.1\""), None, "no port");
    }

    /// Checklist 6: `traceparent` in `00-{32hex}-{16hex}-00` form, 55 characters.
    #[test]
    fn traceparent_format() {
        let fresh = TraceParent::random();
        let text = fresh.to_string();
        assert_eq!(text.len(), TRACEPARENT_LEN);
        assert!(text.starts_with("00-") && text.ends_with("-00"));
        assert_eq!(TraceParent::parse(&text), Some(fresh));
        assert_ne!(TraceParent::random(), fresh, "random per connection");
        assert_eq!(TraceParent::parse("00-abc-def-00"), None);
        assert_eq!(TraceParent::parse(&text.replace("00-", "01-")), None);
    }

    #[test]
    fn baggage_round_trip() {
        let value = baggage_value([
            ("k8s.cluster.name", "Kubernetes"),
            ("k8s.namespace.name", "default"),
            ("service.version", ""),
        ]);
        assert_eq!(
            value,
            "k8s.cluster.name=Kubernetes,k8s.namespace.name=default"
        );
        let members: Vec<_> = baggage_members(&value).collect();
        assert_eq!(
            members,
            [
                ("k8s.cluster.name", "Kubernetes"),
                ("k8s.namespace.name", "default")
            ]
        );
        assert_eq!(
            baggage_members("novalue, =x ,a=b;prop").collect::<Vec<_>>(),
            [("a", "b")]
        );
    }
}
