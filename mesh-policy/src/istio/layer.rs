//! [`IstioAuthorizationLayer`]: a tower layer deciding each request with the
//! [`ApplicablePolicies`] the assembly put into it and the connection's
//! [`Peer`](hbone::peer::Peer); a refused request ends with `RouteError::Denied`, which the
//! runtime answers 403 `RBAC: access denied` (gRPC: PERMISSION_DENIED).

use std::sync::Arc;
use std::task::{Context, Poll};

use hbone::peer::Peer;
use http::{Request, Response, header};
use routing::router::{EarlyOrInner, RouteError};
use tower::{Layer, Service};

use super::engine::{Attributes, HttpAttributes, authorize};
use super::model::AuthorizationPolicy;
use super::request_authn::{IstioJwt, request_principal};
use crate::security::jwt::VerifiedJwt;
use crate::security::layer::bearer_challenge;

/// The policies that apply to a request, set by the assembly that knows its destination.
#[derive(Debug, Clone, Default)]
pub struct ApplicablePolicies(pub Arc<[Arc<AuthorizationPolicy>]>);

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
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = EarlyOrInner<S::Future, Response<RB>, RouteError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let verified = match authenticate(&mut request) {
            Ok(verified) => verified,
            Err(refusal) => return EarlyOrInner::Early(Some(Err(refusal))),
        };
        if let Some(ApplicablePolicies(policies)) = request.extensions().get::<ApplicablePolicies>()
            && !policies.is_empty()
        {
            let principal = verified.as_ref().and_then(request_principal);
            let mut attributes = request_attributes(&request);
            attributes.request_principal = principal.as_deref();
            attributes.request_claims = verified.as_ref().map(|jwt| jwt.claims.as_ref());
            if let Err(denied) = authorize(policies.iter().map(|p| p.as_ref()), &attributes) {
                return EarlyOrInner::Early(Some(Err(RouteError::Denied(denied.to_string()))));
            }
        }
        if let Some(verified) = verified {
            request.extensions_mut().insert(verified);
        }
        EarlyOrInner::Inner(self.inner.call(request))
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
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
        remote_ip: None,
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
