//! ztunnel's L4 authorization per connection, through the one authorization engine
//! (`l4::authorize`: each RbacMatch translated once into Istio match objects, judged by
//! `istio::decide`), against a baseline that matches the RbacMatch fields directly (ztunnel's
//! own evaluation, written here) in the same run. The policies are a typical namespace's: a
//! Deny on a sandbox namespace, an Allow for two service accounts and a port, an Allow for a
//! source block. Goal: the shared engine costs no more than a dedicated L4 matcher (≤ 1.5×).
//!
//! Run: `cargo bench -p mesh-policy --bench l4_authorization` (`BENCH_QUICK=1` for a short
//! run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;
use std::net::IpAddr;

use hbone::identity::SpiffeId;
use mesh_policy::l4::{
    Action, Authorization, Connection, Denied, RbacMatch, StringMatch, authorize,
};
use support::median_ns;

const POLICIES: &str = r#"
- {name: no-sandbox, namespace: shop, scope: Namespace, action: Deny, dryRun: false,
   rules: [[[{namespaces: [!Exact sandbox]}]]]}
- {name: frontends, namespace: shop, scope: Namespace, action: Allow, dryRun: false,
   rules: [[[{serviceAccounts: [{namespace: shop, serviceAccount: web}, {namespace: shop, serviceAccount: api}]}],
            [{destinationPorts: [8080]}]]]}
- {name: monitoring, namespace: shop, scope: Namespace, action: Allow, dryRun: false,
   rules: [[[{sourceIps: [10.99.0.0/16]}, {principals: [!Suffix /sa/prometheus]}]]]}
"#;

/// ztunnel's evaluation over the RbacMatch fields themselves, with the same answer (the
/// denying policy named): the baseline.
fn direct(policies: &[Authorization], connection: &Connection<'_>) -> Result<(), Denied> {
    let namespace = connection.identity.map_or("", SpiffeId::namespace);
    let principal = connection
        .identity
        .map(|id| id.as_str().trim_start_matches("spiffe://"));
    let object = |m: &RbacMatch| {
        let pair = |pos: &[StringMatch], neg: &[StringMatch], v: Option<&str>| {
            (pos.is_empty() || v.is_some_and(|v| pos.iter().any(|p| p.matches(v))))
                && !v.is_some_and(|v| neg.iter().any(|p| p.matches(v)))
        };
        let account = |a: &mesh_policy::l4::ServiceAccountMatch| {
            connection.identity.is_some_and(|id| {
                id.namespace() == a.namespace && id.service_account() == a.service_account
            })
        };
        let ip: IpAddr = connection.source;
        !m.is_empty()
            && pair(&m.principals, &m.not_principals, principal)
            && pair(&m.namespaces, &m.not_namespaces, Some(namespace))
            && (m.service_accounts.is_empty() || m.service_accounts.iter().any(account))
            && !m.not_service_accounts.iter().any(account)
            && (m.source_ips.is_empty() || m.source_ips.iter().any(|c| c.contains(ip)))
            && !m.not_source_ips.iter().any(|c| c.contains(ip))
            && (m.destination_ports.is_empty()
                || m.destination_ports.contains(&connection.destination.port()))
            && !m
                .not_destination_ports
                .contains(&connection.destination.port())
    };
    let matches = |p: &Authorization| {
        p.rules()
            .iter()
            .any(|rule| rule.iter().all(|c| c.is_empty() || c.iter().any(object)))
    };
    let mut allows = false;
    let mut allowed = false;
    for policy in policies.iter().filter(|p| !p.dry_run) {
        match policy.action {
            Action::Deny if matches(policy) => return Err(Denied::Explicitly(policy.key())),
            Action::Deny => {}
            Action::Allow => {
                allows = true;
                allowed = allowed || matches(policy);
            }
        }
    }
    if allows && !allowed {
        Err(Denied::NotAllowed)
    } else {
        Ok(())
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (batches, per_batch) = if quick { (5, 2_000) } else { (15, 50_000) };
    let policies: Vec<Authorization> = serde_yaml_ng::from_str(POLICIES).unwrap();
    let api: SpiffeId = "spiffe://cluster.local/ns/shop/sa/api".parse().unwrap();
    let sandbox: SpiffeId = "spiffe://cluster.local/ns/sandbox/sa/x".parse().unwrap();
    let cases = [
        ("allowed service account", Some(&api), "10.1.0.5"),
        ("denied namespace", Some(&sandbox), "10.1.0.6"),
        ("plaintext, no allow", None, "10.2.0.7"),
    ];
    println!(
        "| connection | engine (l4::authorize) | direct RbacMatch (baseline) | engine / direct |"
    );
    println!("|---|---|---|---|");
    for (what, identity, source) in cases {
        let connection = Connection {
            source: source.parse().unwrap(),
            destination: "10.1.0.9:8080".parse().unwrap(),
            identity,
        };
        assert_eq!(
            authorize(&policies, &connection),
            direct(&policies, &connection),
            "{what}: the engine and the baseline disagree"
        );
        let engine = median_ns(batches, per_batch, || {
            let _ = black_box(authorize(black_box(&policies), black_box(&connection)));
        });
        let baseline = median_ns(batches, per_batch, || {
            let _ = black_box(direct(black_box(&policies), black_box(&connection)));
        });
        println!(
            "| {what} | {engine:.0} ns | {baseline:.0} ns | {:.2}× |",
            engine / baseline
        );
    }
}
