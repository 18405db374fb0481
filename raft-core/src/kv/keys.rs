//! [`Keys`]: the store's keys and their records — a hash table for the
//! point reads and writes every put makes, a B-tree of the names for the
//! reads that need key order (ranges, counts, snapshots), and the records
//! themselves in a slab both point into.
//!
//! A B-tree alone made every put search the tree: a string comparison at
//! each step, about twenty for 4,096 keys, the largest cost of a put after
//! the log itself and the one that grew with the number of keys (the
//! closed-loop bench, BENCHMARKS.md). Now a put to a key that exists is one
//! hash lookup; only creating or deleting a key touches the tree. Ordered
//! reads walk the tree and take each record from the slab by its position
//! (no hashing), so a range or a snapshot costs a little more than with the
//! records in the tree's nodes, not a hash lookup per row.
//!
//! The table is never iterated (its order is the hasher's, which would make
//! replicas disagree): everything that walks keys walks the tree. Its hasher
//! takes a seed the host may pick at random ([`FxBuild`]), so that clients,
//! who choose the keys, cannot aim for one bucket. Slab positions depend on
//! the order keys came and went, the same on every replica that applied the
//! same entries, and are never seen outside this file. When more than half
//! the places are free the slab is rebuilt in key order, so a store that
//! held a million keys and deleted them does not keep their places.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

use super::record::Record;
use crate::hash::FxBuild;

/// Free places in the slab below which it is never compacted (a small store
/// is not worth moving).
const COMPACT_MIN: usize = 1024;

/// The keys held and their records (see the [module](self)).
#[derive(Clone)]
pub(crate) struct Keys {
    /// Each key's place in `slab`, found by hash.
    index: hashbrown::HashMap<Arc<str>, u32, FxBuild>,
    /// The same keys (the same allocations) in order, with their places.
    order: BTreeMap<Arc<str>, u32>,
    /// The records; `None` in a place a deleted key left.
    slab: Vec<Option<Record>>,
    /// The places left free, the last freed last.
    free: Vec<u32>,
}

impl Keys {
    /// No keys, hashed from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Keys {
            index: hashbrown::HashMap::with_hasher(FxBuild { seed }),
            order: BTreeMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.index.len(), self.order.len());
        debug_assert_eq!(self.index.len() + self.free.len(), self.slab.len());
        self.index.len()
    }

    /// The record of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&Record> {
        let &at = self.index.get(key)?;
        Some(self.at(at))
    }

    /// The record of `key`, to change in place (its key stays).
    #[inline]
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Record> {
        let &at = self.index.get(key)?;
        let r = self.slab.get_mut(at as usize).and_then(Option::as_mut);
        Some(r.expect("every key in the table has a record in the slab"))
    }

    /// Adds a key that is not held; false (and nothing changes) if it is.
    pub(crate) fn insert(&mut self, r: Record) -> bool {
        // One hash lookup: the vacant entry is filled once the place is known.
        let hashbrown::hash_map::Entry::Vacant(slot) = self.index.entry(r.key.clone()) else { return false };
        let key = r.key.clone();
        let at = match self.free.pop() {
            Some(at) => {
                self.slab[at as usize] = Some(r);
                at
            }
            None => {
                // A store holds far fewer than 2^32 keys: the entries that
                // made them would not fit in memory.
                let at = u32::try_from(self.slab.len()).expect("fewer than 2^32 keys");
                self.slab.push(Some(r));
                at
            }
        };
        slot.insert(at);
        self.order.insert(key, at);
        true
    }

    /// Removes `key`; its record if it was held.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Record> {
        let at = self.index.remove(key)?;
        let was = self.order.remove(key);
        debug_assert_eq!(was, Some(at), "the table and the tree agree on every key's place");
        self.free.push(at);
        let r = self.slab.get_mut(at as usize).and_then(Option::take);
        if self.free.len() > COMPACT_MIN && self.free.len() > self.index.len() {
            self.compact();
        }
        r
    }

    /// Moves the records to the front of a slab of their own size, in key
    /// order, when more than half the places are free: memory follows the
    /// keys held, not the most ever held. Each compaction follows at least
    /// as many removals as keys remain, so its cost spreads to O(1) a
    /// removal.
    fn compact(&mut self) {
        let mut slab = Vec::with_capacity(self.index.len());
        for (key, at) in self.order.iter_mut() {
            let r = self.slab.get_mut(*at as usize).and_then(Option::take);
            *at = slab.len() as u32;
            if let Some(i) = self.index.get_mut(&**key) {
                *i = *at;
            }
            slab.push(r);
        }
        self.slab = slab;
        self.free = Vec::new();
        self.index.shrink_to_fit();
        debug_assert!(self.slab.iter().all(Option::is_some));
    }

    /// Every record, in key order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &Record> + '_ {
        self.order.values().map(|&at| self.at(at))
    }

    /// The records of the keys from `from` up to `end`, in key order.
    pub(crate) fn range<'a>(&'a self, from: &'a str, end: Bound<&'a str>) -> impl Iterator<Item = &'a Record> + 'a {
        self.order.range::<str, _>((Bound::Included(from), end)).map(|(_, &at)| self.at(at))
    }

    /// The number of keys from `from` up to `end` that `keep` keeps.
    pub(crate) fn count(&self, from: &str, end: Bound<&str>, keep: impl Fn(&str) -> bool) -> usize {
        self.order.range::<str, _>((Bound::Included(from), end)).filter(|(k, _)| keep(k)).count()
    }

    /// The record in place `at`, which a key in the table or the tree names
    /// (all three change together, in `insert` and `remove`).
    fn at(&self, at: u32) -> &Record {
        let r = self.slab.get(at as usize).and_then(Option::as_ref);
        r.expect("every place a key names holds its record")
    }
}

