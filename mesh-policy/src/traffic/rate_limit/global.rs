//! Global rate limits (policy.md §2.1, BackendTrafficPolicy `rateLimit.global`): the same
//! rules as local limits, counted in counters every gateway shares ([`SharedCounters`]; the
//! gateway's are Redis keys), in fixed windows aligned on the Unix clock — as Envoy Gateway's
//! rate-limit service counts them. Every matching rule is charged (there is no default bucket
//! here: a rule without selectors matches every request), and any one over its limit refuses,
//! unless it is in shadow mode. Counter keys are built from stable names (the policy, the rule,
//! the route unless `shared`, a hash of the distinct values, the window), so two gateways
//! count a client in the same counter.
//!
//! This module is sans-IO: [`GlobalRateLimit::hits`] says which counters a request charges,
//! [`GlobalRateLimit::decide`] reads the counts back.

use std::fmt;
use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::time::Duration;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use twox_hash::XxHash64;

use super::bucket::BucketCheck;
use super::local::RateLimitRule;
use super::rules::{HashedValues, RequestFacts};

/// One global rule: the rule, and what its responses cost.
#[derive(Debug, Clone)]
pub struct GlobalRule {
    /// The rule (selectors, limit, request cost, shadow mode, headers, `shared`).
    pub rule: RateLimitRule,
    /// Charged when the response arrives (`cost.response`), 0 for none.
    pub response_cost: u32,
}

/// One counter to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterHit {
    /// The shared counter's key.
    pub key: String,
    /// What to add.
    pub cost: u32,
    /// How long the counter lives (the rule's unit).
    pub window: Duration,
}

/// What a request charged, for the decision and the response's charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged {
    /// The counters, in rule order.
    pub hits: Vec<CounterHit>,
    /// For each hit, its rule's index.
    pub rules: Vec<usize>,
    /// Seconds left in each hit's window.
    pub reset_secs: Vec<u64>,
}

/// Why the shared counters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate-limit backend failed: {0}")]
pub struct CounterError(pub String);

/// The counts after adding, one per hit, or why the backend failed.
pub type CountsFuture = Pin<Box<dyn Future<Output = Result<Vec<u64>, CounterError>> + Send>>;

/// Counters shared by every gateway (the embedder's backend: Redis in the gateway).
pub trait SharedCounters: Send + Sync + fmt::Debug {
    /// Adds each hit's cost to its counter (created to expire after its window) and answers
    /// the counts after, in order.
    fn add(&self, hits: Vec<CounterHit>) -> CountsFuture;
    /// Whether a request is refused when the backend fails (otherwise it passes).
    fn fail_closed(&self) -> bool;
}

/// A route rule's global limit.
#[derive(Debug, Clone)]
pub struct GlobalRateLimit {
    rules: Vec<GlobalRule>,
    /// `policy|route` (or `policy|shared` per rule), the keys' stable prefix.
    policy: String,
    route: String,
}

/// A global limit's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalVerdict {
    /// Whether the request passes.
    pub allowed: bool,
    /// The headers to report (the most restrictive rule's), draft-03 form.
    pub headers: HeaderMap,
}

