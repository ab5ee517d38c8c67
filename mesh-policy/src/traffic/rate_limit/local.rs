//! The local rate limit of one route (or of every route sharing a `shared` rule), with
//! Envoy's semantics as Envoy Gateway configures them (policy.md §2.1, §7 item 3):
//!
//! - each rule is a fixed-window bucket of `requests` per `unit`;
//! - a request matching selector rules takes from each of them, and **not** from the default
//!   bucket (the one rule without selectors); a request matching none takes from the default
//!   bucket, or, without a default rule, from an effectively unlimited one (`2^32-1` per
//!   second, as Envoy reports it);
//! - any matching rule out of tokens refuses the request (429), unless it is in shadow mode;
//!   the headers report the matching rule with the fewest tokens left;
//! - `Distinct` values get their own buckets, at most 10 000 per rule, 40 in each of 250
//!   parts of the hash space (within a full part, one not used lately is evicted first, by
//!   the CLOCK approximation of least recently used); a check takes no lock.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use super::bucket::{BucketCheck, TokenBucket};
use super::clock::Epoch;
use super::distinct::DistinctBuckets;
use super::rules::{ClientSelector, DistinctValues, HashedValues, RequestFacts};

/// How many distinct buckets a rule keeps (Envoy Gateway's `max_dynamic_descriptors`).
pub const MAX_DISTINCT_BUCKETS: usize = 10_000;

/// A compiled rate-limit rule.
#[derive(Debug, Clone)]
pub struct RateLimitRule {
    /// All must match; none: the route's default rule.
    pub selectors: Vec<ClientSelector>,
    /// Requests per window.
    pub requests: u32,
    /// The window (`unit`).
    pub unit: Duration,
    /// Tokens a request takes (`cost.request`; 0 only checks).
    pub cost: u32,
    /// Count but never refuse (`shadowMode`).
    pub shadow: bool,
    /// One set of buckets for every route the policy covers (`shared`).
    pub shared: bool,
    /// Whether `x-ratelimit-*` headers are sent for this rule (`xRateLimitHeaders`).
    pub headers: bool,
}

impl RateLimitRule {
    /// Whether every selector matches `facts` (a rule without selectors matches all); the
    /// distinct values keyed on are pushed onto `key`.
    pub fn matches<K: DistinctValues + ?Sized>(
        &self,
        facts: &RequestFacts<'_>,
        key: &mut K,
    ) -> bool {
        self.selectors.iter().all(|s| s.matches(facts, key))
    }

    fn distinct(&self) -> bool {
        use super::rules::ValueMatch;
        self.selectors.iter().any(|s| {
            s.source.is_some_and(|c| c.distinct)
                || matches!(s.principal, Some((ValueMatch::Distinct, _)))
                || s.headers
                    .iter()
                    .chain(&s.query_params)
                    .any(|c| matches!(c.matcher, ValueMatch::Distinct))
        })
    }
}

/// The buckets of one rule.
#[derive(Debug)]
pub struct RuleBuckets {
    rule: RateLimitRule,
    single: TokenBucket,
    distinct: Option<DistinctBuckets>,
    /// Keys the hash of a request's distinct values (random per rule).
    keys: RandomState,
}

impl RuleBuckets {
    /// Empty buckets for `rule`.
    pub fn new(rule: RateLimitRule) -> Self {
        let distinct = rule
            .distinct()
            .then(|| DistinctBuckets::new(MAX_DISTINCT_BUCKETS));
        RuleBuckets {
            single: TokenBucket::new(rule.requests, rule.unit),
            rule,
            distinct,
            keys: RandomState::new(),
        }
    }

    /// The rule.
    pub fn rule(&self) -> &RateLimitRule {
        &self.rule
    }

    /// Takes the rule's cost from the bucket of `key`.
    #[inline]
    fn take(&self, key: u64, now: u64) -> BucketCheck {
        let Some(distinct) = &self.distinct else {
            return self.single.take(self.rule.cost, now);
        };
        // The value's own state word, with the rule's size and window.
        self.single
            .take_in(distinct.bucket_state(key), self.rule.cost, now)
    }

