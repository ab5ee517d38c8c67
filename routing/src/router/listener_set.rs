//! The listeners that share one socket, and how a request's host picks one (spec §1.1 items 1–2).

use std::sync::Arc;

use crate::compiled::CompiledListener;
use crate::http_route::hostname_covers;

/// Listeners of one address and port: a request belongs to exactly one of them, the most
/// specific whose hostname covers the request's host (exact, then the longest wildcard, then
/// the listener without a hostname).
#[derive(Debug, Clone, Default)]
pub struct ListenerSet {
    /// Most specific first; shared with the requests that match them.
    listeners: Vec<Arc<CompiledListener>>,
}

impl ListenerSet {
    /// The set of `listeners` (all on one address and port).
    pub fn new(mut listeners: Vec<CompiledListener>) -> Self {
        listeners.sort_by_key(|listener| specificity(listener.hostname.as_deref()));
        ListenerSet {
            listeners: listeners.into_iter().map(Arc::new).collect(),
        }
    }

    /// The listeners, most specific first.
    pub fn listeners(&self) -> &[Arc<CompiledListener>] {
        &self.listeners
    }

    /// The listener `host` (without port, any case) belongs to.
    pub fn for_host(&self, host: &str) -> Option<&Arc<CompiledListener>> {
        self.listeners.iter().find(|listener| {
            listener
                .hostname
                .as_deref()
                .is_none_or(|h| hostname_covers(h, host))
        })
    }
}

/// Sort key: exact hostnames, then wildcards by length (longest first), then none.
fn specificity(hostname: Option<&str>) -> (u8, std::cmp::Reverse<usize>) {
    match hostname {
        Some(h) if h.starts_with("*.") => (1, std::cmp::Reverse(h.len())),
        Some(h) => (0, std::cmp::Reverse(h.len())),
        None => (2, std::cmp::Reverse(0)),
    }
}