impl GlobalRateLimit {
    /// The limit of `rules`, counted per `route` (except `shared` rules) under `policy`.
    pub fn new(rules: Vec<GlobalRule>, policy: &str, route: &str) -> Self {
        GlobalRateLimit {
            rules,
            policy: policy.to_owned(),
            route: route.to_owned(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[GlobalRule] {
        &self.rules
    }

    /// The counters `facts` charges at `now` (time since the Unix epoch).
    pub fn hits(&self, facts: &RequestFacts<'_>, now: Duration) -> Charged {
        let mut charged = Charged {
            hits: Vec::new(),
            rules: Vec::new(),
            reset_secs: Vec::new(),
        };
        for (index, global) in self.rules.iter().enumerate() {
            // A stable hash (not a per-process key): every gateway must build the same key.
            let mut values = HashedValues(XxHash64::with_seed(0));
            if !global.rule.matches(facts, &mut values) {
                continue;
            }
            let unit = global.rule.unit.as_secs().max(1);
            let window_start = now.as_secs() / unit * unit;
            let scope = if global.rule.shared {
                "shared"
            } else {
                &self.route
            };
            charged.hits.push(CounterHit {
                key: format!(
                    "{}|{scope}|{index}|{:016x}|{window_start}",
                    self.policy,
                    values.0.finish()
                ),
                cost: global.rule.cost,
                window: Duration::from_secs(unit),
            });
            charged.rules.push(index);
            charged.reset_secs.push(window_start + unit - now.as_secs());
        }
        charged
    }

    /// The verdict on `charged` given the counts after charging (only the rules and windows
    /// are read: the hits may have moved to the backend).
    pub fn decide(&self, charged: &Charged, counts: &[u64]) -> GlobalVerdict {
        let mut allowed = true;
        let mut report: Option<(bool, BucketCheck, u64)> = None;
        for ((&index, count), reset) in charged.rules.iter().zip(counts).zip(&charged.reset_secs) {
            let Some(global) = self.rules.get(index) else {
                continue;
            };
            let limit = global.rule.requests;
            let over = *count > u64::from(limit);
            let refuses = over && !global.rule.shadow;
            allowed &= !refuses;
            if global.rule.headers {
                let check = BucketCheck {
                    allowed: !over,
                    limit,
                    remaining: u64::from(limit).saturating_sub(*count) as u32,
                    reset_nanos: reset.saturating_mul(1_000_000_000),
                };
                let seen = report.as_ref().map(|(refused, seen, _)| (*refused, seen));
                if BucketCheck::reports_before(refuses, &check, seen) {
                    report = Some((refuses, check, global.rule.unit.as_secs().max(1)));
                }
            }
        }
        GlobalVerdict {
            allowed,
            headers: report
                .map(|(_, check, window)| draft_03_headers(&check, window))
                .unwrap_or_default(),
        }
    }

    /// The counters the response charges (rules with a response cost that the request
    /// charged).
    pub fn response_hits(&self, charged: &Charged) -> Vec<CounterHit> {
        charged
            .rules
            .iter()
            .zip(&charged.hits)
            .filter_map(|(&index, hit)| {
                let cost = self.rules.get(index)?.response_cost;
                (cost > 0).then(|| CounterHit {
                    cost,
                    ..hit.clone()
                })
            })
            .collect()
    }
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Envoy's draft-03 headers: `x-ratelimit-limit: 3, 3;w=60`, remaining, reset (seconds).
pub fn draft_03_headers(check: &BucketCheck, window_secs: u64) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    if let Ok(limit) =
        HeaderValue::try_from(format!("{}, {};w={window_secs}", check.limit, check.limit))
    {
        headers.insert(LIMIT, limit);
    }
    headers.insert(REMAINING, HeaderValue::from(check.remaining));
    headers.insert(
        RESET,
        HeaderValue::from(check.reset_nanos.div_ceil(1_000_000_000)),
    );
    headers
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::traffic::rate_limit::rules::{ClientSelector, ValueCondition, ValueMatch};

    fn rule(requests: u32, selectors: Vec<ClientSelector>) -> GlobalRule {
        GlobalRule {
            rule: RateLimitRule {
                selectors,
                requests,
                unit: Duration::from_secs(60),
                cost: 1,
                shadow: false,
                shared: false,
                headers: true,
            },
            response_cost: 0,
        }
    }

    fn per_user() -> ClientSelector {
        ClientSelector {
            headers: vec![ValueCondition {
                name: "x-user".into(),
                matcher: ValueMatch::Distinct,
                invert: false,
            }],
            ..ClientSelector::default()
        }
    }

    fn facts<'a>(headers: &'a HeaderMap) -> RequestFacts<'a> {
        RequestFacts {
            method: &Method::GET,
            path: "/",
            query: None,
            headers,
            client: None,
            principal: None,
        }
    }

    #[test]
    fn keys_are_stable_per_window_route_and_value() {
        let limit = GlobalRateLimit::new(
            vec![rule(3, vec![]), rule(2, vec![per_user()])],
            "ns/p",
            "HTTPRoute/ns/r/0",
        );
        let mut alice = HeaderMap::new();
        alice.insert("x-user", HeaderValue::from_static("alice"));
        let mut bob = HeaderMap::new();
        bob.insert("x-user", HeaderValue::from_static("bob"));
        let now = Duration::from_secs(600);
        let a = limit.hits(&facts(&alice), now);
        assert_eq!(a.rules, vec![0, 1]);
        assert_eq!(
            a.hits[0].key,
            "ns/p|HTTPRoute/ns/r/0|0|ef46db3751d8e999|600"
        );
        let later = limit.hits(&facts(&alice), now + Duration::from_secs(59));
        assert_eq!(a.hits, later.hits);
        assert_eq!(later.reset_secs, vec![1, 1]);
        assert_ne!(a.hits[1].key, limit.hits(&facts(&bob), now).hits[1].key);
        assert_eq!(a.hits[0].key, limit.hits(&facts(&bob), now).hits[0].key);
        assert_ne!(
            a.hits[0].key,
            limit
                .hits(&facts(&alice), now + Duration::from_secs(60))
                .hits[0]
                .key
        );
        assert_eq!(a.reset_secs, vec![60, 60]);
        // Without the header only the rule without selectors matches.
        assert_eq!(limit.hits(&facts(&HeaderMap::new()), now).rules, vec![0]);
        // Another route counts apart, unless the rule is shared.
        let other = GlobalRateLimit::new(limit.rules().to_vec(), "ns/p", "HTTPRoute/ns/s/0");
        assert_ne!(other.hits(&facts(&alice), now).hits[0].key, a.hits[0].key);
        let mut shared = limit.rules().to_vec();
        shared[0].rule.shared = true;
        let one = GlobalRateLimit::new(shared.clone(), "ns/p", "HTTPRoute/ns/r/0");
        let two = GlobalRateLimit::new(shared, "ns/p", "HTTPRoute/ns/s/0");
        assert_eq!(
            one.hits(&facts(&alice), now).hits[0].key,
            two.hits(&facts(&alice), now).hits[0].key
        );
    }

    #[test]
    fn any_rule_over_its_limit_refuses_and_headers_report_the_tightest() {
        let mut rules = vec![rule(3, vec![]), rule(2, vec![per_user()])];
        rules[0].response_cost = 5;
        let limit = GlobalRateLimit::new(rules, "ns/p", "r");
        let mut alice = HeaderMap::new();
        alice.insert("x-user", HeaderValue::from_static("alice"));
        let charged = limit.hits(&facts(&alice), Duration::from_secs(90));
        let verdict = limit.decide(&charged, &[1, 2]);
        assert!(verdict.allowed);
        assert_eq!(verdict.headers["x-ratelimit-limit"], "2, 2;w=60");
        assert_eq!(verdict.headers["x-ratelimit-remaining"], "0");
        assert_eq!(verdict.headers["x-ratelimit-reset"], "30");
        let verdict = limit.decide(&charged, &[4, 2]);
        assert!(!verdict.allowed);
        assert_eq!(verdict.headers["x-ratelimit-limit"], "3, 3;w=60");
        let response = limit.response_hits(&charged);
        assert_eq!(response.len(), 1);
        assert_eq!(response[0].cost, 5);
        assert_eq!(response[0].key, charged.hits[0].key);
        // Shadow mode counts but never refuses.
        let mut shadow = limit.rules().to_vec();
        shadow[0].rule.shadow = true;
        let shadow = GlobalRateLimit::new(shadow, "ns/p", "r");
        assert!(shadow.decide(&charged, &[9, 1]).allowed);
    }
}
