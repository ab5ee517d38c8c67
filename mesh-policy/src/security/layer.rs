//! [`SecurityPolicyLayer`]: Envoy Gateway's SecurityPolicy on the request path, after route
//! selection (it reads the [`MatchedRoute`]'s slots: the rule's policy, else the listener's)
//! and before the rule's filters. In Envoy Gateway's order: CORS (a preflight is answered
//! here, before any credentials are asked for), CSRF, external authorization, API key, basic
//! auth, OIDC, JWT (the verified token put into the request as [`VerifiedJwt`]),
//! authorization. Failures are typed
//! [`RouteError`]s — `Unauthenticated` (401 with the challenge), `Denied` (403, naming the
//! policy and rule), `Forbidden` (403 for a JWT's audiences), `PolicyInvalid` (500) — turned
//! into answers where the embedder turns every error into one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use routing::router::{MatchedRoute, RouteError, reselect};
use tower::{Layer, Service, ServiceExt};

use super::api_key::API_KEY_FAILURE_TEXT;
use super::attach::AttachedSecurityPolicy;
use super::authorization::{RequestFacts, Verdict};
use super::basic_auth::basic_challenge;
use super::compile::{CompiledSecurityPolicy, SecurityChecks};
use super::csrf::CSRF_FAILURE_TEXT;
use super::ext_auth::{BufferedBody, CheckContext, authorize};
use super::jwt::{JwtFailure, VerifiedJwt};
use super::oidc::{OidcAnswer, OidcOutcome, authenticate};

/// The client address authorization judges (`principal.clientCIDRs`), as a request
/// extension; set by client-IP detection (ClientTrafficPolicy). Without it the connection's
/// peer address ([`hbone::peer::Peer`]) is used.
pub use crate::traffic::client_ip::ClientAddress;

/// Applies the SecurityPolicy attached to each request's route or listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityPolicyLayer;

impl<S> Layer<S> for SecurityPolicyLayer {
    type Service = SecurityPolicyService<S>;

    fn layer(&self, inner: S) -> SecurityPolicyService<S> {
        SecurityPolicyService { inner }
    }
}

/// The service of [`SecurityPolicyLayer`].
#[derive(Debug, Clone)]
pub struct SecurityPolicyService<S> {
    inner: S,
}

impl<S> SecurityPolicyService<S> {
    /// Wraps `inner` (the rule's filters and dispatch).
    pub fn new(inner: S) -> Self {
        SecurityPolicyService { inner }
    }
}

/// What a SecurityPolicy decided about a request, before it goes on (sans-IO: the layer acts
/// on it, the admin's dry run reports it).
#[derive(Debug)]
pub enum Decision<R> {
    /// Answered here (a CORS preflight).
    Answer(R),
    /// Refused, with the typed reason (which names the policy and rule).
    Refuse(RouteError),
    /// Forwarded; the response gets CORS headers for this origin.
    Forward(Option<(Arc<CompiledSecurityPolicy>, HeaderValue)>),
}

impl<S, B, RB> Service<Request<B>> for SecurityPolicyService<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + BufferedBody + Send + 'static,
    B::Error: Into<routing::router::BoxError>,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = SecurityFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(policy) = attached(&request) else {
            return SecurityFuture::Inner {
                inner: self.inner.call(request),
                cors: None,
            };
        };
        if let Ok(checks) = &policy.checks
            && (checks.ext_auth.is_some() || checks.oidc.is_some())
        {
            let cors = match front(&policy, checks, &request) {
                Ok(cors) => cors,
                Err(Decision::Answer(answer)) => return SecurityFuture::Early(Some(Ok(answer))),
                Err(Decision::Refuse(error)) => return SecurityFuture::Early(Some(Err(error))),
                Err(Decision::Forward(cors)) => cors,
            };
            // The ready service goes with the request; a clone stays for the next one.
            let fresh = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, fresh);
            return SecurityFuture::Boxed(Box::pin(exchange_then_forward(
                policy, request, cors, ready,
            )));
        }
        match enforce(&policy, &mut request) {
            Decision::Answer(answer) => SecurityFuture::Early(Some(Ok(answer))),
            Decision::Refuse(error) => SecurityFuture::Early(Some(Err(error))),
            Decision::Forward(cors) => SecurityFuture::Inner {
                inner: self.inner.call(request),
                cors,
            },
        }
    }
}

type Cors = Option<(Arc<CompiledSecurityPolicy>, HeaderValue)>;

