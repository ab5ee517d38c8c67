//! The buckets of a rule's `Distinct` values: at most a fixed number, kept by the hash of the
//! values. When full, a new value takes the place of one not used lately, chosen by the CLOCK
//! (second-chance) approximation of least-recently-used eviction: a hit only marks its slot,
//! so a check writes no list links, and an insertion sweeps at most once around the slots.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::bucket::TokenBucket;

/// Hashes the (already keyed-hashed) bucket keys by passing them through.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// One kept bucket.
#[derive(Debug)]
struct Slot {
    key: u64,
    bucket: TokenBucket,
    /// Used since the clock hand last passed.
    referenced: bool,
}

/// At most `capacity` buckets by key, evicted by CLOCK.
#[derive(Debug)]
pub(super) struct DistinctBuckets {
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
}

impl DistinctBuckets {
    /// Empty, keeping at most `capacity` (at least one) buckets.
    pub(super) fn new(capacity: usize) -> Self {
        DistinctBuckets {
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
            capacity: capacity.max(1),
        }
    }

    /// How many buckets are kept.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The bucket of `key`, made by `make` (in place of one not used lately, when full).
    #[inline]
    pub(super) fn bucket(
        &mut self,
        key: u64,
        make: impl FnOnce() -> TokenBucket,
    ) -> &mut TokenBucket {
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => self.insert(key, make()),
        };
        let slot = &mut self.slots[at];
        slot.referenced = true;
        &mut slot.bucket
    }

    /// Places a new bucket; returns its slot.
    fn insert(&mut self, key: u64, bucket: TokenBucket) -> usize {
        let slot = Slot {
            key,
            bucket,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.slots.push(slot);
            let at = self.slots.len() - 1;
            self.index.insert(key, at);
            return at;
        }
        // Second chance: clear marks until an unmarked slot comes round (at most one turn).
        while self.slots[self.hand].referenced {
            self.slots[self.hand].referenced = false;
            self.hand = (self.hand + 1) % self.slots.len();
        }
        let at = self.hand;
        self.hand = (self.hand + 1) % self.slots.len();
        self.index.remove(&self.slots[at].key);
        self.slots[at] = slot;
        self.index.insert(key, at);
        at
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn bucket() -> TokenBucket {
        TokenBucket::new(1, Duration::from_secs(60))
    }

    #[test]
    fn keeps_one_bucket_per_key_up_to_the_capacity() {
        let mut kept = DistinctBuckets::new(3);
        for key in [1, 2, 1, 3, 2] {
            kept.bucket(key, bucket);
        }
        assert_eq!(kept.len(), 3);
        assert!(kept.bucket(1, bucket).take_exclusive(1, 0).allowed);
        assert!(
            !kept.bucket(1, bucket).take_exclusive(1, 0).allowed,
            "the same one"
        );
        for key in 10..1000 {
            kept.bucket(key, bucket);
        }
        assert_eq!(kept.len(), 3, "bounded");
        assert_eq!(kept.index.len(), 3, "the index follows the slots");
    }

    #[test]
    fn a_bucket_used_since_the_hand_passed_outlives_one_that_was_not() {
        let mut kept = DistinctBuckets::new(3);
        for key in [1, 2, 3] {
            kept.bucket(key, bucket).take_exclusive(1, 0);
        }
        // All marked: the first insertion clears every mark and evicts key 1 (the oldest).
        kept.bucket(4, bucket);
        assert!(!kept.index.contains_key(&1));
        // Key 2 is used again; key 3 is not: 3 goes next, and 2's tokens are kept.
        kept.bucket(2, bucket);
        kept.bucket(5, bucket);
        assert!(!kept.index.contains_key(&3));
        assert!(!kept.bucket(2, bucket).take_exclusive(1, 0).allowed);
    }
}
