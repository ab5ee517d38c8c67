//! Client IP detection (policy.md §1.1, ClientTrafficPolicy `clientIPDetection`): which address
//! a request comes from, computed once from the connection's peer and the request's headers
//! and put into the request as a [`ClientAddress`] that every later rule reads (authorization
//! `clientCIDRs`, rate-limit `sourceCIDR`, consistent hashing by source IP).
//!
//! ```
//! use mesh_policy::traffic::client_ip::{ClientIpDetection, XffTrust};
//! let detection = ClientIpDetection::XForwardedFor { trust: XffTrust::Hops(2), append: true };
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.128, 203.0.113.10, 203.0.113.1".parse().unwrap());
//! let peer = "10.0.0.9".parse().unwrap();
//! assert_eq!(detection.detect(&headers, Some(peer)), Ok(Some("203.0.113.10".parse().unwrap())));
//! ```

use std::net::IpAddr;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use routing::router::RouteError;
use tower::{Layer, Service};

use crate::l4::Cidr;

/// The address a request comes from, as detected (a request extension). Without one, rules
/// that need the client's address read the connection's peer ([`hbone::peer::Peer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// How the client's address is found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientIpDetection {
    /// The connection's peer (or the PROXY header's source), appended to `X-Forwarded-For`
    /// (Envoy Gateway's default: no `clientIPDetection`).
    #[default]
    Peer,
    /// The peer, with `X-Forwarded-For` left untouched (`directSourceIP`).
    DirectSource,
    /// From `X-Forwarded-For` (`xForwardedFor`).
    XForwardedFor {
        /// Which entries are trusted.
        trust: XffTrust,
        /// Whether the peer is appended to the forwarded header (not
        /// `disableXForwardedForAppend`).
        append: bool,
    },
    /// From a header set by a trusted proxy in front (`customHeader`).
    CustomHeader {
        /// The header.
        name: HeaderName,
        /// Refuse (403) a request whose header is missing or not an address, instead of
        /// using the peer.
        fail_closed: bool,
    },
}

/// Which `X-Forwarded-For` entries are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XffTrust {
    /// `numTrustedHops`: the client is the N-th entry from the right (the peer not counted);
    /// with fewer entries, or N = 0, the peer.
    Hops(u32),
    /// `trustedCIDRs`: when the peer is in these blocks, the rightmost entry outside them
    /// (every entry trusted: the leftmost); otherwise the peer.
    Cidrs(Vec<Cidr>),
}

/// Why no address could be detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIpError {
    /// `customHeader` with `failClosed`: the header is missing or not an IP address.
    #[error("the client address header {0} is missing or not an IP address")]
    HeaderMissing(HeaderName),
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl ClientIpDetection {
    /// The client's address, given the request's headers and the connection's peer (`None`
    /// when neither tells it).
    pub fn detect(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<IpAddr>, ClientIpError> {
        match self {
            ClientIpDetection::Peer | ClientIpDetection::DirectSource => Ok(peer),
            ClientIpDetection::XForwardedFor { trust, .. } => Ok(from_xff(trust, headers, peer)),
            ClientIpDetection::CustomHeader { name, fail_closed } => {
                let found = headers
                    .get(name)
                    .and_then(|value| parse_ip(value.as_bytes()));
                match (found, fail_closed) {
                    (Some(ip), _) => Ok(Some(ip)),
                    (None, true) => Err(ClientIpError::HeaderMissing(name.clone())),
                    (None, false) => Ok(peer),
                }
            }
        }
    }

    /// Whether the peer is appended to `X-Forwarded-For` before forwarding.
    pub fn appends_peer(&self) -> bool {
        match self {
            ClientIpDetection::Peer => true,
            ClientIpDetection::XForwardedFor { append, .. } => *append,
            ClientIpDetection::DirectSource | ClientIpDetection::CustomHeader { .. } => false,
        }
    }

    /// Detects the address of `request` (peer from its [`hbone::peer::Peer`]), puts it into
    /// the request as a [`ClientAddress`] and appends the peer to `X-Forwarded-For` when
    /// configured so.
    pub fn apply<B>(&self, request: &mut Request<B>) -> Result<(), ClientIpError> {
        let peer = request
            .extensions()
            .get::<hbone::peer::Peer>()
            .map(|p| p.address.ip());
        if let Some(ip) = self.detect(request.headers(), peer)? {
            request.extensions_mut().insert(ClientAddress(ip));
        }
        if let (true, Some(peer)) = (self.appends_peer(), peer) {
            append_forwarded_for(request.headers_mut(), peer);
        }
        Ok(())
    }
}

/// Appends `ip` to the request's `X-Forwarded-For` (all its lines joined into one).
pub fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    let mut joined = Vec::with_capacity(64);
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b", ");
    }
    push_ip(&mut joined, ip);
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// Writes `ip` as text (IPv4 digit by digit: this runs per request).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// The entries of every `X-Forwarded-For` line, in order, trimmed.
fn xff_entries(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect()
}

