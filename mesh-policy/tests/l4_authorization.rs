//! ztunnel's L4 authorization: the YAML its local configuration accepts and refuses, and the
//! decisions its documented cases (`ztunnel-local-config.md` §5) call for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use hbone::identity::SpiffeId;
use mesh_policy::l4::{Authorization, Connection, Denied, authorize};

fn policy(yaml: &str) -> Authorization {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn refused(yaml: &str) -> String {
    serde_yaml_ng::from_str::<Authorization>(yaml)
        .expect_err("must be refused")
        .to_string()
}

fn with_rules(action: &str, rules: &str) -> Authorization {
    policy(&format!(
        "{{name: p, namespace: default, scope: Namespace, action: {action}, dryRun: false, rules: {rules}}}"
    ))
}

fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

fn from(identity: Option<&SpiffeId>) -> Connection<'_> {
    Connection {
        source: "10.244.0.22".parse().unwrap(),
        destination: "10.244.0.21:15088".parse().unwrap(),
        identity,
    }
}

#[test]
fn rule_structure_follows_ztunnel_empty_forms() {
    let web = id("spiffe://cluster.local/ns/default/sa/web");
    let allowed = |rules: &str| authorize([&with_rules("Allow", rules)], &from(Some(&web))).is_ok();
    assert!(
        !allowed("[]"),
        "no rules: never matches, so an Allow denies all"
    );
    assert!(!allowed("[[[{}]]]"), "an empty match object is skipped");
    assert!(allowed("[[[]]]"), "an empty clause matches");
    assert!(allowed("[[]]"), "a rule without clauses matches");
    assert!(
        allowed("[[[{}, {namespaces: [!Exact default]}]]]"),
        "objects OR"
    );
    assert!(
        !allowed("[[[{namespaces: [!Exact default]}], [{destinationPorts: [80]}]]]"),
        "clauses AND"
    );
    assert!(
        allowed("[[[{destinationPorts: [80]}]], [[{sourceIps: [10.244.0.0/16]}]]]"),
        "rules OR"
    );
}

#[test]
fn the_documented_deny_and_allow_cases() {
    let deny = policy(
        r#"
name: deny-sandbox-and-plaintext
namespace: default
scope: WorkloadSelector
action: Deny
dryRun: false
rules:
- - - namespaces: [!Exact sandbox]
- - - notPrincipals: [!Presence []]
"#,
    );
    let tester = id("spiffe://cluster.local/ns/sandbox/sa/tester");
    let web = id("spiffe://cluster.local/ns/default/sa/web");
    assert_eq!(
        authorize([&deny], &from(Some(&tester))),
        Err(Denied::Explicitly(
            "default/deny-sandbox-and-plaintext".into()
        ))
    );
    assert_eq!(authorize([&deny], &from(Some(&web))), Ok(()));
    assert!(
        authorize([&deny], &from(None)).is_err(),
        "plaintext has no principal"
    );

    let dry_allow = policy(
        r#"
name: allow-default-namespace
namespace: default
scope: Namespace
action: Allow
dryRun: true
rules:
- - - principals: [!Prefix "cluster.local/ns/default/"]
  - - sourceIps: ["10.244.0.0/16"]
"#,
    );
    assert!(dry_allow.matches(&from(Some(&web))));
    assert!(!dry_allow.matches(&from(Some(&tester))));
    assert_eq!(
        authorize([&dry_allow], &from(Some(&tester))),
        Ok(()),
        "a dry-run Allow never decides"
    );
    let mut enforced = dry_allow.clone();
    enforced.dry_run = false;
    // Rules given to the constructor are judged like rules read from YAML.
    let built = Authorization::new(
        enforced.name.clone(),
        enforced.namespace.clone(),
        enforced.scope,
        enforced.action,
        enforced.rules().to_vec(),
        false,
    );
    assert_eq!(built, enforced.clone());
    assert_eq!(
        authorize([&built], &from(Some(&tester))),
        Err(Denied::NotAllowed)
    );
    assert_eq!(authorize([&enforced], &from(Some(&web))), Ok(()));
    assert_eq!(
        authorize([&enforced], &from(Some(&tester))),
        Err(Denied::NotAllowed)
    );
}

