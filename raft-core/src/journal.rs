//! The journal (write-ahead log): the records the core asks a host to make
//! durable, their framing, and replay into the state a restarted node begins with.
//!
//! The core decides *what* to write; a host only stores bytes and reports back
//! with [`crate::Raft::persisted`] how far they are durable. The journal only
//! grows: a conflicting suffix is never rewritten in place, a [`Record::Truncate`]
//! says it was dropped, and replay applies it.
//!
//! # Layout
//!
//! A journal segment is a header (`b"RKVJ"`, a format version, three reserved
//! zero bytes) followed by frames. A frame is
//!
//! ```text
//! +---------+-----------+-------------+---------------------------+
//! | len u32 | crc32c u32| hcrc32c u32 | postcard((seq, Record))   |
//! | LE      | of body   | of bytes 0-8| `len` bytes               |
//! +---------+-----------+-------------+---------------------------+
//! ```
//!
//! The header CRC lets recovery tell a damaged length from a short write.
//!
//! # Recovery rules
//!
//! * A frame cut short by the end of the data, or whose body checksum fails and
//!   which ends exactly at the end of the data, is an unfinished write: it is cut
//!   off (see [`Scan::torn_at`]) and recovery goes on.
//! * Any other bad frame is corruption: [`scan`] refuses with the byte offset.
//! * [`Replay`] checks that sequence numbers and entry indexes are contiguous.
//!
//! # Checkpoints
//!
//! A host that splits its journal into segments starts each new segment with
//! *checkpoint* frames: copies of the current `HardState` and the latest
//! `Snapshot` record, written with sequence number 0 ([`CHECKPOINT_SEQ`]).
//! They repeat what earlier records said, so they consume no sequence number;
//! they let a segment be read without the segments before it once a snapshot
//! covers everything those held ([`Replay::apply`] accepts them anywhere and
//! applies them only if they are newer than what it has).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::entry::Entry;
use crate::log::Log;
use crate::membership::Membership;
use crate::types::{HardState, Index, Seq, Term};

/// Magic number at the start of every journal segment.
pub const JOURNAL_MAGIC: [u8; 4] = *b"RKVJ";
/// Journal format version.
pub const JOURNAL_VERSION: u8 = 2;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 12;
/// The largest record body accepted. The core never writes one this large
/// (its batches are bounded far below), so a larger length means damage.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// Sequence number of checkpoint frames (see the module docs).
pub const CHECKPOINT_SEQ: Seq = 0;

/// Description of a durable snapshot, as recorded in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index the snapshot covers.
    pub index: Index,
    /// Term of that entry.
    pub term: Term,
    /// The configuration as of `index` (not a newer one: a snapshot records
    /// what its own entries say). Boxed so that every `Record` stays small:
    /// records are moved around by the million during replay.
    pub membership: Box<Membership>,
    /// Host-chosen identifier of the snapshot's data (a file, a buffer).
    pub id: u64,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Term, vote or role changed. Written on every role change (the seed
    /// asks for role and term to be journaled then, and tooling reads the
    /// role), but only a change of term or vote must be durable before the
    /// node acts on it: a record that changes the role alone is issued with
    /// `Ready::must_sync` false, so a node that keeps failing pre-votes costs
    /// no fsync. Restart always begins as follower whatever the role says.
    HardState(HardState),
    /// Entries `first_index ..` were appended.
    Append {
        /// Index of the first entry.
        first_index: Index,
        /// The entries, contiguous.
        entries: Vec<Entry>,
    },
    /// Every entry at `from_index` and after was dropped (a conflicting suffix).
    Truncate {
        /// First dropped index.
        from_index: Index,
    },
    /// A snapshot is durable; the log before it may be dropped.
    Snapshot(SnapshotMeta),
    /// First frame of a checkpoint (sequence number 0): the frames after it
    /// restate the durable state as of record `last_seq`, so the records that
    /// follow continue from `last_seq + 1`.
    Checkpoint {
        /// Sequence number of the last record the checkpoint covers.
        last_seq: Seq,
    },
}

impl Record {
    /// A short name for tooling.
    pub fn name(&self) -> &'static str {
        match self {
            Record::HardState(_) => "HardState",
            Record::Append { .. } => "Append",
            Record::Truncate { .. } => "Truncate",
            Record::Snapshot(_) => "Snapshot",
            Record::Checkpoint { .. } => "Checkpoint",
        }
    }
}