fn from_xff(trust: &XffTrust, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    match trust {
        XffTrust::Hops(0) => peer,
        XffTrust::Hops(hops) => {
            let from_right = usize::try_from(*hops).ok()?;
            let mut lines = headers.get_all(&X_FORWARDED_FOR).iter();
            let chosen = match (lines.next(), lines.next()) {
                (None, _) => None,
                // One line (the common case): read it from the right, without collecting.
                (Some(line), None) => line
                    .as_bytes()
                    .rsplit(|b| *b == b',')
                    .nth(from_right - 1)
                    .and_then(parse_ip),
                (Some(_), Some(_)) => {
                    let entries = xff_entries(headers);
                    entries
                        .len()
                        .checked_sub(from_right)
                        .and_then(|index| entries.get(index))
                        .and_then(|entry| parse_ip(entry))
                }
            };
            chosen.or(peer)
        }
        XffTrust::Cidrs(trusted) => {
            let is_trusted = |ip: IpAddr| trusted.iter().any(|block| block.contains(ip));
            if !peer.is_some_and(is_trusted) {
                return peer;
            }
            let entries = xff_entries(headers);
            let mut leftmost = None;
            for entry in entries.iter().rev() {
                // An entry that is not an address ends the walk: the peer stands.
                let Some(ip) = parse_ip(entry) else {
                    return peer;
                };
                if !is_trusted(ip) {
                    return Some(ip);
                }
                leftmost = Some(ip);
            }
            leftmost.or(peer)
        }
    }
}

/// An IP address written alone (surrounding spaces allowed).
fn parse_ip(bytes: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(bytes.trim_ascii()).ok()?.parse().ok()
}

/// Detects each request's client address with fixed settings (see [`ClientIpDetection`]).
#[derive(Debug, Clone)]
pub struct ClientAddressLayer {
    detection: ClientIpDetection,
}

impl ClientAddressLayer {
    /// Detects with `detection`.
    pub fn new(detection: ClientIpDetection) -> Self {
        ClientAddressLayer { detection }
    }
}

impl<S> Layer<S> for ClientAddressLayer {
    type Service = ClientAddressService<S>;

    fn layer(&self, inner: S) -> ClientAddressService<S> {
        ClientAddressService {
            detection: self.detection.clone(),
            inner,
        }
    }
}

/// The service of [`ClientAddressLayer`]: refuses (`ClientAddressUndetected`, 403) only a
/// `failClosed` custom header that is missing.
#[derive(Debug, Clone)]
pub struct ClientAddressService<S> {
    detection: ClientIpDetection,
    inner: S,
}

