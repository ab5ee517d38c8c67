//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), as Envoy's Maglev load balancer
//! builds it: each endpoint walks its own permutation of a prime-sized table (an offset and a
//! skip from two hashes of its name) and, round by round, claims its next free slot in
//! proportion to its weight; a key's endpoint is the one in slot `hash % size`. Every endpoint
//! owns nearly the same share of slots, and when one is added or removed few keys move.

use thiserror::Error;
use twox_hash::XxHash64;

/// The table size Envoy Gateway uses by default (`consistentHash.tableSize`).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
/// The largest table size Envoy Gateway accepts.
pub const MAX_TABLE_SIZE: u32 = 5_000_011;

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MaglevError {
    /// The size is not a prime within the allowed range.
    #[error("the table size {0} is not a prime between 2 and {MAX_TABLE_SIZE}")]
    Size(u32),
    /// More endpoints than slots.
    #[error("{endpoints} endpoints do not fit a table of {size} slots")]
    TooManyEndpoints {
        /// The endpoints.
        endpoints: usize,
        /// The slots.
        size: u32,
    },
}

/// One endpoint as the table sees it: a stable name (its address) and a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevEntry<'a> {
    /// The name hashed into the endpoint's permutation.
    pub name: &'a [u8],
    /// Its weight (0: no slots).
    pub weight: u32,
}

/// A built lookup table: slot → endpoint index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Box<[u32]>,
}

/// Whether `n` is prime (trial division; table sizes are at most a few million).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut divisor = 3u32;
    while u64::from(divisor) * u64::from(divisor) <= u64::from(n) {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

impl MaglevTable {
    /// Builds the table of `size` slots (a prime) for `entries`; entries of weight 0 get no
    /// slot. An empty table (no weighted entry) answers no lookup.
    pub fn build(entries: &[MaglevEntry<'_>], size: u32) -> Result<MaglevTable, MaglevError> {
        if !is_prime(size) || size > MAX_TABLE_SIZE {
            return Err(MaglevError::Size(size));
        }
        let weighted: Vec<(usize, &MaglevEntry<'_>)> = entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.weight > 0)
            .collect();
        if weighted.len() > size as usize {
            return Err(MaglevError::TooManyEndpoints {
                endpoints: weighted.len(),
                size,
            });
        }
        const EMPTY: u32 = u32::MAX;
        let mut slots = vec![EMPTY; size as usize].into_boxed_slice();
        if weighted.is_empty() {
            return Ok(MaglevTable {
                slots: Box::new([]),
            });
        }
        let modulus = u64::from(size);
        let heaviest = weighted.iter().map(|(_, e)| e.weight).max().unwrap_or(1);
        struct Walker {
            index: u32,
            position: u64,
            skip: u64,
            share: f64,
            credit: f64,
        }
        let mut walkers: Vec<Walker> = weighted
            .iter()
            .map(|(index, entry)| Walker {
                index: *index as u32,
                position: XxHash64::oneshot(0, entry.name) % modulus,
                skip: XxHash64::oneshot(1, entry.name) % (modulus - 1) + 1,
                share: f64::from(entry.weight) / f64::from(heaviest),
                credit: 0.0,
            })
            .collect();
        let mut filled = 0u64;
        while filled < modulus {
            for walker in &mut walkers {
                walker.credit += walker.share;
                // The heaviest endpoints claim one slot a round, lighter ones less often.
                while walker.credit >= 1.0 && filled < modulus {
                    walker.credit -= 1.0;
                    // The permutation is a full cycle (the size is prime), so a free slot is
                    // always found within `size` steps.
                    while slots[walker.position as usize] != EMPTY {
                        walker.position = (walker.position + walker.skip) % modulus;
                    }
                    slots[walker.position as usize] = walker.index;
                    walker.position = (walker.position + walker.skip) % modulus;
                    filled += 1;
                }
            }
        }
        Ok(MaglevTable { slots })
    }

    /// The endpoint (an index into the entries) for `hash`; `None` for an empty table.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let size = self.slots.len() as u64;
        if size == 0 {
            return None;
        }
        self.slots.get((hash % size) as usize).map(|&i| i as usize)
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// How many slots each of `count` entries owns.
    pub fn shares(&self, count: usize) -> Vec<usize> {
        let mut shares = vec![0usize; count];
        for &slot in self.slots.iter() {
            if let Some(share) = shares.get_mut(slot as usize) {
                *share += 1;
            }
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250))
            .collect()
    }

    fn entries(names: &[String]) -> Vec<MaglevEntry<'_>> {
        names
            .iter()
            .map(|n| MaglevEntry {
                name: n.as_bytes(),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn primes_are_recognised() {
        assert!(is_prime(2) && is_prime(65_537) && is_prime(5_000_011) && is_prime(251));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65_536) && !is_prime(9));
        assert_eq!(
            MaglevTable::build(&[], 65_536),
            Err(MaglevError::Size(65_536))
        );
        assert_eq!(
            MaglevTable::build(&[], 5_000_081),
            Err(MaglevError::Size(5_000_081))
        );
    }

    #[test]
    fn one_hundred_endpoints_share_the_table_within_five_percent() {
        let names = names(100);
        let table = MaglevTable::build(&entries(&names), DEFAULT_TABLE_SIZE).unwrap();
        let shares = table.shares(100);
        let mean = DEFAULT_TABLE_SIZE as f64 / 100.0;
        let max = *shares.iter().max().unwrap() as f64;
        assert!(max / mean <= 1.05, "max/mean {}", max / mean);
        assert!(shares.iter().all(|&s| s > 0));
    }

    #[test]
    fn weights_set_the_shares() {
        let names = names(2);
        let mut weighted = entries(&names);
        weighted[0].weight = 3;
        let table = MaglevTable::build(&weighted, 65_537).unwrap();
        let shares = table.shares(2);
        let ratio = shares[0] as f64 / shares[1] as f64;
        assert!((2.9..3.1).contains(&ratio), "{shares:?}");
        weighted[1].weight = 0;
        let table = MaglevTable::build(&weighted, 251).unwrap();
        assert_eq!(table.shares(2), vec![251, 0]);
        assert_eq!(MaglevTable::build(&[], 251).unwrap().lookup(7), None);
    }

    #[test]
    fn removing_an_endpoint_moves_few_keys() {
        let names = names(10);
        let all = MaglevTable::build(&entries(&names), 65_537).unwrap();
        let fewer = MaglevTable::build(&entries(&names[..9]), 65_537).unwrap();
        let keys = 20_000u64;
        let moved = (0..keys)
            .map(|k| XxHash64::oneshot(7, &k.to_le_bytes()))
            .filter(|&h| {
                let before = all.lookup(h).unwrap();
                before != 9 && fewer.lookup(h).unwrap() != before
            })
            .count();
        // Only the removed endpoint's keys must move; Maglev disturbs a few more.
        assert!((moved as f64) < keys as f64 * 0.05, "{moved} moved");
    }

    #[test]
    fn lookups_are_stable_and_too_many_endpoints_are_refused() {
        let names = names(3);
        let a = MaglevTable::build(&entries(&names), 251).unwrap();
        let b = MaglevTable::build(&entries(&names), 251).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size(), 251);
        let many = self::names(12);
        assert!(matches!(
            MaglevTable::build(&entries(&many), 11),
            Err(MaglevError::TooManyEndpoints { .. })
        ));
    }
}
