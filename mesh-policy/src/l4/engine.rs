//! Evaluating policies against one connection, in ztunnel's order (§5.6).

use std::net::{IpAddr, SocketAddr};

use hbone::identity::SpiffeId;

use super::cidr::canonical;
use super::model::{Action, Authorization, RbacMatch, StringMatch};

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

impl Authorization {
    /// The store key, `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the policy matches `connection`: some rule whose clauses all match.
    pub fn matches(&self, connection: &Connection<'_>) -> bool {
        let attributes = Attributes::of(connection);
        self.rules.iter().any(|rule| {
            rule.iter().all(|clause| {
                clause.is_empty()
                    || clause
                        .iter()
                        .any(|object| !object.is_empty() && object.matches(&attributes))
            })
        })
    }
}

/// The connection's attributes in the forms the match fields compare.
struct Attributes<'a> {
    source: IpAddr,
    destination: SocketAddr,
    principal: Option<&'a str>,
    identity: Option<&'a SpiffeId>,
}

impl<'a> Attributes<'a> {
    fn of(connection: &Connection<'a>) -> Self {
        Attributes {
            source: canonical(connection.source),
            destination: SocketAddr::new(
                canonical(connection.destination.ip()),
                connection.destination.port(),
            ),
            principal: connection
                .identity
                .map(|id| id.as_str().trim_start_matches("spiffe://")),
            identity: connection.identity,
        }
    }

    fn namespace(&self) -> &str {
        self.identity.map_or("", SpiffeId::namespace)
    }
}

/// A positive and a negative list: any of the first (if any), none of the second.
fn pair<T>(positive: &[T], negative: &[T], test: impl Fn(&T) -> bool) -> bool {
    (positive.is_empty() || positive.iter().any(&test)) && !negative.iter().any(test)
}

impl RbacMatch {
    fn matches(&self, attributes: &Attributes<'_>) -> bool {
        // Without an identity every principal pattern fails.
        let principal = |pattern: &StringMatch| {
            attributes
                .principal
                .is_some_and(|principal| pattern.matches(principal))
        };
        let namespace = attributes.namespace();
        let account = |account: &super::model::ServiceAccountMatch| {
            attributes.identity.is_some_and(|id| {
                id.namespace() == account.namespace
                    && id.service_account() == account.service_account
            })
        };
        pair(&self.principals, &self.not_principals, principal)
            && pair(&self.namespaces, &self.not_namespaces, |p| {
                p.matches(namespace)
            })
            && pair(&self.service_accounts, &self.not_service_accounts, account)
            && pair(&self.source_ips, &self.not_source_ips, |c| {
                c.contains(attributes.source)
            })
            && pair(&self.destination_ips, &self.not_destination_ips, |c| {
                c.contains(attributes.destination.ip())
            })
            && pair(&self.destination_ports, &self.not_destination_ports, |p| {
                *p == attributes.destination.port()
            })
    }
}

/// Decides a connection against the policies that apply to its destination (§5.6): an
/// enforced Deny that matches rejects; otherwise, when enforced Allow policies exist, one
/// must match. Dry-run policies never decide (see [`Authorization::matches`] to report them).
pub fn authorize<'p>(
    policies: impl IntoIterator<Item = &'p Authorization>,
    connection: &Connection<'_>,
) -> Result<(), Denied> {
    let mut allows_exist = false;
    let mut allowed = false;
    for policy in policies.into_iter().filter(|p| !p.dry_run) {
        match policy.action {
            Action::Deny => {
                if policy.matches(connection) {
                    return Err(Denied::Explicitly(policy.key()));
                }
            }
            Action::Allow => {
                allows_exist = true;
                allowed = allowed || policy.matches(connection);
            }
        }
    }
    if allows_exist && !allowed {
        return Err(Denied::NotAllowed);
    }
    Ok(())
}
