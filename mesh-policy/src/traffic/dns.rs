//! BackendTrafficPolicy `dns` (policy.md §2.8): how the host names of the route's Envoy Gateway
//! `Backend`s are resolved — how often (`dnsRefreshRate`, 30 s), whether the answers' TTL sets
//! the next refresh instead (`respectDnsTtl`, on by default), and which addresses are used
//! (`lookupFamily`: IPv4, IPv6, IPv4Preferred — the default —, IPv6Preferred, IPv4AndIPv6).
//! The family rebuilds the rule's backends' endpoints when the configuration is compiled
//! ([`routing::slot::PolicyCompiler::lookup_family`]); the runtime reads the refresh settings
//! of every rule to schedule each name.

use std::time::Duration;

use routing::compiled::LookupFamily;
use routing::resolve::parse_duration;
use serde::{Deserialize, Serialize};

/// Envoy Gateway's default refresh rate.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// The shortest refresh rate accepted (Envoy's bound).
const MIN_REFRESH: Duration = Duration::from_millis(1);

/// `dns`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsSpec {
    /// How often names are resolved again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<String>,
    /// Whether the answers' TTL sets the next refresh.
    #[serde(
        default,
        rename = "respectDnsTtl",
        skip_serializing_if = "Option::is_none"
    )]
    pub respect_dns_ttl: Option<bool>,
    /// Which addresses are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_family: Option<String>,
}

/// `dns`, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DnsSettings {
    /// How often names are resolved again (without a usable TTL).
    pub refresh: Duration,
    /// Whether the answers' TTL sets the next refresh.
    pub respect_ttl: bool,
    /// Which addresses are used.
    pub family: LookupFamily,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            refresh: DEFAULT_REFRESH,
            respect_ttl: true,
            family: LookupFamily::default(),
        }
    }
}

impl DnsSettings {
    /// When a name answered with `ttl` is resolved again: after the TTL when it is respected
    /// and not zero, else after the refresh rate.
    pub fn next_refresh(&self, ttl: Option<Duration>) -> Duration {
        match ttl {
            Some(ttl) if self.respect_ttl && !ttl.is_zero() => ttl,
            _ => self.refresh,
        }
    }
}

impl DnsSpec {
    /// The settings; the error names the field.
    pub fn compile(&self) -> Result<DnsSettings, String> {
        let refresh = match &self.dns_refresh_rate {
            None => DEFAULT_REFRESH,
            Some(text) => parse_duration(text)
                .filter(|rate| *rate >= MIN_REFRESH)
                .ok_or_else(|| {
                    format!("spec.dns.dnsRefreshRate: {text:?} is not a duration of at least 1ms")
                })?,
        };
        let family = match self.lookup_family.as_deref() {
            None | Some("IPv4Preferred") => LookupFamily::Ipv4Preferred,
            Some("IPv4") => LookupFamily::Ipv4,
            Some("IPv6") => LookupFamily::Ipv6,
            Some("IPv6Preferred") => LookupFamily::Ipv6Preferred,
            Some("IPv4AndIPv6") => LookupFamily::Ipv4AndIpv6,
            Some(other) => {
                return Err(format!(
                    "spec.dns.lookupFamily: {other:?} is not IPv4, IPv6, IPv4Preferred, \
                     IPv6Preferred or IPv4AndIPv6"
                ));
            }
        };
        Ok(DnsSettings {
            refresh,
            respect_ttl: self.respect_dns_ttl.unwrap_or(true),
            family,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<DnsSettings, String> {
        serde_yaml_ng::from_str::<DnsSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn defaults_and_fields_compile_as_envoy_gateway_reads_them() {
        assert_eq!(compile("{}").unwrap(), DnsSettings::default());
        let settings =
            compile("{dnsRefreshRate: 5s, respectDnsTtl: false, lookupFamily: IPv6}").unwrap();
        assert_eq!(settings.refresh, Duration::from_secs(5));
        assert!(!settings.respect_ttl);
        assert_eq!(settings.family, LookupFamily::Ipv6);
        assert_eq!(
            compile("{lookupFamily: IPv4AndIPv6}").unwrap().family,
            LookupFamily::Ipv4AndIpv6
        );
        for (yaml, field) in [
            ("{dnsRefreshRate: soon}", "spec.dns.dnsRefreshRate"),
            ("{dnsRefreshRate: 0s}", "spec.dns.dnsRefreshRate"),
            ("{lookupFamily: IPX}", "spec.dns.lookupFamily"),
            ("{ttl: 5}", "unknown field"),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(field), "{yaml}: {error}");
        }
    }

    #[test]
    fn the_ttl_sets_the_next_refresh_only_when_respected_and_not_zero() {
        let respecting = DnsSettings::default();
        let ttl = Some(Duration::from_secs(2));
        assert_eq!(respecting.next_refresh(ttl), Duration::from_secs(2));
        assert_eq!(
            respecting.next_refresh(Some(Duration::ZERO)),
            DEFAULT_REFRESH
        );
        assert_eq!(respecting.next_refresh(None), DEFAULT_REFRESH);
        let ignoring = DnsSettings {
            respect_ttl: false,
            ..respecting
        };
        assert_eq!(ignoring.next_refresh(ttl), DEFAULT_REFRESH);
    }
}
