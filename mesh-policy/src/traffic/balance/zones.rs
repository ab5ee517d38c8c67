//! Zone-aware balancing (policy.md §2.3, BackendTrafficPolicy `loadBalancer.zoneAware`): which
//! zone's endpoints a try may go to, before the policy picks one of them.
//!
//! - [`ZoneRouting::PreferLocal`] is Envoy's zone-aware routing. It applies when the process
//!   knows its own zone, the backend has at least `min_endpoints` usable endpoints and the
//!   request falls within `percentage`. With `force` and at least that many usable endpoints
//!   in the local zone, every try stays there. Otherwise the local zone takes as much as keeps
//!   the load per endpoint even: Envoy weighs the local zone's share of the backend's
//!   endpoints against its share of the proxy fleet; a gateway does not see its fleet, so it
//!   takes the fleet as spread evenly over the zones the backend's usable endpoints are in. When
//!   the local zone holds at least its share of endpoints, all tries stay local. When it holds
//!   less, tries stay local in proportion, and the rest go to the zones with more than their
//!   share, weighted by the surplus.
//! - [`ZoneRouting::Weighted`] is Envoy's locality-weighted balancing. A zone is drawn by its
//!   weight (a zone not listed weighs 0), scaled down when fewer than 1/1.4 of its endpoints
//!   are usable, as Envoy's over-provisioning factor has it. A consistent hash weighs its
//!   Maglev table's endpoints instead ([`maglev_weights`]), so a key keeps its endpoint.
//!
//! Endpoints without a zone are together in the zone "".
//!
//! ```
//! use std::sync::Arc;
//! use mesh_policy::traffic::balance::zones::{PreferLocal, ZoneIndex, ZoneRouting};
//!
//! let zones: Vec<Option<Arc<str>>> = ["a", "b", "b", "b"].iter().map(|z| Some(Arc::from(*z))).collect();
//! let index = ZoneIndex::new(zones.iter().map(Option::as_deref));
//! let routing = ZoneRouting::PreferLocal(PreferLocal { min_endpoints: 1, percentage: 100.0, force_min_in_zone: Some(1) });
//! // With `force`, every try stays in the local zone "a".
//! let narrowed = routing.narrow(&index, Some("a"), &[0, 1, 2, 3], &mut || 7);
//! assert_eq!(narrowed, Some(vec![0]));
//! ```

use std::sync::Arc;

/// Envoy's over-provisioning factor: a zone keeps its full weight while at least 1/1.4 of its
/// endpoints are usable.
const OVERPROVISIONING: f64 = 1.4;

/// How zones narrow the endpoints a try may go to.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneRouting {
    /// Prefer the process's own zone (`zoneAware.preferLocal`).
    PreferLocal(PreferLocal),
    /// Split tries between zones by weight (`zoneAware.weightedZones`).
    Weighted(Vec<(Arc<str>, u32)>),
}

/// `zoneAware.preferLocal`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferLocal {
    /// Below this many usable endpoints in the backend, zones are ignored (default 6).
    pub min_endpoints: u64,
    /// The percentage of requests routed by zone (default 100).
    pub percentage: f64,
    /// `force.minEndpointsInZoneThreshold`: with at least this many usable endpoints in the
    /// local zone, every try stays there.
    pub force_min_in_zone: Option<u32>,
}

/// The zone of each endpoint of one backend, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneIndex {
    names: Vec<Arc<str>>,
    of_endpoint: Box<[u32]>,
    /// Endpoints in each zone.
    sizes: Vec<u32>,
}