/// A record failed to decode or replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalError {
    /// The segment does not start with the journal header.
    BadHeader(DecodeError),
    /// A frame in the middle of the data is damaged.
    Corrupt {
        /// Byte offset of the frame within the segment.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record does not follow its predecessor.
    Discontiguous {
        /// Sequence number of the offending record.
        seq: Seq,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::BadHeader(e) => write!(f, "journal header: {e}"),
            JournalError::Corrupt { offset, reason } => {
                write!(f, "corrupt record at byte offset {offset}: {reason}")
            }
            JournalError::Discontiguous { seq, reason } => {
                write!(f, "record {seq} does not follow its predecessor: {reason}")
            }
        }
    }
}

use crate::codec::crc32c;

/// Writes a segment header to `out`.
pub fn write_segment_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&JOURNAL_MAGIC);
    out.push(JOURNAL_VERSION);
    out.extend_from_slice(&[0, 0, 0]);
}

/// Appends one framed record to `out`.
///
/// ```
/// use raft_core::journal::{encode_record, scan, write_segment_header, Record};
/// let mut seg = Vec::new();
/// write_segment_header(&mut seg);
/// encode_record(1, &Record::Truncate { from_index: 3 }, &mut seg);
/// let s = scan(&seg).unwrap();
/// assert_eq!(s.records, vec![(1, Record::Truncate { from_index: 3 })]);
/// assert_eq!(s.torn_at, None);
/// ```
pub fn encode_record(seq: Seq, record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    let mut body = core::mem::take(out);
    body = match postcard::to_extend(&(seq, record), body) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard encoding of a journal record into a Vec is infallible"),
    };
    *out = body;
    let len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    let body_crc = crc32c(&out[start + FRAME_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&body_crc.to_le_bytes());
    let hcrc = crc32c(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&hcrc.to_le_bytes());
}

/// The result of scanning one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Records in order.
    pub records: Vec<(Seq, Record)>,
    /// Bytes of the segment that hold valid frames (header included). A host
    /// truncates the file to this length before appending again.
    pub valid_len: usize,
    /// If a torn final frame was cut off, its offset.
    pub torn_at: Option<usize>,
}

/// Reads every frame of a segment. Never panics, whatever the bytes.
pub fn scan(bytes: &[u8]) -> Result<Scan, JournalError> {
    codec_header(bytes)?;
    let mut out = Scan { records: Vec::new(), valid_len: SEGMENT_HEADER_LEN, torn_at: None };
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < FRAME_HEADER_LEN {
            out.torn_at = Some(pos);
            break;
        }
        let hcrc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if crc32c(&rest[..8]) != hcrc {
            // A damaged header is a torn write only if nothing but zeros follows
            // (a short or unfinished write into preallocated space).
            if rest.iter().all(|&b| b == 0) {
                out.torn_at = Some(pos);
                break;
            }
            return Err(JournalError::Corrupt { offset: pos, reason: "frame header checksum mismatch" });
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD_LEN {
            return Err(JournalError::Corrupt { offset: pos, reason: "record length over the limit" });
        }
        if rest.len() < FRAME_HEADER_LEN + len {
            out.torn_at = Some(pos);
            break;
        }
        let body = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let at_end = rest.len() == FRAME_HEADER_LEN + len;
        if crc32c(body) != crc {
            if at_end {
                out.torn_at = Some(pos);
                break;
            }
            return Err(JournalError::Corrupt { offset: pos, reason: "record checksum mismatch" });
        }
        match codec::decode_body::<(Seq, Record)>(body) {
            Ok(r) => out.records.push(r),
            Err(_) => return Err(JournalError::Corrupt { offset: pos, reason: "record body does not decode" }),
        }
        pos += FRAME_HEADER_LEN + len;
        out.valid_len = pos;
    }
    Ok(out)
}

fn codec_header(bytes: &[u8]) -> Result<(), JournalError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(JournalError::BadHeader(DecodeError::Truncated));
    }
    if bytes[..4] != JOURNAL_MAGIC {
        return Err(JournalError::BadHeader(DecodeError::BadMagic));
    }
    if bytes[4] != JOURNAL_VERSION {
        return Err(JournalError::BadHeader(DecodeError::UnsupportedVersion(bytes[4])));
    }
    Ok(())
}