    /// How many distinct buckets are kept.
    pub fn distinct_buckets(&self) -> usize {
        self.distinct.as_ref().map_or(0, DistinctBuckets::len)
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitOutcome {
    /// Whether the request may go on.
    pub allowed: bool,
    /// What the `x-ratelimit-*` headers report, if the deciding rule sends them.
    pub report: Option<BucketCheck>,
}

/// The local rate limit of one route: its rules' buckets (some shared with other routes).
#[derive(Debug, Clone)]
pub struct LocalRateLimit {
    selected: Vec<Arc<RuleBuckets>>,
    default: Arc<RuleBuckets>,
    epoch: Epoch,
}

/// Why rules cannot form a local rate limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalRateLimitError {
    /// More than one rule has no client selectors.
    #[error("at most one local rate limit rule may be without clientSelectors")]
    TwoDefaults,
    /// A rule's unit is not a multiple of the default rule's unit (an Envoy restriction).
    #[error("every local rule's unit must be a multiple of the default rule's unit")]
    UnitNotMultiple,
}

impl LocalRateLimit {
    /// Buckets for `rules`, their windows counted from `epoch`; `shared` supplies (and keeps)
    /// the buckets of `shared` rules, by rule index, so that every route gets the same ones.
    pub fn new(
        rules: &[RateLimitRule],
        epoch: &Epoch,
        shared: &mut dyn FnMut(usize, &RateLimitRule) -> Arc<RuleBuckets>,
    ) -> Result<Self, LocalRateLimitError> {
        Self::check(rules)?;
        let mut selected = Vec::new();
        let mut default = None;
        for (index, rule) in rules.iter().enumerate() {
            let buckets = if rule.shared {
                shared(index, rule)
            } else {
                Arc::new(RuleBuckets::new(rule.clone()))
            };
            if rule.selectors.is_empty() {
                default = Some(buckets);
            } else {
                selected.push(buckets);
            }
        }
        let default = default.unwrap_or_else(|| {
            Arc::new(RuleBuckets::new(RateLimitRule {
                selectors: Vec::new(),
                requests: u32::MAX,
                unit: Duration::from_secs(1),
                cost: 1,
                shadow: false,
                shared: false,
                headers: true,
            }))
        });
        Ok(LocalRateLimit {
            selected,
            default,
            epoch: epoch.clone(),
        })
    }

    /// Whether `rules` can form a local rate limit.
    pub fn check(rules: &[RateLimitRule]) -> Result<(), LocalRateLimitError> {
        let mut defaults = rules.iter().filter(|r| r.selectors.is_empty());
        let default = defaults.next();
        if defaults.next().is_some() {
            return Err(LocalRateLimitError::TwoDefaults);
        }
        if let Some(default) = default {
            let base = default.unit.as_nanos().max(1);
            if rules.iter().any(|r| r.unit.as_nanos() % base != 0) {
                return Err(LocalRateLimitError::UnitNotMultiple);
            }
        }
        Ok(())
    }

    /// Checks (and counts) a request `now` nanoseconds after the epoch.
    #[inline]
    pub fn check_at(&self, facts: &RequestFacts<'_>, now: u64) -> RateLimitOutcome {
        let mut matched = false;
        let mut allowed = true;
        // The check to report, and whether its rule refuses (kept apart: copying them as one
        // tuple stalled on store forwarding).
        let mut report: Option<BucketCheck> = None;
        let mut report_refuses = false;
        for buckets in &self.selected {
            let mut key = HashedValues(buckets.keys.build_hasher());
            if !buckets.rule.matches(facts, &mut key) {
                continue;
            }
            matched = true;
            let check = buckets.take(key.0.finish(), now);
            let refuses = !check.allowed && !buckets.rule.shadow;
            allowed &= !refuses;
            if buckets.rule.headers
                && BucketCheck::reports_before(
                    refuses,
                    &check,
                    report.as_ref().map(|seen| (report_refuses, seen)),
                )
            {
                report = Some(check);
                report_refuses = refuses;
            }
        }
        if !matched {
            let check = self.default.take(0, now);
            allowed = check.allowed || self.default.rule.shadow;
            report = self.default.rule.headers.then_some(check);
        }
        RateLimitOutcome { allowed, report }
    }

