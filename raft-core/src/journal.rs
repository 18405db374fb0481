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
//! # Batch markers: a torn write told from lost data
//!
//! A host ends every group-commit write with a [`Record::BatchEnd`] frame
//! (sequence number 0) in the same write: the sequence number of the batch's
//! last record and the HardState as of its end. A batch whose marker is on
//! disk was written whole; one without it may have been cut by a crash before
//! its fsync returned, so nothing in it was ever acknowledged.
//!
//! # Recovery rules
//!
//! * A frame cut short by the end of the data, or a damaged frame after which
//!   no batch marker survives, is an unfinished write: it is cut off (see
//!   [`Scan::torn_at`]) and recovery goes on.
//! * A damaged frame followed (after resynchronising on the next valid frame)
//!   by a batch marker is **data loss**: records the node may have
//!   acknowledged are gone. The journal is cut there ([`Scan::lost_at`]); the
//!   newest surviving marker still gives the term and vote (so a lost vote
//!   record cannot make the node vote twice), and the state is flagged
//!   [`HardState::lost_data`], which the engine honours until the node has
//!   caught up with a leader. A replayed marker naming records that are not
//!   there is loss too.
//! * A frame whose checksums hold but whose body does not decode, or whose
//!   length is over the limit, is corruption (a bug, not a disk fault):
//!   [`scan`] refuses with the byte offset.
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
    /// The end of one group-commit write (sequence number 0; see the module
    /// docs): written by the host, never issued by the engine.
    BatchEnd {
        /// Sequence number of the last record of the batch (of the journal
        /// so far).
        last_seq: Seq,
        /// The HardState as of the end of the batch: the newest one the host
        /// has written.
        hard: HardState,
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
            Record::BatchEnd { .. } => "BatchEnd",
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
    /// If records were lost (a damaged frame in a batch whose marker
    /// survived), the offset of the damaged frame: everything from there on
    /// is dropped (`valid_len` equals it).
    pub lost_at: Option<usize>,
    /// With `lost_at`: the HardState of the newest marker after the damage.
    pub lost_hard: Option<HardState>,
}

/// Reads one frame at the start of `rest`: `Ok(Some((frame length, record)))`
/// for a whole valid frame, `Ok(None)` for a damaged or short one, `Err` for
/// one whose checksums hold but which cannot be a frame we wrote.
/// A whole frame read: its length in bytes and its record.
type Frame = (usize, (Seq, Record));

