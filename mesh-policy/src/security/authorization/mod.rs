//! `authorization` at request time (policy.md §3.8): rules in order, the first that matches
//! decides (`Allow` or `Deny` → 403), `defaultAction` (default `Deny`) when none does. A rule
//! matches when every part it has matches: `operation` (any method; the path, `invert`ible)
//! and `principal` (client address in any CIDR; every header with any of its values).
//! `principal.jwt` matches the claims and scopes of the token the policy's `jwt` verified.
//! `cel` is a CEL expression over Envoy's request attributes that must yield `true`
//! (see the `cel` module). Geolocation is refused when compiled, so a policy that needs it fails closed
//! instead of matching less than it says. Requests are judged through a
//! rule index (by path, path prefix and header value) so that rules which cannot match cost nothing.

mod cel;
mod index;

use std::net::IpAddr;

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use serde_json::Value;

use super::jwt::{VerifiedJwt, claim, claim_text};
use super::model::{AuthorizationAction, AuthorizationRuleSpec, AuthorizationSpec, PathMatchSpec};
use crate::l4::Cidr;

/// A compiled `authorization`.
#[derive(Debug, Clone)]
pub struct AuthorizationRules {
    rules: Vec<Rule>,
    index: index::RuleIndex,
    default_action: AuthorizationAction,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    action: AuthorizationAction,
    methods: Vec<Method>,
    path: Option<(PathCheck, bool)>,
    cidrs: Vec<Cidr>,
    headers: Vec<(HeaderName, Vec<HeaderValue>)>,
    jwt: Option<JwtRule>,
    cel: Option<cel::CelCondition>,
}

/// `principal.jwt`, compiled.
#[derive(Debug, Clone)]
struct JwtRule {
    provider: String,
    /// (dot path, whether the claim is a string array, accepted values).
    claims: Vec<(String, bool, Vec<String>)>,
    scopes: Vec<String>,
}

#[derive(Debug, Clone)]
enum PathCheck {
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
}

/// What a request is judged on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, if any (CEL's `request.query` and `request.path`).
    pub query: Option<&'a str>,
    /// The headers (after authentication added its own).
    pub headers: &'a HeaderMap,
    /// The client's address (detected), if known.
    pub client_ip: Option<IpAddr>,
    /// The token the policy's `jwt` verified, if any.
    pub jwt: Option<&'a VerifiedJwt>,
}

/// The outcome, with the rule that decided (`None`: the default action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Allowed(Option<String>),
    /// 403.
    Denied(Option<String>),
}

impl AuthorizationRules {
    /// Compiles `spec`; `jwt_providers` are the names the policy's `jwt` defines (the only
    /// ones `principal.jwt` may name). An unsupported or invalid part is an error naming the
    /// rule.
    pub fn compile(spec: &AuthorizationSpec, jwt_providers: &[String]) -> Result<Self, String> {
        if u32::try_from(spec.rules.len()).is_err() {
            return Err("too many authorization rules".to_owned());
        }
        let rules: Vec<Rule> = spec
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| compile_rule(index, rule, jwt_providers))
            .collect::<Result<_, _>>()?;
        Ok(AuthorizationRules {
            index: index::RuleIndex::build(&rules),
            rules,
            default_action: spec.default_action.unwrap_or(AuthorizationAction::Deny),
        })
    }

    /// Judges a request: the first rule in order that matches decides, found through the
    /// index.
    pub fn evaluate(&self, request: &RequestFacts<'_>) -> Verdict {
        let first = self
            .index
            .first_match(&self.rules, request)
            .and_then(|position| self.rules.get(position as usize));
        self.verdict(first)
    }

    /// Judges a request by looking at every rule in order — the reference [`evaluate`]
    /// must agree with (for tests, fuzzing and benchmarks).
    ///
    /// [`evaluate`]: AuthorizationRules::evaluate
    pub fn evaluate_in_order(&self, request: &RequestFacts<'_>) -> Verdict {
        self.verdict(self.rules.iter().find(|rule| rule.matches(request)))
    }

    fn verdict(&self, rule: Option<&Rule>) -> Verdict {
        let (action, name) = match rule {
            Some(rule) => (rule.action, Some(rule.name.clone())),
            None => (self.default_action, None),
        };
        match action {
            AuthorizationAction::Allow => Verdict::Allowed(name),
            AuthorizationAction::Deny => Verdict::Denied(name),
        }
    }
}

