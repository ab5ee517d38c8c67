//! Differential fuzzing of SecurityPolicy authorization: rules and requests drawn from the
//! input are judged by the indexed engine (`evaluate`) and by the reference that looks at
//! every rule in order (`evaluate_in_order`); the two must always agree on the decision and
//! on the deciding rule.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use mesh_policy::security::authorization::{AuthorizationRules, RequestFacts};

const PATHS: [&str; 8] = ["/", "/a", "/a/", "/a/b", "/ab", "/b", "/a/b/c", "/a//b"];
const VALUES: [&str; 4] = ["red", "blue", "green", "Red"];
const CIDRS: [&str; 4] = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "192.0.2.1/32"];
const IPS: [&str; 4] = ["10.1.2.3", "10.9.9.9", "192.0.2.1", "203.0.113.5"];

fn rule(index: usize, bytes: &[u8]) -> String {
    let [kind, path, method, extra] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let mut operation = Vec::new();
    let value = PATHS[usize::from(path) % PATHS.len()];
    let invert = kind & 0x80 != 0;
    match kind % 4 {
        1 => operation.push(format!(
            "path: {{type: Exact, value: '{value}', invert: {invert}}}"
        )),
        2 => operation.push(format!(
            "path: {{type: PathPrefix, value: '{value}', invert: {invert}}}"
        )),
        3 => operation.push(format!(
            "path: {{type: RegularExpression, value: '{value}.*', invert: {invert}}}"
        )),
        _ => {}
    }
    let methods: Vec<&str> = [("GET", 1), ("POST", 2)]
        .into_iter()
        .filter(|(_, bit)| method & bit != 0)
        .map(|(m, _)| m)
        .collect();
    if !methods.is_empty() {
        operation.push(format!("methods: [{}]", methods.join(", ")));
    }
    let mut principal = vec![format!(
        "clientCIDRs: ['{}']",
        CIDRS[usize::from(extra) % 4]
    )];
    if method & 4 != 0 {
        let first = VALUES[usize::from(extra >> 2) % 4];
        let second = VALUES[usize::from(method >> 3) % 4];
        principal.push(format!(
            "headers: [{{name: x-team, values: [{first}, {second}]}}]"
        ));
    }
    let action = if extra & 0x40 != 0 { "Allow" } else { "Deny" };
    format!(
        "- {{name: r{index}, action: {action}, operation: {{{}}}, principal: {{{}}}}}\n",
        operation.join(", "),
        principal.join(", ")
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let rule_count = usize::from(shape % 24);
    let (rule_bytes, request_bytes) = rest.split_at(rest.len().min(rule_count * 4));
    let mut yaml = format!(
        "defaultAction: {}\nrules:\n",
        if shape & 0x80 != 0 { "Allow" } else { "Deny" }
    );
    for (index, chunk) in rule_bytes.chunks_exact(4).enumerate() {
        yaml.push_str(&rule(index, chunk));
    }
    if rule_bytes.len() < 4 {
        yaml.push_str("  []\n");
    }
    let spec = serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"));
    let rules = AuthorizationRules::compile(&spec, &[]).unwrap_or_else(|e| panic!("{e}: {yaml}"));
    for request in request_bytes.chunks_exact(3) {
        let path = PATHS[usize::from(request[0]) % PATHS.len()];
        let path = if request[0] & 0x80 != 0 {
            format!("{path}/x")
        } else {
            path.to_owned()
        };
        let method = if request[1] & 1 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        let mut headers = HeaderMap::new();
        for (bit, value) in VALUES.iter().enumerate() {
            if request[1] & (2 << bit) != 0 {
                headers.append("x-team", HeaderValue::from_static(value));
            }
        }
        let facts = RequestFacts {
            method: &method,
            path: &path,
            query: None,
            headers: &headers,
            client_ip: Some(IPS[usize::from(request[2]) % 4].parse().unwrap()),
            jwt: None,
        };
        assert_eq!(
            rules.evaluate(&facts),
            rules.evaluate_in_order(&facts),
            "{method} {path} {headers:?}\n{yaml}"
        );
    }
});
