//! Rate limiting (policy.md §2.1): the rules' matching ([`rules`]), Envoy's fixed-window
//! bucket ([`bucket`]), a route's local limit ([`local`]), global limits counted in counters
//! every gateway shares ([`global`]) and the tower layer ([`LocalRateLimitLayer`]) answering
//! 429 with the `x-ratelimit-*` headers.

pub mod bucket;
pub mod clock;
mod distinct;
pub mod global;
pub mod layer;
pub mod local;
pub mod rules;

pub use layer::{LocalRateLimitLayer, LocalRateLimitService, rate_limit_headers};
pub use local::{LocalRateLimit, RateLimitRule};
