//! A compiled HTTPRoute table whose lookup cost does not grow with the number of routes
//! (gateway-api spec §5.1), choosing exactly what [`select`](super::select) chooses.
//!
//! Hostname rank is the first precedence criterion, so candidates are grouped by hostname into
//! buckets tried in rank order — the exact host, then wildcard suffixes from the longest, then
//! routes without hostnames — and the first bucket with a matching candidate wins (falling
//! through, not isolating). Inside a bucket, exact paths come first, then the request path's
//! segment prefixes from the longest (a longer normalized prefix always has a longer configured
//! value); each list is sorted once by the remaining criteria (specificity, then age, name,
//! rule and match order), so the first candidate whose predicates hold is the winner.
//!
//! A lookup scans the host and the path once and hashes only the suffixes and prefixes whose
//! length some route configures (never beyond the longest configured prefix), so its cost is
//! linear in the request and bounded by the configuration, whatever the number of dots and
//! slashes an attacker sends; plus the candidates that share the request's exact path or a
//! prefix of it.

use std::borrow::Cow;
use std::collections::HashMap;

use super::path::PathMatch;
use super::precedence::MatchSpecificity;
use super::request::RequestView;
use super::select::Candidate;

/// Candidates indexed by hostname and path. Immutable once built; rebuild to change.
#[derive(Debug)]
pub struct RouteTable<T> {
    candidates: Vec<Candidate<T>>,
    exact_hosts: HashMap<String, Bucket>,
    /// Keyed by the wildcard's suffix including its leading dot (`.example.com`).
    wildcard_hosts: HashMap<String, Bucket>,
    /// The lengths of the keys of `wildcard_hosts`: only suffixes this long are looked up.
    wildcard_lengths: LengthSet,
    any_host: Bucket,
}

/// The candidates of one hostname rank, indexed by path.
#[derive(Debug, Default)]
struct Bucket {
    exact_paths: HashMap<String, Vec<usize>>,
    /// The longest key of `exact_paths`: a longer path is not looked up.
    longest_exact_path: usize,
    /// Keyed by the prefix without its trailing `/` (the root prefix is the empty key).
    prefixes: HashMap<String, Vec<usize>>,
    /// The lengths of the keys of `prefixes`: only path prefixes this long are looked up.
    prefix_lengths: LengthSet,
    /// The longest key of `prefixes`.
    longest_prefix: usize,
    /// Regular-expression paths, tried last (they rank below every prefix).
    regexes: Vec<usize>,
    /// All of `regexes` in one automaton (same order), when there are enough to pay off: one
    /// pass over the path finds every regex that matches it.
    regex_set: Option<regex::RegexSet>,
}

/// A set of key lengths, checked with one index (a lookup happens once per '/' or '.' of the
/// request within the longest configured key).
#[derive(Debug, Default)]
struct LengthSet(Vec<bool>);

impl LengthSet {
    fn insert(&mut self, length: usize) {
        if self.0.len() <= length {
            self.0.resize(length + 1, false);
        }
        self.0[length] = true;
    }

    fn contains(&self, length: &usize) -> bool {
        self.0.get(*length).copied().unwrap_or(false)
    }
}

/// Below this many regexes a bucket tries them one by one.
const REGEX_SET_THRESHOLD: usize = 8;

/// The largest automaton a bucket's regex set may compile to (it falls back to one by one).
const REGEX_SET_MAX_BYTES: usize = 64 << 20;

impl<T> RouteTable<T> {
    /// Compiles `candidates`.
    pub fn new(candidates: Vec<Candidate<T>>) -> Self {
        let mut table = RouteTable {
            candidates: Vec::new(),
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            wildcard_lengths: LengthSet::default(),
            any_host: Bucket::default(),
        };
        for (index, candidate) in candidates.iter().enumerate() {
            if candidate.hostnames.is_empty() {
                table.any_host.insert(index, candidate);
            }
            // An empty hostname is invalid in the API and matches nothing (as in `select`).
            for hostname in candidate.hostnames.iter().filter(|h| !h.is_empty()) {
                let hostname = hostname.to_ascii_lowercase();
                let bucket = match hostname.strip_prefix("*.").map(|_| &hostname[1..]) {
                    Some(suffix) => {
                        table.wildcard_lengths.insert(suffix.len());
                        table.wildcard_hosts.entry(suffix.to_owned()).or_default()
                    }
                    None => table.exact_hosts.entry(hostname).or_default(),
                };
                bucket.insert(index, candidate);
            }
        }
        let rank = |index: &usize| {
            let candidate: &Candidate<T> = &candidates[*index];
            (
                std::cmp::Reverse(MatchSpecificity::of(&candidate.route_match)),
                candidate.order.clone(),
            )
        };
        for bucket in table
            .exact_hosts
            .values_mut()
            .chain(table.wildcard_hosts.values_mut())
            .chain(std::iter::once(&mut table.any_host))
        {
            for list in bucket
                .exact_paths
                .values_mut()
                .chain(bucket.prefixes.values_mut())
                .chain(std::iter::once(&mut bucket.regexes))
            {
                list.sort_by_cached_key(rank);
                list.dedup();
            }
            bucket.regex_set = regex_set(&bucket.regexes, &candidates);
        }
        table.candidates = candidates;
        table
    }

