//! The one place where failures of a CONNECT become HTTP statuses (hbone spec §1.6).

use http::{Method, StatusCode};

use crate::connect_headers::AuthorityError;
use crate::metrics::ResponseFlags;

/// Why a CONNECT was not answered 200.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectRefusal {
    /// The method is not CONNECT.
    #[error("method {0} is not CONNECT")]
    NotConnect(Method),
    /// The `:authority` is missing or unparseable.
    #[error("bad authority: {0}")]
    BadAuthority(#[from] AuthorityError),
    /// The request has no `:authority` at all.
    #[error("missing authority")]
    MissingAuthority,
    /// The service decided to refuse with this status.
    #[error("refused by policy with {0}")]
    Refused(StatusCode),
    /// The service failed.
    #[error("connect service failed: {0}")]
    ServiceFailed(String),
    /// Connecting to the upstream failed or timed out.
    #[error("upstream connect to {upstream} failed: {source}")]
    UpstreamConnect {
        /// The upstream address.
        upstream: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl ConnectRefusal {
    /// The status answered for this refusal: 400 for bad requests, the service's own status,
    /// 503 when the target cannot be reached or the service failed.
    pub fn status(&self) -> StatusCode {
        match self {
            ConnectRefusal::NotConnect(_)
            | ConnectRefusal::BadAuthority(_)
            | ConnectRefusal::MissingAuthority => StatusCode::BAD_REQUEST,
            ConnectRefusal::Refused(status) => *status,
            ConnectRefusal::ServiceFailed(_) | ConnectRefusal::UpstreamConnect { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `response_flags` metric label for this refusal: `DENY` for 401/403, `CONNECT` when
    /// the upstream could not be reached.
    pub fn response_flags(&self) -> ResponseFlags {
        match self {
            ConnectRefusal::Refused(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                ResponseFlags::Deny
            }
            ConnectRefusal::UpstreamConnect { .. } => ResponseFlags::Connect,
            _ => ResponseFlags::None,
        }
    }
}