/// A policy with `extAuth` or `oidc`, whose checks need exchanges: the authorizer asked
/// (after CORS, before credentials), API key and basic auth, OIDC (a session, or a redirect
/// to the provider, the callback's code exchange, a refresh), then JWT and authorization, then
/// the inner service.
async fn exchange_then_forward<S, B, RB>(
    policy: Arc<CompiledSecurityPolicy>,
    mut request: Request<B>,
    cors: Cors,
    inner: S,
) -> Result<Response<RB>, RouteError>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
    B: Body<Data = Bytes> + BufferedBody + Send,
    B::Error: Into<routing::router::BoxError>,
    RB: Default,
{
    let Ok(checks) = &policy.checks else {
        return Err(RouteError::Misassembled("exchanges for an invalid policy"));
    };
    let mut policy = policy.clone();
    if let Some(ext) = &checks.ext_auth {
        let name = format!("SecurityPolicy {}", policy.policy);
        let context = check_context(&request);
        let principal = context.1.as_deref();
        let context = CheckContext {
            principal,
            ..context.0
        };
        request = authorize(ext, &name, request, context).await?;
        if ext.recompute_route {
            // The checks after external authorization are the re-selected route's.
            reselect(&mut request)?;
            match attached(&request) {
                Some(now) => policy = now,
                None => return forward(inner, request, cors, Vec::new()).await,
            }
        }
    }
    let checks = match &policy.checks {
        Ok(checks) => checks,
        Err(reason) => return Err(invalid(&policy, reason)),
    };
    let set_cookies = match credentials_with_exchanges(&policy, checks, &mut request).await? {
        Ok(set_cookies) => set_cookies,
        Err(answer) => {
            let mut response = Response::new(RB::default());
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            return Ok(response);
        }
    };
    forward(inner, request, cors, set_cookies).await
}

/// The inner service's answer, with CORS headers and the session's cookies.
async fn forward<S, B, RB>(
    inner: S,
    request: Request<B>,
    cors: Cors,
    set_cookies: Vec<HeaderValue>,
) -> Result<Response<RB>, RouteError>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
{
    let mut response = inner.oneshot(request).await?;
    decorate(cors, &mut response);
    for cookie in set_cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// API key, basic auth, OIDC (which may exchange with the provider or answer with a
/// redirect), JWT and authorization: the session cookies to set, or OIDC's answer.
async fn credentials_with_exchanges<B>(
    policy: &Arc<CompiledSecurityPolicy>,
    checks: &SecurityChecks,
    request: &mut Request<B>,
) -> Result<Result<Vec<HeaderValue>, OidcAnswer>, RouteError> {
    if let Some(refusal) = first_credentials(policy, checks, request) {
        return Err(refusal);
    }
    let mut set_cookies = Vec::new();
    if let Some(oidc) = &checks.oidc {
        // Looked for only when a bearer token would let the request skip OIDC.
        let has_bearer = oidc.passes_bearer_through()
            && match &checks.jwt {
                Some(jwt) => jwt.finds_token(request.uri(), request.headers()),
                None => request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes().starts_with(b"Bearer ")),
            };
        let scheme = scheme_and_host(request).0;
        match authenticate(oidc, request, scheme, has_bearer).await {
            Ok(OidcOutcome::Forward(cookies)) => set_cookies = cookies,
            Ok(OidcOutcome::Answer(answer)) => return Ok(Err(answer)),
            Err(failure) => {
                return Err(RouteError::Unauthenticated {
                    policy: format!("SecurityPolicy {} oidc: {failure}", policy.policy),
                    text: failure.text(),
                    challenge: None,
                });
            }
        }
    }
    match token_checks(policy, checks, request) {
        Some(refusal) => Err(refusal),
        None => Ok(Ok(set_cookies)),
    }
}

fn invalid(policy: &CompiledSecurityPolicy, reason: &str) -> RouteError {
    RouteError::PolicyInvalid(format!("SecurityPolicy {}: {reason}", policy.policy))
}

/// What an authorizer learns of the request's connection (the principal's text beside).
fn check_context<B>(request: &Request<B>) -> (CheckContext<'static>, Option<String>) {
    let peer = request.extensions().get::<hbone::peer::Peer>().cloned();
    let principal = peer
        .as_ref()
        .and_then(|p| p.identity.as_ref())
        .map(ToString::to_string);
    let client_ip = request.extensions().get::<ClientAddress>().map(|c| c.0);
    let context = CheckContext {
        source: peer.as_ref().map(|p| {
            std::net::SocketAddr::new(client_ip.unwrap_or(p.address.ip()), p.address.port())
        }),
        destination: peer.as_ref().and_then(|p| p.destination),
        principal: None,
        scheme: scheme_and_host(request).0,
        body: None,
    };
    (context, principal)
}

