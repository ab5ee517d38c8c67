//! Request normalisation before route selection (ClientTrafficPolicy `path` and
//! `headers.withUnderscoresAction`, policy.md §1.6–§1.7): the path normalised (or the
//! request refused, or redirected to the normal path), headers whose names carry `_` refused
//! or dropped. [`PathNormalizationLayer`] applies it to every request.
//!
//! ```
//! use mesh_policy::traffic::normalize::{Normalization, PathNormalizationLayer, Underscores};
//! let layer = PathNormalizationLayer::new(Normalization {
//!     underscores: Underscores::Drop,
//!     ..Normalization::default()
//! });
//! # let _ = layer;
//! ```

use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use routing::router::RouteError;
use tower::{Layer, Service};

use super::path::{Normalized, PathNormalization};

/// What to do with request headers whose names contain `_` (`withUnderscoresAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Keep them.
    Allow,
    /// Refuse the request, 400 (Envoy Gateway's default).
    #[default]
    Reject,
    /// Remove them before any later layer sees them.
    Drop,
}

/// How requests are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalization {
    /// The path.
    pub path: PathNormalization,
    /// Headers with underscores.
    pub underscores: Underscores,
}

/// What normalising a request came to.
#[derive(Debug)]
pub enum NormalizeOutcome {
    /// Go on (the request may have been changed).
    Continue,
    /// Answer with a 307 to this location.
    Redirect(HeaderValue),
}

impl Normalization {
    /// Normalises `request` in place; `policy` names the policy in refusals (written only
    /// for one).
    pub fn apply<B>(
        &self,
        request: &mut Request<B>,
        policy: &dyn std::fmt::Display,
    ) -> Result<NormalizeOutcome, RouteError> {
        let bad = |reason: String| RouteError::BadRequest {
            policy: policy.to_string(),
            reason,
        };
        let has_underscore = |request: &Request<B>| {
            request
                .headers()
                .keys()
                .any(|name| name.as_str().contains('_'))
        };
        if self.underscores != Underscores::Allow && has_underscore(request) {
            let named: Vec<header::HeaderName> = request
                .headers()
                .keys()
                .filter(|name| name.as_str().contains('_'))
                .cloned()
                .collect();
            if let Some(first) = named.first()
                && self.underscores == Underscores::Reject
            {
                return Err(bad(format!("header {first} has an underscore")));
            }
            for name in named {
                request.headers_mut().remove(name);
            }
        }
        // CONNECT's authority form and `OPTIONS *` have no path to normalise.
        let Some(target) = request.uri().path_and_query() else {
            return Ok(NormalizeOutcome::Continue);
        };
        if target.as_str() == "*" || !target.as_str().starts_with('/') {
            return Ok(NormalizeOutcome::Continue);
        }
        match self.path.normalize(target.as_str()) {
            Err(error) => Err(bad(error.to_string())),
            Ok(Normalized::Unchanged) => Ok(NormalizeOutcome::Continue),
            Ok(Normalized::Redirect(location)) => HeaderValue::try_from(location)
                .map(NormalizeOutcome::Redirect)
                .map_err(|_| bad("the normalised path is not a header value".into())),
            Ok(Normalized::Forward(normal)) => {
                let path = PathAndQuery::try_from(normal)
                    .map_err(|_| bad("the normalised path is not a URI path".into()))?;
                let mut parts = request.uri().clone().into_parts();
                parts.path_and_query = Some(path);
                *request.uri_mut() =
                    Uri::from_parts(parts).map_err(|_| bad("the normalised URI".into()))?;
                Ok(NormalizeOutcome::Continue)
            }
        }
    }
}

/// Normalises every request with fixed settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathNormalizationLayer {
    normalization: Normalization,
}

impl PathNormalizationLayer {
    /// Normalises with `normalization`.
    pub fn new(normalization: Normalization) -> Self {
        PathNormalizationLayer { normalization }
    }
}

impl<S> Layer<S> for PathNormalizationLayer {
    type Service = PathNormalizationService<S>;

    fn layer(&self, inner: S) -> PathNormalizationService<S> {
        PathNormalizationService {
            normalization: self.normalization,
            inner,
        }
    }
}

/// The service of [`PathNormalizationLayer`].
#[derive(Debug, Clone)]
pub struct PathNormalizationService<S> {
    normalization: Normalization,
    inner: S,
}

/// A 307 to `location` with an empty body.
pub fn redirect<RB: Default>(location: HeaderValue) -> Response<RB> {
    let mut response = Response::new(RB::default());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response.headers_mut().insert(header::LOCATION, location);
    response
}

impl<S, B, RB> Service<Request<B>> for PathNormalizationService<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = RouteError>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = RouteError;
    type Future = routing::router::EarlyOrInner<S::Future, Response<RB>, RouteError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self
            .normalization
            .apply(&mut request, &"path normalization")
        {
            Ok(NormalizeOutcome::Continue) => {
                routing::router::EarlyOrInner::Inner(self.inner.call(request))
            }
            Ok(NormalizeOutcome::Redirect(location)) => {
                routing::router::EarlyOrInner::Early(Some(Ok(redirect(location))))
            }
            Err(refusal) => routing::router::EarlyOrInner::Early(Some(Err(refusal))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str) -> Request<()> {
        Request::builder().uri(target).body(()).unwrap()
    }

    #[test]
    fn the_forwarded_request_carries_the_normal_path() {
        let mut r = request("/a/../admin//x?q=/..");
        let outcome = Normalization::default().apply(&mut r, &"p").unwrap();
        assert!(matches!(outcome, NormalizeOutcome::Continue));
        assert_eq!(r.uri().path_and_query().unwrap().as_str(), "/admin/x?q=/..");
        let mut absolute = request("http://shop.example/x/./y");
        Normalization::default().apply(&mut absolute, &"p").unwrap();
        assert_eq!(absolute.uri().to_string(), "http://shop.example/x/y");
    }

    #[test]
    fn escaped_slashes_redirect_by_default() {
        let mut r = request("/a%2Fb");
        match Normalization::default().apply(&mut r, &"p").unwrap() {
            NormalizeOutcome::Redirect(location) => assert_eq!(location, "/a/b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn underscores_are_refused_dropped_or_kept() {
        let with = |underscores| Normalization {
            underscores,
            ..Normalization::default()
        };
        let mut r = request("/");
        r.headers_mut().insert("x_user", "a".parse().unwrap());
        assert!(matches!(
            with(Underscores::Reject).apply(&mut r.clone_parts(), &"p"),
            Err(RouteError::BadRequest { .. })
        ));
        let mut dropped = r.clone_parts();
        with(Underscores::Drop).apply(&mut dropped, &"p").unwrap();
        assert!(dropped.headers().get("x_user").is_none());
        with(Underscores::Allow).apply(&mut r, &"p").unwrap();
        assert!(r.headers().get("x_user").is_some());
    }

    trait CloneParts {
        fn clone_parts(&self) -> Request<()>;
    }
    impl CloneParts for Request<()> {
        fn clone_parts(&self) -> Request<()> {
            let mut copy = Request::builder().uri(self.uri().clone()).body(()).unwrap();
            *copy.headers_mut() = self.headers().clone();
            copy
        }
    }
}
