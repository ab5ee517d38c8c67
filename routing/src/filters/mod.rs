//! Gateway API filter semantics, sans-IO (gateway-api spec §1.4): header modifiers, redirects,
//! URL rewrites and CORS, and the header modifiers, URL rewrite and CORS as tower layers.

mod cors;
mod cors_layer;
mod header_layers;
mod header_modifier;
mod path_modifier;
mod redirect;
mod request_edit;
mod url_rewrite;

pub use cors::{CorsError, CorsPolicy, CorsSemantics, EnvoyCorsParams, PreflightAnswer};
pub use cors_layer::{CorsFuture, CorsLayer, CorsService};
pub use header_layers::{
    RequestHeaderModifierLayer, RequestHeaderModifierService, ResponseHeaderModifierFuture,
    ResponseHeaderModifierLayer, ResponseHeaderModifierService,
};
pub use header_modifier::{HeaderModifier, HeaderModifierError, MAX_ENTRIES};
pub use path_modifier::PathModifier;
pub use redirect::{RedirectContext, RedirectStatus, RequestRedirect};
pub use request_edit::{RequestEdit, RequestEditLayer, RequestEditService};
pub use url_rewrite::{
    RuleUrlRewrite, UrlRewrite, UrlRewriteError, UrlRewriteLayer, UrlRewriteService,
};
