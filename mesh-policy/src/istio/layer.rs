//! [`IstioAuthorizationLayer`]: a tower layer deciding each request with the
//! [`ApplicablePolicies`] the assembly put into it and the connection's
//! [`Peer`](hbone::peer::Peer), in Istio's order: the request's JWT
//! ([`ApplicableAuthentication`]), matching CUSTOM policies asking their external authorizers
//! ([`CustomAuthorization`]), then DENY and ALLOW. A refused request ends with
//! `RouteError::Denied`, which the runtime answers 403 `RBAC: access denied` (gRPC:
//! PERMISSION_DENIED); an authorizer's own denial is relayed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hbone::peer::Peer;
use http::{Request, Response, header};
use http_body::Body;
use routing::router::RouteError;
use tower::{Layer, Service, ServiceExt};

use super::custom::CustomAuthorizers;
use super::engine::{Attributes, HttpAttributes, PolicyDenied, authorize, matching_custom};
use super::model::{AuthorizationPolicy, PolicyAction};
use super::request_authn::{IstioJwt, request_principal};
use crate::security::ext_auth::{BufferedBody, CheckContext, authorize as ext_authorize};
use crate::security::jwt::VerifiedJwt;
use crate::security::layer::bearer_challenge;

/// The policies that apply to a request, set by the assembly that knows its destination.
#[derive(Debug, Clone, Default)]
pub struct ApplicablePolicies(pub Arc<[Arc<AuthorizationPolicy>]>);

/// The external authorizers of the waypoint's CUSTOM policies, set beside
/// [`ApplicablePolicies`].
#[derive(Debug, Clone)]
pub struct CustomAuthorization(pub Arc<CustomAuthorizers>);

/// The RequestAuthentications that apply to a request (compiled together), set beside
/// [`ApplicablePolicies`].
#[derive(Debug, Clone)]
pub struct ApplicableAuthentication(pub Arc<IstioJwt>);

/// The layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct IstioAuthorizationLayer;

impl<S> Layer<S> for IstioAuthorizationLayer {
    type Service = IstioAuthorization<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IstioAuthorization { inner }
    }
}

/// The service of [`IstioAuthorizationLayer`].
#[derive(Debug, Clone)]
pub struct IstioAuthorization<S> {
    inner: S,
}

impl<S> IstioAuthorization<S> {
    /// Decides requests before `inner` sees them.
    pub fn new(inner: S) -> Self {
        IstioAuthorization { inner }
    }
}

impl<S, B, RB> Service<Request<B>> for IstioAuthorization<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + BufferedBody + Send + 'static,
    B::Error: Into<routing::router::BoxError>,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = IstioFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let verified = match authenticate(&mut request) {
            Ok(verified) => verified,
            Err(refusal) => return IstioFuture::Early(Some(Err(refusal))),
        };
        let policies = request
            .extensions()
            .get::<ApplicablePolicies>()
            .map(|p| Arc::clone(&p.0))
            .unwrap_or_default();
        if policies.is_empty() {
            return IstioFuture::Inner(self.inner.call(with_jwt(request, verified)));
        }
        let principal = verified.as_ref().and_then(request_principal);
        // One look at the attributes: the matching CUSTOM policies, or (none) the decision.
        let custom: Vec<String> = {
            let mut attributes = request_attributes(&request);
            attributes.request_principal = principal.as_deref();
            attributes.request_claims = verified.as_ref().map(|jwt| jwt.claims.as_ref());
            let custom: Vec<String> =
                matching_custom(policies.iter().map(|p| p.as_ref()), &attributes)
                    .into_iter()
                    .map(AuthorizationPolicy::key)
                    .collect();
            if custom.is_empty()
                && let Err(denied) = authorize(policies.iter().map(|p| p.as_ref()), &attributes)
            {
                return IstioFuture::Early(Some(Err(RouteError::Denied(denied.to_string()))));
            }
            custom
        };
        if custom.is_empty() {
            return IstioFuture::Inner(self.inner.call(with_jwt(request, verified)));
        }
        // The ready service goes with the request; a clone stays for the next one.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        IstioFuture::Boxed(Box::pin(ask_then_decide(
            request, custom, policies, principal, verified, ready,
        )))
    }
}

