//! L4 authorization as Istio's ztunnel enforces it (`ztunnel-local-config.md` §5): policies of
//! rules → clauses → match objects over a connection's peer identity, source and destination,
//! evaluated in ztunnel's order (dry-run Deny logged, Deny, dry-run Allow logged, Allow).
//! The model reads ztunnel's own YAML (`!Exact`, `!Prefix`, `!Suffix`, `!Presence` tags);
//! istiod's translation of AuthorizationPolicy targets the same model. It is judged by the
//! one authorization engine ([`crate::istio::decide`], the matchers the waypoint applies at
//! L7): each match object is translated once into the engine's source, operation and
//! conditions.
//!
//! ```
//! use mesh_policy::l4::{Authorization, Connection, authorize};
//!
//! let policy: Authorization = serde_yaml_ng::from_str(r#"
//! name: deny-sandbox
//! namespace: default
//! scope: Namespace
//! action: Deny
//! dryRun: false
//! rules: [[[{namespaces: [!Exact sandbox]}]]]
//! "#)?;
//! let peer = "spiffe://cluster.local/ns/sandbox/sa/tester".parse()?;
//! let connection = Connection {
//!     source: "10.0.0.7".parse()?,
//!     destination: "10.0.0.5:8080".parse()?,
//!     identity: Some(&peer),
//! };
//! assert!(authorize([&policy], &connection).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cidr;
mod engine;
mod model;

pub use cidr::{Cidr, CidrError};
pub use engine::{Connection, Denied, authorize};
pub use model::{Action, Authorization, RbacMatch, Scope, ServiceAccountMatch, StringMatch};
