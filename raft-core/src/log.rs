//! The in-memory log: entries addressed by index, with an offset for the prefix
//! that a snapshot has compacted away.
//!
//! Lookups are O(1): the entry for index `i` lives at position
//! `i - first_index()` of a ring buffer. Compaction drops entries from the left
//! without moving the rest; truncation drops a conflicting suffix from the right.
//! The term of the last compacted entry is remembered, so the consistency check
//! of an AppendEntries that starts right after the snapshot still works.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::entry::Entry;
use crate::types::{Index, Term};

/// An indexed, compactable, in-memory Raft log.
///
/// ```
/// use raft_core::log::Log;
/// use raft_core::entry::{Entry, Payload};
/// let mut log = Log::new();
/// log.append(Entry { term: 1, index: 1, time: 0, payload: Payload::Noop });
/// assert_eq!(log.last_index(), 1);
/// assert_eq!(log.term(1), Some(1));
/// assert_eq!(log.term(0), Some(0)); // the empty prefix has term 0
/// ```
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Index of the last entry covered by the snapshot (0 if none).
    snapshot_index: Index,
    /// Term of that entry (0 if none).
    snapshot_term: Term,
    entries: VecDeque<Entry>,
    /// Sum of `Entry::size` over `entries`, kept for the memory limits.
    bytes: usize,
    /// Entries up to this index may hold payloads that point into a journal
    /// read buffer (those replayed at a restart); 0 if none do. See
    /// [`Log::compact_to`] and [`Log::release_sparse_buffers`].
    shared_until: Index,
}

/// What a payload is taken to cost as a copy of its own beyond its bytes:
/// the reference counts and the allocator's header and rounding.
const OWNED_PAYLOAD_OVERHEAD: usize = 32;

impl Log {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log whose first `index` entries are covered by a snapshot taken at `(index, term)`.
    pub fn with_snapshot(index: Index, term: Term) -> Self {
        Log { snapshot_index: index, snapshot_term: term, entries: VecDeque::new(), bytes: 0, shared_until: 0 }
    }

