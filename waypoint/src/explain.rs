//! "Why was this request denied?" — the gateway admin's dry run,
//! `GET /debug/authorize?host=…&path=…[&method=…][&port=…][&header=name:value…][&source=IP]`:
//! the request is routed through the served listeners exactly as the data path would
//! (`routing::router::select`), and the SecurityPolicy covering the match is applied to it
//! (`mesh_policy::security::enforce`, the layer's own code). The answer names, per port, the
//! listener, the route and rule, the Istio policies targeting the Gateway (judged first, with
//! no token verified and no CUSTOM authorizer asked), the SecurityPolicy and where it is
//! attached, its sections in the order they run, and the decision with the status and the
//! deciding policy and rule.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response};
use mesh_policy::security::percent::percent_decode;
use mesh_policy::security::{ClientAddress, Decision, attached, enforce};
use routing::resolve::Resolution;
use routing::router::{ListenerSet, select};
use serde_json::{Value, json};

use crate::respond::status_for;

/// What to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainQuery {
    /// The `Host`.
    pub host: String,
    /// Only listeners on this port (default: every port served).
    pub port: Option<u16>,
    /// The method (default `GET`).
    pub method: Method,
    /// The path and query (default `/`).
    pub path: String,
    /// Request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The client address (for `clientCIDRs`).
    pub source: Option<IpAddr>,
}

impl ExplainQuery {
    /// Reads a query string; an unusable parameter is an error naming it.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut explain = ExplainQuery {
            host: String::new(),
            port: None,
            method: Method::GET,
            path: "/".to_owned(),
            headers: Vec::new(),
            source: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned();
            match key {
                "host" => explain.host = value,
                "port" => explain.port = Some(value.parse().map_err(|_| "port: not a port")?),
                "method" => {
                    explain.method =
                        Method::from_bytes(value.as_bytes()).map_err(|_| "method: not a method")?;
                }
                "path" => explain.path = value,
                "header" => {
                    let (name, text) = value.split_once(':').ok_or("header: not name:value")?;
                    let name = HeaderName::try_from(name.trim()).map_err(|_| "header: bad name")?;
                    let text =
                        HeaderValue::try_from(text.trim()).map_err(|_| "header: bad value")?;
                    explain.headers.push((name, text));
                }
                "source" => {
                    explain.source = Some(value.parse().map_err(|_| "source: not an IP address")?);
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        if explain.host.is_empty() {
            return Err("host is required".into());
        }
        Ok(explain)
    }
}

/// The dry run over `resolution`'s served listeners.
pub fn explain(resolution: &Resolution, query: &ExplainQuery) -> Value {
    let mut ports: Vec<u16> = resolution
        .gateways
        .iter()
        .flat_map(|g| g.listeners.iter().map(|l| l.port))
        .filter(|port| query.port.is_none_or(|wanted| wanted == *port))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let results: Vec<Value> = ports
        .into_iter()
        .map(|port| explain_port(resolution, query, port))
        .collect();
    json!({
        "request": {
            "method": query.method.as_str(),
            "host": query.host,
            "path": query.path,
            "headers": query.headers.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("<binary>"))).collect::<Vec<_>>(),
            "source": query.source.map(|s| s.to_string()),
        },
        "ports": results,
    })
}

