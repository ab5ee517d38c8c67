//! Deciding a request (or a connection) against the AuthorizationPolicies that apply, in
//! Istio's order (policy.md §4.1): CUSTOM first, then DENY, then ALLOW; AUDIT never decides;
//! dry-run policies never decide. On plain TCP the HTTP-only fields count as matching in DENY
//! rules and as not matching in ALLOW rules (the safer side of each).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::matching::{host_matches, ip_matches, path_matches, string_matches};
use super::model::{AuthorizationPolicy, Condition, Operation, PolicyAction, Rule, Source};

/// The HTTP side of a request.
#[derive(Debug, Clone, Copy)]
pub struct HttpAttributes<'a> {
    /// `Host`/`:authority`.
    pub host: &'a str,
    /// The method.
    pub method: &'a str,
    /// The path (query ignored).
    pub path: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// What a policy sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes<'a> {
    /// The peer's SPIFFE ID without `spiffe://` (`td/ns/N/sa/S`).
    pub principal: Option<&'a str>,
    /// The peer's namespace.
    pub namespace: Option<&'a str>,
    /// The peer's service account.
    pub service_account: Option<&'a str>,
    /// The TCP (or PROXY) source address.
    pub source_ip: Option<IpAddr>,
    /// The original client address (X-Forwarded-For, PROXY), for `remoteIpBlocks`.
    pub remote_ip: Option<IpAddr>,
    /// `iss/sub` of a validated JWT.
    pub request_principal: Option<&'a str>,
    /// The claims of that JWT (`request.auth.claims[…]`, `audiences`, `presenter`).
    pub request_claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Where the request goes (`destination.ip`, `ports`).
    pub destination: Option<SocketAddr>,
    /// The HTTP request (`None` for plain TCP).
    pub http: Option<HttpAttributes<'a>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDenied {
    /// A DENY policy matched (`namespace/name`).
    #[error("denied by {0}")]
    Deny(String),
    /// ALLOW policies apply and none matched.
    #[error("no ALLOW policy matched")]
    NotAllowed,
    /// A CUSTOM policy applies and no external authorizer is configured (fail closed).
    #[error("CUSTOM policy {0} has no external authorizer here")]
    NoAuthorizer(String),
}

/// The CUSTOM policies among `policies` whose rules match (they send the request to their
/// external authorizer before DENY and ALLOW are looked at).
pub fn matching_custom<'p>(
    policies: impl IntoIterator<Item = &'p AuthorizationPolicy>,
    attributes: &Attributes<'_>,
) -> Vec<&'p AuthorizationPolicy> {
    policies
        .into_iter()
        .filter(|p| {
            !p.dry_run()
                && p.spec.action == PolicyAction::Custom
                && policy_matches(p, attributes, true)
        })
        .collect()
}

/// A policy as the one engine judges it: Istio's AuthorizationPolicy (the waypoint, the
/// gateway), or ztunnel's L4 form of it ([`crate::l4::Authorization`], the node proxy).
pub trait JudgedPolicy {
    /// CUSTOM, DENY, ALLOW or AUDIT.
    fn action(&self) -> PolicyAction;
    /// Judged and reported only, never enforced.
    fn dry_run(&self) -> bool;
    /// `namespace/name`, named in denials.
    fn key(&self) -> String;
    /// Whether the policy's rules match; `deny` picks how missing HTTP attributes count.
    fn matches(&self, attributes: &Attributes<'_>, deny: bool) -> bool;
}

impl JudgedPolicy for AuthorizationPolicy {
    fn action(&self) -> PolicyAction {
        self.spec.action
    }

    fn dry_run(&self) -> bool {
        AuthorizationPolicy::dry_run(self)
    }

    fn key(&self) -> String {
        AuthorizationPolicy::key(self)
    }

    fn matches(&self, attributes: &Attributes<'_>, deny: bool) -> bool {
        policy_matches(self, attributes, deny)
    }
}

/// Decides `attributes` against `policies`. A matching CUSTOM policy refuses here (fail
/// closed): a runtime with an authorizer asks it first and leaves CUSTOM policies out.
pub fn authorize<'p>(
    policies: impl IntoIterator<Item = &'p AuthorizationPolicy>,
    attributes: &Attributes<'_>,
) -> Result<(), PolicyDenied> {
    decide(policies, attributes)
}