    /// Index of the last entry covered by the snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// Term of the last entry covered by the snapshot.
    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    /// First index held in memory (`snapshot_index + 1`, even when empty).
    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    /// Index of the last entry (the snapshot index if no entries are held).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as u64
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// Number of entries held in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entries are held in memory.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held in memory (by `Entry::size`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Term at `index`: `Some` for the snapshot boundary and every held entry,
    /// `None` for compacted indexes and indexes past the end.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is held in memory.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        let pos = index - self.first_index();
        self.entries.get(usize::try_from(pos).ok()?)
    }

    /// Entries `[lo, hi]` (inclusive), clipped to what is held, stopping before
    /// `max_bytes` would be exceeded (at least one entry is returned when any is
    /// available, so a single large entry still makes progress).
    pub fn slice(&self, lo: Index, hi: Index, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        if lo < self.first_index() || lo > hi {
            return Vec::new();
        }
        let hi = hi.min(self.last_index());
        if lo > hi {
            return Vec::new();
        }
        // Sized for the entries asked for (the byte limit may stop it
        // sooner): growing it one doubling at a time cost a reallocation per
        // few entries sent.
        let mut out = Vec::with_capacity((hi - lo + 1).min(max_entries as u64) as usize);
        let mut bytes = 0usize;
        let mut i = lo;
        while i <= hi && out.len() < max_entries {
            let Some(e) = self.entry(i) else { break };
            if !out.is_empty() && bytes + e.size() > max_bytes {
                break;
            }
            bytes += e.size();
            out.push(e.clone());
            i += 1;
        }
        out
    }

    /// Appends one entry, which must be the next index.
    // Inlined: replay calls it once per entry, millions of times at a restart.
    #[inline(always)]
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "log append must be contiguous");
        self.bytes += entry.size();
        self.entries.push_back(entry);
    }

    /// Drops every entry at `index` and after. Entries covered by the snapshot
    /// cannot be dropped this way (they are committed).
    pub fn truncate_from(&mut self, index: Index) {
        assert!(index > self.snapshot_index, "cannot truncate into the snapshot");
        while self.last_index() >= index {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= e.size();
            }
        }
        self.shared_until = self.shared_until.min(index - 1);
    }

    /// Drops entries up to and including `index` from the left, after a snapshot
    /// at `(index, term)` became durable. If the log does not reach `index`, or
    /// holds a different term there, every entry is dropped (the snapshot
    /// supersedes the whole log).
    ///
    /// Replayed entries it keeps stop sharing their journal read buffer
    /// here (their payloads are copied out): the second half of the
    /// retention rule on [`Bytes`](crate::Bytes), so that a few entries
    /// left after the first snapshot since a restart cannot pin a whole
    /// segment's buffer until the next one.
    pub fn compact_to(&mut self, index: Index, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        if self.term(index) == Some(term) {
            while self.snapshot_index < index {
                if let Some(e) = self.entries.pop_front() {
                    self.bytes -= e.size();
                }
                self.snapshot_index += 1;
            }
        } else {
            self.entries.clear();
            self.bytes = 0;
            self.snapshot_index = index;
        }
        self.snapshot_term = term;
        if self.shared_until > self.snapshot_index {
            let kept = (self.shared_until - self.snapshot_index) as usize;
            for e in self.entries.iter_mut().take(kept) {
                if let Some(b) = e.payload.command_mut() {
                    b.unshare();
                }
            }
        }
        self.shared_until = 0;
    }

    /// Notes that every entry held may point into a journal read buffer
    /// (replay calls it after each segment it decoded so).
    pub(crate) fn mark_shared(&mut self) {
        self.shared_until = self.last_index();
    }

    /// The first half of the retention rule on [`Bytes`](crate::Bytes),
    /// applied at the end of replay: a read buffer stays shared only if the
    /// payloads that point into it, copied out, would take at least half its
    /// size (each counted as its length plus 32 bytes of allocation); else
    /// they are copied and the buffer is freed. A buffer is never kept for a
    /// few entries that survived truncation or a snapshot, yet small
    /// payloads, which cost more as copies than as slices, stay slices.
    pub fn release_sparse_buffers(&mut self) {
        if self.shared_until <= self.snapshot_index {
            return;
        }
        let shared = (self.shared_until - self.snapshot_index) as usize;
        // (buffer, what its payloads would cost as copies); a restart reads
        // few segments, so a short list searched in order will do.
        let mut buffers: Vec<(Arc<Vec<u8>>, usize)> = Vec::new();
        // Runs of entries come from one buffer: the last one found is tried first.
        let mut last = 0;
        for b in self.entries.iter().take(shared).filter_map(|e| e.payload.command()) {
            let Some(buf) = b.read_buffer() else { continue };
            let cost = b.len() + OWNED_PAYLOAD_OVERHEAD;
            if buffers.get(last).is_some_and(|(x, _)| Arc::ptr_eq(x, buf)) {
                buffers[last].1 += cost;
                continue;
            }
            match buffers.iter().position(|(x, _)| Arc::ptr_eq(x, buf)) {
                Some(k) => {
                    buffers[k].1 += cost;
                    last = k;
                }
                None => {
                    last = buffers.len();
                    buffers.push((buf.clone(), cost));
                }
            }
        }
        self.release_buffers_costing(&buffers);
    }

    /// What a payload pointing into a read buffer would cost as a copy of
    /// its own, for the retention rule (0 for one that owns its bytes).
    #[inline]
    pub(crate) fn copy_cost(entry: &Entry) -> usize {
        match entry.payload.command() {
            Some(b) if b.is_shared() => b.len() + OWNED_PAYLOAD_OVERHEAD,
            _ => 0,
        }
    }

    /// [`Log::release_sparse_buffers`] given what the payloads pointing into
    /// each buffer would cost as copies (the sums of [`Log::copy_cost`]),
    /// for a caller that counted them as it appended: the entries are walked
    /// only if some buffer is let go of. The costs must be exact (those the
    /// walk of `release_sparse_buffers` would find), else the rule is not
    /// the one documented.
    pub(crate) fn release_buffers_costing(&mut self, buffers: &[(Arc<Vec<u8>>, usize)]) {
        let sparse: Vec<&Arc<Vec<u8>>> =
            buffers.iter().filter(|(buf, cost)| buf.len() > cost.saturating_mul(2)).map(|(buf, _)| buf).collect();
        if sparse.is_empty() || self.shared_until <= self.snapshot_index {
            return;
        }
        let shared = (self.shared_until - self.snapshot_index) as usize;
        for e in self.entries.iter_mut().take(shared) {
            if let Some(b) = e.payload.command_mut() {
                if b.read_buffer().is_some_and(|buf| sparse.iter().any(|x| Arc::ptr_eq(x, buf))) {
                    b.unshare();
                }
            }
        }
    }

    /// Iterates over the held entries in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Whether a candidate's log ending at `(last_index, last_term)` is at least
    /// as up to date as this one (Raft §5.4.1).
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The largest index `i <= index` whose term is `<= term`, or the snapshot
    /// index if none is held. Used for the fast back-off after a rejected append:
    /// everything after the returned index is known not to match a log whose
    /// entry at `index` has `term`, so whole runs of a wrong term are skipped.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> Index {
        let mut i = index.min(self.last_index());
        while i > self.snapshot_index {
            match self.term(i) {
                Some(t) if t <= term => return i,
                _ => i -= 1,
            }
        }
        self.snapshot_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;

    fn e(index: Index, term: Term) -> Entry {
        Entry { term, index, time: 0, payload: Payload::Command(alloc::vec![index as u8].into()) }
    }

    #[test]
    fn index_addressing_and_compaction() {
        let mut log = Log::new();
        for i in 1..=10 {
            log.append(e(i, 1 + i / 4));
        }
        assert_eq!(log.last_index(), 10);
        assert_eq!(log.term(7), Some(2));
        log.compact_to(5, 2);
        assert_eq!(log.first_index(), 6);
        assert_eq!(log.term(5), Some(2), "term at the snapshot boundary survives compaction");
        assert_eq!(log.term(4), None);
        assert_eq!(log.entry(6).map(|x| x.index), Some(6));
        log.truncate_from(9);
        assert_eq!(log.last_index(), 8);
        assert_eq!(log.len(), 3);
        assert_eq!(log.bytes(), 3 * e(1, 1).size());
    }

    #[test]
    fn compaction_past_a_mismatch_resets() {
        let mut log = Log::new();
        log.append(e(1, 1));
        log.compact_to(5, 3);
        assert!(log.is_empty());
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.last_term(), 3);
    }

    #[test]
    fn slice_respects_limits_but_always_makes_progress() {
        let mut log = Log::new();
        for i in 1..=5 {
            log.append(e(i, 1));
        }
        assert_eq!(log.slice(2, 5, 2, usize::MAX).len(), 2);
        assert_eq!(log.slice(2, 5, 100, 1).len(), 1);
        assert_eq!(log.slice(4, 100, 100, usize::MAX).len(), 2);
    }

    fn shared_entry(buf: &Arc<Vec<u8>>, index: Index, len: usize) -> Entry {
        Entry { term: 1, index, time: 0, payload: Payload::Command(crate::Bytes::shared(buf, 0..len)) }
    }

    fn is_shared(log: &Log, index: Index) -> bool {
        log.entry(index).and_then(|e| e.payload.command()).is_some_and(|b| b.is_shared())
    }

    #[test]
    fn a_read_buffer_stays_while_copies_would_take_half_its_size() {
        // One 68-byte payload: 68 + 32 = 100 bytes as a copy. A 200-byte
        // buffer is at the limit (kept), a 201-byte one past it (let go of).
        for (buf_len, kept) in [(200, true), (201, false)] {
            let buf = Arc::new(alloc::vec![5u8; buf_len]);
            let mut log = Log::new();
            log.append(shared_entry(&buf, 1, 68));
            log.append(Entry { term: 1, index: 2, time: 0, payload: Payload::Noop });
            log.mark_shared();
            log.release_sparse_buffers();
            assert_eq!(is_shared(&log, 1), kept, "buffer of {buf_len}");
            assert_eq!(Arc::strong_count(&buf), if kept { 2 } else { 1 });
            assert_eq!(log.entry(1).and_then(|e| e.payload.command()).map(|b| b.as_slice()), Some(&[5u8; 68][..]));
        }
    }

    #[test]
    fn compaction_copies_out_the_replayed_entries_it_keeps() {
        let buf = Arc::new(alloc::vec![9u8; 64]);
        let mut log = Log::new();
        for i in 1..=10 {
            log.append(shared_entry(&buf, i, 16));
        }
        log.mark_shared();
        // Entries appended after replay own their payloads already.
        log.append(e(11, 1));
        log.truncate_from(9);
        log.append(e(9, 1));
        // Compaction keeps 5..=9: the shared ones among them (5..=8) are
        // copied, and nothing points into the buffer any more.
        log.compact_to(4, 1);
        assert!((5..=9).all(|i| !is_shared(&log, i)));
        assert_eq!(Arc::strong_count(&buf), 1);
        assert_eq!(log.entry(6).and_then(|e| e.payload.command()).map(|b| b.as_slice()), Some(&[9u8; 16][..]));
        assert_eq!(log.shared_until, 0, "later compactions walk nothing");
    }

    #[test]
    fn conflict_search_skips_whole_terms() {
        let mut log = Log::new();
        // terms: 1 1 1 4 4 4 4 5
        for (i, t) in [1, 1, 1, 4, 4, 4, 4, 5].iter().enumerate() {
            log.append(e(i as u64 + 1, *t));
        }
        assert_eq!(log.find_conflict_by_term(8, 3), 3);
        assert_eq!(log.find_conflict_by_term(8, 4), 7);
        assert_eq!(log.find_conflict_by_term(20, 9), 8);
        assert_eq!(log.find_conflict_by_term(8, 0), 0);
    }
}
