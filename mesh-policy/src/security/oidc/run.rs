//! One request through OIDC on the request path: the endpoints discovered when needed (one
//! discovery at a time; a failed one is not retried for a second), the decision taken, the exchange with the
//! provider awaited, and the outcome applied to the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};

use super::flow::{ForwardEdits, OidcAnswer, OidcRequest, OidcStep};
use super::params::{Endpoints, Oidc};
use super::tokens::Discovery;
use super::{OidcFailure, PROVIDER_TIMEOUT, ProviderRequest};

/// How long a failed discovery keeps requests from trying again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(1);

/// What OIDC made of a request.
#[derive(Debug)]
pub enum OidcOutcome {
    /// Forward it (already edited); these `Set-Cookie`s go on its response.
    Forward(Vec<HeaderValue>),
    /// Answer it with this redirect.
    Answer(OidcAnswer),
}

/// Runs `oidc` on `request`, served over `scheme`; `has_bearer`: it carries a token the
/// policy's `jwt` section would judge.
pub async fn authenticate<B>(
    oidc: &Oidc,
    request: &mut Request<B>,
    scheme: &str,
    has_bearer: bool,
) -> Result<OidcOutcome, OidcFailure> {
    let now = crate::security::jwt::unix_now();
    let mut endpoints = oidc.endpoints();
    loop {
        match oidc.judge(
            &view(request, scheme, now, has_bearer),
            endpoints.as_deref(),
        ) {
            OidcStep::Discover if endpoints.is_none() => {
                endpoints = Some(discover(oidc).await?);
            }
            OidcStep::Discover => return Err(OidcFailure::NoEndpoints),
            OidcStep::Forward(edits) => return Ok(forward(oidc, request, edits)),
            OidcStep::Answer(answer) => return Ok(OidcOutcome::Answer(answer)),
            OidcStep::Refuse(failure) => return Err(failure),
            OidcStep::ExchangeCode(exchange) => {
                let answer = oidc.client.send(exchange.request.clone()).await;
                return oidc
                    .finish_login(&exchange, answer, now)
                    .map(OidcOutcome::Answer);
            }
            OidcStep::Refresh(exchange) => {
                let answer = oidc.client.send(exchange.request.clone()).await;
                if let Ok(edits) = oidc.finish_refresh(&exchange, answer, now) {
                    return Ok(forward(oidc, request, edits));
                }
                // A refused refresh starts a new login.
                return match oidc.login(
                    &view(request, scheme, now, has_bearer),
                    endpoints.as_deref(),
                ) {
                    OidcStep::Answer(answer) => Ok(OidcOutcome::Answer(answer)),
                    OidcStep::Refuse(failure) => Err(failure),
                    _ => Err(OidcFailure::NoEndpoints),
                };
            }
        }
    }
}

/// What OIDC sees of `request`.
fn view<'a, B>(
    request: &'a Request<B>,
    scheme: &'a str,
    now: u64,
    has_bearer: bool,
) -> OidcRequest<'a> {
    OidcRequest {
        uri: request.uri(),
        headers: request.headers(),
        scheme,
        now,
        has_bearer,
    }
}

fn forward<B>(oidc: &Oidc, request: &mut Request<B>, edits: ForwardEdits) -> OidcOutcome {
    oidc.apply_forward(&edits, request.headers_mut());
    OidcOutcome::Forward(edits.set_cookies)
}

/// Clears a flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The issuer's endpoints from its discovery document, fetched once per compiled policy.
async fn discover(oidc: &Oidc) -> Result<Arc<Endpoints>, OidcFailure> {
    if let Some(found) = oidc.known.get() {
        return Ok(Arc::clone(found));
    }
    let recently_failed = oidc
        .last_discovery_failure
        .lock()
        .ok()
        .and_then(|last| *last)
        .is_some_and(|at| at.elapsed() < DISCOVERY_RETRY);
    if recently_failed {
        return Err(OidcFailure::NoEndpoints);
    }
    // One discovery at a time: requests arriving meanwhile are refused, not added to the
    // provider's load (the guard clears the flag however this future ends).
    if oidc.discovering.swap(true, Ordering::AcqRel) {
        return Err(OidcFailure::NoEndpoints);
    }
    let _one_at_a_time = ClearOnDrop(&oidc.discovering);
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let answer = oidc
        .client
        .send(ProviderRequest {
            method: Method::GET,
            url: oidc.discovery_url(),
            headers,
            body: Bytes::new(),
            timeout: PROVIDER_TIMEOUT,
        })
        .await;
    let parsed = answer.and_then(|response| {
        if response.status != StatusCode::OK {
            return Err(format!("discovery answered {}", response.status));
        }
        Discovery::parse(&response.body, &oidc.issuer, &oidc.configured)
    });
    match parsed {
        Ok(endpoints) => Ok(Arc::clone(oidc.known.get_or_init(|| Arc::new(endpoints)))),
        Err(_) => {
            if let Ok(mut last) = oidc.last_discovery_failure.lock() {
                *last = Some(Instant::now());
            }
            Err(OidcFailure::NoEndpoints)
        }
    }
}