/// The durable state a node restarts from: what replaying its journal yields.
#[derive(Clone, Debug, Default)]
pub struct DurableState {
    /// Latest term, vote and role.
    pub hard: HardState,
    /// Latest durable snapshot, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Log entries after the snapshot.
    pub log: Log,
    /// Sequence number of the last record replayed (0 if none).
    pub last_seq: Seq,
}

/// Replays records, in order, into a [`DurableState`], checking that they fit.
///
/// ```
/// use raft_core::journal::{Record, Replay};
/// use raft_core::entry::{Entry, Payload};
/// let mut r = Replay::new();
/// let e = |i| Entry { term: 1, index: i, time: 0, payload: Payload::Noop };
/// r.apply(1, &Record::Append { first_index: 1, entries: vec![e(1), e(2)] }).unwrap();
/// r.apply(2, &Record::Truncate { from_index: 2 }).unwrap();
/// assert!(r.apply(4, &Record::Truncate { from_index: 2 }).is_err()); // seq gap
/// assert_eq!(r.finish().log.last_index(), 1);
/// ```
#[derive(Debug, Default)]
pub struct Replay {
    state: DurableState,
}

impl Replay {
    /// Starts from an empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the next record.
    pub fn apply(&mut self, seq: Seq, record: &Record) -> Result<(), JournalError> {
        let st = &mut self.state;
        let err = |reason| Err(JournalError::Discontiguous { seq, reason });
        if seq == CHECKPOINT_SEQ {
            return self.apply_checkpoint(record);
        }
        if st.last_seq != 0 && seq != st.last_seq + 1 {
            return err("sequence number gap");
        }
        match record {
            Record::HardState(hs) => {
                if hs.term < st.hard.term {
                    return err("term went backwards");
                }
                st.hard = *hs;
            }
            Record::Append { first_index, entries } => {
                check_append(st, seq, *first_index, entries)?;
                let snap = st.log.snapshot_index();
                for e in entries.iter().filter(|e| e.index > snap) {
                    st.log.append(e.clone());
                }
            }
            Record::Truncate { from_index } => {
                if *from_index <= st.log.snapshot_index() || *from_index > st.log.last_index() + 1 {
                    return err("truncation outside the log");
                }
                st.log.truncate_from(*from_index);
            }
            Record::Snapshot(meta) => {
                if st.snapshot.as_ref().is_some_and(|s| s.index > meta.index) {
                    return err("snapshot older than the previous one");
                }
                st.log.compact_to(meta.index, meta.term);
                st.snapshot = Some(meta.clone());
            }
            Record::Checkpoint { .. } => return err("a Checkpoint record needs sequence number 0"),
        }
        st.last_seq = seq;
        Ok(())
    }

