//! Priority levels: a rule's primary backends and its fallback backends (Envoy Gateway
//! `Backend.spec.fallback`), sans-IO. As Envoy computes it for a cluster's priorities with the
//! default overprovisioning factor of 1.4: each level's *health* is 1.4 × its healthy share of
//! endpoints (at most 100 %), so the fallback level takes traffic only once fewer than about
//! 72 % of the primary endpoints are healthy, and in proportion to what is missing. When the
//! levels together are less than fully healthy, the loads are scaled up to 100 % in proportion to
//! health, and a level whose healthy share is under the panic threshold ignores health (every
//! endpoint of it takes traffic); when every level is in panic, the loads follow endpoint counts;
//! when nothing at all is healthy, the primary level takes everything.

/// Envoy's default overprovisioning factor, in percent.
pub const OVERPROVISIONING_PERCENT: u64 = 140;

/// The endpoints of one priority level, and how many of them are healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelHealth {
    /// Endpoints of the level's ready backends.
    pub endpoints: u64,
    /// Those of them that are healthy.
    pub healthy: u64,
}

impl LevelHealth {
    /// Adds another backend's counts.
    pub fn plus(self, other: LevelHealth) -> LevelHealth {
        LevelHealth {
            endpoints: self.endpoints.saturating_add(other.endpoints),
            healthy: self
                .healthy
                .saturating_add(other.healthy.min(other.endpoints)),
        }
    }

    /// The level's health in percent: 1.4 × the healthy share, at most 100 (0 without endpoints).
    pub fn health(self) -> u64 {
        if self.endpoints == 0 {
            return 0;
        }
        (OVERPROVISIONING_PERCENT * self.healthy.min(self.endpoints) / self.endpoints).min(100)
    }

    /// Whether the healthy share is under `panic_threshold` percent (an empty level is).
    fn in_panic(self, panic_threshold: u32) -> bool {
        if self.endpoints == 0 {
            return panic_threshold > 0;
        }
        self.healthy.min(self.endpoints) * 100 < u64::from(panic_threshold) * self.endpoints
    }
}

/// How a rule's traffic is split between its two levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityLoad {
    /// The primary level's share of requests, in percent (the fallback level takes the rest).
    pub primary: u32,
    /// Whether each level (primary, fallback) is in panic: its endpoints take traffic whatever
    /// their health.
    pub panic: [bool; 2],
}

impl PriorityLoad {
    /// Everything to the primary level, health as each backend judges it.
    pub const PRIMARY: PriorityLoad = PriorityLoad {
        primary: 100,
        panic: [false, false],
    };

    /// The split once a retry has excluded the levels `excluded` (primary, fallback), as
    /// Envoy's previous-priorities retry selector does: the levels left take the traffic in
    /// proportion to their health. `None` when no level left has health (or none is
    /// excluded): the split stays as it was.
    pub fn excluding(&self, excluded: [bool; 2], levels: [LevelHealth; 2]) -> Option<PriorityLoad> {
        let health = |excluded: bool, level: LevelHealth| match excluded {
            true => 0,
            false => level.health(),
        };
        let primary = health(excluded[0], levels[0]);
        let fallback = health(excluded[1], levels[1]);
        if excluded == [false, false] || primary + fallback == 0 {
            return None;
        }
        let total = (primary + fallback).min(100);
        Some(PriorityLoad {
            primary: (primary * 100 / total).min(100) as u32,
            panic: self.panic,
        })
    }

    /// Whether a draw of `percent_draw` (0–99) goes to the fallback level.
    pub fn falls_back(&self, percent_draw: u32) -> bool {
        percent_draw >= self.primary
    }
}