fn compile_rule(
    index: usize,
    spec: &AuthorizationRuleSpec,
    jwt_providers: &[String],
) -> Result<Rule, String> {
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| format!("rules[{index}]"));
    let unsupported = |what: &str| Err(format!("{name}: {what} is not supported yet"));
    let cel = spec
        .cel
        .as_deref()
        .map(|expression| {
            cel::CelCondition::compile(expression).map_err(|e| format!("{name}: cel: {e}"))
        })
        .transpose()?;
    let principal = spec.principal.clone().unwrap_or_default();
    if spec.principal.is_none() && cel.is_none() {
        return Err(format!("{name}: needs a principal (or cel)"));
    }
    let jwt = principal
        .jwt
        .as_ref()
        .map(|jwt| {
            if !jwt_providers.contains(&jwt.provider) {
                return Err(format!(
                    "{name}: principal.jwt.provider {:?} is not one of the policy's jwt providers",
                    jwt.provider
                ));
            }
            let claims = jwt
                .claims
                .iter()
                .map(|c| match c.value_type.as_deref() {
                    None | Some("String") => Ok((c.name.clone(), false, c.values.clone())),
                    Some("StringArray") => Ok((c.name.clone(), true, c.values.clone())),
                    Some(other) => Err(format!("{name}: claim valueType {other:?}")),
                })
                .collect::<Result<_, _>>()?;
            Ok(JwtRule {
                provider: jwt.provider.clone(),
                claims,
                scopes: jwt.scopes.clone(),
            })
        })
        .transpose()?;
    if principal.client_ip_geo_locations.is_some() {
        return unsupported("principal.clientIPGeoLocations");
    }
    let operation = spec.operation.clone().unwrap_or_default();
    let methods = operation
        .methods
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("{name}: method {m:?}")))
        .collect::<Result<_, _>>()?;
    let path = operation
        .path
        .as_ref()
        .map(|path| compile_path(&name, path).map(|check| (check, path.invert)))
        .transpose()?;
    let cidrs = principal
        .client_cidrs
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|e| format!("{name}: clientCIDRs {c:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let headers = principal
        .headers
        .iter()
        .map(|h| {
            let header = HeaderName::try_from(h.name.as_str())
                .map_err(|_| format!("{name}: header name {:?}", h.name))?;
            let values = h
                .values
                .iter()
                .map(|v| HeaderValue::try_from(v.as_str()))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("{name}: a value of header {:?}", h.name))?;
            Ok((header, values))
        })
        .collect::<Result<_, String>>()?;
    Ok(Rule {
        name,
        action: spec.action,
        methods,
        path,
        cidrs,
        headers,
        jwt,
        cel,
    })
}

fn compile_path(rule: &str, path: &PathMatchSpec) -> Result<PathCheck, String> {
    match path.match_type.as_str() {
        "Exact" => Ok(PathCheck::Exact(path.value.clone())),
        "PathPrefix" => Ok(PathCheck::Prefix(
            path.value.trim_end_matches('/').to_owned(),
        )),
        "RegularExpression" => regex::RegexBuilder::new(&format!("^(?:{})$", path.value))
            .size_limit(1 << 20)
            .build()
            .map(PathCheck::Regex)
            .map_err(|e| format!("{rule}: path regex: {e}")),
        other => Err(format!("{rule}: path type {other:?}")),
    }
}

impl Rule {
    fn matches(&self, request: &RequestFacts<'_>) -> bool {
        (self.methods.is_empty() || self.methods.contains(request.method))
            && self
                .path
                .as_ref()
                .is_none_or(|(check, invert)| check.matches(request.path) != *invert)
            && (self.cidrs.is_empty()
                || request
                    .client_ip
                    .is_some_and(|ip| self.cidrs.iter().any(|c| c.contains(ip))))
            && self.headers.iter().all(|(name, values)| {
                request
                    .headers
                    .get_all(name)
                    .iter()
                    .any(|value| values.contains(value))
            })
            && self
                .jwt
                .as_ref()
                .is_none_or(|rule| request.jwt.is_some_and(|jwt| rule.matches(jwt)))
            && self.cel.as_ref().is_none_or(|cel| cel.matches(request))
    }
}

