//! Gateway API filter semantics, sans-IO (gateway-api spec §1.4): header modifiers, redirects
//! and path rewrites. The tower layers that apply them to requests and responses build on
//! these.

mod header_modifier;
mod path_modifier;
mod redirect;

pub use header_modifier::{HeaderModifier, HeaderModifierError, MAX_ENTRIES};
pub use path_modifier::PathModifier;
pub use redirect::{RedirectContext, RedirectStatus, RequestRedirect};
