//! Which rules a request could match, found without looking at the others: rules are put in
//! one bucket each when compiled — by exact path, by path prefix, by the values of their
//! first header condition, else "always looked at" — and a request visits only the buckets of
//! its path (each segment boundary, up to the longest configured prefix) and of its header
//! values. Each bucket keeps rule order, and a bucket is abandoned as soon as its next rule
//! comes after the best match found so far, so the answer is the first matching rule in
//! order, as a scan of every rule would give ([`AuthorizationRules::evaluate_in_order`]), at
//! a cost independent of the rules that cannot match.
//!
//! [`AuthorizationRules::evaluate_in_order`]: super::AuthorizationRules::evaluate_in_order

use std::collections::HashMap;

use http::header::{HeaderName, HeaderValue};

use super::{PathCheck, RequestFacts, Rule};

/// Rule positions by what a request must carry for the rule to match.
#[derive(Debug, Clone, Default)]
pub(super) struct RuleIndex {
    exact: HashMap<String, Vec<u32>>,
    prefix: HashMap<String, Vec<u32>>,
    longest_prefix: usize,
    headers: Vec<(HeaderName, HashMap<HeaderValue, Vec<u32>>)>,
    always: Vec<u32>,
}

impl RuleIndex {
    /// Indexes `rules` (at most `u32::MAX` of them).
    pub(super) fn build(rules: &[Rule]) -> Self {
        let mut index = RuleIndex::default();
        for (position, rule) in (0u32..).zip(rules) {
            match &rule.path {
                Some((PathCheck::Exact(path), false)) => {
                    index.exact.entry(path.clone()).or_default().push(position);
                }
                Some((PathCheck::Prefix(prefix), false)) if !prefix.is_empty() => {
                    index.longest_prefix = index.longest_prefix.max(prefix.len());
                    index
                        .prefix
                        .entry(prefix.clone())
                        .or_default()
                        .push(position);
                }
                _ => match rule.headers.first() {
                    Some((name, values)) => {
                        let by_value = match index.headers.iter_mut().find(|(n, _)| n == name) {
                            Some((_, by_value)) => by_value,
                            None => {
                                index.headers.push((name.clone(), HashMap::new()));
                                let last = index.headers.len() - 1;
                                &mut index.headers[last].1
                            }
                        };
                        for value in values {
                            let bucket = by_value.entry(value.clone()).or_default();
                            if bucket.last() != Some(&position) {
                                bucket.push(position);
                            }
                        }
                    }
                    None => index.always.push(position),
                },
            }
        }
        index
    }

    /// The position of the first rule in order that matches `request`.
    pub(super) fn first_match(&self, rules: &[Rule], request: &RequestFacts<'_>) -> Option<u32> {
        let mut best: Option<u32> = None;
        let mut visit = |bucket: &[u32]| {
            for &position in bucket {
                if best.is_some_and(|b| position >= b) {
                    return;
                }
                if rules
                    .get(position as usize)
                    .is_some_and(|rule| rule.matches(request))
                {
                    best = Some(position);
                    return;
                }
            }
        };
        visit(&self.always);
        let path = request.path;
        if let Some(bucket) = self.exact.get(path) {
            visit(bucket);
        }
        if !self.prefix.is_empty() {
            // Segment-aware prefixes: `/a` covers `/a` and `/a/…`; only lengths that a
            // configured prefix can have are probed.
            let boundaries = path
                .match_indices('/')
                .map(|(at, _)| at)
                .chain(std::iter::once(path.len()))
                .filter(|&at| at > 0)
                .take_while(|&at| at <= self.longest_prefix);
            for at in boundaries {
                if let Some(bucket) = path.get(..at).and_then(|p| self.prefix.get(p)) {
                    visit(bucket);
                }
            }
        }
        for (name, by_value) in &self.headers {
            for value in request.headers.get_all(name) {
                if let Some(bucket) = by_value.get(value) {
                    visit(bucket);
                }
            }
        }
        best
    }
}
