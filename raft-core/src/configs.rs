//! The configurations of one node's log, by index.
//!
//! A configuration takes effect when its entry is appended and reverts when
//! the entry is truncated, so a node needs more than "the current one": the
//! configuration as of its snapshot (`base`), and the one each `ConfChange`
//! entry after it produced. From these it answers the latest configuration
//! (the one in force), the configuration as of any index still in the log
//! (what a snapshot at that index records, what is committed), and the index
//! of the latest change (a change is unfinished while that index is above the
//! commit index).
//!
//! `Storage` (in [`crate::storage`]) owns the only [`ConfigLog`] and keeps it in step
//! with every append, truncation, compaction and snapshot install, so it can
//! never disagree with the log.

use alloc::collections::VecDeque;

use crate::entry::{Entry, Payload};
use crate::membership::Membership;
use crate::types::Index;

/// A log's configurations: as of the snapshot, then one per change entry.
#[derive(Clone, Debug, Default)]
pub struct ConfigLog {
    /// The configuration as of `base_index` (the snapshot, or bootstrap at 0).
    base: Membership,
    base_index: Index,
    /// (index of a ConfChange entry, the configuration it produced), ascending.
    changes: VecDeque<(Index, Membership)>,
    /// Bumped whenever the configurations change, so the engine can tell
    /// cheaply whether the one in force may have.
    version: u64,
}

impl ConfigLog {
    /// A log whose configuration as of `index` is `base`.
    pub fn new(index: Index, base: Membership) -> Self {
        ConfigLog { base, base_index: index, changes: VecDeque::new(), version: 0 }
    }

    /// A number that changes whenever any configuration here does.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The configuration in force: the newest in the log.
    pub fn latest(&self) -> &Membership {
        self.changes.back().map_or(&self.base, |c| &c.1)
    }

    /// Index of the newest configuration entry (the base's index if none).
    pub fn latest_index(&self) -> Index {
        self.changes.back().map_or(self.base_index, |c| c.0)
    }

    /// Index of the configuration entry in force as of `index` (the base's
    /// index if none).
    pub fn index_as_of(&self, index: Index) -> Index {
        self.changes.iter().rev().find(|c| c.0 <= index).map_or(self.base_index, |c| c.0)
    }

    /// The configuration as of `index`: the newest one at or below it.
    pub fn as_of(&self, index: Index) -> &Membership {
        self.changes.iter().rev().find(|c| c.0 <= index).map_or(&self.base, |c| &c.1)
    }

    /// Notes appended entries: each ConfChange produces the next
    /// configuration. A change the current configuration refuses is applied
    /// as a no-op (the same on every replica: it is a function of the log).
    pub fn on_append<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) {
        for e in entries {
            if let Payload::ConfChange(cc) = &e.payload {
                let next = self.latest().apply(cc).unwrap_or_else(|_| self.latest().clone());
                self.changes.push_back((e.index, next));
                self.version += 1;
            }
        }
    }

    /// Entries from `from` on were dropped: so are their configurations.
    pub fn truncate_from(&mut self, from: Index) {
        while self.changes.back().is_some_and(|c| c.0 >= from) {
            self.changes.pop_back();
            self.version += 1;
        }
    }

    /// The log was compacted up to `index`: the configuration as of `index`
    /// becomes the base.
    pub fn compact_to(&mut self, index: Index) {
        if index <= self.base_index {
            return;
        }
        self.base = self.as_of(index).clone();
        self.base_index = index;
        while self.changes.front().is_some_and(|c| c.0 <= index) {
            self.changes.pop_front();
        }
    }

    /// The whole log was replaced by a snapshot at `index` whose configuration
    /// is `membership`.
    pub fn reset(&mut self, index: Index, membership: Membership) {
        self.base = membership;
        self.base_index = index;
        self.changes.clear();
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{Change, ConfChange};
    use alloc::vec;

    fn cc(index: Index, change: Change) -> Entry {
        Entry {
            term: 1,
            index,
            time: 0,
            payload: Payload::ConfChange(ConfChange::Begin { joint: false, changes: vec![change] }),
        }
    }

    #[test]
    fn takes_effect_on_append_and_reverts_on_truncation() {
        let mut c = ConfigLog::new(0, Membership::bootstrap(&[1, 2, 3]));
        c.on_append(&[cc(5, Change::AddVoter { id: 4, inc: 0 })]);
        assert_eq!(c.latest().voter_ids(), vec![1, 2, 3, 4]);
        assert_eq!(c.latest_index(), 5);
        assert_eq!(c.as_of(4).voter_ids(), vec![1, 2, 3]);
        c.truncate_from(5);
        assert_eq!(c.latest().voter_ids(), vec![1, 2, 3], "a truncated change reverts");
        assert_eq!(c.latest_index(), 0);
    }

    #[test]
    fn a_refused_change_is_a_no_op_but_still_a_configuration_entry() {
        let mut c = ConfigLog::new(0, Membership::bootstrap(&[1, 2, 3]));
        c.on_append(&[cc(2, Change::Remove { id: 9 })]);
        assert_eq!(c.latest().voter_ids(), vec![1, 2, 3]);
        assert_eq!(c.latest_index(), 2);
    }

    #[test]
    fn compaction_keeps_the_configuration_as_of_the_snapshot() {
        let mut c = ConfigLog::new(0, Membership::bootstrap(&[1]));
        c.on_append(&[cc(3, Change::AddVoter { id: 2, inc: 0 }), cc(7, Change::AddVoter { id: 3, inc: 0 })]);
        c.compact_to(5);
        assert_eq!(c.as_of(5).voter_ids(), vec![1, 2], "what a snapshot at 5 records");
        assert_eq!(c.latest().voter_ids(), vec![1, 2, 3]);
        c.truncate_from(7);
        assert_eq!(c.latest().voter_ids(), vec![1, 2]);
        c.reset(9, Membership::bootstrap(&[4]));
        assert_eq!(c.latest().voter_ids(), vec![4]);
    }
}
