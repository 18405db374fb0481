//! The log and how much of it is durable: the one owner of journal sequence
//! numbers.
//!
//! Every change to a node's durable state goes through `Storage`: it changes
//! the in-memory [`Log`] and issues the journal record that says so, in the
//! same call, so the two can never disagree. The host takes the issued records
//! with the next `Ready` and reports with `persisted(seq)` how far they are
//! durable; `Storage` turns that into the durable *log index* the rest of the
//! engine needs (a leader counts itself only up to it; an acknowledgement may
//! name only entries below it).
//!
//! Truncation is the subtle part: an entry that was durable and then dropped
//! by a conflicting leader is not durable any more, and any acknowledgement
//! that was waiting for it must not go out. `durable_index` is pulled back to
//! the truncation point and `truncations` counts them, so a held
//! acknowledgement can tell that its entries may be gone.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::configs::ConfigLog;
use crate::entry::Entry;
use crate::journal::{DurableState, Record};
use crate::log::Log;
use crate::membership::Membership;
use crate::types::{HardState, Index, NodeId, Seq, Term};

/// The log, the records issued for it, and how far they are durable.
#[derive(Debug)]
pub(crate) struct Storage {
    log: Log,
    /// The configurations of `log`, kept in step with every change to it.
    configs: ConfigLog,
    /// Sequence number of the next record.
    next_seq: Seq,
    /// Records up to here are durable.
    durable_seq: Seq,
    /// Entries `..= durable_index` of the current log are durable.
    durable_index: Index,
    /// Append records not yet durable: (seq, last index written).
    unsynced: VecDeque<(Seq, Index)>,
    /// Truncations so far (acknowledgements held across one are dropped).
    truncations: u64,
    /// Records issued and not yet taken by the host.
    records: Vec<(Seq, Record)>,
    /// Whether any record in `records` must reach the disk before the node may
    /// rely on it (all but a role-only HardState).
    must_sync: bool,
    /// The term and vote of the latest HardState issued: a HardState that
    /// changes neither only records the role and needs no fsync of its own.
    last_vote: (Term, Option<NodeId>),
    /// The record that made `last_vote` (0: replayed from the journal, durable).
    vote_seq: Seq,
    /// Entries in the last `Append` record taken: a new one reserves that
    /// many. A leader's record grows one proposal at a time (merged below);
    /// grown by doubling, a batch of 4,096 entries was copied twice over
    /// (`examples/closed_loop 4096`, BENCHMARKS.md). At most one batch long.
    append_hint: usize,
}

impl Storage {
    /// Storage holding what was replayed from the journal; `base` is the
    /// configuration as of the log's snapshot index (the snapshot's, or the
    /// bootstrap configuration for a log that starts at 1).
    pub fn new(durable: DurableState, base: Membership) -> Self {
        let last_index = durable.log.last_index();
        let mut configs = ConfigLog::new(durable.log.snapshot_index(), base);
        configs.on_append(durable.log.iter());
        Storage {
            configs,
            log: durable.log,
            next_seq: durable.last_seq + 1,
            durable_seq: durable.last_seq,
            durable_index: last_index,
            unsynced: VecDeque::new(),
            truncations: 0,
            records: Vec::new(),
            must_sync: false,
            last_vote: (durable.hard.term, durable.hard.voted_for),
            vote_seq: 0,
            append_hint: 0,
        }
    }

    /// The in-memory log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The configurations of the log.
    pub fn configs(&self) -> &ConfigLog {
        &self.configs
    }

    /// Sequence number of the last record issued (0 if none).
    pub fn last_seq(&self) -> Seq {
        self.next_seq - 1
    }

    /// Records up to here are durable.
    pub fn durable_seq(&self) -> Seq {
        self.durable_seq
    }

    /// Entries up to here are durable.
    pub fn durable_index(&self) -> Index {
        self.durable_index
    }

