//! The host names of Envoy Gateway `Backend`s (`fqdn` endpoints), resolved with the system
//! resolver when a configuration is loaded and again every [`NAME_REFRESH`] (Envoy Gateway's
//! default `dnsRefreshRate`): [`NameChanges`] counts the times the answers changed, which a
//! product adds to its reload stamp so that new addresses are served by a reload. The system
//! resolver gives no TTLs, so the refresh rate alone decides; IPv4 is preferred.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often names are resolved again.
pub const NAME_REFRESH: Duration = Duration::from_secs(30);

/// The most names resolved for one configuration (the others have no addresses).
pub const MAX_RESOLVED_NAMES: usize = 256;

/// How long one name may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What each of `names` resolves to now — its IPv4 addresses, or its IPv6 ones when it has
/// none (Envoy's `V4_PREFERRED`); sorted, without duplicates; empty when it does not resolve
/// in time —, at most [`MAX_RESOLVED_NAMES`] of them.
pub async fn resolve_names(names: &BTreeSet<String>) -> BTreeMap<String, Vec<IpAddr>> {
    let mut resolved = BTreeMap::new();
    for name in names.iter().take(MAX_RESOLVED_NAMES) {
        let lookup = tokio::net::lookup_host((name.as_str(), 0));
        let mut addresses: Vec<IpAddr> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(found)) => found.map(|address| address.ip()).collect(),
            _ => Vec::new(),
        };
        // IPv4 preferred (Envoy's V4_PREFERRED): IPv6 addresses only when there is no IPv4.
        if addresses.iter().any(IpAddr::is_ipv4) {
            addresses.retain(IpAddr::is_ipv4);
        }
        addresses.sort();
        addresses.dedup();
        resolved.insert(name.clone(), addresses);
    }
    resolved
}

/// Counts the changes in what the served configuration's names resolve to.
#[derive(Debug, Clone, Default)]
pub struct NameChanges(Arc<AtomicU64>);

impl NameChanges {
    /// The number of changes seen so far (part of a reload stamp).
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Every `every`, resolves the names of the table `served` returns again and counts a
    /// change when the answers differ from it. Runs until dropped with its task.
    pub async fn watch(
        self,
        every: Duration,
        served: impl Fn() -> BTreeMap<String, Vec<IpAddr>> + Send + 'static,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is now: the load just resolved them
        loop {
            ticker.tick().await;
            let table = served();
            if table.is_empty() {
                continue;
            }
            let names: BTreeSet<String> = table.keys().cloned().collect();
            if resolve_names(&names).await != table {
                self.0.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_and_an_invalid_name_does_not() {
        let names: BTreeSet<String> = ["localhost".to_owned(), "no such name".to_owned()].into();
        let resolved = resolve_names(&names).await;
        assert!(
            resolved["localhost"].iter().any(IpAddr::is_loopback),
            "{resolved:?}"
        );
        assert!(resolved["no such name"].is_empty());
    }

    #[tokio::test]
    async fn a_change_in_the_answers_is_counted() {
        let changes = NameChanges::default();
        // The served table says localhost is 192.0.2.1: the fresh answer differs.
        let stale = BTreeMap::from([("localhost".to_owned(), vec!["192.0.2.1".parse().unwrap()])]);
        let task = tokio::spawn(
            changes
                .clone()
                .watch(Duration::from_millis(20), move || stale.clone()),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while changes.count() == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert!(changes.count() > 0);

        // A table that matches the answers counts nothing.
        let same = NameChanges::default();
        let names = BTreeSet::from(["localhost".to_owned()]);
        let current = resolve_names(&names).await;
        let task = tokio::spawn(
            same.clone()
                .watch(Duration::from_millis(20), move || current.clone()),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        task.abort();
        assert_eq!(same.count(), 0);
    }
}
