//! OpenID Connect (`oidc`, policy.md §3.6), as Envoy's OAuth2 filter runs it for Envoy
//! Gateway: a browser without a session is sent to the provider (authorization-code flow with
//! PKCE, a signed state and a nonce); the callback exchanges the code at the token endpoint and
//! keeps the tokens in cookies (sealed with AES-GCM unless `disableTokenEncryption`, signed
//! together with an HMAC); later requests are judged by those cookies alone, forwarded with
//! the access token (`forwardAccessToken`) and ID token (`forwardIDToken`) and without the
//! session cookies; an expired access token is refreshed with the refresh token; the logout
//! path clears the cookies and sends the browser to the provider's end-session endpoint.
//!
//! The module is sans-IO: [`Oidc::judge`] decides, [`Oidc::finish_login`] and
//! [`Oidc::finish_refresh`] read the provider's answers; the exchanges are the embedder's, an
//! [`IdentityProviderClient`] lent through the runtime. [`authenticate`] puts them together
//! on the request path.

mod flow;
pub mod model;
mod params;
mod run;
pub mod session;
mod tokens;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

pub use flow::{CodeExchange, ForwardEdits, OidcAnswer, OidcRequest, OidcStep, RefreshExchange};
pub use params::{CookieNames, Endpoints, HMAC_SECRET, Oidc, OidcRuntime, SecretReader};
pub use run::{OidcOutcome, authenticate};
pub use session::{SessionError, SessionKeys, SessionSecret};
pub use tokens::{Discovery, TokenAnswer};

#[cfg(test)]
mod tests;

/// The most bytes of a provider's answer (token or discovery document) that are read.
pub const MAX_PROVIDER_ANSWER_BYTES: usize = 256 * 1024;

/// How long one exchange with the provider may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// One exchange with the OpenID provider (discovery, code or refresh-token exchange).
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// `GET` or `POST`.
    pub method: Method,
    /// The absolute `http://` or `https://` URL (a host `name.namespace[.svc…]` names a
    /// Service of the configuration).
    pub url: String,
    /// Its headers (`Authorization`, `Content-Type`, `Accept`).
    pub headers: HeaderMap,
    /// Its body (a form, or empty).
    pub body: Bytes,
    /// How long it may take.
    pub timeout: Duration,
}

/// The provider's answer, read whole (at most [`MAX_PROVIDER_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct ProviderResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
}

/// What an exchange yields: the answer, or why there is none (for logs).
pub type ProviderFuture =
    Pin<Box<dyn Future<Output = Result<ProviderResponse, String>> + Send + 'static>>;

/// Performs exchanges with OpenID providers (connections, TLS, timeouts, size caps): the
/// runtime's part.
pub trait IdentityProviderClient: Send + Sync + fmt::Debug {
    /// Sends `request` and reads the answer.
    fn send(&self, request: ProviderRequest) -> ProviderFuture;
}

/// Why OIDC refused a request (401), each a fixed text: provider answers never reach logs or
/// metric labels verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OidcFailure {
    /// No session, and the request matches `denyRedirect`: refused instead of redirected.
    #[error("no session (denyRedirect)")]
    DenyRedirect,
    /// The provider sent the browser back with an `error`.
    #[error("the provider refused the login")]
    ProviderRefused,
    /// A callback without a code or state, or with a state this policy did not sign or that
    /// belongs to another browser's login.
    #[error("the callback's state is not ours")]
    BadState,
    /// A callback without the PKCE verifier cookie (expired login, or another browser).
    #[error("the login's PKCE verifier is missing")]
    MissingVerifier,
    /// The token endpoint could not be reached or did not answer 200.
    #[error("the token exchange failed")]
    TokenExchange,
    /// The token endpoint's answer is not a token answer.
    #[error("the token answer is malformed")]
    BadTokenAnswer,
    /// The ID token's nonce, audience or issuer is not this login's.
    #[error("the ID token is not for this login")]
    IdTokenMismatch,
    /// The provider gave no `expires_in` and the policy no `defaultTokenTTL`.
    #[error("the access token has no lifetime")]
    NoLifetime,
    /// The provider's endpoints are not known (discovery failed).
    #[error("the provider's endpoints are unknown")]
    NoEndpoints,
    /// No randomness, or no key, for the session.
    #[error("the session could not be sealed")]
    Sealing,
}

impl OidcFailure {
    /// Envoy's local-reply text.
    pub fn text(self) -> &'static str {
        match self {
            OidcFailure::DenyRedirect => "Unauthorized",
            _ => "OAuth flow failed.",
        }
    }
}

impl From<SessionError> for OidcFailure {
    fn from(_: SessionError) -> Self {
        OidcFailure::Sealing
    }
}
