//! Policy slots: a typed extension map on every compiled listener, rule and backend, filled by
//! another crate when the configuration is compiled, so that policies (Envoy Gateway's
//! ClientTrafficPolicy, BackendTrafficPolicy and SecurityPolicy, Istio's AuthorizationPolicy)
//! attach to what they target without `routing` knowing them.
//!
//! ```
//! use std::sync::Arc;
//! use routing::slot::{PolicyCompiler, PolicySlot, RuleTarget};
//!
//! #[derive(Debug, Clone, PartialEq)]
//! struct RateLimit(u32);
//!
//! #[derive(Debug)]
//! struct Limits;
//! impl PolicyCompiler for Limits {
//!     fn rule(&self, rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
//!         if rule.route.name == "shop" {
//!             slot.insert(RateLimit(100));
//!         }
//!     }
//! }
//! let options = routing::resolve::ResolveOptions {
//!     policies: Some(Arc::new(Limits)),
//!     ..Default::default()
//! };
//! # let _ = options;
//! ```

use std::fmt;

use crate::compiled::ListenerProtocol;
use crate::model::{Config, ObjectKey};

/// A typed map of the policies attached to one compiled listener, rule or backend: at most one
/// value per type. Cloning clones the values (keep them small or behind an `Arc`).
#[derive(Clone, Default)]
pub struct PolicySlot(http::Extensions);

impl PolicySlot {
    /// The attached value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get::<T>()
    }

    /// Attaches `value`, returning the value of the same type it replaces.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.0.insert(value)
    }

    /// Attaches every value of `other` (replacing values of the same types).
    pub fn extend(&mut self, other: PolicySlot) {
        self.0.extend(other.0);
    }

    /// Whether nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many values are attached.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for PolicySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySlot")
            .field("attached", &self.0.len())
            .finish()
    }
}

/// A listener being compiled.
#[derive(Debug, Clone, Copy)]
pub struct ListenerTarget<'a> {
    /// Its Gateway.
    pub gateway: &'a ObjectKey,
    /// The listener's name (a policy's `sectionName`).
    pub listener: &'a str,
    /// Its port.
    pub port: u16,
    /// Its protocol.
    pub protocol: ListenerProtocol,
}

/// A route rule being compiled.
#[derive(Debug, Clone, Copy)]
pub struct RuleTarget<'a> {
    /// `HTTPRoute`, `GRPCRoute`, or an L4 route kind (`TCPRoute`, `UDPRoute`, `TLSRoute`):
    /// an L4 rule's slot is merged into each of its backends' slots.
    pub kind: &'static str,
    /// The route.
    pub route: &'a ObjectKey,
    /// The rule's index in the route.
    pub index: usize,
    /// The rule's name (a policy's `sectionName`), when it has one.
    pub name: Option<&'a str>,
    /// Whether the rule is compiled for a mesh Service parent (GAMMA) rather than a Gateway.
    pub mesh: bool,
    /// The rule's backends, as compiled (a load balancer keeps state for their endpoints).
    pub backends: &'a crate::backends::WeightedBackends<std::sync::Arc<crate::compiled::Backend>>,
}

/// A backend (Service port) being compiled.
#[derive(Debug, Clone, Copy)]
pub struct BackendTarget<'a> {
    /// The Service.
    pub service: &'a ObjectKey,
    /// The Service port.
    pub port: u16,
}