    fn apply_checkpoint(&mut self, record: &Record) -> Result<(), JournalError> {
        let st = &mut self.state;
        match record {
            Record::HardState(hs) => {
                if hs.term >= st.hard.term {
                    st.hard = *hs;
                }
            }
            Record::Snapshot(meta) => {
                if st.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
                    st.log.compact_to(meta.index, meta.term);
                    st.snapshot = Some(meta.clone());
                }
            }
            Record::Append { first_index, entries } => {
                // The log after the snapshot, as of the checkpoint: replaces what
                // replay holds there (entries the snapshot covers are skipped).
                let snap = st.log.snapshot_index();
                let from = (*first_index).max(snap + 1);
                if from > st.log.last_index() + 1 {
                    return Err(JournalError::Discontiguous { seq: 0, reason: "checkpoint entries leave a gap" });
                }
                if from <= st.log.last_index() {
                    st.log.truncate_from(from);
                }
                for (k, e) in entries.iter().enumerate() {
                    if e.index != first_index + k as u64 {
                        return Err(JournalError::Discontiguous {
                            seq: 0,
                            reason: "checkpoint entries are not contiguous",
                        });
                    }
                    if e.index >= from {
                        st.log.append(e.clone());
                    }
                }
            }
            Record::Truncate { .. } => {
                return Err(JournalError::Discontiguous { seq: 0, reason: "a Truncate cannot be a checkpoint" })
            }
            Record::Checkpoint { last_seq } => {
                if st.last_seq != 0 && st.last_seq != *last_seq {
                    return Err(JournalError::Discontiguous {
                        seq: *last_seq,
                        reason: "a checkpoint does not match the records before it",
                    });
                }
                st.last_seq = *last_seq;
            }
        }
        Ok(())
    }

    /// Applies the next record, taking it by value: appended entries move into
    /// the log instead of being copied (recovery's path).
    pub fn apply_owned(&mut self, seq: Seq, record: Record) -> Result<(), JournalError> {
        match record {
            Record::Append { first_index, entries } if seq != CHECKPOINT_SEQ => {
                if self.state.last_seq != 0 && seq != self.state.last_seq + 1 {
                    return Err(JournalError::Discontiguous { seq, reason: "sequence number gap" });
                }
                check_append(&self.state, seq, first_index, &entries)?;
                let snap = self.state.log.snapshot_index();
                for e in entries.into_iter().filter(|e| e.index > snap) {
                    self.state.log.append(e);
                }
                self.state.last_seq = seq;
                Ok(())
            }
            other => self.apply(seq, &other),
        }
    }

    /// Continues replaying from a state recovered earlier (a host that keeps
    /// a mirror of its durable state while it writes, to build checkpoints).
    pub fn from_state(state: DurableState) -> Self {
        Replay { state }
    }

    /// Checkpoint records for a new segment: the HardState, the latest
    /// Snapshot record and every entry after it — all a replay needs, so the
    /// segments before may be deleted once these are durable. Write each with
    /// [`CHECKPOINT_SEQ`].
    pub fn checkpoint(&self) -> Vec<Record> {
        let st = &self.state;
        let mut out = alloc::vec![Record::Checkpoint { last_seq: st.last_seq }, Record::HardState(st.hard)];
        if let Some(s) = &st.snapshot {
            out.push(Record::Snapshot(s.clone()));
        }
        let entries: Vec<Entry> = st.log.iter().cloned().collect();
        if let Some(first) = entries.first().map(|e| e.index) {
            out.push(Record::Append { first_index: first, entries });
        }
        out
    }

    /// The state replayed so far.
    pub fn state(&self) -> &DurableState {
        &self.state
    }

    /// Ends replay.
    pub fn finish(self) -> DurableState {
        self.state
    }
}

/// The checks an `Append` record must pass against the state replayed so far.
/// Entries a snapshot already covers are allowed (and skipped by the caller): a
/// segment read on its own may start with appends written before its
/// checkpoint's snapshot was taken.
fn check_append(st: &DurableState, seq: Seq, first_index: Index, entries: &[Entry]) -> Result<(), JournalError> {
    let err = |reason| Err(JournalError::Discontiguous { seq, reason });
    let snap = st.log.snapshot_index();
    if first_index.max(snap + 1) != st.log.last_index() + 1 {
        return err("append does not start right after the last entry");
    }
    let mut last_term = st.log.last_term();
    for (k, e) in entries.iter().enumerate() {
        if e.index != first_index + k as u64 {
            return err("entries are not contiguous");
        }
        if e.index > snap {
            if e.term < last_term {
                return err("entry term lower than its predecessor");
            }
            last_term = e.term;
        }
    }
    Ok(())
}

/// Recovers a journal split into segments, oldest first: every segment but the
/// last must be whole; the last may end in a torn frame, which is cut off
/// (its [`Scan`] — `valid_len`, `torn_at`; the records moved into the state —
/// is returned so the host can truncate the file). An error names
/// the segment (by position) and the byte offset within it.
pub fn recover_segments(segments: &[&[u8]]) -> Result<(DurableState, Scan), (usize, JournalError)> {
    let mut replay = Replay::new();
    let mut last = Scan::default();
    for (k, seg) in segments.iter().enumerate() {
        let mut s = scan(seg).map_err(|e| (k, e))?;
        if let Some(at) = s.torn_at {
            if k + 1 < segments.len() {
                return Err((k, JournalError::Corrupt { offset: at, reason: "torn record before the last segment" }));
            }
        }
        let records = core::mem::take(&mut s.records);
        for (seq, rec) in records {
            replay.apply_owned(seq, rec).map_err(|e| (k, e))?;
        }
        last = s;
    }
    Ok((replay.finish(), last))
}