    /// Truncations so far.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// Whether records are waiting to be taken.
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// Takes the issued records, and whether they need an fsync.
    pub fn take_records(&mut self) -> (Vec<(Seq, Record)>, bool) {
        let sync = core::mem::take(&mut self.must_sync);
        let last_append = self.records.iter().rev().find_map(|(_, r)| match r {
            Record::Append { entries, .. } => Some(entries.len()),
            _ => None,
        });
        if let Some(n) = last_append {
            self.append_hint = n;
        }
        (core::mem::take(&mut self.records), sync)
    }

    /// Issues a record; returns its sequence number.
    pub fn write(&mut self, record: Record) -> Seq {
        self.must_sync = true;
        let record = match record {
            Record::Append { first_index, entries: new } => {
                // Consecutive appends in one Ready share a record: one frame, one seq.
                if let Some((seq, Record::Append { entries, .. })) = self.records.last_mut() {
                    if entries.last().map(|e| e.index + 1) == Some(first_index) {
                        entries.extend(new); // moved, not copied
                        let seq = *seq;
                        if let Some(last) = self.unsynced.back_mut() {
                            if last.0 == seq {
                                last.1 = self.log.last_index();
                            }
                        }
                        return seq;
                    }
                }
                let mut new = new;
                new.reserve(self.append_hint.saturating_sub(new.len()));
                Record::Append { first_index, entries: new }
            }
            other => other,
        };
        self.issue(record)
    }

    fn issue(&mut self, record: Record) -> Seq {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Record::Append { entries, .. } = &record {
            if let Some(e) = entries.last() {
                self.unsynced.push_back((seq, e.index));
            }
        }
        self.records.push((seq, record));
        seq
    }

    /// Issues a HardState record. One that changes only the role (a node
    /// becoming pre-candidate, a pre-candidate going back to follower, a
    /// leader stepping down in its own term) is written for the record but
    /// does not by itself ask for an fsync: nothing the node does depends on
    /// it being durable, and restart always begins as follower.
    pub fn write_hard_state(&mut self, hs: HardState) -> Seq {
        let vote = (hs.term, hs.voted_for);
        if vote == self.last_vote {
            return self.issue(Record::HardState(hs));
        }
        self.last_vote = vote;
        self.vote_seq = self.write(Record::HardState(hs));
        self.vote_seq
    }

    /// The record that holds the current term and vote: a vote granted again
    /// (a candidate asking twice) waits for it, not for a new record.
    pub fn vote_seq(&self) -> Seq {
        self.vote_seq
    }

    /// Appends entries (contiguous, right after the last) and issues their record.
    pub fn append(&mut self, entries: Vec<Entry>) -> Seq {
        let Some(first) = entries.first().map(|e| e.index) else {
            return self.last_seq();
        };
        debug_assert_eq!(first, self.log.last_index() + 1, "appends are contiguous");
        for e in &entries {
            self.log.append(e.clone());
        }
        self.configs.on_append(&entries);
        self.write(Record::Append { first_index: first, entries })
    }

    /// Drops the log from `from` on and issues the record. The caller has
    /// checked that nothing committed is dropped.
    pub fn truncate_from(&mut self, from: Index) {
        self.log.truncate_from(from);
        self.configs.truncate_from(from);
        self.forget_after(from - 1);
        self.write(Record::Truncate { from_index: from });
    }

    /// Entries above `index` are no longer the ones that were (or will be)
    /// made durable.
    fn forget_after(&mut self, index: Index) {
        self.truncations += 1;
        self.durable_index = self.durable_index.min(index);
        for u in self.unsynced.iter_mut() {
            u.1 = u.1.min(index);
        }
    }

    /// Issues the record of a snapshot covering the log up to `index`: once it
    /// is durable, so is everything up to `index`.
    pub fn write_snapshot(&mut self, meta: crate::journal::SnapshotMeta) -> Seq {
        let index = meta.index;
        let seq = self.write(Record::Snapshot(meta));
        self.unsynced.push_back((seq, index));
        seq
    }