impl ZoneIndex {
    /// The index of endpoints whose zones are `zones`, in endpoint order.
    pub fn new<'a>(zones: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut sizes: Vec<u32> = Vec::new();
        let of_endpoint = zones
            .into_iter()
            .map(|zone| {
                let zone = zone.unwrap_or("");
                let at = match names.iter().position(|name| &**name == zone) {
                    Some(at) => at,
                    None => {
                        names.push(Arc::from(zone));
                        sizes.push(0);
                        names.len() - 1
                    }
                };
                sizes[at] += 1;
                at as u32
            })
            .collect();
        ZoneIndex {
            names,
            of_endpoint,
            sizes,
        }
    }

    /// How many zones there are.
    pub fn zone_count(&self) -> usize {
        self.names.len()
    }

    fn zone_of(&self, endpoint: usize) -> usize {
        self.of_endpoint.get(endpoint).map_or(0, |&z| z as usize)
    }

    fn position(&self, zone: &str) -> Option<usize> {
        self.names.iter().position(|name| &**name == zone)
    }
}

impl ZoneRouting {
    /// The endpoints among `candidates` (endpoint indices) a try may go to, or `None` when
    /// zones leave them all. `draw` gives uniform random numbers.
    pub fn narrow(
        &self,
        index: &ZoneIndex,
        local_zone: Option<&str>,
        candidates: &[usize],
        draw: &mut dyn FnMut() -> u64,
    ) -> Option<Vec<usize>> {
        if index.zone_count() < 2 || candidates.is_empty() {
            return None;
        }
        let mut usable = vec![0u64; index.zone_count()];
        for &endpoint in candidates {
            usable[index.zone_of(endpoint)] += 1;
        }
        let zone = match self {
            ZoneRouting::PreferLocal(prefer) => {
                prefer.zone(index.position(local_zone?)?, &usable, draw)?
            }
            ZoneRouting::Weighted(weights) => weighted_zone(index, weights, &usable, draw)?,
        };
        Some(
            candidates
                .iter()
                .copied()
                .filter(|&endpoint| index.zone_of(endpoint) == zone)
                .collect(),
        )
    }
}

/// A uniform draw in [0, 1).
fn unit(draw: &mut dyn FnMut() -> u64) -> f64 {
    (draw() >> 11) as f64 / (1u64 << 53) as f64
}

impl PreferLocal {
    /// The zone the try goes to, given the usable endpoints per zone, or `None` for any.
    fn zone(&self, local: usize, usable: &[u64], draw: &mut dyn FnMut() -> u64) -> Option<usize> {
        let total: u64 = usable.iter().sum();
        if total < self.min_endpoints {
            return None;
        }
        if self.percentage < 100.0 && unit(draw) * 100.0 >= self.percentage {
            return None;
        }
        let in_local = usable[local];
        if in_local == 0 {
            return None;
        }
        if self
            .force_min_in_zone
            .is_some_and(|min| in_local >= u64::from(min))
        {
            return Some(local);
        }
        // The fleet is taken as spread evenly over the zones with usable endpoints: each
        // zone's proxies should send 1/zones of all tries. Compare in integers:
        // in_local / total ≥ 1 / zones  ⇔  in_local · zones ≥ total.
        let zones = usable.iter().filter(|&&n| n > 0).count() as u64;
        if in_local * zones >= total {
            return Some(local);
        }
        if unit(draw) < (in_local * zones) as f64 / total as f64 {
            return Some(local);
        }
        // The rest spill over to the zones holding more than their share, by the surplus.
        let surplus = |n: u64| (n * zones).saturating_sub(total);
        let spare: u64 = usable.iter().map(|&n| surplus(n)).sum();
        if spare == 0 {
            return None;
        }
        let mut at = draw() % spare;
        for (zone, &n) in usable.iter().enumerate() {
            let share = surplus(n);
            if at < share {
                return Some(zone);
            }
            at -= share;
        }
        None
    }
}

