//! Istio authorization (policy.md §4): the `security.istio.io/v1` AuthorizationPolicy model,
//! and the one authorization engine — Istio's matching rules over L4 and L7 attributes and its
//! decision order ([`decide`], for every [`JudgedPolicy`]: AuthorizationPolicy in the waypoint,
//! ztunnel's L4 form in the node proxy) — which policies a waypoint applies
//! (`targetRefs` to its Gateway, its GatewayClass or a Service), and a tower layer answering
//! refused requests with a typed error (`RouteError::Denied`, 403 `RBAC: access denied`).

mod custom;
mod engine;
mod gateway;
mod layer;
mod matching;
mod model;
mod request_authn;
mod waypoint;

pub use custom::CustomAuthorizers;
pub(crate) use engine::object_matches;
pub use engine::{
    Attributes, HttpAttributes, JudgedPolicy, PolicyDenied, authorize, decide, matching_custom,
    policy_matches,
};
pub use gateway::{IstioFromListener, IstioFromListenerLayer, IstioGatewayPolicies, dry_run};
pub use layer::{
    ApplicableAuthentication, ApplicablePolicies, CustomAuthorization, IstioAuthorization,
    IstioAuthorizationLayer, IstioFuture,
};
pub use matching::{host_matches, ip_matches, path_matches, string_matches};
pub use model::{
    AuthorizationPolicy, AuthorizationPolicySpec, Condition, Operation, PolicyAction,
    PolicyTargetReference, Rule, RuleFrom, RuleTo, Source,
};
pub use request_authn::{
    ClaimToHeader, IstioJwt, JwtHeader, JwtRule, RequestAuthentication, RequestAuthenticationSpec,
    request_principal,
};
pub use waypoint::{ROOT_NAMESPACE, WAYPOINT_CLASS, WaypointPolicies};