/// The policy covering the request (after route selection): its rule's, else its listener's.
pub fn attached<B>(request: &Request<B>) -> Option<Arc<CompiledSecurityPolicy>> {
    let matched = request.extensions().get::<MatchedRoute>()?;
    let from_rule = matched.rule.policy.get::<AttachedSecurityPolicy>();
    let from_listener = || {
        matched
            .listener
            .as_ref()
            .and_then(|l| l.policy.get::<AttachedSecurityPolicy>())
    };
    from_rule
        .or_else(from_listener)
        .map(|attached| Arc::clone(&attached.0))
}

/// Applies `policy` to `request` in Envoy Gateway's order (CORS, API key, basic auth, JWT,
/// authorization), editing it as forwarding would (forwarded headers, stripped keys, the
/// [`VerifiedJwt`]). External authorization and OIDC, which need exchanges, are not part of
/// it: the layer asks the authorizer between CORS and the credentials, and runs OIDC between
/// basic auth and JWT.
pub fn enforce<B, RB: Default>(
    policy: &Arc<CompiledSecurityPolicy>,
    request: &mut Request<B>,
) -> Decision<Response<RB>> {
    let checks: &SecurityChecks = match &policy.checks {
        Ok(checks) => checks,
        Err(reason) => {
            return Decision::Refuse(RouteError::PolicyInvalid(format!(
                "SecurityPolicy {}: {reason}",
                policy.policy
            )));
        }
    };
    let cors = match front(policy, checks, request) {
        Ok(cors) => cors,
        Err(decision) => return decision,
    };
    match first_credentials(policy, checks, request)
        .or_else(|| token_checks(policy, checks, request))
    {
        Some(refusal) => Decision::Refuse(refusal),
        None => Decision::Forward(cors),
    }
}

/// CORS (a preflight answered, else the origin whose response gets CORS headers), then CSRF.
fn front<B, RB: Default>(
    policy: &Arc<CompiledSecurityPolicy>,
    checks: &SecurityChecks,
    request: &Request<B>,
) -> Result<Cors, Decision<Response<RB>>> {
    let mut decorate = None;
    if let Some(cors) = &checks.cors {
        if let Some(answer) = cors.preflight(request.method(), request.headers()) {
            let mut response = Response::new(RB::default());
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            return Err(Decision::Answer(response));
        }
        decorate = request
            .headers()
            .get(header::ORIGIN)
            .map(|origin| (Arc::clone(policy), origin.clone()));
    }
    if let Some(csrf) = &checks.csrf
        && csrf.check(request.method(), request.headers()).is_err()
    {
        return Err(Decision::Refuse(RouteError::Forbidden {
            policy: format!("SecurityPolicy {} csrf", policy.policy),
            text: CSRF_FAILURE_TEXT,
        }));
    }
    Ok(decorate)
}

/// API key and basic auth (before OIDC): the refusal, if any.
fn first_credentials<B>(
    policy: &Arc<CompiledSecurityPolicy>,
    checks: &SecurityChecks,
    request: &mut Request<B>,
) -> Option<RouteError> {
    let unauthenticated = |text, challenge| {
        Some(RouteError::Unauthenticated {
            policy: format!("SecurityPolicy {}", policy.policy),
            text,
            challenge,
        })
    };
    if let Some(api_key) = &checks.api_key {
        // The key may be stripped from the query: the URI is edited beside the headers.
        let mut uri = std::mem::take(request.uri_mut());
        let checked = api_key.check(&mut uri, request.headers_mut());
        *request.uri_mut() = uri;
        if checked.is_err() {
            return unauthenticated(API_KEY_FAILURE_TEXT, None);
        }
    }
    if let Some(basic) = &checks.basic_auth
        && let Err(failure) = basic.check(request.headers_mut())
    {
        let (scheme, host) = scheme_and_host(request);
        let challenge = basic_challenge(scheme, host, request.uri().path());
        return unauthenticated(failure.text(), challenge);
    }
    None
}

