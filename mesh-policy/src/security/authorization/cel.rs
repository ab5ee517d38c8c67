//! `rules[].cel`: a CEL expression over Envoy's request attributes, compiled with the
//! configuration and evaluated per request; the rule's condition holds only when the
//! expression yields `true` (another type, or an evaluation error such as a missing header
//! read with `[]`, is no match — policy.md §3.8). The attributes, as Envoy names them:
//!
//! - `request.path` (with the query), `request.url_path` (without), `request.query`,
//!   `request.method`, `request.host`, `request.headers` (lower-case names,
//!   repeated values joined with `,`), `request.useragent`, `request.referer`;
//! - `source.address` (the detected client address, as text);
//! - `jwt.claims` (the verified token's claims, when the policy's `jwt` verified one), `jwt.provider`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::{Context, Program, Value};
use http::header;

use super::RequestFacts;

/// A compiled expression.
#[derive(Clone)]
pub(super) struct CelCondition {
    source: Arc<str>,
    program: Arc<Program>,
}

impl fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CelCondition({:?})", self.source)
    }
}

impl CelCondition {
    /// Compiles `expression`; a syntax error is named.
    pub(super) fn compile(expression: &str) -> Result<Self, String> {
        let program = Program::compile(expression).map_err(|e| e.to_string())?;
        Ok(CelCondition {
            source: expression.into(),
            program: Arc::new(program),
        })
    }

    /// Whether the expression yields `true` for `request`.
    pub(super) fn matches(&self, request: &RequestFacts<'_>) -> bool {
        let mut context = Context::default();
        context.add_variable_from_value("request", request_attributes(request));
        let source: HashMap<&str, Value> = request
            .client_ip
            .map(|ip| ("address", Value::from(ip.to_string())))
            .into_iter()
            .collect();
        context.add_variable_from_value("source", source);
        let mut jwt: HashMap<&str, Value> = HashMap::new();
        if let Some(verified) = request.jwt {
            jwt.insert("provider", Value::from(verified.provider.to_string()));
            jwt.insert("claims", object_value(&verified.claims));
        }
        context.add_variable_from_value("jwt", jwt);
        matches!(self.program.execute(&context), Ok(Value::Bool(true)))
    }
}

fn request_attributes(request: &RequestFacts<'_>) -> HashMap<&'static str, Value> {
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let header = |name: header::HeaderName| {
        request
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let path = match request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.to_owned(),
    };
    HashMap::from([
        ("path", Value::from(path)),
        ("url_path", Value::from(request.path)),
        ("query", Value::from(request.query.unwrap_or_default())),
        ("method", Value::from(request.method.as_str())),
        ("host", Value::from(header(header::HOST))),
        ("useragent", Value::from(header(header::USER_AGENT))),
        ("referer", Value::from(header(header::REFERER))),
        ("headers", Value::from(headers)),
    ])
}

/// A JSON claim as a CEL value (numbers as integers when whole, else doubles).
fn json_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_value).collect()))
        }
        serde_json::Value::Object(map) => object_value(map),
    }
}

/// A JSON object as a CEL map, read in place (the verified token's claims are not copied).
fn object_value(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    let entries: HashMap<String, Value> = map
        .iter()
        .map(|(k, v)| (k.clone(), json_value(v)))
        .collect();
    Value::from(entries)
}