/// Matching CUSTOM policies ask their authorizers (in order); then DENY and ALLOW decide on
/// the request as the authorizers left it.
async fn ask_then_decide<S, B, RB>(
    mut request: Request<B>,
    custom: Vec<String>,
    policies: Arc<[Arc<AuthorizationPolicy>]>,
    principal: Option<String>,
    verified: Option<VerifiedJwt>,
    inner: S,
) -> Result<Response<RB>, RouteError>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
    B: Body<Data = Bytes> + BufferedBody + Send,
    B::Error: Into<routing::router::BoxError>,
{
    let authorizers = request
        .extensions()
        .get::<CustomAuthorization>()
        .map(|c| Arc::clone(&c.0));
    for key in custom {
        let ext = match authorizers.as_ref().and_then(|a| a.0.get(&key)) {
            Some(Ok(ext)) => Arc::clone(ext),
            Some(Err(reason)) => {
                return Err(RouteError::Denied(format!("CUSTOM policy {key}: {reason}")));
            }
            None => {
                return Err(RouteError::Denied(
                    PolicyDenied::NoAuthorizer(key).to_string(),
                ));
            }
        };
        let peer = request.extensions().get::<Peer>().cloned();
        let source_principal = peer
            .as_ref()
            .and_then(|p| p.identity.as_ref())
            .map(ToString::to_string);
        let context = CheckContext {
            source: peer.as_ref().map(|p| p.address),
            destination: peer.as_ref().and_then(|p| p.destination),
            principal: source_principal.as_deref(),
            scheme: "http",
            body: None,
        };
        request = ext_authorize(
            &ext,
            &format!("AuthorizationPolicy {key}"),
            request,
            context,
        )
        .await?;
    }
    let remaining: Arc<[Arc<AuthorizationPolicy>]> = policies
        .iter()
        .filter(|p| p.spec.action != PolicyAction::Custom)
        .cloned()
        .collect();
    decide(&remaining, &request, principal.as_deref(), &verified)?;
    inner.oneshot(with_jwt(request, verified)).await
}

/// DENY, then ALLOW, for `request`.
fn decide<B>(
    policies: &[Arc<AuthorizationPolicy>],
    request: &Request<B>,
    principal: Option<&str>,
    verified: &Option<VerifiedJwt>,
) -> Result<(), RouteError> {
    let mut attributes = request_attributes(request);
    attributes.request_principal = principal;
    attributes.request_claims = verified.as_ref().map(|jwt| jwt.claims.as_ref());
    authorize(policies.iter().map(|p| p.as_ref()), &attributes)
        .map_err(|denied| RouteError::Denied(denied.to_string()))
}

fn with_jwt<B>(mut request: Request<B>, verified: Option<VerifiedJwt>) -> Request<B> {
    if let Some(verified) = verified {
        request.extensions_mut().insert(verified);
    }
    request
}

/// The future of [`IstioAuthorization`].
#[pin_project::pin_project(project = IstioFutureProjection)]
pub enum IstioFuture<F, RB> {
    /// Refused before the inner service.
    Early(Option<Result<Response<RB>, RouteError>>),
    /// CUSTOM authorizers asked, then the inner service, in one boxed future.
    Boxed(Pin<Box<dyn Future<Output = Result<Response<RB>, RouteError>> + Send>>),
    /// The inner service's answer.
    Inner(#[pin] F),
}

impl<F, RB> Future for IstioFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, RouteError>>,
{
    type Output = Result<Response<RB>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            IstioFutureProjection::Early(answer) => Poll::Ready(answer.take().unwrap_or(Err(
                RouteError::Misassembled("a finished authorization future"),
            ))),
            IstioFutureProjection::Boxed(future) => future.as_mut().poll(cx),
            IstioFutureProjection::Inner(inner) => inner.poll(cx),
        }
    }
}

/// Checks the request's JWT against its [`ApplicableAuthentication`]: the verified token, none
/// presented, or the 401 refusal with a `Bearer` challenge.
fn authenticate<B>(request: &mut Request<B>) -> Result<Option<VerifiedJwt>, RouteError> {
    let Some(ApplicableAuthentication(jwt)) = request
        .extensions()
        .get::<ApplicableAuthentication>()
        .cloned()
    else {
        return Ok(None);
    };
    let now = crate::security::jwt::unix_now();
    let uri = std::mem::take(request.uri_mut());
    let checked = jwt.authenticate(&uri, request.headers_mut(), now);
    *request.uri_mut() = uri;
    checked.map_err(|failure| {
        let policy = "RequestAuthentication".to_owned();
        if failure.is_forbidden() {
            RouteError::Forbidden {
                policy,
                text: failure.text(),
            }
        } else {
            RouteError::Unauthenticated {
                policy,
                text: failure.text(),
                challenge: bearer_challenge(request, true),
            }
        }
    })
}

/// The attributes of an HTTP request and its connection's peer.
pub(crate) fn request_attributes<B>(request: &Request<B>) -> Attributes<'_> {
    let peer = request.extensions().get::<Peer>();
    let identity = peer.and_then(|p| p.identity.as_ref());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    Attributes {
        principal: identity.map(|id| id.as_str().trim_start_matches("spiffe://")),
        namespace: identity.map(|id| id.namespace()),
        service_account: identity.map(|id| id.service_account()),
        source_ip: peer.map(|p| p.address.ip()),
        // The client address ClientTrafficPolicy detected (X-Forwarded-For, PROXY), if any.
        remote_ip: request
            .extensions()
            .get::<crate::security::ClientAddress>()
            .map(|c| c.0),
        request_principal: None,
        request_claims: None,
        destination: peer.and_then(|p| p.destination),
        http: Some(HttpAttributes {
            host,
            method: request.method().as_str(),
            path: request.uri().path(),
            headers: request.headers(),
        }),
    }
}
