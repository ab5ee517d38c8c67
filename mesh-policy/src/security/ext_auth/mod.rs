//! External authorization (`extAuth`, policy.md §3.7): before API keys, basic auth and JWTs,
//! the request is described to an authorizer — over HTTP (the request's method and path,
//! prefixed, with a few of its headers) or over gRPC (Envoy's
//! `envoy.service.auth.v3.Authorization/Check`) — and its answer decides:
//!
//! - allowed: the request goes on, with the headers the authorizer asked for (HTTP:
//!   `headersToBackend` copied from its 2xx answer; gRPC: `ok_response.headers`, set or
//!   appended, and `headers_to_remove`);
//! - denied: the authorizer's answer is relayed to the client (HTTP: its non-2xx status,
//!   headers and body; gRPC: `denied_response`, 403 when it names no status);
//! - no answer (unreachable, slower than `timeout`, not an answer): `statusOnError` (403) unless
//!   `failOpen`.
//!
//! The exchange itself is the embedder's: an [`AuthorizerClient`] given to the compiler
//! (without one, a policy with `extAuth` fails closed). This module is sans-IO:
//! [`ExtAuth::prepare`] writes the check request, [`ExtAuth::interpret`] reads the answer.

mod grpc;
mod http_check;
pub(crate) mod params;
mod run;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

pub use params::{AuthorizerProtocol, AuthorizerTarget, ExtAuth};
pub use run::{BufferedBody, authorize};

#[cfg(test)]
mod tests;

/// The most bytes of an authorizer's answer that are read; a longer one is an error.
pub const MAX_AUTHORIZER_ANSWER_BYTES: usize = 1024 * 1024;

/// One exchange the embedder performs with an authorizer.
#[derive(Debug)]
pub struct AuthorizerRequest {
    /// Where to send it.
    pub target: Arc<AuthorizerTarget>,
    /// HTTP/1.1 for an HTTP authorizer; HTTP/2 (prior knowledge) for gRPC.
    pub protocol: AuthorizerProtocol,
    /// The request (origin-form URI; `Host`/`:authority` set).
    pub request: http::Request<Bytes>,
    /// How long the whole exchange may take.
    pub timeout: Duration,
}

/// An authorizer's answer, read whole (at most [`MAX_AUTHORIZER_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct AuthorizerResponse {
    /// Status and headers.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The trailers (gRPC's `grpc-status`), when any.
    pub trailers: Option<HeaderMap>,
}

/// What an exchange yields: the answer, or why there is none.
pub type AuthorizerFuture =
    Pin<Box<dyn Future<Output = Result<AuthorizerResponse, String>> + Send + 'static>>;

/// Performs exchanges with authorizers (connections, timeouts, size caps): the runtime's part.
pub trait AuthorizerClient: Send + Sync + fmt::Debug {
    /// Sends `request` and reads the answer within its timeout.
    fn exchange(&self, request: AuthorizerRequest) -> AuthorizerFuture;
}

/// What the policy learns of the request beside its head.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckContext<'a> {
    /// The client's address.
    pub source: Option<SocketAddr>,
    /// The address the request arrived at.
    pub destination: Option<SocketAddr>,
    /// The client's SPIFFE ID (mTLS), for gRPC's `source.principal`.
    pub principal: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The buffered body (`bodyToExtAuth`).
    pub body: Option<&'a Bytes>,
}

/// How the forwarded request changes when the authorizer allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedEdits {
    /// Headers set (replacing any of the same name).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers appended.
    pub append: Vec<(HeaderName, HeaderValue)>,
    /// Headers added only where the request has none of that name.
    pub add_if_absent: Vec<(HeaderName, HeaderValue)>,
    /// Headers replaced only where the request has one of that name.
    pub replace: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
}

impl AllowedEdits {
    /// Applies the edits to the forwarded request's headers.
    pub fn apply(self, headers: &mut HeaderMap) {
        for name in self.remove {
            headers.remove(&name);
        }
        for (name, value) in self.set {
            headers.insert(name, value);
        }
        for (name, value) in self.append {
            headers.append(name, value);
        }
        for (name, value) in self.add_if_absent {
            if !headers.contains_key(&name) {
                headers.insert(name, value);
            }
        }
        for (name, value) in self.replace {
            if headers.contains_key(&name) {
                headers.insert(name, value);
            }
        }
    }
}

/// The authorizer's decision.
#[derive(Debug, Clone)]
pub enum ExtAuthVerdict {
    /// Go on, with these edits.
    Allowed(AllowedEdits),
    /// Refused: this answer goes to the client.
    Denied {
        /// The status.
        status: StatusCode,
        /// The headers.
        headers: HeaderMap,
        /// The body.
        body: Bytes,
    },
    /// No decision (the reason is logged); `statusOnError` or `failOpen` applies.
    Failed(String),
}

/// Headers that describe a connection or a message's framing, never relayed.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "content-length"
    )
}