/// The split between the primary level and the fallback level, from their health and the
/// panic threshold (percent; 0 disables panic mode).
pub fn priority_load(
    primary: LevelHealth,
    fallback: LevelHealth,
    panic_threshold: u32,
) -> PriorityLoad {
    let levels = [primary, fallback];
    let health = levels.map(LevelHealth::health);
    let total = (health[0] + health[1]).min(100);
    if total == 0 {
        // Nothing is healthy: everything goes to the primary level, in panic when panic mode
        // is on.
        return PriorityLoad {
            primary: 100,
            panic: [panic_threshold > 0, false],
        };
    }
    // Scaled so that the loads sum to 100 when the levels together are not fully healthy.
    let primary_load = (health[0] * 100 / total).min(100);
    let mut load = PriorityLoad {
        primary: primary_load as u32,
        panic: [false, false],
    };
    if total == 100 || panic_threshold == 0 {
        return load;
    }
    load.panic = levels.map(|level| level.in_panic(panic_threshold));
    if load.panic == [true, true] {
        // Every level in panic: the loads follow the endpoint counts.
        let endpoints = primary.endpoints.saturating_add(fallback.endpoints);
        load.primary = (primary.endpoints.saturating_mul(100))
            .checked_div(endpoints)
            .map_or(100, |share| share as u32);
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(endpoints: u64, healthy: u64) -> LevelHealth {
        LevelHealth { endpoints, healthy }
    }

    #[test]
    fn a_healthy_enough_primary_level_takes_everything() {
        // 3 of 4 healthy: 1.4 × 75 % = 105 % → 100 %.
        let load = priority_load(level(4, 3), level(2, 2), 50);
        assert_eq!(load, PriorityLoad::PRIMARY);
        assert!(!load.falls_back(99));
        // Exactly at the 72 % edge: 1.4 × 18/25 = 100.8 % → 100 %.
        assert_eq!(priority_load(level(25, 18), level(1, 1), 50).primary, 100);
        // Just below: 1.4 × 17/25 = 95.2 % → 95 %.
        assert_eq!(priority_load(level(25, 17), level(1, 1), 50).primary, 95);
    }

    #[test]
    fn the_fallback_level_takes_what_the_primary_level_lacks() {
        // 1 of 2 healthy: 70 % primary, 30 % fallback.
        let load = priority_load(level(2, 1), level(1, 1), 50);
        assert_eq!(load.primary, 70);
        assert_eq!(load.panic, [false, false]);
        assert!(!load.falls_back(69));
        assert!(load.falls_back(70));
        // No healthy primary: everything falls back.
        assert_eq!(priority_load(level(2, 0), level(1, 1), 50).primary, 0);
        // No primary endpoints at all: likewise.
        assert_eq!(priority_load(level(0, 0), level(3, 3), 50).primary, 0);
    }

    #[test]
    fn partial_health_on_both_levels_is_scaled_to_the_whole() {
        // Primary 1 of 4 (35 %), fallback 1 of 4 (35 %): 70 % in all, each half of it.
        let load = priority_load(level(4, 1), level(4, 1), 50);
        assert_eq!(load.primary, 50);
        // Both under 50 % healthy and together under 100 %: both in panic, so the loads
        // follow the endpoint counts.
        assert_eq!(load.panic, [true, true]);
        let load = priority_load(level(6, 1), level(2, 1), 50);
        assert_eq!(load.panic, [true, false]);
        // Primary 23 % (1.4 × 1/6), fallback 70 %: 23 / 93 of the requests.
        assert_eq!(load.primary, 24);
        // Without panic mode, the health split stays and nothing is in panic.
        let load = priority_load(level(4, 1), level(4, 1), 0);
        assert_eq!(
            load,
            PriorityLoad {
                primary: 50,
                panic: [false, false]
            }
        );
    }

    #[test]
    fn with_nothing_healthy_the_primary_level_takes_everything() {
        let load = priority_load(level(2, 0), level(2, 0), 50);
        assert_eq!(
            load,
            PriorityLoad {
                primary: 100,
                panic: [true, false]
            }
        );
        let load = priority_load(level(2, 0), level(2, 0), 0);
        assert_eq!(
            load,
            PriorityLoad {
                primary: 100,
                panic: [false, false]
            }
        );
        // Counts past the endpoints are read as all healthy, never more.
        assert_eq!(level(2, 5).health(), 100);
        assert_eq!(LevelHealth::default().plus(level(2, 5)), level(2, 2));
    }

    #[test]
    fn a_retry_that_excluded_a_level_goes_to_the_other() {
        let levels = [level(2, 2), level(1, 1)];
        let load = priority_load(levels[0], levels[1], 50);
        assert_eq!(load.excluding([false, false], levels), None);
        // The primary level tried: even fully healthy, the fallback level takes the retry.
        assert_eq!(
            load.excluding([true, false], levels).map(|l| l.primary),
            Some(0)
        );
        assert_eq!(
            load.excluding([false, true], levels).map(|l| l.primary),
            Some(100)
        );
        // Both tried, or the one left without health: nothing changes.
        assert_eq!(load.excluding([true, true], levels), None);
        let sick_fallback = [level(2, 2), level(1, 0)];
        assert_eq!(load.excluding([true, false], sick_fallback), None);
        // Partial health of the level left is scaled to the whole.
        let half = [level(2, 2), level(2, 1)];
        assert_eq!(
            load.excluding([true, false], half).map(|l| l.primary),
            Some(0)
        );
    }
}
