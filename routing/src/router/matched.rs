//! [`MatchedRoute`]: what route selection puts into a request for the layers after it.

use std::sync::Arc;

use crate::compiled::{CompiledListener, HttpRule, ListenerProtocol};
use crate::model::ObjectKey;

/// The listener and rule a request matched, as a request extension set by
/// [`SelectRoute`](super::SelectRoute) or [`SelectMeshRoute`](super::SelectMeshRoute). Later
/// layers (filters, policies, dispatch, metrics) read it; cloning it is two reference counts.
#[derive(Debug, Clone)]
pub struct MatchedRoute {
    /// The listener (Gateway routing); `None` for mesh routing, which selects by destination.
    pub listener: Option<Arc<CompiledListener>>,
    /// The rule, with its filters, backends, timeouts, retries and policy slot.
    pub rule: Arc<HttpRule>,
    /// The scheme the request arrived with (`http` or `https`), for redirects.
    pub scheme: &'static str,
    /// The port the request arrived on (the listener's or the Service's), for redirects.
    pub port: u16,
}

/// A matched route's stable identity: the names metrics, logs and policies use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteIdentity<'a> {
    /// The Gateway (Gateway routing).
    pub gateway: Option<&'a ObjectKey>,
    /// The ListenerSet that declared the listener, if one did.
    pub listener_set: Option<&'a ObjectKey>,
    /// The listener's name (Gateway routing).
    pub listener: Option<&'a str>,
    /// `HTTPRoute`, `GRPCRoute`, or `Service` for a mesh port's implicit rule.
    pub kind: &'static str,
    /// The route's namespace and name (the Service, for the implicit rule).
    pub route: &'a ObjectKey,
    /// The rule's index in the route.
    pub rule_index: usize,
    /// The rule's name, when it has one.
    pub rule_name: Option<&'a str>,
}

impl MatchedRoute {
    /// A match of `rule` on `listener`.
    pub fn on_listener(listener: Arc<CompiledListener>, rule: Arc<HttpRule>) -> Self {
        let scheme = match listener.protocol {
            ListenerProtocol::Https => "https",
            _ => "http",
        };
        MatchedRoute {
            port: listener.port,
            listener: Some(listener),
            rule,
            scheme,
        }
    }

    /// A mesh match of `rule` for a request to Service port `port`.
    pub fn on_service_port(rule: Arc<HttpRule>, port: u16) -> Self {
        MatchedRoute {
            listener: None,
            rule,
            scheme: "http",
            port,
        }
    }

    /// The identity of the match.
    pub fn identity(&self) -> RouteIdentity<'_> {
        RouteIdentity {
            gateway: self.listener.as_ref().map(|l| &l.gateway),
            listener_set: self.listener.as_ref().and_then(|l| l.listener_set.as_ref()),
            listener: self.listener.as_ref().map(|l| l.name.as_str()),
            kind: self.rule.kind,
            route: &self.rule.route,
            rule_index: self.rule.index,
            rule_name: self.rule.name.as_deref(),
        }
    }
}

impl std::fmt::Display for RouteIdentity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let (Some(gateway), Some(listener)) = (self.gateway, self.listener) {
            match self.listener_set {
                Some(set) => write!(f, "{gateway} ListenerSet {set}/{listener} ")?,
                None => write!(f, "{gateway}/{listener} ")?,
            }
        }
        write!(f, "{} {} rule {}", self.kind, self.route, self.rule_index)?;
        if let Some(name) = self.rule_name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}