/// Fills policy slots while a configuration is compiled (see
/// [`ResolveOptions::policies`](crate::resolve::ResolveOptions)). Every method defaults to
/// attaching nothing.
pub trait PolicyCompiler: Send + Sync + fmt::Debug {
    /// Called once per configuration, before anything is compiled: a compiler whose
    /// attachments come from the configuration's own policy objects (Envoy Gateway's
    /// SecurityPolicy, say) returns the one built from them, which then fills the slots.
    /// Default: `None`, this compiler itself fills them.
    fn for_config(&self, _config: &Config) -> Option<std::sync::Arc<dyn PolicyCompiler>> {
        None
    }
    /// What this compiler could not enforce or attach, one line each (reported as
    /// configuration warnings).
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
    /// The status of each policy this compiler read (served on `/status` beside the
    /// Gateway API objects'). Default: none.
    fn statuses(&self) -> Vec<crate::resolve::ObjectStatus> {
        Vec::new()
    }
    /// Attaches policies to a listener.
    fn listener(&self, _listener: &ListenerTarget<'_>, _slot: &mut PolicySlot) {}
    /// Whether a policy sends the rule's requests to each Service's `clusterIP` instead of its
    /// endpoints (Envoy Gateway's `routingType: Service`); asked before [`Self::rule`], whose
    /// target then holds the one-address backends. Services without a cluster IP keep their
    /// endpoints.
    fn routes_to_service_address(&self, _rule: &RuleTarget<'_>) -> bool {
        false
    }
    /// The address family a policy asks of the host names of the rule's Envoy Gateway
    /// `Backend`s (BackendTrafficPolicy `dns.lookupFamily`); asked before
    /// [`Self::rule`], whose target then holds the backends with those endpoints. `None`:
    /// IPv4 preferred.
    fn lookup_family(&self, _rule: &RuleTarget<'_>) -> Option<crate::compiled::LookupFamily> {
        None
    }
    /// Attaches policies to a route rule.
    fn rule(&self, _rule: &RuleTarget<'_>, _slot: &mut PolicySlot) {}
    /// Attaches policies to a backend.
    fn backend(&self, _backend: &BackendTarget<'_>, _slot: &mut PolicySlot) {}
}

/// Several compilers as one: each fills the slots in turn, and their problems and statuses are
/// reported together. A gateway with both traffic and security policies passes one of these as
/// [`ResolveOptions::policies`](crate::resolve::ResolveOptions).
#[derive(Debug, Clone, Default)]
pub struct PolicyCompilers(pub Vec<std::sync::Arc<dyn PolicyCompiler>>);

impl PolicyCompiler for PolicyCompilers {
    fn for_config(&self, config: &Config) -> Option<std::sync::Arc<dyn PolicyCompiler>> {
        let built = self
            .0
            .iter()
            .map(|compiler| {
                compiler
                    .for_config(config)
                    .unwrap_or_else(|| std::sync::Arc::clone(compiler))
            })
            .collect();
        Some(std::sync::Arc::new(PolicyCompilers(built)))
    }

    fn problems(&self) -> Vec<String> {
        self.0.iter().flat_map(|c| c.problems()).collect()
    }

    fn statuses(&self) -> Vec<crate::resolve::ObjectStatus> {
        self.0.iter().flat_map(|c| c.statuses()).collect()
    }

    fn listener(&self, listener: &ListenerTarget<'_>, slot: &mut PolicySlot) {
        for compiler in &self.0 {
            compiler.listener(listener, slot);
        }
    }

    fn routes_to_service_address(&self, rule: &RuleTarget<'_>) -> bool {
        self.0
            .iter()
            .any(|compiler| compiler.routes_to_service_address(rule))
    }

    fn lookup_family(&self, rule: &RuleTarget<'_>) -> Option<crate::compiled::LookupFamily> {
        self.0
            .iter()
            .find_map(|compiler| compiler.lookup_family(rule))
    }

    fn rule(&self, rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
        for compiler in &self.0 {
            compiler.rule(rule, slot);
        }
    }

    fn backend(&self, backend: &BackendTarget<'_>, slot: &mut PolicySlot) {
        for compiler in &self.0 {
            compiler.backend(backend, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Mark(&'static str);
    #[derive(Debug, Clone, PartialEq)]
    struct Other(u8);

    #[derive(Debug)]
    struct Marks;
    impl PolicyCompiler for Marks {
        fn problems(&self) -> Vec<String> {
            vec!["marks".into()]
        }
        fn rule(&self, _rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
            slot.insert(Mark("rule"));
        }
    }

    #[derive(Debug)]
    struct PerConfig(u8);
    impl PolicyCompiler for PerConfig {
        fn for_config(&self, _config: &Config) -> Option<Arc<dyn PolicyCompiler>> {
            Some(Arc::new(PerConfig(self.0 + 1)))
        }
        fn problems(&self) -> Vec<String> {
            vec![format!("per config {}", self.0)]
        }
        fn rule(&self, _rule: &RuleTarget<'_>, slot: &mut PolicySlot) {
            slot.insert(Other(self.0));
        }
    }

    #[test]
    fn every_compiler_fills_the_slot_and_reports() {
        let both = PolicyCompilers(vec![Arc::new(Marks), Arc::new(PerConfig(0))]);
        let built = both
            .for_config(&Config::default())
            .expect("a composite always builds");
        assert_eq!(built.problems(), vec!["marks", "per config 1"]);
        let route = ObjectKey::new("default", "r");
        let target = RuleTarget {
            kind: "HTTPRoute",
            route: &route,
            index: 0,
            name: None,
            mesh: false,
            backends: &crate::backends::WeightedBackends::new(Vec::new()),
        };
        let mut slot = PolicySlot::default();
        built.rule(&target, &mut slot);
        assert_eq!(slot.get::<Mark>(), Some(&Mark("rule")));
        assert_eq!(slot.get::<Other>(), Some(&Other(1)));
    }
}
