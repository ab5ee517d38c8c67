//! HTTPRoute rules from the model into [`HttpRule`]s, with the CEL-equivalent validations the
//! data plane relies on (spec §1.4, §3).

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

use super::backends::resolve_backend;
use super::duration::parse_duration;
use super::references;
use super::status::Condition;
use crate::backends::{BackendState, WeightedBackend, WeightedBackends};
use crate::compiled::{
    Backend, Endpoint, HttpFilter, HttpRule, Mirror, RetryPolicy, RouteTimeouts,
};
use crate::filters::{
    CorsPolicy, HeaderModifier, PathModifier, RedirectStatus, RequestRedirect, UrlRewrite,
};
use crate::http_route::{
    Candidate, HeaderMatch, HttpRouteMatch, PathMatch, Pattern, QueryParamMatch, RouteOrder,
    ValueMatch,
};
use crate::model::{
    Config, HeaderMatchType, HttpHeaderFilter, HttpPathModifier, HttpRouteFilter,
    HttpRouteFilterType, HttpRouteRule, ObjectKey, PathMatchType, PathModifierType,
};
use crate::slot::{BackendTarget, PolicyCompiler, PolicySlot, RuleTarget};

/// A rule compiled, with the `ResolvedRefs=False` conditions of its invalid backends.
pub(crate) struct CompiledRule {
    /// Shared by every listener and Service port the route attaches to.
    pub(crate) rule: Arc<HttpRule>,
    pub(crate) matches: Vec<HttpRouteMatch>,
    pub(crate) ref_problems: Vec<Condition>,
}

/// Why a rule cannot be accepted (`Accepted=False`, reason `UnsupportedValue`).
pub(crate) type Unsupported = String;

/// Compiles rule `index` of the route `route` (kind `kind`); `mesh` for a route attached to a
/// Service (its backends may cross namespaces without a ReferenceGrant).
pub(crate) fn compile_http_rule(
    config: &Config,
    kind: &'static str,
    route: &ObjectKey,
    index: usize,
    rule: &HttpRouteRule,
    mesh: bool,
) -> Result<CompiledRule, Unsupported> {
    let at = |what: String| format!("rules[{index}]: {what}");
    let matches = rule
        .matches
        .iter()
        .map(compile_match)
        .collect::<Result<Vec<_>, _>>()
        .map_err(at)?;
    let prefixes: Vec<&str> = matches
        .iter()
        .filter_map(|m| match m.path_match() {
            PathMatch::PathPrefix(prefix) => Some(prefix.as_str()),
            PathMatch::Exact(_) | PathMatch::RegularExpression(_) => None,
        })
        .collect();
    let matched_prefix =
        (matches.len() == 1 && prefixes.len() == 1).then(|| prefixes[0].to_owned());
    let from = references::From {
        group: crate::model::GATEWAY_GROUP,
        kind,
        namespace: &route.namespace,
        mesh,
    };
    let mut ref_problems = Vec::new();
    let filters = compile_filters(
        config,
        from,
        &rule.filters,
        matched_prefix.is_some(),
        &mut ref_problems,
    )
    .map_err(at)?;
    let has_redirect = filters.iter().any(|f| matches!(f, HttpFilter::Redirect(_)));
    if has_redirect && filters.iter().any(|f| matches!(f, HttpFilter::Rewrite(_))) {
        return Err(at(
            "RequestRedirect and URLRewrite cannot be combined".into()
        ));
    }
    if has_redirect && !rule.backend_refs.is_empty() {
        return Err(at(
            "RequestRedirect cannot be combined with backendRefs".into()
        ));
    }
    let mut backends = Vec::with_capacity(rule.backend_refs.len());
    for (position, backend_ref) in rule.backend_refs.iter().enumerate() {
        let resolved = resolve_backend(config, from, &backend_ref.backend);
        ref_problems.extend(resolved.problem.map(|mut problem| {
            // Name the field, as the loader does for syntax errors.
            problem.message = format!(
                "rules[{index}].backendRefs[{position}]: {}",
                problem.message
            );
            problem
        }));
        let backend_filters = compile_filters(
            config,
            from,
            &backend_ref.filters,
            matched_prefix.is_some(),
            &mut ref_problems,
        )
        .map_err(at)?;
        let state = match resolved.state {
            BackendState::Ready(mut backend) => {
                Arc::make_mut(&mut backend).filters = backend_filters;
                BackendState::Ready(backend)
            }
            other => other,
        };
        backends.push(WeightedBackend {
            weight: backend_ref.weight,
            state,
            fallback: resolved.fallback,
        });
    }
    let timeouts = compile_timeouts(rule).map_err(at)?;
    let retry = match &rule.retry {
        None => None,
        Some(retry) => Some(RetryPolicy {
            codes: retry.codes.clone(),
            grpc_statuses: Vec::new(),
            attempts_per_priority: None,
            attempts: retry.attempts.unwrap_or(1),
            backoff: match &retry.backoff {
                None => std::time::Duration::ZERO,
                Some(text) => parse_duration(text)
                    .ok_or_else(|| at(format!("retry.backoff {text:?} is not a duration")))?,
            },
        }),
    };
    Ok(CompiledRule {
        rule: Arc::new(HttpRule {
            kind,
            route: route.clone(),
            index,
            name: rule.name.clone(),
            matched_prefix,
            filters,
            backends: WeightedBackends::new(backends),
            timeouts,
            retry,
            policy: PolicySlot::default(),
        }),
        matches,
        ref_problems,
    })
}