impl PartialEq for Keys {
    /// The same keys with the same records (whatever the seeds and places).
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.iter().zip(o.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Keys {}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|r| (&*r.key, r))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::text::Text;
    use alloc::format;
    use alloc::vec::Vec;

    fn record(key: &str, value: &str) -> Record {
        Record { key: Arc::from(key), value: Text::from(value), create: 1, modr: 1, version: 1, lease: 0 }
    }

    #[test]
    fn the_table_and_the_tree_hold_the_same_keys_in_key_order() {
        let mut keys = Keys::new(7);
        for i in (0..50).rev() {
            assert!(keys.insert(record(&format!("k{i:02}"), "v")));
        }
        assert!(!keys.insert(record("k07", "other")), "a key held is not added again");
        assert_eq!(keys.get("k07").map(|r| &*r.value), Some("v"));
        if let Some(r) = keys.get_mut("k07") {
            r.value = Text::from("changed");
        }
        assert_eq!(keys.remove("k08").map(|r| r.key), Some(Arc::from("k08")));
        assert!(keys.remove("k08").is_none());
        assert!(keys.insert(record("k08b", "v")));
        assert_eq!(keys.slab.len(), 50, "a new key takes the place a deleted one left");
        assert_eq!(keys.remove("k08b").map(|r| r.key), Some(Arc::from("k08b")));
        assert_eq!(keys.len(), 49);
        let names: Vec<&str> = keys.iter().map(|r| &*r.key).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let some: Vec<&str> = keys.range("k05", Bound::Excluded("k10")).map(|r| &*r.key).collect();
        assert_eq!(some, ["k05", "k06", "k07", "k09"]);
        assert_eq!(keys.count("k05", Bound::Unbounded, |k| k != "k07"), 43);
        assert_eq!(keys.get("k07").map(|r| &*r.value), Some("changed"));
        // The same contents compare equal whatever the seed and the history.
        let mut other = Keys::new(99);
        for r in keys.iter() {
            other.insert(r.clone());
        }
        assert_eq!(other, keys);
        if let Some(r) = other.get_mut("k00") {
            r.version = 2;
        }
        assert_ne!(other, keys);
    }

    #[test]
    fn memory_follows_the_keys_held_not_the_most_ever_held() {
        let mut keys = Keys::new(1);
        for i in 0..10_000 {
            assert!(keys.insert(record(&format!("k{i:05}"), "v")));
        }
        for i in (0..10_000).filter(|i| i % 10 != 0) {
            assert!(keys.remove(&format!("k{i:05}")).is_some());
        }
        assert_eq!(keys.len(), 1_000);
        assert!(keys.slab.len() <= 2 * 1_000 + COMPACT_MIN, "{} places for 1,000 keys", keys.slab.len());
        // Every key still finds its record, by hash and in order.
        for i in (0..10_000).step_by(10) {
            assert_eq!(keys.get(&format!("k{i:05}")).map(|r| &*r.value), Some("v"));
        }
        let names: Vec<&str> = keys.iter().map(|r| &*r.key).collect();
        assert_eq!(names.len(), 1_000);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(keys.insert(record("new", "v")));
        assert_eq!(keys.get("new").map(|r| &*r.key), Some("new"));
    }
}