#[test]
fn each_field_compares_what_ztunnel_compares() {
    let web = id("spiffe://cluster.local/ns/default/sa/web");
    let matches = |object: &str, identity: Option<&SpiffeId>| {
        with_rules("Allow", &format!("[[[{object}]]]")).matches(&from(identity))
    };
    assert!(matches(
        "{principals: [!Exact cluster.local/ns/default/sa/web]}",
        Some(&web)
    ));
    assert!(!matches(
        "{principals: [!Exact \"spiffe://cluster.local/ns/default/sa/web\"]}",
        Some(&web)
    ));
    assert!(matches("{principals: [!Suffix /sa/web]}", Some(&web)));
    assert!(
        !matches("{principals: [!Prefix \"\"]}", None),
        "no identity: principals fail"
    );
    assert!(
        matches("{namespaces: [!Prefix \"\"]}", None),
        "empty namespace matches an empty prefix"
    );
    assert!(!matches("{namespaces: [!Presence []]}", None));
    assert!(matches(
        "{serviceAccounts: [{namespace: default, serviceAccount: web}]}",
        Some(&web)
    ));
    assert!(!matches(
        "{serviceAccounts: [{namespace: default, serviceAccount: web}]}",
        None
    ));
    assert!(matches(
        "{notServiceAccounts: [{namespace: other, serviceAccount: web}]}",
        Some(&web)
    ));
    assert!(matches(
        "{destinationIps: [10.244.0.21/32], destinationPorts: [15088]}",
        None
    ));
    assert!(
        !matches("{destinationPorts: [8080]}", None),
        "the final upstream port is compared"
    );
    assert!(!matches("{notSourceIps: [10.0.0.0/8]}", None));
    assert!(
        !matches("{sourceIPs: [10.0.0.0/8]}", None),
        "a typo'd key is ignored: {{}} is skipped"
    );
}

#[test]
fn the_yaml_is_as_strict_as_ztunnels() {
    let base = "{name: p, namespace: n, scope: Global, action: Allow, rules: []}";
    assert!(
        refused(base).contains("missing field `dryRun`"),
        "{}",
        refused(base)
    );
    let unknown =
        "{name: p, namespace: n, scope: Global, action: Allow, dryRun: false, rules: [], extra: 1}";
    assert!(refused(unknown).contains("unknown field `extra`"));
    let upper = "{name: p, namespace: n, scope: Global, action: ALLOW, dryRun: false, rules: []}";
    assert!(refused(upper).contains("ALLOW"));
    let map_form = "{name: p, namespace: n, scope: Global, action: Allow, dryRun: false, rules: [[[{namespaces: [{Exact: a}]}]]]}";
    assert!(!refused(map_form).is_empty());
    let bare_ip = "{name: p, namespace: n, scope: Global, action: Allow, dryRun: false, rules: [[[{sourceIps: [10.0.0.1]}]]]}";
    assert!(
        refused(bare_ip).contains("prefix length"),
        "{}",
        refused(bare_ip)
    );
    let string_port = "{name: p, namespace: n, scope: Global, action: Allow, dryRun: false, rules: [[[{destinationPorts: [\"80\"]}]]]}";
    assert!(!refused(string_port).is_empty());
}

#[test]
fn policies_dump_as_json_the_way_ztunnel_prints_them() {
    let allow = with_rules("Allow", "[[[{namespaces: [!Exact a]}]]]");
    let json = serde_json::to_string(allow.rules()).unwrap();
    assert_eq!(json, r#"[[[{"namespaces":[{"Exact":"a"}]}]]]"#);
}

#[test]
fn a_bare_presence_tag_is_accepted_in_block_style() {
    let block = policy(
        "name: p\nnamespace: n\nscope: Global\naction: Allow\ndryRun: false\nrules:\n- - - namespaces:\n      - !Presence\n",
    );
    let web = id("spiffe://cluster.local/ns/default/sa/web");
    assert!(block.matches(&from(Some(&web))));
    assert!(!block.matches(&from(None)));
}