/// The slot `policies` fill for a rule (`kind`, `route`, `index`, `name`, `mesh`). First, if
/// they ask for Service routing, every backend that has a cluster address is pointed at it
/// alone, so that the rule's policies see the backends its requests will use.
pub(crate) fn rule_slot(
    policies: &dyn PolicyCompiler,
    identity: RuleIdentity<'_>,
    backends: &mut WeightedBackends<Arc<Backend>>,
) -> PolicySlot {
    fn target<'a>(
        (kind, route, index, name, mesh): RuleIdentity<'a>,
        backends: &'a WeightedBackends<Arc<Backend>>,
    ) -> RuleTarget<'a> {
        RuleTarget {
            kind,
            route,
            index,
            name,
            mesh,
            backends,
        }
    }
    // Only a rule naming a `Backend` by host name has a family to ask for.
    let has_names = backends.ready().any(|backend| backend.names.is_some());
    if has_names && let Some(family) = policies.lookup_family(&target(identity, backends)) {
        backends.for_each_ready_mut(|backend| {
            if let Some(names) = backend.names.clone() {
                Arc::make_mut(backend).endpoints = Arc::from(names.endpoints(family));
            }
        });
    }
    if policies.routes_to_service_address(&target(identity, backends)) {
        backends.for_each_ready_mut(|backend| {
            if let Some(address) = backend.cluster_address {
                Arc::make_mut(backend).endpoints = Arc::from([Endpoint {
                    address,
                    pod: None,
                    zone: None,
                }]);
            }
        });
    }
    let mut slot = PolicySlot::default();
    policies.rule(&target(identity, backends), &mut slot);
    slot
}

/// A rule's kind, route, index, name and whether it is a mesh rule.
pub(crate) type RuleIdentity<'a> = (&'static str, &'a ObjectKey, usize, Option<&'a str>, bool);

impl CompiledRule {
    /// Lets `policies` fill the slots of the rule and of its backends (the rule was just
    /// compiled and is not shared yet, so nothing is copied).
    pub(crate) fn fill_policy_slots(&mut self, policies: &dyn PolicyCompiler, mesh: bool) {
        let rule = Arc::make_mut(&mut self.rule);
        let identity = (
            rule.kind,
            &rule.route,
            rule.index,
            rule.name.as_deref(),
            mesh,
        );
        rule.policy = rule_slot(policies, identity, &mut rule.backends);
        rule.backends.for_each_ready_mut(|backend| {
            let backend = Arc::make_mut(backend);
            let target = BackendTarget {
                service: &backend.service,
                port: backend.port,
            };
            policies.backend(&target, &mut backend.policy);
        });
    }

    /// One table candidate per match of the rule, with the (effective) `hostnames` and the
    /// route's age and name for the tie-breaks.
    pub(crate) fn candidates<'a>(
        &'a self,
        hostnames: &'a [String],
        created: u64,
        namespaced_name: &'a str,
    ) -> impl Iterator<Item = Candidate<Arc<HttpRule>>> + 'a {
        self.matches
            .iter()
            .enumerate()
            .map(move |(index, route_match)| Candidate {
                hostnames: hostnames.to_vec(),
                route_match: route_match.clone(),
                order: RouteOrder {
                    created,
                    namespaced_name: namespaced_name.to_owned(),
                    rule: self.rule.index,
                    index,
                },
                target: Arc::clone(&self.rule),
            })
    }
}

