//! Envoy Gateway's SecurityPolicy (policy.md §3) for Gateway routing: the model read from
//! Kubernetes YAML ([`model`]), compiled against the configuration's Secrets ([`compile`]),
//! attached to listeners and route rules by the most specific target ([`attach`]), and
//! enforced on the request path by [`SecurityPolicyLayer`] — CORS (the engine shared with the
//! HTTPRoute CORS filter), CSRF, external authorization over HTTP or gRPC (the exchange lent by
//! the runtime), API keys, basic auth, OIDC (the provider's exchanges lent by the runtime),
//! JWT (local JWKS, and remote JWKS whose handles the runtime refreshes) and authorization
//! rules (with JWT claims and scopes), each a sans-IO piece with typed failures.
//!
//! Not enforced yet, and therefore failing closed (500) wherever a policy uses them:
//! `remoteJWKS.backendRefs`, `oidc.provider.backendRefs` and geolocation in authorization.

pub mod api_key;
pub mod attach;
pub mod authorization;
pub mod basic_auth;
pub mod compile;
pub mod cookies;
pub mod csrf;
pub mod ext_auth;
pub mod htpasswd;
pub mod jwt;
pub mod layer;
pub mod model;
pub mod oidc;
pub mod percent;

pub use attach::{AttachedSecurityPolicy, SecurityPolicies};
pub use compile::{CompiledSecurityPolicy, SecurityChecks, SecurityRuntime};
pub use layer::{
    ClientAddress, Decision, SecurityFuture, SecurityPolicyLayer, SecurityPolicyService, attached,
    enforce,
};
