//! Evaluating policies against one connection, in ztunnel's order (§5.6), by the one
//! authorization engine ([`crate::istio::decide`]): each RbacMatch is translated once into the
//! engine's match object (an Istio source, operation and conditions), a connection into the
//! engine's attributes (no HTTP side), and the engine decides — the same matchers and order
//! the waypoint applies to AuthorizationPolicy at L7.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hbone::identity::SpiffeId;

use super::cidr::canonical;
use super::model::{Action, Authorization, RbacMatch, StringMatch};
use crate::istio::{
    Attributes, Condition, JudgedPolicy, Operation, PolicyAction, PolicyDenied, Source, decide,
    object_matches,
};

/// What a policy sees of a connection (§5.7).
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The TCP peer address of the inbound connection.
    pub source: IpAddr,
    /// The address the client connected to, with the final upstream port.
    pub destination: SocketAddr,
    /// The peer's SPIFFE identity (none for plaintext).
    pub identity: Option<&'a SpiffeId>,
}

/// Why a connection was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// An enforced Deny policy matched (`namespace/name`).
    #[error("explicitly denied by: {0}")]
    Explicitly(String),
    /// Enforced Allow policies exist and none matched.
    #[error("allow policies exist, but none allowed")]
    NotAllowed,
}

/// An RbacMatch in the engine's terms (`None`: an empty object, which never matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineMatch {
    source: Source,
    operation: Operation,
    when: Vec<Condition>,
}

/// A policy's rules in the engine's terms: rules → clauses → match objects.
pub(crate) type EngineRules = Arc<Vec<Vec<Vec<Option<EngineMatch>>>>>;

impl Authorization {
    /// The store key, `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the policy matches `connection`: some rule whose clauses all match.
    pub fn matches(&self, connection: &Connection<'_>) -> bool {
        let attributes = attributes(connection);
        JudgedPolicy::matches(self, &attributes, self.action == Action::Deny)
    }

    fn engine_rules(&self) -> &EngineRules {
        self.engine.get_or_init(|| {
            Arc::new(
                self.rules()
                    .iter()
                    .map(|rule| {
                        rule.iter()
                            .map(|clause| clause.iter().map(translate).collect())
                            .collect()
                    })
                    .collect(),
            )
        })
    }
}

impl JudgedPolicy for Authorization {
    fn action(&self) -> PolicyAction {
        match self.action {
            Action::Allow => PolicyAction::Allow,
            Action::Deny => PolicyAction::Deny,
        }
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn key(&self) -> String {
        Authorization::key(self)
    }

    fn matches(&self, attributes: &Attributes<'_>, deny: bool) -> bool {
        self.engine_rules().iter().any(|rule| {
            rule.iter().all(|clause| {
                clause.is_empty()
                    || clause.iter().flatten().any(|object| {
                        object_matches(
                            &object.source,
                            &object.operation,
                            &object.when,
                            attributes,
                            deny,
                            &self.namespace,
                        )
                    })
            })
        })
    }
}

/// A connection as the engine's attributes: the peer's identity (its namespace `""` without
/// one, as ztunnel compares it), canonical addresses, no HTTP side.
fn attributes<'a>(connection: &Connection<'a>) -> Attributes<'a> {
    let identity = connection.identity;
    Attributes {
        principal: identity.map(|id| id.as_str().trim_start_matches("spiffe://")),
        namespace: Some(identity.map_or("", SpiffeId::namespace)),
        service_account: identity.map(SpiffeId::service_account),
        source_ip: Some(canonical(connection.source)),
        destination: Some(SocketAddr::new(
            canonical(connection.destination.ip()),
            connection.destination.port(),
        )),
        ..Attributes::default()
    }
}

/// ztunnel's string match as Istio patterns, any of which matching (`!Prefix a` → `a*`,
/// `!Presence` → `*`; an empty prefix or suffix matches every value, the empty one too:
/// `*` or `""`).
fn patterns(matcher: &StringMatch) -> Vec<String> {
    match matcher {
        StringMatch::Prefix(affix) | StringMatch::Suffix(affix) if affix.is_empty() => {
            vec!["*".to_owned(), String::new()]
        }
        StringMatch::Exact(value) => vec![value.clone()],
        StringMatch::Prefix(prefix) => vec![format!("{prefix}*")],
        StringMatch::Suffix(suffix) => vec![format!("*{suffix}")],
        StringMatch::Presence(_) => vec!["*".to_owned()],
    }
}

fn translate(object: &RbacMatch) -> Option<EngineMatch> {
    if object.is_empty() {
        return None;
    }
    let patterns = |list: &[StringMatch]| list.iter().flat_map(patterns).collect::<Vec<_>>();
    let accounts = |list: &[super::model::ServiceAccountMatch]| {
        list.iter()
            .map(|a| format!("{}/{}", a.namespace, a.service_account))
            .collect::<Vec<_>>()
    };
    let texts = |list: &[super::cidr::Cidr]| list.iter().map(ToString::to_string).collect();
    let ports = |list: &[u16]| list.iter().map(ToString::to_string).collect();
    let destination_ips = Condition {
        key: "destination.ip".to_owned(),
        values: texts(&object.destination_ips),
        not_values: texts(&object.not_destination_ips),
    };
    Some(EngineMatch {
        source: Source {
            principals: patterns(&object.principals),
            not_principals: patterns(&object.not_principals),
            namespaces: patterns(&object.namespaces),
            not_namespaces: patterns(&object.not_namespaces),
            service_accounts: accounts(&object.service_accounts),
            not_service_accounts: accounts(&object.not_service_accounts),
            ip_blocks: texts(&object.source_ips),
            not_ip_blocks: texts(&object.not_source_ips),
            ..Source::default()
        },
        operation: Operation {
            ports: ports(&object.destination_ports),
            not_ports: ports(&object.not_destination_ports),
            ..Operation::default()
        },
        when: if destination_ips.values.is_empty() && destination_ips.not_values.is_empty() {
            Vec::new()
        } else {
            vec![destination_ips]
        },
    })
}

/// Decides a connection against the policies that apply to its destination (§5.6): an
/// enforced Deny that matches rejects; otherwise, when enforced Allow policies exist, one
/// must match. Dry-run policies never decide (see [`Authorization::matches`] to report them).
pub fn authorize<'p>(
    policies: impl IntoIterator<Item = &'p Authorization>,
    connection: &Connection<'_>,
) -> Result<(), Denied> {
    decide(policies, &attributes(connection)).map_err(|denied| match denied {
        PolicyDenied::NotAllowed => Denied::NotAllowed,
        PolicyDenied::Deny(key) | PolicyDenied::NoAuthorizer(key) => Denied::Explicitly(key),
    })
}
