//! Ring (Ketama-style) consistent hashing, as Envoy's ring-hash load balancer builds it: every
//! endpoint places points on a 64-bit ring (hashes of `name_i`) in proportion to its weight, and
//! a key belongs to the first point at or after its hash. Istio's DestinationRule can choose it;
//! Envoy Gateway always uses [`Maglev`](super::maglev), whose lookups are a single index. It is
//! also the Maglev benchmark's baseline.

use twox_hash::XxHash64;

use super::maglev::MaglevEntry;

/// Envoy's default minimum ring size.
pub const DEFAULT_RING_SIZE: usize = 1024;

/// A built ring: points sorted by hash, each naming its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingHash {
    points: Box<[(u64, u32)]>,
}

impl RingHash {
    /// Builds a ring of about `ring_size` points (at least one per weighted entry).
    pub fn build(entries: &[MaglevEntry<'_>], ring_size: usize) -> RingHash {
        let total: u64 = entries.iter().map(|e| u64::from(e.weight)).sum();
        let mut points = Vec::with_capacity(ring_size + entries.len());
        let mut name = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if entry.weight == 0 || total == 0 {
                continue;
            }
            let count = ((ring_size as u64 * u64::from(entry.weight)).div_ceil(total)).max(1);
            for replica in 0..count {
                name.clear();
                name.extend_from_slice(entry.name);
                name.push(b'_');
                name.extend_from_slice(replica.to_string().as_bytes());
                points.push((XxHash64::oneshot(0, &name), index as u32));
            }
        }
        points.sort_unstable();
        RingHash {
            points: points.into_boxed_slice(),
        }
    }

    /// The endpoint for `hash`; `None` for an empty ring.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|&(point, _)| point < hash);
        let (_, index) = self.points.get(at).or_else(|| self.points.first())?;
        Some(*index as usize)
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_on_every_endpoint_and_stay_there() {
        let names: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}:80")).collect();
        let entries: Vec<MaglevEntry<'_>> = names
            .iter()
            .map(|n| MaglevEntry {
                name: n.as_bytes(),
                weight: 1,
            })
            .collect();
        let ring = RingHash::build(&entries, DEFAULT_RING_SIZE);
        assert_eq!(ring.len(), 1024);
        let mut counts = [0usize; 4];
        for key in 0..8_000u64 {
            let hash = XxHash64::oneshot(3, &key.to_le_bytes());
            let endpoint = ring.lookup(hash).unwrap();
            assert_eq!(ring.lookup(hash), Some(endpoint));
            counts[endpoint] += 1;
        }
        assert!(counts.iter().all(|&c| c > 1_200), "{counts:?}");
        assert!(ring.lookup(u64::MAX).is_some());
        assert!(RingHash::build(&[], 16).is_empty());
        assert_eq!(RingHash::build(&[], 16).lookup(1), None);
    }
}
