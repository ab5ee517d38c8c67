//! BackendTrafficPolicy `telemetry`: `metrics.routeStatName`, the name under which a route's
//! requests are counted (Envoy's route `stat_prefix`), with Envoy Gateway's operators
//! `%ROUTE_NAME%`, `%ROUTE_NAMESPACE%` and `%ROUTE_KIND%` (the route kind in lower case) filled
//! per route. The runtime counts each answer of a rule with a name under it. `tracing` needs
//! a tracing provider, which this data plane does not have: a policy that sets it is invalid.

use serde::{Deserialize, Serialize};

use super::model::NotYet;

/// BackendTrafficPolicy `telemetry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTelemetrySpec {
    /// Tracing of the route's requests (not enforced: no tracing provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: NotYet,
    /// How the route's requests are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BackendMetricsSpec>,
}

/// BackendTrafficPolicy `telemetry.metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendMetricsSpec {
    /// The name the route's requests are counted under (operators allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_stat_name: Option<String>,
}

/// A compiled `routeStatName`: literal text and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatName(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    RouteName,
    RouteNamespace,
    RouteKind,
}

impl RouteStatName {
    /// Reads `pattern`; an operator other than Envoy Gateway's three, or an empty pattern,
    /// is refused.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("must not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                break;
            };
            let operator = match &after[..end] {
                "ROUTE_NAME" => Piece::RouteName,
                "ROUTE_NAMESPACE" => Piece::RouteNamespace,
                "ROUTE_KIND" => Piece::RouteKind,
                other => {
                    return Err(format!(
                        "unsupported operator %{other}% (supported: %ROUTE_NAME%, \
                         %ROUTE_NAMESPACE%, %ROUTE_KIND%)"
                    ));
                }
            };
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            pieces.push(operator);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(RouteStatName(pieces))
    }

    /// The name for the route `namespace/name` of `kind` (`HTTPRoute`, …; lower-cased).
    pub fn fill(&self, kind: &str, namespace: &str, name: &str) -> String {
        let mut filled = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => filled.push_str(text),
                Piece::RouteName => filled.push_str(name),
                Piece::RouteNamespace => filled.push_str(namespace),
                Piece::RouteKind => filled.push_str(&kind.to_ascii_lowercase()),
            }
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_filled_per_route() {
        let name = RouteStatName::parse("%ROUTE_KIND%/%ROUTE_NAMESPACE%/%ROUTE_NAME%").unwrap();
        assert_eq!(
            name.fill("HTTPRoute", "my-ns", "my-route"),
            "httproute/my-ns/my-route"
        );
        let literal = RouteStatName::parse("checkout").unwrap();
        assert_eq!(literal.fill("GRPCRoute", "a", "b"), "checkout");
        let mixed = RouteStatName::parse("edge.%ROUTE_NAME%.v1 100%").unwrap();
        assert_eq!(mixed.fill("HTTPRoute", "a", "shop"), "edge.shop.v1 100%");
    }

    #[test]
    fn unknown_operators_and_empty_names_are_refused() {
        let refused = RouteStatName::parse("%ROUTE_NAME%-%UPSTREAM_HOST%").unwrap_err();
        assert!(refused.contains("%UPSTREAM_HOST%"), "{refused}");
        assert!(RouteStatName::parse("").is_err());
    }
}
