//! The host names of Envoy Gateway `Backend`s (`fqdn` endpoints), resolved by a
//! [`NameResolver`] — the system's DNS configuration (`/etc/resolv.conf` and the hosts file),
//! or one DNS server — when a configuration is loaded, then again on each name's own schedule:
//! after the answer's TTL, or after the refresh rate of the BackendTrafficPolicy `dns` of the
//! rules that name it (30 s, TTLs respected, by default; the earliest of the rules' schedules
//! wins). [`NameChanges`] counts the times an answer changed, which a product adds to its
//! reload stamp so that new addresses are served by a reload. Both address families are kept;
//! each rule's `lookupFamily` chooses among them when the configuration is compiled.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use mesh_policy::traffic::AttachedBackendTraffic;
use mesh_policy::traffic::dns::DnsSettings;
use routing::backends::WeightedBackends;
use routing::compiled::{Backend, ListenerRoutes};
use routing::resolve::Resolution;
use tokio::time::Instant;

/// The most names resolved for one configuration (the others have no addresses).
pub const MAX_RESOLVED_NAMES: usize = 256;

/// How long one name may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the watcher looks at the served configuration's names when none is due sooner.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Resolves host names, remembering when each was last answered and for how long.
#[derive(Clone)]
pub struct NameResolver {
    resolver: Arc<TokioResolver>,
    answers: Arc<Mutex<BTreeMap<String, Answer>>>,
}

impl std::fmt::Debug for NameResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameResolver").finish_non_exhaustive()
    }
}

/// The last answer for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    addresses: Vec<IpAddr>,
    /// The answer's TTL (`None`: no answer).
    ttl: Option<Duration>,
    at: Instant,
}

impl Answer {
    /// Whether it is an answer whose TTL has not run out.
    fn lasts(&self) -> bool {
        !self.addresses.is_empty() && self.ttl.is_some_and(|ttl| self.at + ttl > Instant::now())
    }
}

impl NameResolver {
    /// The system's resolver configuration (`/etc/resolv.conf`, the hosts file); without a
    /// readable one, the hosts file alone.
    pub fn system() -> Self {
        let provider = TokioConnectionProvider::default();
        let builder = TokioResolver::builder(provider.clone()).unwrap_or_else(|_| {
            TokioResolver::builder_with_config(ResolverConfig::new(), provider)
        });
        NameResolver::build(builder)
    }

    /// Resolves with the DNS server at `server` (UDP, then TCP for truncated answers) and the
    /// hosts file.
    pub fn with_server(server: SocketAddr) -> Self {
        let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        NameResolver::build(TokioResolver::builder_with_config(
            config,
            TokioConnectionProvider::default(),
        ))
    }

    fn build(mut builder: hickory_resolver::ResolverBuilder<TokioConnectionProvider>) -> Self {
        let options: &mut ResolverOpts = builder.options_mut();
        // Both families in one answer; no cache (each name's schedule decides when to ask).
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = 0;
        options.timeout = LOOKUP_TIMEOUT / 2;
        options.attempts = 1;
        NameResolver {
            resolver: Arc::new(builder.build()),
            answers: Arc::default(),
        }
    }

    /// What each of `names` resolves to — its IPv4 and IPv6 addresses, sorted, without
    /// duplicates; empty when it does not resolve in time —, at most
    /// [`MAX_RESOLVED_NAMES`] of them: the last answer while its TTL lasts (a reload does not
    /// ask again for names whose schedule has not come), else a new one.
    pub async fn resolve(&self, names: &BTreeSet<String>) -> BTreeMap<String, Vec<IpAddr>> {
        // Answers for names the configuration no longer has are forgotten.
        if let Ok(mut answers) = self.answers.lock() {
            answers.retain(|name, _| names.contains(name));
        }
        let mut resolved = BTreeMap::new();
        for name in names.iter().take(MAX_RESOLVED_NAMES) {
            let answer = match self.last(name) {
                Some(answer) if answer.lasts() => answer,
                _ => self.lookup(name).await,
            };
            resolved.insert(name.clone(), answer.addresses);
        }
        resolved
    }