/// The one decision order, for every kind of policy: a matching CUSTOM policy (no
/// authorizer here) or DENY policy refuses; otherwise, when ALLOW policies apply, one must
/// match; AUDIT and dry-run policies never decide.
pub fn decide<'p, P: JudgedPolicy + ?Sized + 'p>(
    policies: impl IntoIterator<Item = &'p P>,
    attributes: &Attributes<'_>,
) -> Result<(), PolicyDenied> {
    let mut allows = Vec::new();
    for policy in policies.into_iter().filter(|p| !p.dry_run()) {
        match policy.action() {
            PolicyAction::Custom if policy.matches(attributes, true) => {
                return Err(PolicyDenied::NoAuthorizer(policy.key()));
            }
            PolicyAction::Deny if policy.matches(attributes, true) => {
                return Err(PolicyDenied::Deny(policy.key()));
            }
            PolicyAction::Allow => allows.push(policy),
            PolicyAction::Deny | PolicyAction::Audit | PolicyAction::Custom => {}
        }
    }
    if allows.is_empty() || allows.iter().any(|p| p.matches(attributes, false)) {
        Ok(())
    } else {
        Err(PolicyDenied::NotAllowed)
    }
}

/// Whether `policy` matches; `deny` picks how missing HTTP attributes count.
pub fn policy_matches(
    policy: &AuthorizationPolicy,
    attributes: &Attributes<'_>,
    deny: bool,
) -> bool {
    policy.spec.rules.as_ref().is_some_and(|rules| {
        rules
            .iter()
            .any(|rule| rule_matches(rule, attributes, deny, policy))
    })
}

/// One match object — a source, an operation and conditions, all ANDed: what an Istio
/// rule's `from`, `to` and `when` entries are, and what ztunnel's RbacMatch is translated to.
pub(crate) fn object_matches(
    source: &Source,
    operation: &Operation,
    when: &[Condition],
    attributes: &Attributes<'_>,
    deny: bool,
    policy_namespace: &str,
) -> bool {
    source_matches(source, attributes, deny, policy_namespace)
        && operation_matches(operation, attributes, deny)
        && when.iter().all(|c| condition_matches(c, attributes, deny))
}

fn rule_matches(rule: &Rule, a: &Attributes<'_>, deny: bool, policy: &AuthorizationPolicy) -> bool {
    let from = rule.from.is_empty()
        || rule
            .from
            .iter()
            .any(|from| source_matches(&from.source, a, deny, &policy.metadata.namespace));
    let to = rule.to.is_empty()
        || rule
            .to
            .iter()
            .any(|to| operation_matches(&to.operation, a, deny));
    let when = rule
        .when
        .iter()
        .all(|condition| condition_matches(condition, a, deny));
    from && to && when
}

/// A positive and a negative list over one attribute: any of the first (if any), none of the
/// second; `missing` is the answer when the attribute is absent and a list is given.
fn field<T: ?Sized>(
    positive: &[String],
    negative: &[String],
    value: Option<&T>,
    missing: bool,
    test: impl Fn(&str, &T) -> bool,
) -> bool {
    if positive.is_empty() && negative.is_empty() {
        return true;
    }
    let Some(value) = value else {
        return missing;
    };
    (positive.is_empty() || positive.iter().any(|p| test(p, value)))
        && !negative.iter().any(|p| test(p, value))
}

fn source_matches(source: &Source, a: &Attributes<'_>, deny: bool, policy_namespace: &str) -> bool {
    let strings = |p: &str, v: &str| string_matches(p, v);
    let ips = |p: &str, v: &IpAddr| ip_matches(p, *v);
    let account = a.namespace.zip(a.service_account);
    let account_matches =
        |pattern: &str, (namespace, account): &(&str, &str)| match pattern.split_once('/') {
            Some((ns, sa)) => ns == *namespace && sa == *account,
            None => policy_namespace == *namespace && pattern == *account,
        };
    // Identity fields: no identity fails a positive list and passes a negative one.
    let identity = |positive: &[String], negative: &[String], value: Option<&str>| {
        field(positive, negative, value, positive.is_empty(), strings)
    };
    identity(&source.principals, &source.not_principals, a.principal)
        && identity(&source.namespaces, &source.not_namespaces, a.namespace)
        && field(
            &source.service_accounts,
            &source.not_service_accounts,
            account.as_ref(),
            source.service_accounts.is_empty(),
            account_matches,
        )
        && field(
            &source.ip_blocks,
            &source.not_ip_blocks,
            a.source_ip.as_ref(),
            false,
            ips,
        )
        && field(
            &source.remote_ip_blocks,
            &source.not_remote_ip_blocks,
            a.remote_ip.or(a.source_ip).as_ref(),
            false,
            ips,
        )
        && field(
            &source.request_principals,
            &source.not_request_principals,
            a.request_principal.map(|p| p as &str),
            // No JWT: a positive list fails and a negative one passes (as with identities);
            // on TCP a DENY still counts it as matching.
            (a.http.is_none() && deny) || source.request_principals.is_empty(),
            strings,
        )
}