fn explain_port(resolution: &Resolution, query: &ExplainQuery, port: u16) -> Value {
    let listeners = resolution
        .gateways
        .iter()
        .flat_map(|g| g.listeners.iter().filter(|l| l.port == port).cloned())
        .collect();
    let set = ListenerSet::new(listeners);
    let mut builder = Request::builder()
        .method(query.method.clone())
        .uri(query.path.as_str())
        .header(http::header::HOST, query.host.as_str());
    for (name, value) in &query.headers {
        builder = builder.header(name, value);
    }
    let Ok(mut request) = builder.body(()) else {
        return json!({"port": port, "decision": "the path is not a valid request target"});
    };
    if let Some(source) = query.source {
        request.extensions_mut().insert(ClientAddress(source));
    }
    let matched = match select(&set, &mut request) {
        Ok(matched) => matched,
        Err(error) => {
            return json!({
                "port": port,
                "decision": "refused before any policy",
                "status": status_for(&error).as_u16(),
                "reason": error.to_string(),
            });
        }
    };
    let route = matched.identity().to_string();
    request.extensions_mut().insert(matched.clone());
    // Istio policies targeting the Gateway run first, as on the data path.
    let istio = mesh_policy::istio::dry_run(&request).map(|(count, decision)| {
        let reason = decision.as_ref().err().map(ToString::to_string);
        (count, reason)
    });
    if let Some((count, Some(reason))) = &istio {
        return json!({
            "port": port,
            "route": route,
            "istioPolicies": count,
            "decision": "refused by an Istio AuthorizationPolicy targeting the Gateway",
            "status": 403,
            "reason": reason,
        });
    }
    let from_rule = matched
        .rule
        .policy
        .get::<mesh_policy::security::AttachedSecurityPolicy>()
        .is_some();
    request.extensions_mut().insert(matched);
    let Some(policy) = attached(&request) else {
        return json!({
            "port": port,
            "route": route,
            "istioPolicies": istio.as_ref().map(|(count, _)| count),
            "securityPolicy": null,
            "decision": "forwarded (no SecurityPolicy covers this route)",
        });
    };
    let sections: Vec<&str> = match &policy.checks {
        Ok(checks) => [
            ("cors", checks.cors.is_some()),
            ("csrf", checks.csrf.is_some()),
            ("extAuth", checks.ext_auth.is_some()),
            ("apiKeyAuth", checks.api_key.is_some()),
            ("basicAuth", checks.basic_auth.is_some()),
            ("oidc", checks.oidc.is_some()),
            ("jwt", checks.jwt.is_some()),
            ("authorization", checks.authorization.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect(),
        Err(_) => Vec::new(),
    };
    let mut answer = json!({
        "port": port,
        "route": route,
        "istioPolicies": istio.as_ref().map(|(count, _)| count),
        "securityPolicy": policy.policy.to_string(),
        "attachedTo": if from_rule { "route (or its rule)" } else { "listener (or its Gateway)" },
        "sections": sections,
    });
    let decision = enforce::<(), ()>(&Arc::clone(&policy), &mut request);
    let (decision, status, reason) = match decision {
        Decision::Answer(response) => answered(&response),
        Decision::Refuse(error) => (
            "refused",
            status_for(&error).as_u16(),
            Some(error.to_string()),
        ),
        Decision::Forward(_) => ("forwarded", 200, None),
    };
    answer["decision"] = json!(decision);
    answer["status"] = json!(status);
    answer["reason"] = json!(reason);
    if let Ok(checks) = &policy.checks
        && let Some(ext) = &checks.ext_auth
    {
        // A dry run asks nobody: the other checks are judged as if the authorizer allowed.
        answer["extAuth"] = json!(format!(
            "not consulted in a dry run; requests ask {} ({:?}) before the checks above",
            ext.target.authority, ext.protocol
        ));
    }
    if let Ok(checks) = &policy.checks
        && let Some(oidc) = &checks.oidc
    {
        // A dry run has no browser session: OIDC is described, not judged.
        answer["oidc"] = json!(format!(
            "not judged in a dry run; requests without a session are sent to the provider \
             (callback {}, logout {}) between basic auth and JWT",
            oidc.callback_path, oidc.logout_path
        ));
    }
    answer
}

fn answered(response: &Response<()>) -> (&'static str, u16, Option<String>) {
    (
        "answered by the policy (CORS preflight)",
        response.status().as_u16(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_and_bad_ones_named() {
        let query = ExplainQuery::parse(
            "host=a.example&path=%2Fadmin%3Fx%3D1&method=POST&header=x-role:%20admin&source=10.0.0.1&port=80",
        )
        .unwrap();
        assert_eq!(query.path, "/admin?x=1");
        assert_eq!(query.method, Method::POST);
        assert_eq!(query.headers[0].1, "admin");
        assert_eq!(query.port, Some(80));
        assert!(ExplainQuery::parse("path=/").unwrap_err().contains("host"));
        assert!(
            ExplainQuery::parse("host=a&bogus=1")
                .unwrap_err()
                .contains("bogus")
        );
        assert!(
            ExplainQuery::parse("host=a&source=x")
                .unwrap_err()
                .contains("source")
        );
    }
}