fn compile_timeouts(rule: &HttpRouteRule) -> Result<RouteTimeouts, String> {
    let Some(timeouts) = &rule.timeouts else {
        return Ok(RouteTimeouts::default());
    };
    let parse = |field: &str, value: &Option<String>| match value {
        None => Ok(None),
        Some(text) => match parse_duration(text) {
            Some(duration) if duration.is_zero() => Ok(None),
            Some(duration) => Ok(Some(duration)),
            None => Err(format!("timeouts.{field} {text:?} is not a duration")),
        },
    };
    let compiled = RouteTimeouts {
        request: parse("request", &timeouts.request)?,
        backend_request: parse("backendRequest", &timeouts.backend_request)?,
    };
    if let (Some(request), Some(backend)) = (compiled.request, compiled.backend_request)
        && backend > request
    {
        return Err("timeouts.backendRequest must not exceed timeouts.request".into());
    }
    Ok(compiled)
}

fn compile_match(model: &crate::model::HttpRouteMatch) -> Result<HttpRouteMatch, String> {
    let path = match model.path.match_type {
        PathMatchType::Exact => PathMatch::exact(&model.path.value),
        PathMatchType::PathPrefix => PathMatch::prefix(&model.path.value),
        PathMatchType::RegularExpression => PathMatch::regex(&model.path.value),
        PathMatchType::Unsupported => return Err("unknown path match type".into()),
    }
    .map_err(|e| format!("path {:?}: {e}", model.path.value))?;
    let mut headers = Vec::with_capacity(model.headers.len());
    for header in &model.headers {
        let value = value_match(header.match_type, &header.value, "header")?;
        let name = HeaderName::try_from(header.name.as_str())
            .map_err(|_| format!("invalid header name {:?}", header.name))?;
        headers.push(HeaderMatch { name, value });
    }
    let mut query_params = Vec::with_capacity(model.query_params.len());
    for param in &model.query_params {
        query_params.push(QueryParamMatch {
            name: param.name.clone(),
            value: value_match(param.match_type, &param.value, "query parameter")?,
        });
    }
    let method = match &model.method {
        None => None,
        Some(method) => Some(
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("invalid method {method:?}"))?,
        ),
    };
    Ok(HttpRouteMatch::new(path, headers, query_params, method))
}

fn value_match(match_type: HeaderMatchType, value: &str, what: &str) -> Result<ValueMatch, String> {
    match match_type {
        HeaderMatchType::Exact => Ok(ValueMatch::Exact(value.to_owned())),
        HeaderMatchType::RegularExpression => Pattern::new(value)
            .map(ValueMatch::RegularExpression)
            .map_err(|e| format!("{what}: {e}")),
        HeaderMatchType::Unsupported => Err(format!("unknown {what} match type")),
    }
}