    /// Resolves `name` and remembers the answer.
    async fn lookup(&self, name: &str) -> Answer {
        // As written: resolv.conf's `search` and `ndots` apply, as they do for Envoy's c-ares
        // and for getaddrinfo (a short name in a pod finds its Service).
        let started = Instant::now();
        let answer = match tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.lookup_ip(name)).await
        {
            Ok(Ok(found)) => {
                let mut addresses: Vec<IpAddr> = found.iter().collect();
                addresses.sort();
                addresses.dedup();
                let ttl = found
                    .valid_until()
                    .saturating_duration_since(std::time::Instant::now());
                Answer {
                    addresses,
                    // Rounded up to whole seconds, as DNS TTLs are.
                    ttl: Some(Duration::from_secs(
                        ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0),
                    )),
                    at: started,
                }
            }
            _ => Answer {
                addresses: Vec::new(),
                ttl: None,
                at: started,
            },
        };
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(name.to_owned(), answer.clone());
        }
        answer
    }

    /// The last answer for `name`.
    fn last(&self, name: &str) -> Option<Answer> {
        self.answers.lock().ok()?.get(name).cloned()
    }
}

/// The `dns` settings of every rule naming each host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSchedule(BTreeMap<String, Vec<DnsSettings>>);

impl NameSchedule {
    /// The settings of the rules of `resolution` naming each host name of its Envoy Gateway
    /// `Backend`s (a rule without a `dns` policy has the defaults).
    pub fn of(resolution: &Resolution) -> Self {
        let mut schedule = NameSchedule::default();
        let mut add = |backend: &Backend, attached: Option<&AttachedBackendTraffic>| {
            let Some(names) = &backend.names else {
                return;
            };
            let settings: Vec<DnsSettings> = match attached {
                Some(attached) => attached
                    .0
                    .iter()
                    .map(|scoped| scoped.traffic.policy.dns.unwrap_or_default())
                    .collect(),
                None => vec![DnsSettings::default()],
            };
            for hostname in names.hostnames() {
                let known = schedule.0.entry(hostname.to_owned()).or_default();
                for setting in &settings {
                    if !known.contains(setting) {
                        known.push(*setting);
                    }
                }
            }
        };
        let http_rules = resolution
            .gateways
            .iter()
            .flat_map(|gateway| &gateway.listeners)
            .filter_map(|listener| match &listener.routes {
                ListenerRoutes::Http(table) => Some(table.targets()),
                _ => None,
            })
            .flatten()
            .chain(
                resolution
                    .mesh
                    .services()
                    .flat_map(|service| &service.ports)
                    .flat_map(|port| port.rules()),
            );
        for rule in http_rules {
            let attached = rule.policy.get::<AttachedBackendTraffic>();
            rule.backends
                .ready()
                .for_each(|backend| add(backend, attached));
        }
        // An L4 rule's policy is in each of its backends' slots.
        for listener in resolution.gateways.iter().flat_map(|g| &g.listeners) {
            let backends: Vec<&WeightedBackends<Arc<Backend>>> = match &listener.routes {
                ListenerRoutes::Tls(routes) => routes.iter().map(|(_, b)| b).collect(),
                ListenerRoutes::Stream(Some(backends)) => vec![&**backends],
                ListenerRoutes::Http(_) | ListenerRoutes::Stream(None) => Vec::new(),
            };
            for backend in backends.into_iter().flat_map(|b| b.ready()) {
                add(backend, backend.policy.get::<AttachedBackendTraffic>());
            }
        }
        schedule
    }

    /// When `name`, answered with `ttl`, is resolved again: the earliest of its rules'
    /// schedules (the defaults for a name no rule uses).
    pub fn next_refresh(&self, name: &str, ttl: Option<Duration>) -> Duration {
        self.0
            .get(name)
            .into_iter()
            .flatten()
            .map(|settings| settings.next_refresh(ttl))
            .min()
            .unwrap_or_else(|| DnsSettings::default().next_refresh(ttl))
    }
}

/// What a product serves: the names' addresses and their schedule.
#[derive(Debug, Clone, Default)]
pub struct ServedNames {
    /// The addresses each name was served with.
    pub table: BTreeMap<String, Vec<IpAddr>>,
    /// When each is resolved again.
    pub schedule: Arc<NameSchedule>,
}

