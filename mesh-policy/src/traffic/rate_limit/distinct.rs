//! The buckets of a rule's `Distinct` values: at most a fixed number, found by the (keyed)
//! hash of the values without a lock.
//!
//! The keys are spread over chunks, each made on first use: a chunk holds at most
//! [`PER_CHUNK`] keys in [`CHUNK_SLOTS`] slots, placed by linear probing from the key's home
//! slot. A check finds its slot with plain atomic loads and takes from the slot's bucket word
//! (a refused check writes nothing). Only a new key takes its chunk's lock: when the chunk is
//! full, a key not used lately leaves first, chosen by the CLOCK (second-chance)
//! approximation of least-recently-used eviction — a hit only marks its slot. A check racing
//! the eviction of its own key may count against the key that replaces it (one request, once).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Slots per chunk.
pub(super) const CHUNK_SLOTS: usize = 64;

/// The most keys a chunk holds: a quarter of its slots or more stay free, so that probes
/// stay short.
pub(super) const PER_CHUNK: usize = 40;

/// A slot's key when it never held one: a probe for a key stops there.
const EMPTY: u64 = 0;

/// A slot's key after its key left: a probe goes on past it.
const LEFT: u64 = u64::MAX;

/// One slot: a key and its bucket's state word.
#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    /// The bucket's state (see `TokenBucket::take_in`).
    state: AtomicU64,
    /// Used since the clock hand last passed.
    referenced: AtomicBool,
}

/// What a chunk's lock guards: its keys' count and the clock hand.
#[derive(Debug, Default)]
struct ChunkBook {
    keys: usize,
    hand: usize,
}