fn read_frame(rest: &[u8], pos: usize) -> Result<Option<Frame>, JournalError> {
    if rest.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let hcrc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    if crc32c(&rest[..8]) != hcrc {
        return Ok(None);
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if len > MAX_RECORD_LEN {
        return Err(JournalError::Corrupt { offset: pos, reason: "record length over the limit" });
    }
    if rest.len() < FRAME_HEADER_LEN + len {
        return Ok(None);
    }
    let body = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if crc32c(body) != crc {
        return Ok(None);
    }
    match codec::decode_body::<(Seq, Record)>(body) {
        Ok(r) => Ok(Some((FRAME_HEADER_LEN + len, r))),
        Err(_) => Err(JournalError::Corrupt { offset: pos, reason: "record body does not decode" }),
    }
}

/// After a damaged frame at `from`: the HardState of the newest batch marker
/// found by resynchronising on valid frames further on, if any survives.
fn marker_after(bytes: &[u8], from: usize) -> Option<HardState> {
    let mut newest: Option<(Seq, HardState)> = None;
    let mut pos = from + 1;
    while pos + FRAME_HEADER_LEN <= bytes.len() {
        match read_frame(&bytes[pos..], pos) {
            Ok(Some((len, (_, Record::BatchEnd { last_seq, hard })))) => {
                if newest.is_none_or(|(s, _)| last_seq >= s) {
                    newest = Some((last_seq, hard));
                }
                pos += len;
            }
            Ok(Some((len, _))) => pos += len,
            _ => pos += 1,
        }
    }
    newest.map(|(_, h)| h)
}

/// Reads every frame of a segment. Never panics, whatever the bytes.
pub fn scan(bytes: &[u8]) -> Result<Scan, JournalError> {
    let mut records = Vec::new();
    let mut out = scan_each(bytes, |seq, r| {
        records.push((seq, r));
        Ok(())
    })?;
    out.records = records;
    Ok(out)
}

/// [`scan`], handing each record to `each` as it is read instead of
/// collecting them (`records` of the result stays empty): recovery replays a
/// segment without holding all its records twice. An error from `each` ends
/// the scan.
pub fn scan_each(
    bytes: &[u8],
    mut each: impl FnMut(Seq, Record) -> Result<(), JournalError>,
) -> Result<Scan, JournalError> {
    codec_header(bytes)?;
    let mut out = Scan { valid_len: SEGMENT_HEADER_LEN, ..Scan::default() };
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        match read_frame(rest, pos)? {
            Some((len, (seq, r))) => {
                each(seq, r)?;
                pos += len;
                out.valid_len = pos;
            }
            None => {
                // Damaged or short: loss if a later batch marker survives
                // (that batch was written whole, after this one), else an
                // unfinished write.
                match marker_after(bytes, pos) {
                    Some(hard) => {
                        out.lost_at = Some(pos);
                        out.lost_hard = Some(hard);
                    }
                    None => out.torn_at = Some(pos),
                }
                break;
            }
        }
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
    /// A batch marker named records that were not replayed.
    lost: bool,
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
            Record::BatchEnd { .. } => return err("a BatchEnd record needs sequence number 0"),
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
            Record::BatchEnd { last_seq, hard } => {
                if *last_seq > st.last_seq {
                    // The batch said it ended later than the records we
                    // have: some vanished without a damaged frame to show.
                    self.lost = true;
                } else if *last_seq < st.last_seq {
                    return Err(JournalError::Discontiguous {
                        seq: *last_seq,
                        reason: "a batch marker is older than the records before it",
                    });
                }
                if hard.term >= st.hard.term {
                    st.hard = *hard;
                }
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
        Replay { state, lost: false }
    }

    /// Records that records were lost (see the module docs): the state keeps
    /// the newest term and vote a surviving marker gives, and is flagged.
    pub fn note_loss(&mut self, marker: Option<HardState>) {
        if let Some(h) = marker {
            if h.term >= self.state.hard.term {
                self.state.hard = h;
            }
        }
        self.lost = true;
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
    pub fn finish(mut self) -> DurableState {
        if self.lost {
            self.state.hard.lost_data = true;
        }
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
        // Records replay as they are read; a damaged frame before the last
        // segment is refused once the scan has found it (what came before
        // it replayed, but the whole recovery fails).
        let s = scan_each(seg, |seq, rec| replay.apply_owned(seq, rec)).map_err(|e| (k, e))?;
        if let Some(at) = s.torn_at.or(s.lost_at) {
            if k + 1 < segments.len() {
                return Err((
                    k,
                    JournalError::Corrupt { offset: at, reason: "damaged record before the last segment" },
                ));
            }
        }
        if s.lost_at.is_some() {
            replay.note_loss(s.lost_hard);
        }
        last = s;
    }
    Ok((replay.finish(), last))
}

/// Scans one segment and replays it from scratch: the whole recovery of a
/// single-segment journal. The records move into the state: the returned
/// [`Scan`] keeps only `valid_len` and `torn_at`.
pub fn recover(bytes: &[u8]) -> Result<(DurableState, Scan), JournalError> {
    let mut replay = Replay::new();
    let scan = scan_each(bytes, |seq, rec| replay.apply_owned(seq, rec))?;
    if scan.lost_at.is_some() {
        replay.note_loss(scan.lost_hard);
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
            Record::HardState(HardState { term: 2, voted_for: Some(1), role: Role::Candidate, lost_data: false }),
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
    fn flipped_byte_without_a_later_marker_is_a_torn_write() {
        // No batch marker after the damage: the batch was never finished.
        let (seg, offsets) = sample();
        for (k, &off) in offsets.iter().enumerate() {
            for delta in [0usize, 5, 9, 13] {
                let mut bad = seg.clone();
                bad[off + delta] ^= 0x40;
                let s = scan(&bad).unwrap_or_else(|e| panic!("frame {k} byte {delta}: {e}"));
                assert_eq!((s.torn_at, s.lost_at, s.valid_len), (Some(off), None, off), "frame {k} byte {delta}");
            }
        }
    }

    /// Two batches, each ended by its marker; returns the segment, the
    /// offset of every frame, and the second batch's HardState.
    fn with_markers() -> (Vec<u8>, Vec<usize>, HardState) {
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        let e = |i| Entry { term: 2, index: i, time: 0, payload: Payload::Noop };
        let h1 = HardState { term: 2, voted_for: Some(1), role: Role::Follower, lost_data: false };
        let h2 = HardState { term: 3, voted_for: Some(3), role: Role::Follower, lost_data: false };
        let batch1 = [(1, Record::HardState(h1)), (2, Record::Append { first_index: 1, entries: vec![e(1), e(2)] })];
        let batch2 = [(3, Record::HardState(h2)), (4, Record::Append { first_index: 3, entries: vec![e(3)] })];
        let mut offsets = Vec::new();
        for (batch, hard) in [(&batch1, h1), (&batch2, h2)] {
            for (seq, rec) in batch.iter() {
                offsets.push(seg.len());
                encode_record(*seq, rec, &mut seg);
            }
            offsets.push(seg.len());
            let last_seq = batch[batch.len() - 1].0;
            encode_record(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq, hard }, &mut seg);
        }
        (seg, offsets, h2)
    }

    #[test]
    fn damage_before_a_surviving_marker_is_loss_and_keeps_the_vote() {
        let (seg, offsets, h2) = with_markers();
        let clean = recover(&seg).unwrap().0;
        assert!(!clean.hard.lost_data);
        assert_eq!((clean.hard.term, clean.log.last_index()), (3, 3));
        // Every frame but the very last marker: a later marker survives.
        for (k, &off) in offsets.iter().enumerate().take(offsets.len() - 1) {
            for delta in [1usize, 9, 13] {
                let mut bad = seg.clone();
                bad[off + delta] ^= 0x08;
                let (st, s) = recover(&bad).unwrap_or_else(|e| panic!("frame {k} byte {delta}: {e}"));
                assert_eq!((s.lost_at, s.torn_at, s.valid_len), (Some(off), None, off), "frame {k} byte {delta}");
                assert!(st.hard.lost_data, "frame {k}: flagged");
                // The lost HardState record's term and vote come back from the marker.
                assert_eq!((st.hard.term, st.hard.voted_for), (h2.term, h2.voted_for), "frame {k}");
                assert!(st.log.last_index() < 3, "frame {k}: entries after the damage are gone");
            }
        }
        // A flipped byte in the final marker only: nothing was lost.
        let mut bad = seg.clone();
        let last = *offsets.last().unwrap();
        bad[last + FRAME_HEADER_LEN + 1] ^= 1;
        let (st, s) = recover(&bad).unwrap();
        assert_eq!((s.torn_at, s.lost_at), (Some(last), None));
        assert!(!st.hard.lost_data);
        assert_eq!(st.log.last_index(), 3);
    }

    #[test]
    fn a_marker_naming_missing_records_is_loss() {
        let mut r = Replay::new();
        r.apply(1, &Record::Truncate { from_index: 1 }).ok();
        let h = HardState { term: 4, voted_for: None, role: Role::Follower, lost_data: false };
        r.apply(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq: 7, hard: h }).unwrap();
        let st = r.finish();
        assert!(st.hard.lost_data);
        assert_eq!(st.hard.term, 4);
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
        let hs = HardState { term: 2, voted_for: Some(3), role: Role::Follower, lost_data: false };
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