/// Counts the changes in what the served configuration's names resolve to.
#[derive(Debug, Clone, Default)]
pub struct NameChanges(Arc<AtomicU64>);

impl NameChanges {
    /// The number of changes seen so far (part of a reload stamp).
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Resolves each name `served` returns again when its schedule says, and counts a change
    /// when an answer differs from what is served. Runs until dropped with its task.
    pub async fn watch(
        self,
        resolver: NameResolver,
        served: impl Fn() -> ServedNames + Send + 'static,
    ) {
        loop {
            let ServedNames { table, schedule } = served();
            let now = Instant::now();
            let mut next = now + IDLE_CHECK;
            let mut changed = false;
            for (name, addresses) in table.iter().take(MAX_RESOLVED_NAMES) {
                let due = match resolver.last(name) {
                    Some(answer) => answer.at + schedule.next_refresh(name, answer.ttl),
                    None => now,
                };
                if due > now {
                    next = next.min(due);
                    continue;
                }
                let answer = resolver.lookup(name).await;
                changed |= answer.addresses != *addresses;
                next = next.min(answer.at + schedule.next_refresh(name, answer.ttl));
            }
            if changed {
                self.0.fetch_add(1, Ordering::AcqRel);
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_and_an_invalid_name_does_not() {
        let resolver = NameResolver::system();
        let names: BTreeSet<String> = ["localhost".to_owned(), "no such name".to_owned()].into();
        let resolved = resolver.resolve(&names).await;
        assert!(
            resolved["localhost"].iter().any(IpAddr::is_loopback),
            "{resolved:?}"
        );
        assert!(resolved["no such name"].is_empty());
    }

    #[test]
    fn the_earliest_schedule_of_a_names_rules_wins() {
        let mut schedule = NameSchedule::default();
        let fast = DnsSettings {
            refresh: Duration::from_secs(2),
            respect_ttl: false,
            ..DnsSettings::default()
        };
        schedule
            .0
            .insert("api.example".into(), vec![DnsSettings::default(), fast]);
        let ttl = Some(Duration::from_secs(300));
        assert_eq!(
            schedule.next_refresh("api.example", ttl),
            Duration::from_secs(2)
        );
        let short = Some(Duration::from_secs(1));
        assert_eq!(
            schedule.next_refresh("api.example", short),
            Duration::from_secs(1)
        );
        // A name no rule uses: the defaults (TTL respected, else 30 s).
        assert_eq!(
            schedule.next_refresh("other", ttl),
            Duration::from_secs(300)
        );
        assert_eq!(
            schedule.next_refresh("other", None),
            Duration::from_secs(30)
        );
    }

    #[tokio::test]
    async fn a_change_in_the_answers_is_counted() {
        let resolver = NameResolver::system();
        let changes = NameChanges::default();
        // The served table says localhost is 192.0.2.1: the fresh answer differs.
        let stale = ServedNames {
            table: BTreeMap::from([("localhost".to_owned(), vec!["192.0.2.1".parse().unwrap()])]),
            schedule: Arc::default(),
        };
        let task = tokio::spawn(
            changes
                .clone()
                .watch(resolver.clone(), move || stale.clone()),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while changes.count() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert!(changes.count() > 0);

        // A table that matches the answers counts nothing.
        let same = NameChanges::default();
        let names = BTreeSet::from(["localhost".to_owned()]);
        let current = ServedNames {
            table: resolver.resolve(&names).await,
            schedule: Arc::default(),
        };
        let task = tokio::spawn(same.clone().watch(resolver, move || current.clone()));
        tokio::time::sleep(Duration::from_millis(150)).await;
        task.abort();
        assert_eq!(same.count(), 0);
    }

    #[tokio::test]
    async fn answers_are_kept_only_for_the_names_of_the_last_load() {
        let resolver = NameResolver::system();
        let first = BTreeSet::from(["localhost".to_owned(), "no such name".to_owned()]);
        resolver.resolve(&first).await;
        assert!(resolver.last("no such name").is_some());
        resolver
            .resolve(&BTreeSet::from(["localhost".to_owned()]))
            .await;
        assert!(resolver.last("no such name").is_none());
        assert!(resolver.last("localhost").is_some());
    }
}