/// Up to [`PER_CHUNK`] keys.
#[derive(Debug)]
struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
    book: Mutex<ChunkBook>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            slots: std::array::from_fn(|_| Slot::default()),
            book: Mutex::new(ChunkBook::default()),
        }
    }

    /// The slot holding `key`, probing from its home slot.
    #[inline]
    fn find(&self, key: u64) -> Option<&Slot> {
        let home = key as usize % CHUNK_SLOTS;
        for step in 0..CHUNK_SLOTS {
            let slot = &self.slots[(home + step) % CHUNK_SLOTS];
            match slot.key.load(Ordering::Acquire) {
                found if found == key => return Some(slot),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }

    /// The slot of `key`, placed (with a fresh bucket) if it has none, in place of a key not
    /// used lately when the chunk holds `limit` keys.
    fn place(&self, key: u64, limit: usize) -> &Slot {
        let mut book = match self.book.lock() {
            Ok(book) => book,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Another check may have placed it meanwhile.
        if let Some(slot) = self.find(key) {
            return slot;
        }
        if book.keys >= limit {
            self.evict(&mut book);
        }
        let home = key as usize % CHUNK_SLOTS;
        // At most `PER_CHUNK` keys: a free slot (never used, or left) is on every path.
        let free = (0..CHUNK_SLOTS)
            .map(|step| &self.slots[(home + step) % CHUNK_SLOTS])
            .find(|slot| matches!(slot.key.load(Ordering::Relaxed), EMPTY | LEFT))
            .unwrap_or(&self.slots[home]);
        free.state.store(0, Ordering::Relaxed);
        free.referenced.store(false, Ordering::Relaxed);
        // Published last: a check that sees the key sees its fresh bucket.
        free.key.store(key, Ordering::Release);
        book.keys += 1;
        free
    }

    /// Second chance: clears marks until an unmarked key comes round (at most one turn),
    /// and lets it leave.
    fn evict(&self, book: &mut ChunkBook) {
        for _ in 0..=CHUNK_SLOTS {
            let slot = &self.slots[book.hand];
            book.hand = (book.hand + 1) % CHUNK_SLOTS;
            if matches!(slot.key.load(Ordering::Relaxed), EMPTY | LEFT) {
                continue;
            }
            if slot.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            slot.key.store(LEFT, Ordering::Release);
            book.keys -= 1;
            return;
        }
        // Every key was marked and is now cleared: the next one round leaves.
        self.evict_unmarked(book);
    }

    fn evict_unmarked(&self, book: &mut ChunkBook) {
        for _ in 0..CHUNK_SLOTS {
            let slot = &self.slots[book.hand];
            book.hand = (book.hand + 1) % CHUNK_SLOTS;
            if !matches!(slot.key.load(Ordering::Relaxed), EMPTY | LEFT) {
                slot.key.store(LEFT, Ordering::Release);
                book.keys -= 1;
                return;
            }
        }
    }

    fn keys(&self) -> usize {
        match self.book.lock() {
            Ok(book) => book.keys,
            Err(poisoned) => poisoned.into_inner().keys,
        }
    }
}

/// At most `capacity` (rounded up to a whole number per chunk) buckets by key.
#[derive(Debug)]
pub(super) struct DistinctBuckets {
    chunks: Box<[OnceLock<Box<Chunk>>]>,
    /// Keys per chunk.
    per_chunk: usize,
}

impl DistinctBuckets {
    /// Empty, keeping at most `capacity` (at least one) buckets, up to one fewer than the
    /// number of chunks more when `capacity` does not divide evenly.
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let chunks = capacity.div_ceil(PER_CHUNK);
        DistinctBuckets {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            per_chunk: capacity.div_ceil(chunks),
        }
    }

    /// How many buckets are kept.
    pub(super) fn len(&self) -> usize {
        self.chunks
            .iter()
            .filter_map(OnceLock::get)
            .map(|chunk| chunk.keys())
            .sum()
    }

    /// The state word of `key`'s bucket (a fresh one, in place of one not used lately when
    /// full, if it has none).
    #[inline]
    pub(super) fn bucket_state(&self, key: u64) -> &AtomicU64 {
        // 0 and all ones mark free slots.
        let key = key.clamp(1, LEFT - 1);
        // The chunk from the high bits, the home slot from the low ones.
        let chunk = ((key >> 32) * self.chunks.len() as u64) >> 32;
        let chunk = &self.chunks[chunk as usize];
        let slot = match chunk.get().and_then(|chunk| chunk.find(key)) {
            Some(slot) => slot,
            None => chunk
                .get_or_init(|| Box::new(Chunk::new()))
                .place(key, self.per_chunk),
        };
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        &slot.state
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::bucket::TokenBucket;
    use super::*;

    fn take(kept: &DistinctBuckets, key: u64) -> bool {
        let shape = TokenBucket::new(1, Duration::from_secs(60));
        shape.take_in(kept.bucket_state(key), 1, 0).allowed
    }

    /// Keys that all fall into the first chunk (high bits zero), with distinct homes.
    fn first_chunk_key(n: u64) -> u64 {
        n + 1
    }

    #[test]
    fn keeps_one_bucket_per_key_up_to_the_capacity() {
        let kept = DistinctBuckets::new(3);
        for key in [1, 2, 1, 3, 2] {
            kept.bucket_state(key);
        }
        assert_eq!(kept.len(), 3);
        assert!(take(&kept, 1));
        assert!(!take(&kept, 1), "the same one");
        for key in 10..1000 {
            kept.bucket_state(key);
        }
        assert_eq!(kept.len(), 3, "bounded");
    }

    #[test]
    fn a_bucket_used_since_the_hand_passed_outlives_one_that_was_not() {
        let kept = DistinctBuckets::new(3);
        for key in [1, 2, 3] {
            assert!(take(&kept, key));
        }
        // All marked: the first insertion clears every mark and evicts key 1 (the oldest).
        kept.bucket_state(4);
        // Key 2 is used again; key 3 is not: 3 goes next, and 2's tokens are kept.
        kept.bucket_state(2);
        kept.bucket_state(5);
        assert!(!take(&kept, 2), "kept, spent");
        assert_eq!(kept.len(), 3);
        assert!(take(&kept, 3), "key 3 left: a fresh bucket");
    }

    #[test]
    fn the_bound_holds_per_chunk_and_in_all() {
        let kept = DistinctBuckets::new(10_000);
        assert_eq!(kept.chunks.len(), 250);
        // Keys spread as keyed hashes are.
        let mut key = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..50_000 {
            key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            kept.bucket_state(key);
        }
        assert_eq!(kept.len(), 10_000);
        // One chunk taking every key keeps PER_CHUNK of them, each still found.
        let crowded = DistinctBuckets::new(10_000);
        for n in 0..200 {
            crowded.bucket_state(first_chunk_key(n));
        }
        assert_eq!(crowded.len(), PER_CHUNK);
        let last = first_chunk_key(199);
        assert!(take(&crowded, last));
        assert!(!take(&crowded, last), "found again, not made afresh");
    }

    #[test]
    fn concurrent_checks_share_each_key_s_bucket() {
        let kept = std::sync::Arc::new(DistinctBuckets::new(100));
        let shape = std::sync::Arc::new(TokenBucket::new(1000, Duration::from_secs(3600)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (kept, shape) = (std::sync::Arc::clone(&kept), std::sync::Arc::clone(&shape));
                std::thread::spawn(move || {
                    (0..600)
                        .filter(|_| shape.take_in(kept.bucket_state(42), 1, 0).allowed)
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000);
    }
}
