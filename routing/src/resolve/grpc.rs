//! GRPCRoute rules as HTTP rules (spec §2.1): a method match is a path match on
//! `/{service}/{method}` — both set: `Exact`; service only: `PathPrefix /{service}`; no
//! method match: every request. Backends always speak HTTP/2 (h2c).
//!
//! This keeps the GRPCRoute precedence (service characters, then method characters, then
//! header count) within the HTTP order: a full method beats a service prefix, a longer service
//! beats a shorter one, more headers win among equals. A method without a service and regular
//! expressions are implementation-specific and not supported (`Accepted=False`).

use super::compile::{CompiledRule, compile_http_rule};
use crate::compiled::BackendProtocol;
use crate::model::{
    Config, GrpcMethodMatch, GrpcRouteRule, HeaderMatchType, HttpPathMatch, HttpRouteMatch,
    HttpRouteRule, ObjectKey, PathMatchType,
};

/// Compiles every rule of a GRPCRoute.
pub(crate) fn compile_grpc_rules(
    config: &Config,
    route: &ObjectKey,
    rules: &[GrpcRouteRule],
    mesh: bool,
) -> Result<Vec<CompiledRule>, String> {
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            let http_rule = to_http_rule(rule).map_err(|e| format!("rules[{index}]: {e}"))?;
            let mut compiled =
                compile_http_rule(config, "GRPCRoute", route, index, &http_rule, mesh)?;
            // Not shared yet: `make_mut` does not copy.
            let rule = std::sync::Arc::make_mut(&mut compiled.rule);
            rule.backends.for_each_ready_mut(|backend| {
                std::sync::Arc::make_mut(backend).protocol = BackendProtocol::H2c;
            });
            Ok(compiled)
        })
        .collect()
}

fn to_http_rule(rule: &GrpcRouteRule) -> Result<HttpRouteRule, String> {
    let matches = if rule.matches.is_empty() {
        vec![HttpRouteMatch::default()]
    } else {
        rule.matches
            .iter()
            .map(|m| {
                Ok(HttpRouteMatch {
                    path: method_path(m.method.as_ref())?,
                    headers: m.headers.clone(),
                    query_params: Vec::new(),
                    method: None,
                })
            })
            .collect::<Result<_, String>>()?
    };
    Ok(HttpRouteRule {
        name: rule.name.clone(),
        matches,
        filters: rule.filters.clone(),
        backend_refs: rule.backend_refs.clone(),
        timeouts: None,
        retry: None,
    })
}

fn method_path(method: Option<&GrpcMethodMatch>) -> Result<HttpPathMatch, String> {
    let Some(method) = method else {
        return Ok(HttpPathMatch::default());
    };
    if method.match_type != HeaderMatchType::Exact {
        return Err("only Exact method matches are supported".into());
    }
    let service_ok = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
    };
    let method_ok =
        |m: &str| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match (method.service.as_deref(), method.method.as_deref()) {
        (Some(service), Some(name)) if service_ok(service) && method_ok(name) => {
            Ok(HttpPathMatch {
                match_type: PathMatchType::Exact,
                value: format!("/{service}/{name}"),
            })
        }
        (Some(service), None) if service_ok(service) => Ok(HttpPathMatch {
            match_type: PathMatchType::PathPrefix,
            value: format!("/{service}"),
        }),
        (None, Some(_)) => Err("a method match without a service is not supported".into()),
        (None, None) => Err("a method match needs a service or a method".into()),
        _ => Err("invalid gRPC service or method name".into()),
    }
}