fn operation_matches(operation: &Operation, a: &Attributes<'_>, deny: bool) -> bool {
    let http = a.http.as_ref();
    // HTTP-only fields on plain TCP: matching for DENY, not for ALLOW.
    let missing = deny;
    let port = a.destination.map(|d| d.port());
    let ports = |p: &str, port: &u16| p.parse::<u16>().is_ok_and(|p| p == *port);
    field(
        &operation.ports,
        &operation.not_ports,
        port.as_ref(),
        false,
        ports,
    ) && field(
        &operation.hosts,
        &operation.not_hosts,
        http.map(|h| h.host),
        missing,
        host_matches,
    ) && field(
        &operation.methods,
        &operation.not_methods,
        http.map(|h| h.method),
        missing,
        string_matches,
    ) && field(
        &operation.paths,
        &operation.not_paths,
        http.map(|h| h.path),
        missing,
        path_matches,
    )
}

/// `request.auth.claims[a][b]` → `["a", "b"]` (`None` when malformed).
fn claim_path(key: &str) -> Option<Vec<&str>> {
    let mut rest = key.strip_prefix("request.auth.claims")?;
    let mut path = Vec::new();
    while !rest.is_empty() {
        let (name, after) = rest.strip_prefix('[')?.split_once(']')?;
        if name.is_empty() {
            return None;
        }
        path.push(name);
        rest = after;
    }
    (!path.is_empty()).then_some(path)
}

/// A claim condition: a string claim, or any string of an array claim, must match; a
/// missing claim (or no token) counts as `missing` does for other HTTP attributes.
fn claim_matches(condition: &Condition, a: &Attributes<'_>, path: &[&str], deny: bool) -> bool {
    let mut value = a
        .request_claims
        .map(|claims| claims as &serde_json::Map<_, _>);
    let mut found = None;
    for (depth, name) in path.iter().enumerate() {
        let next = value.and_then(|map| map.get(*name));
        if depth + 1 == path.len() {
            found = next;
        } else {
            value = next.and_then(serde_json::Value::as_object);
        }
    }
    let texts: Vec<&str> = match found {
        Some(serde_json::Value::String(text)) => vec![text.as_str()],
        Some(serde_json::Value::Array(items)) => {
            items.iter().filter_map(serde_json::Value::as_str).collect()
        }
        _ => Vec::new(),
    };
    if condition.values.is_empty() && condition.not_values.is_empty() {
        return true;
    }
    if texts.is_empty() {
        return a.http.is_none() && deny;
    }
    let any = |patterns: &[String]| {
        patterns
            .iter()
            .any(|p| texts.iter().any(|t| string_matches(p, t)))
    };
    (condition.values.is_empty() || any(&condition.values)) && !any(&condition.not_values)
}

fn condition_matches(condition: &Condition, a: &Attributes<'_>, deny: bool) -> bool {
    let strings = |values: Option<&str>, missing: bool| {
        field(
            &condition.values,
            &condition.not_values,
            values,
            missing,
            string_matches,
        )
    };
    let ips = |ip: Option<IpAddr>| {
        field(
            &condition.values,
            &condition.not_values,
            ip.as_ref(),
            false,
            |p, ip| ip_matches(p, *ip),
        )
    };
    let key = condition.key.as_str();
    if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let value = a
            .http
            .and_then(|h| h.headers.get(name))
            .and_then(|v| v.to_str().ok());
        return match a.http {
            None => deny,
            Some(_) => strings(value, false),
        };
    }
    match key {
        "source.ip" => ips(a.source_ip),
        "remote.ip" => ips(a.remote_ip.or(a.source_ip)),
        "destination.ip" => ips(a.destination.map(|d| d.ip())),
        "destination.port" => {
            let port = a.destination.map(|d| d.port().to_string());
            strings(port.as_deref(), false)
        }
        "source.namespace" => strings(a.namespace, false),
        "source.principal" => strings(a.principal, false),
        "request.auth.principal" => strings(a.request_principal, a.http.is_none() && deny),
        "request.auth.audiences" => claim_matches(condition, a, &["aud"], deny),
        "request.auth.presenter" => claim_matches(condition, a, &["azp"], deny),
        _ if key.starts_with("request.auth.claims[") => match claim_path(key) {
            Some(path) => claim_matches(condition, a, &path, deny),
            None => false,
        },
        // Unknown keys are ignored: the condition holds.
        _ => true,
    }
}