impl JwtRule {
    fn matches(&self, jwt: &VerifiedJwt) -> bool {
        *jwt.provider == *self.provider
            && self.claims.iter().all(|(path, array, values)| {
                let accepted = |text: &str| values.iter().any(|v| v == text);
                match claim(&jwt.claims, path) {
                    Some(Value::Array(items)) if *array => {
                        items.iter().filter_map(Value::as_str).any(accepted)
                    }
                    Some(_) if *array => false,
                    Some(_) => claim_text(&jwt.claims, path).is_some_and(|t| accepted(&t)),
                    None => false,
                }
            })
            && self.scopes.iter().all(|scope| {
                let granted = |name: &str| match claim(&jwt.claims, name) {
                    Some(Value::String(list)) => list.split(' ').any(|s| s == scope),
                    Some(Value::Array(list)) => list.iter().any(|s| s.as_str() == Some(scope)),
                    _ => false,
                };
                granted("scope") || granted("scp")
            })
    }
}

impl PathCheck {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathCheck::Exact(exact) => path == exact,
            // Segment-aware: `/api` covers `/api` and `/api/x`, not `/apix`.
            PathCheck::Prefix(prefix) => {
                prefix.is_empty()
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            PathCheck::Regex(regex) => regex.is_match(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Result<AuthorizationRules, String> {
        AuthorizationRules::compile(&serde_yaml_ng::from_str(yaml).unwrap(), &["idp".into()])
    }

    fn judge(rules: &AuthorizationRules, method: Method, path: &str, ip: &str) -> Verdict {
        let mut headers = HeaderMap::new();
        headers.insert("x-team", HeaderValue::from_static("blue"));
        let facts = RequestFacts {
            method: &method,
            path,
            query: None,
            headers: &headers,
            client_ip: Some(ip.parse().unwrap()),
            jwt: None,
        };
        let verdict = rules.evaluate(&facts);
        assert_eq!(verdict, rules.evaluate_in_order(&facts), "{method} {path}");
        verdict
    }

    #[test]
    fn the_index_finds_the_first_matching_rule_in_order_whatever_its_bucket() {
        let rules = rules(
            r#"
rules:
- {name: r0-header, action: Deny, principal: {headers: [{name: x-team, values: [red]}]}}
- {name: r1-prefix, action: Allow, operation: {path: {type: PathPrefix, value: /api/v1/}}, principal: {clientCIDRs: [10.0.0.0/8]}}
- {name: r2-exact, action: Deny, operation: {path: {type: Exact, value: /api/v1/users}}, principal: {clientCIDRs: [0.0.0.0/0]}}
- {name: r3-header, action: Deny, principal: {headers: [{name: x-team, values: [green, blue]}], clientCIDRs: [192.0.2.0/24]}}
- {name: r4-prefix, action: Allow, operation: {path: {type: PathPrefix, value: /api}}, principal: {clientCIDRs: [0.0.0.0/0]}}
- {name: r5-regex, action: Allow, operation: {path: {type: RegularExpression, value: "/x/[0-9]+"}}, principal: {clientCIDRs: [0.0.0.0/0]}}
- {name: r6-always, action: Allow, principal: {clientCIDRs: [198.51.100.0/24]}}
"#,
        )
        .unwrap();
        let cases = [
            (
                "/api/v1/users",
                "10.0.0.1",
                Verdict::Allowed(Some("r1-prefix".into())),
            ),
            (
                "/api/v1/users",
                "172.16.0.1",
                Verdict::Denied(Some("r2-exact".into())),
            ),
            (
                "/api/v1",
                "192.0.2.9",
                Verdict::Denied(Some("r3-header".into())),
            ),
            (
                "/api/v2",
                "172.16.0.1",
                Verdict::Allowed(Some("r4-prefix".into())),
            ),
            ("/apix", "172.16.0.1", Verdict::Denied(None)),
            (
                "/x/42",
                "172.16.0.1",
                Verdict::Allowed(Some("r5-regex".into())),
            ),
            (
                "/y",
                "198.51.100.7",
                Verdict::Allowed(Some("r6-always".into())),
            ),
            ("/y", "192.0.2.9", Verdict::Denied(Some("r3-header".into()))),
        ];
        for (path, ip, expected) in cases {
            assert_eq!(
                judge(&rules, Method::GET, path, ip),
                expected,
                "{path} {ip}"
            );
        }
    }

    #[test]
    fn first_match_wins_and_the_default_is_deny() {
        let rules = rules(
            r#"
rules:
- {name: block-admin, action: Deny, operation: {path: {type: PathPrefix, value: /admin}}, principal: {clientCIDRs: [0.0.0.0/0]}}
- {name: office, action: Allow, principal: {clientCIDRs: [10.0.0.0/8]}}
- {name: blue-get, action: Allow, operation: {methods: [GET]}, principal: {headers: [{name: x-team, values: [red, blue]}]}}
"#,
        )
        .unwrap();
        let denied = |rule: &str| Verdict::Denied(Some(rule.into()));
        let allowed = |rule: &str| Verdict::Allowed(Some(rule.into()));
        assert_eq!(
            judge(&rules, Method::GET, "/admin/x", "10.1.1.1"),
            denied("block-admin")
        );
        assert_eq!(
            judge(&rules, Method::GET, "/adminx", "10.1.1.1"),
            allowed("office")
        );
        assert_eq!(
            judge(&rules, Method::POST, "/x", "10.1.1.1"),
            allowed("office")
        );
        assert_eq!(
            judge(&rules, Method::GET, "/x", "192.0.2.1"),
            allowed("blue-get")
        );
        assert_eq!(
            judge(&rules, Method::POST, "/x", "192.0.2.1"),
            Verdict::Denied(None)
        );
    }

    #[test]
    fn default_allow_inverted_paths_and_exact_paths() {
        let rules = rules(
            r#"
defaultAction: Allow
rules:
- {action: Deny, operation: {path: {type: Exact, value: /open, invert: true}}, principal: {clientCIDRs: [192.0.2.0/24]}}
"#,
        )
        .unwrap();
        assert_eq!(
            judge(&rules, Method::GET, "/open", "192.0.2.1"),
            Verdict::Allowed(None)
        );
        assert_eq!(
            judge(&rules, Method::GET, "/closed", "192.0.2.1"),
            Verdict::Denied(Some("rules[0]".into()))
        );
        assert_eq!(
            judge(&rules, Method::GET, "/closed", "10.0.0.1"),
            Verdict::Allowed(None)
        );
        let empty = AuthorizationRules::compile(&AuthorizationSpec::default(), &[]).unwrap();
        assert_eq!(
            judge(&empty, Method::GET, "/", "10.0.0.1"),
            Verdict::Denied(None)
        );
    }

    #[test]
    fn jwt_principals_match_claims_and_scopes_of_the_verified_token() {
        let rules = rules(
            r#"
rules:
- name: admins
  action: Allow
  principal:
    jwt:
      provider: idp
      claims: [{name: org.role, values: [admin]}, {name: groups, valueType: StringArray, values: [ops]}]
      scopes: [read, write]
"#,
        )
        .unwrap();
        let token = |claims: serde_json::Value, provider: &str| VerifiedJwt {
            provider: provider.into(),
            claims: std::sync::Arc::new(claims.as_object().unwrap().clone()),
        };
        let judge = |jwt: Option<&VerifiedJwt>| {
            rules.evaluate(&RequestFacts {
                method: &Method::GET,
                path: "/",
                query: None,
                headers: &HeaderMap::new(),
                client_ip: None,
                jwt,
            })
        };
        let good = serde_json::json!({"org": {"role": "admin"}, "groups": ["dev", "ops"], "scope": "read write x"});
        assert_eq!(
            judge(Some(&token(good.clone(), "idp"))),
            Verdict::Allowed(Some("admins".into()))
        );
        assert_eq!(judge(Some(&token(good, "other"))), Verdict::Denied(None));
        let scp = serde_json::json!({"org": {"role": "admin"}, "groups": ["ops"], "scp": ["read", "write"]});
        assert!(matches!(
            judge(Some(&token(scp, "idp"))),
            Verdict::Allowed(_)
        ));
        let missing_scope =
            serde_json::json!({"org": {"role": "admin"}, "groups": ["ops"], "scope": "read"});
        assert_eq!(
            judge(Some(&token(missing_scope, "idp"))),
            Verdict::Denied(None)
        );
        assert_eq!(judge(None), Verdict::Denied(None));
    }

    #[test]
    fn unsupported_parts_are_refused_naming_the_rule() {
        let error =
            rules("rules: [{name: r, action: Allow, cel: 'request.method =='}]").unwrap_err();
        assert!(error.contains("r: cel"), "{error}");
        let error = rules("rules: [{action: Allow, principal: {jwt: {provider: p}}}]").unwrap_err();
        assert!(
            error.contains("rules[0]: principal.jwt.provider"),
            "{error}"
        );
        let error = rules("rules: [{action: Allow, operation: {methods: [GET]}}]").unwrap_err();
        assert!(error.contains("needs a principal"), "{error}");
        assert!(rules("rules: [{action: Allow, principal: {clientCIDRs: [nope]}}]").is_err());
    }

    #[test]
    fn cel_rules_read_envoys_request_attributes_and_only_true_matches() {
        let rules = rules(
            r#"
defaultAction: Deny
rules:
- name: internal-reads
  action: Allow
  cel: request.method == "GET" && request.headers["x-team"] == "blue" && request.url_path.startsWith("/api/") && source.address.startsWith("10.")
- name: query-flag
  action: Allow
  operation: {methods: [POST]}
  cel: request.query.contains("debug=1") && request.path.endsWith("?debug=1")
- name: admins
  action: Allow
  cel: jwt.claims.org.role == "admin" && "ops" in jwt.claims.groups
- name: not-a-bool
  action: Allow
  cel: request.method
- name: missing-header
  action: Allow
  cel: request.headers["x-absent"] == "x"
"#,
        )
        .unwrap();
        let judge = |method: Method, path: &str, query: Option<&str>, ip: &str, team: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-team", HeaderValue::from_str(team).unwrap());
            rules.evaluate(&RequestFacts {
                method: &method,
                path,
                query,
                headers: &headers,
                client_ip: Some(ip.parse().unwrap()),
                jwt: None,
            })
        };
        let allowed = |name: &str| Verdict::Allowed(Some(name.to_owned()));
        assert_eq!(
            judge(Method::GET, "/api/items", None, "10.1.2.3", "blue"),
            allowed("internal-reads")
        );
        assert_eq!(
            judge(Method::GET, "/api/items", None, "192.168.1.1", "blue"),
            Verdict::Denied(None)
        );
        assert_eq!(
            judge(Method::GET, "/api/items", None, "10.1.2.3", "red"),
            Verdict::Denied(None)
        );
        assert_eq!(
            judge(Method::POST, "/x", Some("debug=1"), "1.1.1.1", "red"),
            allowed("query-flag")
        );
        // The query is not part of `request.url_path`, nor is a POST a GET.
        assert_eq!(
            judge(Method::POST, "/api/x", Some("debug=0"), "10.0.0.1", "blue"),
            Verdict::Denied(None)
        );
        let with_claims = |claims: serde_json::Value| {
            let token = VerifiedJwt {
                provider: "idp".into(),
                claims: std::sync::Arc::new(claims.as_object().unwrap().clone()),
            };
            rules.evaluate(&RequestFacts {
                method: &Method::DELETE,
                path: "/",
                query: None,
                headers: &HeaderMap::new(),
                client_ip: None,
                jwt: Some(&token),
            })
        };
        assert_eq!(
            with_claims(serde_json::json!({"org": {"role": "admin"}, "groups": ["dev", "ops"]})),
            allowed("admins")
        );
        assert_eq!(
            with_claims(serde_json::json!({"org": {"role": "user"}, "groups": ["ops"]})),
            Verdict::Denied(None)
        );
        assert!(self::tests::rules("rules: [{name: r, action: Allow, cel: '1 +'}]").is_err());
    }
}
