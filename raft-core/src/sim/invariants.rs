//! Raft's safety properties, checked incrementally after every simulator event.
//!
//! Each node's log is mirrored as a chain of hashes: `chain[i]` hashes entry `i`
//! together with `chain[i-1]`, so two equal chain values at one index mean the
//! two logs are identical up to there. That turns every property into O(1)
//! comparisons per entry touched, with no full-log scans per event:
//!
//! * **Election safety**: at most one leader per term.
//! * **Log matching**: two logs holding an entry with the same index and term
//!   hold the same prefix (same `(index, term)` ⇒ same chain value).
//! * **Leader completeness**: a new leader's log holds every committed entry.
//! * **State machine safety**: every node applies the same entry at an index,
//!   in index order, each once.
//! * **Durability**: a committed entry is never truncated and a majority always
//!   holds the committed prefix durably, across crashes and restarts.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::entry::{Entry, Payload};
use crate::journal::Record;
use crate::log::Log;
use crate::quorum::{JointConfig, MajorityConfig};
use crate::types::{Index, NodeId, Term};

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of an entry's contents chained onto its predecessor's.
pub fn chain_hash(prev: u64, e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let (kind, a, b, c): (u8, u64, u64, u64) = match &e.payload {
        Payload::Noop => (0, 0, 0, 0),
        Payload::Command(_) => (1, 0, 0, 0),
        Payload::ConfChange(_) => (2, 0, 0, 0),
        Payload::Register { owner, .. } => (3, *owner, 0, 0),
        Payload::Write { session, seq, ack, .. } => (4, *session, *seq, *ack),
        Payload::KeepAlive { session, ack, .. } => (5, *session, 0, *ack),
    };
    let encoded;
    let data: &[u8] = match &e.payload {
        Payload::Command(d) | Payload::Write { command: d, .. } => d,
        Payload::ConfChange(cc) => {
            encoded = postcard::to_allocvec(cc).unwrap_or_default();
            &encoded
        }
        _ => &[],
    };
    let header = [a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes()];
    for b in core::iter::once(kind).chain(header.iter().flatten().copied()).chain(data.iter().copied()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(prev ^ mix(h ^ e.term.rotate_left(17) ^ e.index.rotate_left(41) ^ e.time.rotate_left(7)))
}

/// A chain of hashes mirroring one log: entry `i` at position `i - base - 1`,
/// where `base` is the index its snapshot covers (whose chain value is kept).
#[derive(Clone, Debug, Default)]
pub struct Chain {
    base: Index,
    base_hash: u64,
    hashes: VecDeque<u64>,
}

impl Chain {
    /// A chain for `log`, whose snapshot boundary has chain value `base_hash`.
    pub fn from_log(log: &Log, base_hash: u64) -> Self {
        let mut c = Chain { base: log.snapshot_index(), base_hash, hashes: VecDeque::new() };
        for e in log.iter() {
            c.push(e);
        }
        c
    }
    /// Last index mirrored.
    pub fn len(&self) -> Index {
        self.base + self.hashes.len() as Index
    }
    /// Whether nothing after the base is mirrored.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
    /// Chain value at `index`, if mirrored.
    pub fn at(&self, index: Index) -> Option<u64> {
        if index == self.base {
            return Some(self.base_hash);
        }
        if index < self.base {
            return None;
        }
        self.hashes.get((index - self.base - 1) as usize).copied()
    }
    fn push(&mut self, e: &Entry) -> u64 {
        let prev = self.at(e.index - 1).unwrap_or(0);
        let h = chain_hash(prev, e);
        self.hashes.push_back(h);
        h
    }
    fn truncate(&mut self, from: Index) {
        let keep = from.saturating_sub(1).saturating_sub(self.base) as usize;
        self.hashes.truncate(keep);
    }
    /// Drops everything up to `index`, whose chain value becomes the base.
    fn compact(&mut self, index: Index, hash: u64) {
        if index <= self.base {
            return;
        }
        if self.at(index) == Some(hash) {
            while self.base < index {
                self.hashes.pop_front();
                self.base += 1;
            }
        } else {
            self.hashes.clear();
            self.base = index;
        }
        self.base_hash = hash;
    }
    /// Applies a journal record; reports the entries appended (index, term, hash).
    fn apply(
        &mut self,
        rec: &Record,
        committed: impl Fn(Index) -> Option<u64>,
        mut on_entry: impl FnMut(Index, Term, u64),
    ) {
        match rec {
            Record::Append { entries, .. } => {
                for e in entries {
                    if e.index <= self.base {
                        continue;
                    }
                    if e.index != self.len() + 1 {
                        self.truncate(e.index);
                    }
                    let h = self.push(e);
                    on_entry(e.index, e.term, h);
                }
            }
            Record::Truncate { from_index } => self.truncate(*from_index),
            Record::Snapshot(meta) => {
                if let Some(h) = committed(meta.index) {
                    self.compact(meta.index, h);
                }
            }
            Record::HardState(_) | Record::Checkpoint { .. } | Record::BatchEnd { .. } => {}
        }
    }
}

/// The incremental checker.
#[derive(Debug, Default)]
pub struct Invariants {
    ids: Vec<NodeId>,
    /// The voters a committed prefix must be durable on a quorum of: the
    /// configuration as of the newest commit anyone reported (bootstrap first).
    config: JointConfig,
    leaders: BTreeMap<Term, NodeId>,
    /// The newest leader term seen when the newest committed entry was first
    /// applied: the term it was committed in is at most this.
    commit_term_bound: Term,
    by_index_term: BTreeMap<(Index, Term), u64>,
    /// Chain values of the committed prefix, index `i` at `i - 1`.
    committed: Vec<u64>,
    /// `by_index_term` holds nothing at or below this index (pruned: the
    /// committed prefix is checked against `committed` instead).
    pruned_to: Index,
    mem: Vec<Chain>,
    durable: Vec<Chain>,
    applied: Vec<Index>,
    /// Nodes whose disk a fault damaged (wiped, or durable records lost) and
    /// that do not yet durably hold the committed prefix again: they are
    /// not expected to keep what they held, and while any is damaged the
    /// committed prefix need not be durable on a quorum (the losses may have
    /// taken it below one: the cluster must then stop, not lose it).
    damaged: BTreeSet<NodeId>,
    /// Violations found, in plain words.
    pub violations: Vec<String>,
}

impl Invariants {
    /// A checker for a cluster of the given node ids.
    pub fn new(ids: &[NodeId]) -> Self {
        Invariants {
            config: JointConfig::simple(MajorityConfig::new(ids.to_vec())),
            ids: ids.to_vec(),
            mem: ids.iter().map(|_| Chain::default()).collect(),
            durable: ids.iter().map(|_| Chain::default()).collect(),
            applied: ids.iter().map(|_| 0).collect(),
            ..Default::default()
        }
    }

    /// A node joined the cluster (it starts with an empty log).
    pub fn add_node(&mut self, id: NodeId) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
            self.mem.push(Chain::default());
            self.durable.push(Chain::default());
            self.applied.push(0);
        }
    }

    /// The configuration in which the committed prefix must be durable on a
    /// quorum: the simulator passes the configuration in force on the node
    /// that reached the newest commit (the leader whose quorum decided it).
    pub fn set_config(&mut self, config: JointConfig) {
        self.config = config;
    }

    /// The configuration the committed prefix is checked against.
    pub fn config(&self) -> &JointConfig {
        &self.config
    }

    fn committed_at(&self, index: Index) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.committed.get(index as usize - 1).copied()
    }

    fn slot(&self, id: NodeId) -> usize {
        self.ids.iter().position(|&x| x == id).unwrap_or(0)
    }

    fn violate(&mut self, now: u64, msg: String) {
        if self.violations.len() < 64 {
            self.violations.push(format!("t={now}us: {msg}"));
        }
    }

    /// Index of the highest committed entry seen anywhere.
    pub fn committed_index(&self) -> Index {
        self.committed.len() as Index
    }

    /// The mirror of a node's in-memory log.
    pub fn chain(&self, id: NodeId) -> &Chain {
        &self.mem[self.slot(id)]
    }

    /// Records a node issued (in order).
    pub fn on_records(&mut self, now: u64, id: NodeId, records: &[(u64, Record)]) {
        let s = self.slot(id);
        for (_, rec) in records {
            match rec {
                Record::Truncate { from_index } => {
                    let from = *from_index;
                    if from <= self.committed_index() && self.mem[s].at(from) == self.committed_at(from) {
                        self.violate(now, format!("node {id} truncated committed entry {from}"));
                    }
                }
                // Judged after the same Ready's applies: see `on_snapshot_records`.
                Record::Snapshot(_) => continue,
                _ => {}
            }
            let mut fresh: Vec<(Index, Term, u64)> = Vec::new();
            let committed = &self.committed;
            let lookup = |i: Index| if i == 0 { Some(0) } else { committed.get(i as usize - 1).copied() };
            self.mem[s].apply(rec, lookup, |i, t, h| fresh.push((i, t, h)));
            for (i, t, h) in fresh {
                if i <= self.pruned_to {
                    continue; // checked against the committed prefix when applied
                }
                match self.by_index_term.get(&(i, t)) {
                    Some(&h0) if h0 != h => {
                        self.violate(
                            now,
                            format!("log matching: node {id} holds ({i}, term {t}) with a different prefix"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        self.by_index_term.insert((i, t), h);
                    }
                }
            }
        }
    }

    /// The Snapshot records of a Ready, after its applied entries were seen.
    pub fn on_snapshot_records(&mut self, now: u64, id: NodeId, records: &[(u64, Record)]) {
        let s = self.slot(id);
        for (_, rec) in records {
            if let Record::Snapshot(meta) = rec {
                if meta.index > self.committed_index() {
                    self.violate(now, format!("node {id} snapshotted index {} beyond the commit point", meta.index));
                }
                let committed = &self.committed;
                let lookup = |i: Index| if i == 0 { Some(0) } else { committed.get(i as usize - 1).copied() };
                self.mem[s].apply(rec, lookup, |_, _, _| {});
            }
        }
    }

    /// A node installed a snapshot from the leader covering up to `index`.
    pub fn on_install(&mut self, now: u64, id: NodeId, index: Index) {
        let s = self.slot(id);
        if index > self.committed_index() {
            self.violate(now, format!("node {id} installed a snapshot at {index}, beyond the commit point"));
        }
        if index > self.applied[s] {
            self.applied[s] = index;
        }
    }

    /// Forgets log-matching records for the committed prefix (bounded memory on
    /// long runs); committed entries are checked against `committed` instead.
    fn prune(&mut self) {
        let c = self.committed_index();
        if c > self.pruned_to + 4096 {
            self.by_index_term = self.by_index_term.split_off(&(c + 1, 0));
            self.pruned_to = c;
        }
    }

    /// Records up to and including these became durable on `id`.
    pub fn on_durable(&mut self, id: NodeId, records: &[(u64, Record)]) {
        let s = self.slot(id);
        let committed = &self.committed;
        let lookup = |i: Index| if i == 0 { Some(0) } else { committed.get(i as usize - 1).copied() };
        for (_, rec) in records {
            self.durable[s].apply(rec, lookup, |_, _, _| {});
        }
    }

    /// Node `id`, leading `term`, answered a read under its lease: no node
    /// may have become leader of a later term by now (the lease's claim,
    /// checked directly, whether or not a stale read came of it).
    /// `lease` is the leader's clock and the end of its lease, for the report.
    pub fn on_lease_read(&mut self, now: u64, id: NodeId, term: Term, lease: (u64, Option<u64>)) {
        if let Some((&later, &other)) = self.leaders.range(term + 1..).next() {
            let (clock, until) = lease;
            self.violate(
                now,
                format!(
                    "lease read: node {id} answered a read on its term-{term} lease (its clock {clock}, lease until \
                     {until:?}) after node {other} became leader of term {later}"
                ),
            );
        }
    }

    /// A node became leader of `term`.
    pub fn on_leader(&mut self, now: u64, id: NodeId, term: Term) {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                self.violate(now, format!("election safety: nodes {other} and {id} both lead term {term}"));
            }
        } else {
            self.leaders.insert(term, id);
        }
        // Raft's leader completeness binds leaders of terms after the one in
        // which an entry was committed; a leader of an older term can still
        // be elected late (its votes were cast before the others moved on).
        // The entry was committed in some leader's term, at most the newest
        // leader term seen when it was first applied.
        let c = self.committed_index();
        if c > 0 && term > self.commit_term_bound && self.mem[self.slot(id)].at(c) != self.committed.last().copied() {
            self.violate(now, format!("leader completeness: node {id} leads term {term} without committed entry {c}"));
        }
    }

    /// A node applied the entry at `index`.
    pub fn on_applied(&mut self, now: u64, id: NodeId, index: Index) {
        let s = self.slot(id);
        if index != self.applied[s] + 1 {
            self.violate(now, format!("node {id} applied {index} after {}", self.applied[s]));
        }
        self.applied[s] = index;
        let Some(h) = self.mem[s].at(index) else {
            self.violate(now, format!("node {id} applied {index} which is not in its log"));
            return;
        };
        let c = self.committed_index();
        if index <= c {
            if self.committed[index as usize - 1] != h {
                self.violate(now, format!("state machine safety: node {id} applied a different entry at {index}"));
            }
        } else if index == c + 1 {
            self.committed.push(h);
            self.commit_term_bound = self.leaders.keys().next_back().copied().unwrap_or(0);
            self.prune();
        } else {
            self.violate(now, format!("node {id} applied {index} beyond the committed prefix {c}"));
        }
    }

    /// A fault damaged a node's disk (it is down): what it held durably may
    /// be gone.
    pub fn on_damage(&mut self, now: u64, id: NodeId) {
        self.check_durable_majority(now);
        self.damaged.insert(id);
        // What it holds durably is unknown until it restarts: nothing, for
        // the repair check.
        let s = self.slot(id);
        self.durable[s] = Chain::default();
    }

    /// Whether `id` is damaged and has not caught up since.
    pub fn is_damaged(&self, id: NodeId) -> bool {
        self.damaged.contains(&id)
    }

    /// A node crashed: its memory is gone, its durable log stays.
    pub fn on_crash(&mut self, now: u64, _id: NodeId) {
        self.check_durable_majority(now);
    }

    /// A node restarted with `log` recovered from its journal.
    pub fn on_restart(&mut self, now: u64, id: NodeId, log: &Log) {
        let s = self.slot(id);
        let snap = log.snapshot_index();
        let Some(base_hash) = self.committed_at(snap) else {
            self.violate(now, format!("node {id} restarted from a snapshot at {snap}, beyond the commit point"));
            return;
        };
        let chain = Chain::from_log(log, base_hash);
        // Whatever committed prefix this node held durably must survive the
        // crash. (Its other durable entries may legitimately be gone: a Truncate
        // written before the crash can survive while the Append after it does not.)
        // (A snapshot recovered past `c` covers it: the snapshot itself was
        // checked to be of committed state.)
        let c = self.committed_index().min(self.durable[s].len());
        let covered = c <= snap;
        if c > 0
            && !self.damaged.contains(&id)
            && !covered
            && self.durable[s].at(c) == self.committed.get(c as usize - 1).copied()
            && chain.at(c) != self.durable[s].at(c)
        {
            self.violate(
                now,
                format!(
                    "node {id} lost committed entries up to {c} in a crash (recovered log ends at {})",
                    chain.len()
                ),
            );
        }
        self.mem[s] = chain.clone();
        self.durable[s] = chain;
        self.applied[s] = log.snapshot_index();
        self.check_durable_majority(now);
    }

    /// A quorum of the committed configuration must hold the committed
    /// prefix durably.
    pub fn check_durable_majority(&mut self, now: u64) {
        let c = self.committed_index();
        if c == 0 {
            return;
        }
        let want = self.committed.last().copied();
        let holds = |id: NodeId| self.ids.iter().position(|&x| x == id).is_some_and(|k| self.durable[k].at(c) == want);
        // A damaged node that durably holds the committed prefix again has
        // been repaired by the cluster.
        let repaired: Vec<NodeId> = self.damaged.iter().copied().filter(|&id| holds(id)).collect();
        for id in repaired {
            self.damaged.remove(&id);
        }
        if !self.damaged.is_empty() {
            return;
        }
        if !self.config.is_quorum(holds) {
            let holders: Vec<NodeId> = self.ids.iter().copied().filter(|&id| holds(id)).collect();
            let voters = self.config.ids();
            self.violate(
                now,
                format!("committed entry {c} is durable only on {holders:?}, no quorum of voters {voters:?}"),
            );
        }
    }
}
