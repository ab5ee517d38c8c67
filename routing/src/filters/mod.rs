//! Gateway API filter semantics, sans-IO (gateway-api spec §1.4): header modifiers, redirects
//! and path rewrites, and the header modifiers as tower layers.

mod header_layers;
mod header_modifier;
mod path_modifier;
mod redirect;

pub use header_layers::{
    RequestHeaderModifierLayer, RequestHeaderModifierService, ResponseHeaderModifierFuture,
    ResponseHeaderModifierLayer, ResponseHeaderModifierService,
};
pub use header_modifier::{HeaderModifier, HeaderModifierError, MAX_ENTRIES};
pub use path_modifier::PathModifier;
pub use redirect::{RedirectContext, RedirectStatus, RequestRedirect};