/// Scans one segment and replays it from scratch: the whole recovery of a
/// single-segment journal. The records move into the state: the returned
/// [`Scan`] keeps only `valid_len` and `torn_at`.
pub fn recover(bytes: &[u8]) -> Result<(DurableState, Scan), JournalError> {
    let mut scan = scan(bytes)?;
    let mut replay = Replay::new();
    for (seq, rec) in core::mem::take(&mut scan.records) {
        replay.apply_owned(seq, rec)?;
    }
    Ok((replay.finish(), scan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;
    use crate::types::Role;
    use alloc::vec;

    fn sample() -> (Vec<u8>, Vec<usize>) {
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        let mut offsets = Vec::new();
        let recs = [
            Record::HardState(HardState { term: 2, voted_for: Some(1), role: Role::Candidate }),
            Record::Append {
                first_index: 1,
                entries: vec![
                    Entry { term: 2, index: 1, time: 5, payload: Payload::Noop },
                    Entry { term: 2, index: 2, time: 6, payload: Payload::Command(vec![7; 40].into()) },
                ],
            },
            Record::Truncate { from_index: 2 },
            Record::Append {
                first_index: 2,
                entries: vec![Entry { term: 2, index: 2, time: 7, payload: Payload::Command(vec![9; 10].into()) }],
            },
        ];
        for (i, r) in recs.iter().enumerate() {
            offsets.push(seg.len());
            encode_record(i as u64 + 1, r, &mut seg);
        }
        (seg, offsets)
    }

    #[test]
    fn roundtrip_and_replay() {
        let (seg, _) = sample();
        let (st, scan) = recover(&seg).unwrap();
        assert_eq!(scan.torn_at, None);
        assert_eq!(scan.valid_len, seg.len());
        assert_eq!(st.hard.term, 2);
        assert_eq!(st.log.last_index(), 2);
        assert_eq!(st.log.entry(2).unwrap().payload, Payload::Command(vec![9; 10].into()));
        assert_eq!(st.last_seq, 4);
    }

    #[test]
    fn every_truncation_point_is_a_torn_tail() {
        let (seg, offsets) = sample();
        for cut in SEGMENT_HEADER_LEN..seg.len() {
            let scan = scan(&seg[..cut]).unwrap();
            let whole = offsets.iter().filter(|&&o| o < cut).count();
            // The frame containing `cut` is torn unless the cut falls on a boundary.
            let expect = if offsets.contains(&cut) { whole } else { whole - 1 };
            assert_eq!(scan.records.len(), expect, "cut at {cut}");
            assert_eq!(scan.torn_at.is_some(), !offsets.contains(&cut));
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption_with_offset() {
        let (seg, offsets) = sample();
        for (k, &off) in offsets.iter().enumerate().take(offsets.len() - 1) {
            for delta in [0usize, 5, 9, 13] {
                let mut bad = seg.clone();
                bad[off + delta] ^= 0x40;
                match scan(&bad) {
                    Err(JournalError::Corrupt { offset, .. }) => {
                        assert_eq!(offset, off, "frame {k}")
                    }
                    other => panic!("frame {k} byte {delta}: expected corruption, got {other:?}"),
                }
            }
        }
        // A flipped byte in the body of the last frame is indistinguishable from a torn write.
        let mut bad = seg.clone();
        let last = *offsets.last().unwrap();
        bad[last + FRAME_HEADER_LEN + 1] ^= 1;
        let s = scan(&bad).unwrap();
        assert_eq!(s.torn_at, Some(last));
        assert_eq!(s.valid_len, last);
    }

    #[test]
    fn bad_header_and_random_bytes_never_panic() {
        assert!(matches!(scan(b"nope"), Err(JournalError::BadHeader(_))));
        assert!(matches!(scan(b"RKVJ\x09\0\0\0"), Err(JournalError::BadHeader(DecodeError::UnsupportedVersion(9)))));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 0..2000 {
            let mut bytes = Vec::new();
            write_segment_header(&mut bytes);
            for _ in 0..(n % 97) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let _ = recover(&bytes);
        }
    }

    #[test]
    fn checkpoints_consume_no_sequence_number() {
        let mut r = Replay::new();
        let e = |i| Entry { term: 2, index: i, time: 0, payload: Payload::Noop };
        let hs = HardState { term: 2, voted_for: Some(3), role: Role::Follower };
        r.apply(1, &Record::Append { first_index: 1, entries: vec![e(1), e(2), e(3)] }).unwrap();
        // A new segment: checkpoints, then the next record continues the sequence.
        r.apply(CHECKPOINT_SEQ, &Record::HardState(hs)).unwrap();
        let snap = SnapshotMeta { index: 2, term: 2, membership: Box::new(Membership::bootstrap(&[1, 2, 3])), id: 9 };
        r.apply(CHECKPOINT_SEQ, &Record::Snapshot(snap.clone())).unwrap();
        r.apply(2, &Record::Append { first_index: 4, entries: vec![e(4)] }).unwrap();
        assert!(r.apply(CHECKPOINT_SEQ, &Record::Truncate { from_index: 4 }).is_err());
        let st = r.finish();
        assert_eq!(st.hard, hs);
        assert_eq!(st.snapshot, Some(snap));
        assert_eq!((st.log.first_index(), st.log.last_index()), (3, 4));
        // A segment read on its own, after older ones were deleted.
        let mut r = Replay::new();
        r.apply(CHECKPOINT_SEQ, &Record::HardState(hs)).unwrap();
        r.apply(
            CHECKPOINT_SEQ,
            &Record::Snapshot(SnapshotMeta {
                index: 3,
                term: 2,
                membership: Box::new(Membership::bootstrap(&[1])),
                id: 1,
            }),
        )
        .unwrap();
        r.apply(57, &Record::Append { first_index: 4, entries: vec![e(4)] }).unwrap();
        assert_eq!(r.state().last_seq, 57);
    }

    #[test]
    fn a_segment_read_alone_skips_entries_its_snapshot_covers() {
        let e = |i| Entry { term: 2, index: i, time: 0, payload: Payload::Noop };
        let mut full = Replay::new();
        full.apply(1, &Record::Append { first_index: 1, entries: (1..=10).map(e).collect() }).unwrap();
        full.apply(
            2,
            &Record::Snapshot(SnapshotMeta {
                index: 6,
                term: 2,
                membership: Box::new(Membership::bootstrap(&[1])),
                id: 6,
            }),
        )
        .unwrap();
        let cp = full.checkpoint();
        assert_eq!(cp.len(), 4, "Checkpoint, HardState, Snapshot, Append of 7..=10");
        // A new segment: the checkpoint, then an append written later.
        let mut alone = Replay::new();
        for r in &cp {
            alone.apply(CHECKPOINT_SEQ, r).unwrap();
        }
        assert!(alone.apply(4, &Record::Append { first_index: 11, entries: vec![e(11)] }).is_err(), "seq gap");
        alone.apply(3, &Record::Append { first_index: 11, entries: vec![e(11)] }).unwrap();
        let st = alone.finish();
        assert_eq!((st.log.snapshot_index(), st.log.last_index()), (6, 11));
        // An append that overlaps the snapshot is trimmed, not refused.
        let mut r = Replay::new();
        r.apply(
            CHECKPOINT_SEQ,
            &Record::Snapshot(SnapshotMeta {
                index: 6,
                term: 2,
                membership: Box::new(Membership::bootstrap(&[1])),
                id: 6,
            }),
        )
        .unwrap();
        r.apply(9, &Record::Append { first_index: 5, entries: (5..=8).map(e).collect() }).unwrap();
        assert_eq!(r.state().log.last_index(), 8);
        assert!(
            r.apply(10, &Record::Append { first_index: 8, entries: vec![e(8)] }).is_err(),
            "overlap past the snapshot"
        );
    }

    #[test]
    fn replay_rejects_gaps() {
        let mut r = Replay::new();
        let e = |i| Entry { term: 1, index: i, time: 0, payload: Payload::Noop };
        r.apply(7, &Record::Append { first_index: 1, entries: vec![e(1)] }).unwrap();
        assert!(r.apply(8, &Record::Append { first_index: 3, entries: vec![e(3)] }).is_err());
        assert!(r.apply(8, &Record::Truncate { from_index: 5 }).is_err());
        assert!(r.apply(8, &Record::Append { first_index: 2, entries: vec![e(3)] }).is_err());
        r.apply(8, &Record::Append { first_index: 2, entries: vec![e(2)] }).unwrap();
    }
}