/// Compiles a filter list; mirror backends that do not resolve add `ResolvedRefs` problems.
pub(crate) fn compile_filters(
    config: &Config,
    from: references::From<'_>,
    filters: &[HttpRouteFilter],
    single_prefix_match: bool,
    ref_problems: &mut Vec<Condition>,
) -> Result<Vec<HttpFilter>, String> {
    let mut compiled = Vec::with_capacity(filters.len());
    for (index, filter) in filters.iter().enumerate() {
        let missing = || {
            format!(
                "filters[{index}]: {:?} without its settings",
                filter.filter_type
            )
        };
        let next = match filter.filter_type {
            HttpRouteFilterType::RequestHeaderModifier => {
                HttpFilter::RequestHeaders(header_modifier(
                    filter
                        .request_header_modifier
                        .as_ref()
                        .ok_or_else(missing)?,
                )?)
            }
            HttpRouteFilterType::ResponseHeaderModifier => {
                HttpFilter::ResponseHeaders(Arc::new(header_modifier(
                    filter
                        .response_header_modifier
                        .as_ref()
                        .ok_or_else(missing)?,
                )?))
            }
            HttpRouteFilterType::RequestRedirect => {
                let redirect = filter.request_redirect.as_ref().ok_or_else(missing)?;
                let status = match redirect.status_code {
                    301 => RedirectStatus::MovedPermanently,
                    302 => RedirectStatus::Found,
                    303 => RedirectStatus::SeeOther,
                    307 => RedirectStatus::TemporaryRedirect,
                    308 => RedirectStatus::PermanentRedirect,
                    other => return Err(format!("redirect statusCode {other} is not allowed")),
                };
                if let Some(scheme) = &redirect.scheme
                    && scheme != "http"
                    && scheme != "https"
                {
                    return Err(format!("redirect scheme {scheme:?} is not http or https"));
                }
                HttpFilter::Redirect(RequestRedirect {
                    scheme: redirect.scheme.clone(),
                    hostname: redirect.hostname.clone(),
                    path: path_modifier(redirect.path.as_ref(), single_prefix_match)?,
                    port: redirect.port,
                    status,
                })
            }
            HttpRouteFilterType::UrlRewrite => {
                let rewrite = filter.url_rewrite.as_ref().ok_or_else(missing)?;
                if let Some(hostname) = &rewrite.hostname {
                    http::uri::Authority::try_from(hostname.as_str())
                        .map_err(|_| format!("invalid rewrite hostname {hostname:?}"))?;
                }
                HttpFilter::Rewrite(UrlRewrite {
                    hostname: rewrite.hostname.clone(),
                    path: path_modifier(rewrite.path.as_ref(), single_prefix_match)?,
                })
            }
            HttpRouteFilterType::RequestMirror => {
                let mirror = filter.request_mirror.as_ref().ok_or_else(missing)?;
                let (numerator, denominator) = match (mirror.percent, mirror.fraction) {
                    (Some(_), Some(_)) => {
                        return Err("mirror sets both percent and fraction".into());
                    }
                    (Some(percent), None) if percent <= 100 => (percent, 100),
                    (None, Some(f)) if f.denominator > 0 && f.numerator <= f.denominator => {
                        (f.numerator, f.denominator)
                    }
                    (None, None) => (100, 100),
                    _ => return Err("mirror percent or fraction out of range".into()),
                };
                let resolved = resolve_backend(config, from, &mirror.backend_ref);
                ref_problems.extend(resolved.problem);
                HttpFilter::Mirror(Mirror {
                    backend: resolved.state,
                    numerator,
                    denominator,
                })
            }
            HttpRouteFilterType::Cors => HttpFilter::Cors(Arc::new(
                CorsPolicy::new(filter.cors.as_ref().ok_or_else(missing)?)
                    .map_err(|e| e.to_string())?,
            )),
            HttpRouteFilterType::ExtensionRef => {
                HttpFilter::Unresolvable("ExtensionRef filters are not supported".into())
            }
            HttpRouteFilterType::Unsupported => {
                HttpFilter::Unresolvable("unknown filter type".into())
            }
        };
        compiled.push(next);
    }
    Ok(compiled)
}

fn header_modifier(filter: &HttpHeaderFilter) -> Result<HeaderModifier, String> {
    let pairs = |list: &[crate::model::HttpHeader]| {
        list.iter()
            .map(|header| {
                let name = HeaderName::try_from(header.name.as_str())
                    .map_err(|_| format!("invalid header name {:?}", header.name))?;
                let value = HeaderValue::try_from(header.value.as_str())
                    .map_err(|_| format!("invalid header value for {:?}", header.name))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let remove = filter
        .remove
        .iter()
        .map(|name| {
            HeaderName::try_from(name.as_str()).map_err(|_| format!("invalid header name {name:?}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    HeaderModifier::new(pairs(&filter.set)?, pairs(&filter.add)?, remove).map_err(|e| e.to_string())
}

fn path_modifier(
    modifier: Option<&HttpPathModifier>,
    single_prefix_match: bool,
) -> Result<Option<PathModifier>, String> {
    let Some(modifier) = modifier else {
        return Ok(None);
    };
    let value = |value: &Option<String>, field: &str| {
        value
            .clone()
            .ok_or_else(|| format!("path modifier without {field}"))
    };
    let absolute = |value: &Option<String>| value.as_deref().is_none_or(|v| v.starts_with('/'));
    if !absolute(&modifier.replace_full_path) || !absolute(&modifier.replace_prefix_match) {
        return Err("path replacements must start with `/`".into());
    }
    match modifier.modifier_type {
        PathModifierType::ReplaceFullPath => Ok(Some(PathModifier::ReplaceFullPath(value(
            &modifier.replace_full_path,
            "replaceFullPath",
        )?))),
        PathModifierType::ReplacePrefixMatch if single_prefix_match => {
            Ok(Some(PathModifier::ReplacePrefixMatch(value(
                &modifier.replace_prefix_match,
                "replacePrefixMatch",
            )?)))
        }
        PathModifierType::ReplacePrefixMatch => {
            Err("ReplacePrefixMatch needs exactly one match, of type PathPrefix".into())
        }
        PathModifierType::Unsupported => Err("unknown path modifier type".into()),
    }
}