impl<S, B, R> Service<Request<B>> for ClientAddressService<S>
where
    S: Service<Request<B>, Response = R, Error = RouteError>,
{
    type Response = R;
    type Error = RouteError;
    type Future = routing::router::EarlyOrInner<S::Future, R, RouteError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.detection.apply(&mut request) {
            Ok(()) => routing::router::EarlyOrInner::Inner(self.inner.call(request)),
            Err(error) => routing::router::EarlyOrInner::Early(Some(Err(RouteError::Denied(
                format!("client IP detection: {error}"),
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const CHAIN: &str = "203.0.113.128, 203.0.113.10, 203.0.113.1";

    #[test]
    fn trusted_hops_count_from_the_right_without_the_peer() {
        let hops = |n| ClientIpDetection::XForwardedFor {
            trust: XffTrust::Hops(n),
            append: true,
        };
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(
            hops(1).detect(&xff(CHAIN), peer),
            Ok(Some(ip("203.0.113.1")))
        );
        assert_eq!(
            hops(2).detect(&xff(CHAIN), peer),
            Ok(Some(ip("203.0.113.10")))
        );
        assert_eq!(
            hops(3).detect(&xff(CHAIN), peer),
            Ok(Some(ip("203.0.113.128")))
        );
        assert_eq!(
            hops(4).detect(&xff(CHAIN), peer),
            Ok(peer),
            "too few entries"
        );
        assert_eq!(hops(0).detect(&xff(CHAIN), peer), Ok(peer));
        assert_eq!(hops(1).detect(&HeaderMap::new(), peer), Ok(peer));
        assert_eq!(hops(1).detect(&xff("a, not-an-ip"), peer), Ok(peer));
    }

    #[test]
    fn a_spoofed_prefix_beyond_the_trusted_hops_is_never_the_client() {
        // The client wrote "1.1.1.1" itself; one trusted proxy appended the real address.
        let detection = ClientIpDetection::XForwardedFor {
            trust: XffTrust::Hops(1),
            append: true,
        };
        let found = detection.detect(&xff("1.1.1.1, 198.51.100.7"), Some(ip("10.0.0.1")));
        assert_eq!(found, Ok(Some(ip("198.51.100.7"))));
    }

    #[test]
    fn lines_of_the_header_are_one_list() {
        let mut headers = xff("203.0.113.128");
        headers.append(X_FORWARDED_FOR, "203.0.113.10".parse().unwrap());
        let detection = ClientIpDetection::XForwardedFor {
            trust: XffTrust::Hops(2),
            append: true,
        };
        assert_eq!(
            detection.detect(&headers, None),
            Ok(Some(ip("203.0.113.128")))
        );
    }

    #[test]
    fn trusted_cidrs_walk_from_the_right_past_trusted_entries() {
        let detection = ClientIpDetection::XForwardedFor {
            trust: XffTrust::Cidrs(vec!["10.0.0.0/8".parse().unwrap()]),
            append: true,
        };
        let trusted_peer = Some(ip("10.1.1.1"));
        let chain = xff("192.0.2.9, 203.0.113.5, 10.2.2.2, 10.3.3.3");
        assert_eq!(
            detection.detect(&chain, trusted_peer),
            Ok(Some(ip("203.0.113.5")))
        );
        assert_eq!(
            detection.detect(&xff("10.9.9.9, 10.3.3.3"), trusted_peer),
            Ok(Some(ip("10.9.9.9"))),
            "all trusted: the leftmost"
        );
        let untrusted = Some(ip("198.51.100.1"));
        assert_eq!(
            detection.detect(&chain, untrusted),
            Ok(untrusted),
            "untrusted peer"
        );
        assert_eq!(
            detection.detect(&xff("junk, 10.3.3.3"), trusted_peer),
            Ok(trusted_peer)
        );
    }

    #[test]
    fn custom_header_falls_back_or_fails_closed() {
        let name = HeaderName::from_static("x-real-ip");
        let open = ClientIpDetection::CustomHeader {
            name: name.clone(),
            fail_closed: false,
        };
        let closed = ClientIpDetection::CustomHeader {
            name: name.clone(),
            fail_closed: true,
        };
        let mut headers = HeaderMap::new();
        headers.insert(&name, " 192.0.2.1 ".parse().unwrap());
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(closed.detect(&headers, peer), Ok(Some(ip("192.0.2.1"))));
        headers.insert(&name, "192.0.2.1:80".parse().unwrap());
        assert_eq!(open.detect(&headers, peer), Ok(peer));
        assert_eq!(
            closed.detect(&headers, peer),
            Err(ClientIpError::HeaderMissing(name))
        );
    }

    #[test]
    fn addresses_are_written_as_text() {
        for text in [
            "0.0.0.0",
            "10.0.0.7",
            "192.168.100.255",
            "203.0.113.99",
            "::1",
            "2001:db8::5",
        ] {
            let mut out = Vec::new();
            push_ip(&mut out, ip(text));
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn the_peer_is_appended_unless_disabled() {
        let peer = hbone::peer::Peer::tcp("10.0.0.7:5000".parse().unwrap(), None);
        let request = || {
            let mut request = Request::new(());
            request
                .headers_mut()
                .insert(X_FORWARDED_FOR, "192.0.2.1".parse().unwrap());
            request.extensions_mut().insert(peer.clone());
            request
        };
        let mut appended = request();
        ClientIpDetection::Peer.apply(&mut appended).unwrap();
        assert_eq!(appended.headers()[&X_FORWARDED_FOR], "192.0.2.1, 10.0.0.7");
        assert_eq!(
            appended.extensions().get::<ClientAddress>(),
            Some(&ClientAddress(ip("10.0.0.7")))
        );
        let mut kept = request();
        let detection = ClientIpDetection::XForwardedFor {
            trust: XffTrust::Hops(1),
            append: false,
        };
        detection.apply(&mut kept).unwrap();
        assert_eq!(kept.headers()[&X_FORWARDED_FOR], "192.0.2.1");
        assert_eq!(
            kept.extensions().get::<ClientAddress>(),
            Some(&ClientAddress(ip("192.0.2.1")))
        );
    }
}