    /// The record whose durability makes the log durable up to `index`, or
    /// `None` if it already is. An acknowledgement of `index` waits for
    /// exactly that record — not for the last one issued, which may be a
    /// role-only HardState that no fsync is coming for.
    pub fn sync_point(&self, index: Index) -> Option<Seq> {
        if index <= self.durable_index {
            return None;
        }
        let covering = self.unsynced.iter().find(|u| u.1 >= index).map(|u| u.0);
        debug_assert!(covering.is_some(), "entry {index} is neither durable nor being written");
        Some(covering.unwrap_or(self.next_seq - 1))
    }

    /// Drops the entries up to `index`, covered by a durable snapshot.
    pub fn compact_to(&mut self, index: Index, term: Term) {
        self.log.compact_to(index, term);
        self.configs.compact_to(index);
    }

    /// Replaces the whole log by a snapshot at `(index, term)` whose entry this
    /// log does not hold (InstallSnapshot of a diverged follower).
    pub fn reset_to_snapshot(&mut self, index: Index, term: Term, membership: Membership) {
        self.log = Log::with_snapshot(index, term);
        self.configs.reset(index, membership);
        self.forget_after(index);
    }

    /// Records up to `seq` are durable. Returns whether that is news.
    pub fn persisted(&mut self, seq: Seq) -> bool {
        if seq <= self.durable_seq {
            return false;
        }
        debug_assert!(seq < self.next_seq, "persisted({seq}) but only {} records were issued", self.next_seq - 1);
        let seq = seq.min(self.next_seq - 1);
        self.durable_seq = seq;
        while let Some(&(s, idx)) = self.unsynced.front() {
            if s > seq {
                break;
            }
            self.unsynced.pop_front();
            self.durable_index = self.durable_index.max(idx);
        }
        true
    }

    /// Checks the bookkeeping (debug builds).
    pub fn debug_check(&self) {
        debug_assert!(self.durable_index <= self.log.last_index(), "durable index past the log");
        debug_assert!(self.durable_seq < self.next_seq, "durable seq past what was issued");
        debug_assert!(self.unsynced.iter().all(|u| u.0 > self.durable_seq), "a synced append still listed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;
    use crate::types::Role;
    use alloc::vec;

    fn e(term: Term, index: Index) -> Entry {
        Entry { term, index, time: 0, payload: Payload::Noop }
    }

    #[test]
    fn appends_in_one_batch_share_a_record_and_become_durable_together() {
        let mut s = Storage::new(DurableState::default(), Membership::default());
        let a = s.append(vec![e(1, 1)]);
        let b = s.append(vec![e(1, 2), e(1, 3)]);
        assert_eq!(a, b, "one frame for consecutive appends");
        assert_eq!(s.durable_index(), 0);
        assert!(s.persisted(a));
        assert_eq!(s.durable_index(), 3);
        assert!(!s.persisted(a), "old news");
    }

    #[test]
    fn truncation_pulls_the_durable_index_back() {
        let mut s = Storage::new(DurableState::default(), Membership::default());
        let seq = s.append(vec![e(1, 1), e(1, 2), e(1, 3)]);
        s.persisted(seq);
        s.truncate_from(2);
        assert_eq!(s.durable_index(), 1);
        assert_eq!(s.truncations(), 1);
        let seq = s.append(vec![e(2, 2)]);
        assert_eq!(s.durable_index(), 1, "the new entry 2 is not durable yet");
        s.persisted(seq);
        assert_eq!(s.durable_index(), 2);
    }

    #[test]
    fn a_role_only_hard_state_needs_no_fsync() {
        let mut s = Storage::new(DurableState::default(), Membership::default());
        let hs = |term, voted_for, role| HardState { term, voted_for, role, lost_data: false };
        s.write_hard_state(hs(0, None, Role::PreCandidate));
        s.write_hard_state(hs(0, None, Role::Follower));
        let (records, sync) = s.take_records();
        assert_eq!(records.len(), 2, "written for the record");
        assert!(!sync, "a failed pre-vote round changes nothing durable");
        s.write_hard_state(hs(1, Some(1), Role::Candidate));
        assert!(s.take_records().1, "a new term and vote must be durable");
    }
}