/// The zone drawn by weight, each scaled by how many of its endpoints are usable.
fn weighted_zone(
    index: &ZoneIndex,
    weights: &[(Arc<str>, u32)],
    usable: &[u64],
    draw: &mut dyn FnMut() -> u64,
) -> Option<usize> {
    let effective: Vec<f64> = (0..index.zone_count())
        .map(|zone| {
            let weight = weights
                .iter()
                .find(|(name, _)| *name == index.names[zone])
                .map_or(0, |(_, weight)| *weight);
            let size = f64::from(index.sizes[zone].max(1));
            let health = (OVERPROVISIONING * usable[zone] as f64 / size).min(1.0);
            f64::from(weight) * health
        })
        .collect();
    let total: f64 = effective.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut at = unit(draw) * total;
    for (zone, weight) in effective.iter().enumerate() {
        if *weight > 0.0 && at < *weight {
            return Some(zone);
        }
        at -= weight;
    }
    effective.iter().rposition(|w| *w > 0.0)
}

/// The Maglev weight of each endpoint under `weights`: a zone's weight spread evenly over its
/// endpoints (a zone not listed gets no slots; all zones unlisted: every endpoint weighs 1).
pub fn maglev_weights(index: &ZoneIndex, weights: &[(Arc<str>, u32)]) -> Vec<u32> {
    let zone_weight = |zone: usize| {
        weights
            .iter()
            .find(|(name, _)| *name == index.names[zone])
            .map_or(0, |(_, weight)| u64::from(*weight))
    };
    if (0..index.zone_count()).all(|zone| zone_weight(zone) == 0) {
        return vec![1; index.of_endpoint.len()];
    }
    // Divisible by every zone size up to 16, so those zones' shares stay exact.
    let scale: u64 = 720_720;
    index
        .of_endpoint
        .iter()
        .map(|&zone| {
            let zone = zone as usize;
            let size = u64::from(index.sizes[zone].max(1));
            let weight = zone_weight(zone) * scale / size;
            u32::try_from(weight.min(u64::from(u32::MAX))).unwrap_or(u32::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(zones: &[&str]) -> ZoneIndex {
        ZoneIndex::new(zones.iter().map(|z| Some(*z)))
    }

    fn prefer(min: u64, force: Option<u32>) -> ZoneRouting {
        ZoneRouting::PreferLocal(PreferLocal {
            min_endpoints: min,
            percentage: 100.0,
            force_min_in_zone: force,
        })
    }

    /// A simple generator of uniform draws.
    fn generator(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state
        }
    }

    /// The fraction of `n` tries narrowed to endpoint 0's zone alone.
    fn local_fraction(routing: &ZoneRouting, index: &ZoneIndex, candidates: &[usize]) -> f64 {
        let mut draw = generator(3);
        let n = 20_000;
        let local = (0..n)
            .filter(|_| {
                routing
                    .narrow(index, Some("a"), candidates, &mut draw)
                    .is_some_and(|allowed| allowed == [0])
            })
            .count();
        local as f64 / n as f64
    }

    #[test]
    fn a_local_zone_with_its_share_keeps_every_try() {
        let zones = index(&["a", "a", "b", "b"]);
        let all = [0, 1, 2, 3];
        for _ in 0..10 {
            let narrowed = prefer(1, None).narrow(&zones, Some("a"), &all, &mut || 99);
            assert_eq!(narrowed, Some(vec![0, 1]));
        }
        // Too few endpoints (default threshold 6), an unknown or absent local zone: no zones.
        assert_eq!(
            prefer(6, None).narrow(&zones, Some("a"), &all, &mut || 1),
            None
        );
        assert_eq!(
            prefer(1, None).narrow(&zones, Some("c"), &all, &mut || 1),
            None
        );
        assert_eq!(prefer(1, None).narrow(&zones, None, &all, &mut || 1), None);
        // The local zone's endpoints all unusable: any zone.
        assert_eq!(
            prefer(1, None).narrow(&zones, Some("a"), &[2, 3], &mut || 1),
            None
        );
    }

    #[test]
    fn a_small_local_zone_keeps_its_proportion_and_spills_the_rest() {
        // One endpoint in "a", three in "b": "a" should take 1/4 of all tries while its
        // proxies send 1/2, so half of its tries stay, the other half go to "b".
        let zones = index(&["a", "b", "b", "b"]);
        let all = [0, 1, 2, 3];
        let local = local_fraction(&prefer(1, None), &zones, &all);
        assert!((0.47..0.53).contains(&local), "{local}");
        // Forced, it keeps them all.
        let narrowed = prefer(1, Some(1)).narrow(&zones, Some("a"), &all, &mut || 5);
        assert_eq!(narrowed, Some(vec![0]));
        // Forced with a higher threshold than the zone holds: the proportional rule again.
        let local = local_fraction(&prefer(1, Some(2)), &zones, &all);
        assert!((0.47..0.53).contains(&local), "{local}");
        // Only half the requests routed by zone (forced): half stay local.
        let half = ZoneRouting::PreferLocal(PreferLocal {
            min_endpoints: 1,
            percentage: 50.0,
            force_min_in_zone: Some(1),
        });
        let local = local_fraction(&half, &zones, &all);
        assert!((0.47..0.53).contains(&local), "{local}");
    }

    #[test]
    fn spill_over_goes_to_zones_with_a_surplus() {
        // "a" 1, "b" 1, "c" 4: three zones, 6 endpoints, a share of 2 each. From "a", half
        // the tries stay; the rest go to "c" only ("b" has no surplus).
        let zones = index(&["a", "b", "c", "c", "c", "c"]);
        let all: Vec<usize> = (0..6).collect();
        let mut draw = generator(1);
        let mut to = [0usize; 3];
        for _ in 0..10_000 {
            let narrowed = prefer(1, None)
                .narrow(&zones, Some("a"), &all, &mut draw)
                .unwrap();
            let zone = match narrowed[0] {
                0 => 0,
                1 => 1,
                _ => 2,
            };
            to[zone] += 1;
        }
        assert_eq!(to[1], 0, "{to:?}");
        assert!((4_700..5_300).contains(&to[0]), "{to:?}");
    }

    #[test]
    fn weighted_zones_split_by_weight_and_health() {
        let zones = index(&["a", "a", "b", "b", "c"]);
        let weights = ZoneRouting::Weighted(vec![(Arc::from("a"), 80), (Arc::from("b"), 20)]);
        let all = [0, 1, 2, 3, 4];
        let mut draw = generator(7);
        let mut count = |candidates: &[usize]| {
            let mut to_a = 0;
            for _ in 0..10_000 {
                let narrowed = weights.narrow(&zones, None, candidates, &mut draw).unwrap();
                assert!(!narrowed.contains(&4), "an unlisted zone weighs 0");
                if narrowed[0] < 2 {
                    to_a += 1;
                }
            }
            to_a
        };
        let to_a = count(&all);
        assert!((7_700..8_300).contains(&to_a), "{to_a}");
        // Half of "a" unusable: its weight scales by 1.4 × 1/2 = 0.7 → 56 against 20.
        let to_a = count(&[0, 2, 3, 4]);
        assert!((7_050..7_700).contains(&to_a), "{to_a}");
        // Only unlisted zones usable: no narrowing.
        assert_eq!(weights.narrow(&zones, None, &[4], &mut || 3), None);
    }

    #[test]
    fn maglev_weights_spread_a_zone_over_its_endpoints() {
        let zones = index(&["a", "a", "b", "c"]);
        let weights = [(Arc::from("a"), 80), (Arc::from("b"), 20)];
        let w = maglev_weights(&zones, &weights);
        assert_eq!(w[0], w[1]);
        assert_eq!(w[3], 0);
        assert_eq!(u64::from(w[0]) * 2 * 20, u64::from(w[2]) * 80);
        assert_eq!(maglev_weights(&zones, &[]), vec![1, 1, 1, 1]);
    }
}
