//! Istio authorization in a Gateway API gateway: AuthorizationPolicies and
//! RequestAuthentications whose `targetRefs` name a Gateway (of their namespace) apply to every
//! request its listeners take, as Istio applies them to its own gateway deployments. They are
//! compiled with the configuration's SecurityPolicies (one remote-JWKS round), attached to the
//! Gateway's listener slots as [`IstioGatewayPolicies`], and put into each request by
//! [`IstioFromListenerLayer`] for the [`IstioAuthorization`](super::IstioAuthorization) that
//! follows it — the engine, matchers and order of the waypoint.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use routing::model::{Config, ObjectKey};
use routing::router::MatchedRoute;
use tower::{Layer, Service};

use super::layer::{ApplicableAuthentication, ApplicablePolicies, CustomAuthorization};
use super::model::AuthorizationPolicy;
use super::waypoint::{Attaching, WaypointPolicies};
use crate::security::SecurityRuntime;

/// The Istio policies of one Gateway, attached to its listeners' slots.
#[derive(Debug, Clone)]
pub struct IstioGatewayPolicies {
    /// AuthorizationPolicies, in the engine's order of reading.
    pub policies: ApplicablePolicies,
    /// RequestAuthentications, compiled together.
    pub authentication: Option<ApplicableAuthentication>,
    /// The authorizers of CUSTOM policies.
    pub custom: CustomAuthorization,
}

impl IstioGatewayPolicies {
    /// The policies targeting `gateway` in `config`, if any; `Err` names what cannot be read
    /// (the caller then refuses the Gateway's traffic: [`IstioGatewayPolicies::deny_all`]).
    pub fn build(
        config: &Config,
        gateway: &ObjectKey,
        runtime: &SecurityRuntime,
    ) -> Result<Option<Self>, String> {
        let found = WaypointPolicies::collect(config, gateway, runtime, Attaching::Gateway)
            .map_err(|e| e.to_string())?;
        if found.is_empty() {
            return Ok(None);
        }
        Ok(Some(IstioGatewayPolicies {
            policies: ApplicablePolicies(Arc::clone(found.for_service(gateway))),
            authentication: found
                .authentication_for_service(gateway)
                .cloned()
                .map(ApplicableAuthentication),
            custom: CustomAuthorization(Arc::clone(found.custom_authorizers())),
        }))
    }

    /// Fails closed: one DENY policy matching every request, named after the Gateway.
    pub fn deny_all(gateway: &ObjectKey) -> Option<Self> {
        let yaml = format!(
            "metadata: {{name: unreadable-istio-policies, namespace: {}}}\nspec: {{action: DENY, rules: [{{}}]}}",
            gateway.namespace
        );
        let policy: AuthorizationPolicy = serde_yaml_ng::from_str(&yaml).ok()?;
        Some(IstioGatewayPolicies {
            policies: ApplicablePolicies(Arc::from([Arc::new(policy)])),
            authentication: None,
            custom: CustomAuthorization(Arc::default()),
        })
    }
}

/// The admin's dry run of the Istio policies attached to the request's listener (after route
/// selection): `None` when none are; else how many, and the engine's decision on the
/// request's connection and HTTP attributes. A dry run verifies no token (no request
/// principal) and asks no CUSTOM authorizer: a matching CUSTOM policy is reported as the one
/// that would be asked.
pub fn dry_run<B>(request: &Request<B>) -> Option<(usize, Result<(), super::PolicyDenied>)> {
    let attached = request
        .extensions()
        .get::<MatchedRoute>()
        .and_then(|m| m.listener.as_ref())
        .and_then(|l| l.policy.get::<IstioGatewayPolicies>())?;
    let policies = &attached.policies.0;
    let attributes = super::layer::request_attributes(request);
    Some((
        policies.len(),
        super::decide(policies.iter().map(|p| p.as_ref()), &attributes),
    ))
}

/// Puts the matched listener's [`IstioGatewayPolicies`] into the request, for the
/// [`IstioAuthorization`](super::IstioAuthorization) after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct IstioFromListenerLayer;

impl<S> Layer<S> for IstioFromListenerLayer {
    type Service = IstioFromListener<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IstioFromListener { inner }
    }
}

/// The service of [`IstioFromListenerLayer`].
#[derive(Debug, Clone)]
pub struct IstioFromListener<S> {
    inner: S,
}

impl<S> IstioFromListener<S> {
    /// Feeds `inner` (an `IstioAuthorization`).
    pub fn new(inner: S) -> Self {
        IstioFromListener { inner }
    }
}

impl<S, B> Service<Request<B>> for IstioFromListener<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let attached = request
            .extensions()
            .get::<MatchedRoute>()
            .and_then(|m| m.listener.as_ref())
            .and_then(|l| l.policy.get::<IstioGatewayPolicies>())
            .cloned();
        if let Some(attached) = attached {
            let extensions = request.extensions_mut();
            extensions.insert(attached.policies);
            extensions.insert(attached.custom);
            if let Some(authentication) = attached.authentication {
                extensions.insert(authentication);
            }
        }
        self.inner.call(request)
    }
}
