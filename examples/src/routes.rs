//! Routes from embedded YAML, for examples that put route selection into their own stack.

use std::sync::Arc;

use routing::router::ListenerSet;

/// The listeners of the first Gateway in `yaml` (named `name` in errors), resolved with the
/// default options.
pub fn first_gateway_listeners(name: &str, yaml: &str) -> Result<Arc<ListenerSet>, String> {
    let loaded = routing::loader::load_str(name, yaml).map_err(|e| e.to_string())?;
    let resolution = routing::resolve::resolve(&loaded.config, &Default::default());
    let gateway = resolution
        .gateways
        .into_iter()
        .next()
        .ok_or("the Gateway was not accepted")?;
    Ok(Arc::new(ListenerSet::new(gateway.listeners)))
}