    /// Checks (and counts) a request now.
    #[inline]
    pub fn check_request(&self, facts: &RequestFacts<'_>) -> RateLimitOutcome {
        self.check_at(facts, self.epoch.elapsed_nanos())
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::super::rules::{ValueCondition, ValueMatch};
    use super::*;

    fn rule(selectors: Vec<ClientSelector>, requests: u32) -> RateLimitRule {
        RateLimitRule {
            selectors,
            requests,
            unit: Duration::from_secs(60),
            cost: 1,
            shadow: false,
            shared: false,
            headers: true,
        }
    }

    fn user(condition: ValueMatch) -> ClientSelector {
        ClientSelector {
            headers: vec![ValueCondition {
                name: "x-user".into(),
                matcher: condition,
                invert: false,
            }],
            ..ClientSelector::default()
        }
    }

    fn limit(rules: &[RateLimitRule]) -> LocalRateLimit {
        LocalRateLimit::new(rules, &Epoch::now(), &mut |_, r| {
            Arc::new(RuleBuckets::new(r.clone()))
        })
        .unwrap()
    }

    fn ask(limit: &LocalRateLimit, who: Option<&str>) -> RateLimitOutcome {
        let mut headers = HeaderMap::new();
        if let Some(who) = who {
            headers.insert("x-user", who.parse().unwrap());
        }
        limit.check_request(&RequestFacts {
            method: &Method::GET,
            path: "/",
            query: None,
            headers: &headers,
            client: None,
            principal: None,
        })
    }

    #[test]
    fn selector_rules_do_not_take_from_the_default_bucket() {
        let limit = limit(&[
            rule(vec![], 2),
            rule(vec![user(ValueMatch::Exact("vip".into()))], 3),
        ]);
        let vip: Vec<bool> = (0..4).map(|_| ask(&limit, Some("vip")).allowed).collect();
        assert_eq!(vip, [true, true, true, false]);
        let others: Vec<bool> = (0..3).map(|_| ask(&limit, Some("bob")).allowed).collect();
        assert_eq!(others, [true, true, false], "the default bucket is whole");
        let report = ask(&limit, None).report.unwrap();
        assert_eq!((report.limit, report.remaining), (2, 0));
    }

    #[test]
    fn distinct_values_get_their_own_buckets_within_a_bound() {
        let limit = limit(&[rule(vec![user(ValueMatch::Distinct)], 1)]);
        assert!(ask(&limit, Some("a")).allowed);
        assert!(!ask(&limit, Some("a")).allowed);
        assert!(ask(&limit, Some("b")).allowed);
        let unlimited = ask(&limit, None);
        assert!(unlimited.allowed, "no x-user: the unlimited default");
        assert_eq!(unlimited.report.unwrap().limit, u32::MAX);
        // Kept per chunk of the hash space: many more values fill every chunk, and no more.
        for n in 0..(5 * MAX_DISTINCT_BUCKETS) {
            ask(&limit, Some(&format!("u{n}")));
        }
        assert_eq!(limit.selected[0].distinct_buckets(), MAX_DISTINCT_BUCKETS);
    }

    #[test]
    fn shadow_rules_count_but_never_refuse() {
        let mut shadow = rule(vec![], 1);
        shadow.shadow = true;
        let limit = limit(&[shadow]);
        assert!(ask(&limit, None).allowed);
        let second = ask(&limit, None);
        assert!(second.allowed);
        assert_eq!(second.report.unwrap().remaining, 0);
    }

    #[test]
    fn invalid_rule_sets_are_refused() {
        assert_eq!(
            LocalRateLimit::check(&[rule(vec![], 1), rule(vec![], 2)]),
            Err(LocalRateLimitError::TwoDefaults)
        );
        let mut per_second = rule(vec![user(ValueMatch::Distinct)], 1);
        per_second.unit = Duration::from_secs(1);
        assert_eq!(
            LocalRateLimit::check(&[rule(vec![], 1), per_second]),
            Err(LocalRateLimitError::UnitNotMultiple)
        );
    }
}