/// JWT and authorization (after OIDC): the refusal, if any.
fn token_checks<B>(
    policy: &Arc<CompiledSecurityPolicy>,
    checks: &SecurityChecks,
    request: &mut Request<B>,
) -> Option<RouteError> {
    if let Some(jwt) = &checks.jwt {
        let now = super::jwt::unix_now();
        // Read beside the headers the check edits (claim headers), without a copy.
        let uri = std::mem::take(request.uri_mut());
        let checked = jwt.check(&uri, request.headers_mut(), now);
        *request.uri_mut() = uri;
        match checked {
            Ok(Some(verified)) => {
                let recompute = jwt.recomputes_route(&verified.provider);
                request.extensions_mut().insert(verified);
                if recompute {
                    // Claims became headers: the route is selected again, and the
                    // authorization that follows is the re-selected route's (Envoy reads
                    // the per-route configuration of the new route).
                    if let Err(error) = reselect(request) {
                        return Some(error);
                    }
                    return match attached(request) {
                        None => None,
                        Some(now) => match &now.checks {
                            Ok(checks) => authorization(&now, checks, request),
                            Err(reason) => Some(invalid(&now, reason)),
                        },
                    };
                }
            }
            Ok(None) => {}
            Err(failure) if failure.is_forbidden() => {
                return Some(RouteError::Forbidden {
                    policy: format!("SecurityPolicy {}", policy.policy),
                    text: failure.text(),
                });
            }
            Err(failure) => {
                let invalid = failure != JwtFailure::Missing;
                return Some(RouteError::Unauthenticated {
                    policy: format!("SecurityPolicy {}", policy.policy),
                    text: failure.text(),
                    challenge: bearer_challenge(request, invalid),
                });
            }
        }
    }
    authorization(policy, checks, request)
}

/// The authorization rules: the refusal, if any.
fn authorization<B>(
    policy: &Arc<CompiledSecurityPolicy>,
    checks: &SecurityChecks,
    request: &Request<B>,
) -> Option<RouteError> {
    if let Some(rules) = &checks.authorization {
        let client_ip = crate::traffic::facts::client_address(request);
        let facts = RequestFacts {
            method: request.method(),
            path: request.uri().path(),
            query: request.uri().query(),
            headers: request.headers(),
            client_ip,
            jwt: request.extensions().get::<VerifiedJwt>(),
        };
        if let Verdict::Denied(rule) = rules.evaluate(&facts) {
            let by = rule.map_or_else(|| "defaultAction".to_owned(), |r| format!("rule {r}"));
            return Some(RouteError::Denied(format!(
                "SecurityPolicy {} {by}",
                policy.policy
            )));
        }
    }
    None
}

/// The scheme the request came with and its host, for challenges' realms.
fn scheme_and_host<B>(request: &Request<B>) -> (&'static str, &str) {
    let scheme = request
        .extensions()
        .get::<MatchedRoute>()
        .map_or("http", |m| m.scheme);
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    (scheme, host)
}

/// Envoy's JWT challenge: `Bearer realm="<url>"`, with `error="invalid_token"` when a token
/// was presented and refused.
pub(crate) fn bearer_challenge<B>(request: &Request<B>, invalid: bool) -> Option<HeaderValue> {
    let (scheme, host) = scheme_and_host(request);
    let path = request.uri().path();
    let realm = format!("{scheme}://{host}{path}").replace(['"', '\\'], "");
    let error = if invalid {
        ", error=\"invalid_token\""
    } else {
        ""
    };
    HeaderValue::try_from(format!("Bearer realm=\"{realm}\"{error}")).ok()
}

/// The future of [`SecurityPolicyService`].
#[pin_project::pin_project(project = SecurityFutureProjection)]
pub enum SecurityFuture<F, RB> {
    /// Answered or refused without calling the inner service.
    Early(Option<Result<Response<RB>, RouteError>>),
    /// A policy with `extAuth`: the authorizer's exchange, the remaining checks and the inner
    /// service, in one boxed future.
    Boxed(Pin<Box<dyn Future<Output = Result<Response<RB>, RouteError>> + Send>>),
    /// The inner service's answer, decorated with CORS headers.
    Inner {
        /// The inner future.
        #[pin]
        inner: F,
        /// The policy and origin the response's CORS headers come from.
        cors: Option<(Arc<CompiledSecurityPolicy>, HeaderValue)>,
    },
}

impl<F, RB> Future for SecurityFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SecurityFutureProjection::Early(answer) => Poll::Ready(
                answer
                    .take()
                    .unwrap_or(Err(RouteError::Misassembled("a finished security future"))),
            ),
            SecurityFutureProjection::Boxed(future) => future.as_mut().poll(cx),
            SecurityFutureProjection::Inner { inner, cors } => {
                let mut response = match inner.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    other => return other,
                };
                decorate(cors.take(), &mut response);
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// Adds the CORS headers for the request's origin to `response`.
fn decorate<RB>(cors: Cors, response: &mut Response<RB>) {
    if let Some((policy, origin)) = cors
        && let Ok(checks) = &policy.checks
        && let Some(cors) = &checks.cors
    {
        cors.decorate(Some(&origin), response.headers_mut());
    }
}