    /// The targets of every candidate (a target appears once per candidate pointing at it).
    pub fn targets(&self) -> impl Iterator<Item = &T> {
        self.candidates.iter().map(|candidate| &candidate.target)
    }

    /// How many candidates the table holds.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The winning candidate for `request`, if any (none: 404).
    pub fn select(&self, request: &RequestView<'_>) -> Option<&Candidate<T>> {
        let host = lowercase(request.host_without_port());
        if let Some(found) = self
            .exact_hosts
            .get(host.as_ref())
            .and_then(|b| self.pick(b, request))
        {
            return Some(found);
        }
        // Suffixes from the longest: each '.' after at least one character starts one; only
        // suffixes of a configured length are hashed.
        let wildcard = host
            .char_indices()
            .filter(|&(at, c)| {
                c == '.' && at > 0 && self.wildcard_lengths.contains(&(host.len() - at))
            })
            .filter_map(|(at, _)| self.wildcard_hosts.get(&host[at..]))
            .find_map(|bucket| self.pick(bucket, request));
        wildcard.or_else(|| self.pick(&self.any_host, request))
    }

    fn pick(&self, bucket: &Bucket, request: &RequestView<'_>) -> Option<&Candidate<T>> {
        let first_match = |list: &Vec<usize>| {
            list.iter()
                .map(|index| &self.candidates[*index])
                .find(|candidate| candidate.route_match.matches(request))
        };
        let exact = (request.path.len() <= bucket.longest_exact_path)
            .then(|| bucket.exact_paths.get(request.path))
            .flatten();
        if let Some(found) = exact.and_then(first_match) {
            return Some(found);
        }
        // The path's segment prefixes from the longest: the whole path, then the part before
        // each '/', then the root (the empty key); only those of a configured length, and none
        // longer than the longest configured prefix, are hashed.
        let path = request.path;
        let bytes = path.as_bytes();
        let scanned = bytes.len().min(bucket.longest_prefix.saturating_add(1));
        let whole = (!path.is_empty() && path.len() <= bucket.longest_prefix).then_some(path.len());
        let before_slashes = bytes[..scanned]
            .iter()
            .enumerate()
            .rev()
            .filter(|&(at, byte)| *byte == b'/' && at > 0)
            .map(|(at, _)| at);
        let found = whole
            .into_iter()
            .chain(before_slashes)
            .chain(std::iter::once(0))
            .filter(|length| bucket.prefix_lengths.contains(length))
            .filter_map(|length| bucket.prefixes.get(&path[..length]))
            .find_map(first_match);
        if found.is_some() {
            return found;
        }
        match &bucket.regex_set {
            // Indices come back in ascending order, which is precedence order.
            Some(set) => set
                .matches(request.path)
                .iter()
                .map(|position| &self.candidates[bucket.regexes[position]])
                .find(|candidate| candidate.route_match.matches(request)),
            None => first_match(&bucket.regexes),
        }
    }
}

/// One automaton for the regex paths of `indices` (in order), if there are enough of them and
/// it compiles within the size limit.
fn regex_set<T>(indices: &[usize], candidates: &[Candidate<T>]) -> Option<regex::RegexSet> {
    if indices.len() < REGEX_SET_THRESHOLD {
        return None;
    }
    let patterns = indices
        .iter()
        .map(|index| match candidates[*index].route_match.path_match() {
            PathMatch::RegularExpression(pattern) => format!("^(?:{})$", pattern.as_str()),
            // Only regex paths are listed; an impossible pattern keeps the positions aligned.
            PathMatch::Exact(_) | PathMatch::PathPrefix(_) => "[^\\s\\S]".to_owned(),
        });
    regex::RegexSetBuilder::new(patterns)
        .size_limit(REGEX_SET_MAX_BYTES)
        .dfa_size_limit(REGEX_SET_MAX_BYTES)
        .build()
        .ok()
}

impl Bucket {
    fn insert<T>(&mut self, index: usize, candidate: &Candidate<T>) {
        match candidate.route_match.path_match() {
            PathMatch::Exact(path) => {
                self.longest_exact_path = self.longest_exact_path.max(path.len());
                self.exact_paths
                    .entry(path.clone())
                    .or_default()
                    .push(index);
            }
            PathMatch::PathPrefix(prefix) => {
                let key = prefix.trim_end_matches('/');
                self.prefix_lengths.insert(key.len());
                self.longest_prefix = self.longest_prefix.max(key.len());
                self.prefixes.entry(key.to_owned()).or_default().push(index);
            }
            PathMatch::RegularExpression(_) => self.regexes.push(index),
        }
    }
}

fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}
