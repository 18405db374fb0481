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
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, Reader};
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

/// Checks the frame at the start of `rest` (which begins at byte `pos` of
/// its segment): `Ok(Some(frame length))` for a whole frame whose checksums
/// hold, `Ok(None)` for a damaged or short one, `Err` for one whose header
/// checksum holds but whose length cannot be one we wrote.
fn check_frame(rest: &[u8], pos: usize) -> Result<Option<usize>, JournalError> {
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
    Ok(Some(FRAME_HEADER_LEN + len))
}

const UNDECODABLE: &str = "record body does not decode";

/// A frame body decoded by [`decode_body`]: an `Append` leaves its entries in
/// the caller's vector (reused from record to record: replay allocates no
/// vector per record), any other record comes whole.
enum Decoded {
    Append { seq: Seq, first_index: Index },
    Other(Seq, Record),
}

/// Postcard's variant index of [`Record::Append`] (variants are numbered by
/// position; the golden tests pin it).
const APPEND_TAG: u32 = 1;

/// Decodes a frame body, `postcard((seq, Record))`. Appends — nearly every
/// record — are decoded by hand, their entries pushed onto `entries`
/// (payloads shared with the read buffer if the reader has one); the rest by
/// serde. The result is what `codec::decode_body::<(Seq, Record)>` gives, to
/// the error (the tests compare the two on every kind of record and on
/// damaged bodies).
fn decode_body(mut r: Reader<'_>, entries: &mut Vec<Entry>) -> Result<Decoded, DecodeError> {
    let seq = r.u64()?;
    let at_tag = r.rest();
    if r.u32()? != APPEND_TAG {
        // Not an append: serde reads the record from its tag on.
        let mut whole = Reader::new(at_tag);
        let rec = whole.serde::<Record>()?;
        whole.finish()?;
        return Ok(Decoded::Other(seq, rec));
    }
    let first_index = r.u64()?;
    let n = r.usize()?;
    // The count comes from the input: reserve no more than the bytes left
    // could hold (an entry takes at least 4: three varints and a tag).
    entries.reserve(n.min(r.rest().len() / 4));
    for _ in 0..n {
        entries.push(Entry::decode(&mut r)?);
    }
    r.finish()?;
    Ok(Decoded::Append { seq, first_index })
}

/// A frame body decoded as a whole record, payloads copied.
fn decode_record(body: &[u8]) -> Result<(Seq, Record), DecodeError> {
    let mut entries = Vec::new();
    match decode_body(Reader::new(body), &mut entries)? {
        Decoded::Append { seq, first_index } => Ok((seq, Record::Append { first_index, entries })),
        Decoded::Other(seq, rec) => Ok((seq, rec)),
    }
}

/// A whole frame read: its length in bytes and its record.
type Frame = (usize, (Seq, Record));

/// Reads one frame at the start of `rest` (at byte `pos` of its segment):
/// `Ok(Some((frame length, record)))` for a whole valid frame, `Ok(None)`
/// for a damaged or short one, `Err` for one whose checksums hold but which
/// cannot be a frame we wrote.
fn read_frame(rest: &[u8], pos: usize) -> Result<Option<Frame>, JournalError> {
    let Some(len) = check_frame(rest, pos)? else { return Ok(None) };
    match decode_record(&rest[FRAME_HEADER_LEN..len]) {
        Ok(r) => Ok(Some((len, r))),
        Err(_) => Err(JournalError::Corrupt { offset: pos, reason: UNDECODABLE }),
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
    scan_frames(bytes, |pos, body| match decode_record(&bytes[body]) {
        Ok((seq, r)) => each(seq, r),
        Err(_) => Err(JournalError::Corrupt { offset: pos, reason: UNDECODABLE }),
    })
}

/// The frame loop under every scan: checks the header, then hands `each`
/// the offset and the body's byte range of every valid frame in order, and
/// says where valid frames end and why (torn write or loss).
fn scan_frames(
    bytes: &[u8],
    mut each: impl FnMut(usize, Range<usize>) -> Result<(), JournalError>,
) -> Result<Scan, JournalError> {
    codec_header(bytes)?;
    let mut out = Scan { valid_len: SEGMENT_HEADER_LEN, ..Scan::default() };
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        match check_frame(&bytes[pos..], pos)? {
            Some(len) => {
                each(pos, pos + FRAME_HEADER_LEN..pos + len)?;
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
    /// The read buffers replayed from, each with what the payloads pointing
    /// into it would cost as copies ([`Log::copy_cost`]), summed as
    /// [`append_in_place`] appends them: [`Replay::finish`] applies the
    /// retention rule from these instead of walking the whole log.
    buffer_costs: Vec<(Arc<Vec<u8>>, usize)>,
    /// The log changed in a way `buffer_costs` does not follow (a
    /// truncation, a snapshot, a checkpoint, an append by another path, a
    /// state given to [`Replay::from_state`]): the sums may be off, and
    /// `finish` walks the log instead.
    costs_unknown: bool,
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
                self.costs_unknown = true;
                let snap = st.log.snapshot_index();
                for e in entries.iter().filter(|e| e.index > snap) {
                    st.log.append(e.clone());
                }
            }
            Record::Truncate { from_index } => {
                if *from_index <= st.log.snapshot_index() || *from_index > st.log.last_index() + 1 {
                    return err("truncation outside the log");
                }
                self.costs_unknown = true;
                st.log.truncate_from(*from_index);
            }
            Record::Snapshot(meta) => {
                if st.snapshot.as_ref().is_some_and(|s| s.index > meta.index) {
                    return err("snapshot older than the previous one");
                }
                self.costs_unknown = true;
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
                    self.costs_unknown = true;
                    st.log.compact_to(meta.index, meta.term);
                    st.snapshot = Some(meta.clone());
                }
            }
            Record::Append { first_index, entries } => {
                let from = checkpoint_append(st, *first_index, entries)?;
                self.costs_unknown = true;
                for e in entries.iter().filter(|e| e.index >= from) {
                    st.log.append(e.clone());
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
            Record::Append { first_index, mut entries } => self.apply_append(seq, first_index, &mut entries),
            other => self.apply(seq, &other),
        }
    }

    /// Applies an `Append` record (a checkpoint's with sequence number 0),
    /// moving its entries out of `entries` into the log: `entries` is left
    /// empty, its allocation ready for the next record.
    fn apply_append(&mut self, seq: Seq, first_index: Index, entries: &mut Vec<Entry>) -> Result<(), JournalError> {
        // (Conservatively, even if the record is refused: it may have
        // truncated the log first.)
        self.costs_unknown = true;
        let st = &mut self.state;
        let result = if seq == CHECKPOINT_SEQ {
            checkpoint_append(st, first_index, entries).map(|from| {
                for e in entries.drain(..).filter(|e| e.index >= from) {
                    st.log.append(e);
                }
            })
        } else if st.last_seq != 0 && seq != st.last_seq + 1 {
            Err(JournalError::Discontiguous { seq, reason: "sequence number gap" })
        } else {
            check_append(st, seq, first_index, entries).map(|()| {
                let snap = st.log.snapshot_index();
                for e in entries.drain(..).filter(|e| e.index > snap) {
                    st.log.append(e);
                }
                st.last_seq = seq;
            })
        };
        entries.clear();
        result
    }

    /// Scans a segment read into `segment` and replays each record as it is
    /// read (what [`recover`] does, for a host that reads its segments one
    /// by one). The payloads of the entries replayed point into `segment`
    /// instead of being copied: no allocation per entry. The retention rule
    /// on [`Bytes`](crate::Bytes) bounds how long that keeps `segment`
    /// alive; [`Replay::finish`] applies its first half. The [`Scan`] says
    /// where valid frames end (its `records` stay empty); if it found
    /// records lost, the loss is noted here ([`Replay::note_loss`]).
    pub fn replay_segment(&mut self, segment: &Arc<Vec<u8>>) -> Result<Scan, JournalError> {
        let scan = self.replay_frames(segment, Some(segment))?;
        self.state.log.mark_shared();
        Ok(scan)
    }

    /// [`Replay::replay_segment`] for bytes not in a shared buffer: the
    /// payloads are copied.
    pub fn replay_bytes(&mut self, bytes: &[u8]) -> Result<Scan, JournalError> {
        self.replay_frames(bytes, None)
    }

    /// Scans `bytes` (which are all of `shared` when given) and replays
    /// every record as it is read, through one vector of entries reused from
    /// record to record.
    ///
    /// Plain appends — nearly every record — go straight from the bytes
    /// into the log ([`append_in_place`]); any other record, or one that
    /// path declines, is decoded whole and replayed by [`Replay::apply`]'s
    /// rules, which then say whether it fits and which error it gets.
    fn replay_frames(&mut self, bytes: &[u8], shared: Option<&Arc<Vec<u8>>>) -> Result<Scan, JournalError> {
        let mut entries = Vec::new();
        // What the payloads appended in place would cost as copies.
        let mut cost = 0usize;
        let scan = scan_frames(bytes, |pos, body| {
            let reader = || match shared {
                Some(buf) => Reader::shared(buf, body.clone()),
                None => Reader::new(&bytes[body.clone()]),
            };
            if let Some(c) = append_in_place(&mut self.state, reader()) {
                cost += c;
                return Ok(());
            }
            match decode_body(reader(), &mut entries) {
                Ok(Decoded::Append { seq, first_index }) => self.apply_append(seq, first_index, &mut entries),
                Ok(Decoded::Other(seq, rec)) => self.apply(seq, &rec),
                Err(_) => Err(JournalError::Corrupt { offset: pos, reason: UNDECODABLE }),
            }
        })?;
        if scan.lost_at.is_some() {
            self.note_loss(scan.lost_hard);
        }
        if let Some(buf) = shared.filter(|_| cost > 0) {
            match self.buffer_costs.iter_mut().find(|(b, _)| Arc::ptr_eq(b, buf)) {
                Some((_, c)) => *c += cost,
                None => self.buffer_costs.push((buf.clone(), cost)),
            }
        }
        Ok(scan)
    }

    /// Continues replaying from a state recovered earlier (a host that keeps
    /// a mirror of its durable state while it writes, to build checkpoints).
    pub fn from_state(state: DurableState) -> Self {
        // Its log may point into buffers this replay has not counted.
        Replay { state, lost: false, buffer_costs: Vec::new(), costs_unknown: true }
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

    /// Ends replay. Read buffers that the log's entries keep alive but
    /// barely use are let go of here (their payloads copied out: see
    /// [`Log::release_sparse_buffers`]).
    pub fn finish(mut self) -> DurableState {
        if self.lost {
            self.state.hard.lost_data = true;
        }
        if self.costs_unknown {
            self.state.log.release_sparse_buffers();
        } else {
            self.state.log.release_buffers_costing(&self.buffer_costs);
        }
        self.state
    }
}

/// Replays a frame body that is a plain `Append` straight into the log,
/// each entry checked (as [`check_append`] would) and appended as it is
/// decoded, with no vector in between; returns what its payloads would cost
/// as copies ([`Log::copy_cost`]). Declines (`None`, the state as it was) a
/// body that is not one: another record, a checkpoint's append (sequence
/// number 0), a sequence number that does not follow, entries that do not
/// start right after the log's last (those a snapshot covers, say), an
/// entry that does not fit, or bytes that do not decode. The caller then
/// decodes the body whole and replays it the general way, which accepts it
/// or refuses it with the error it always had: this path only ever accepts
/// what that one accepts, with the same result.
#[inline]
fn append_in_place(st: &mut DurableState, mut r: Reader<'_>) -> Option<usize> {
    let seq = r.u64().ok()?;
    if seq == CHECKPOINT_SEQ || (st.last_seq != 0 && seq != st.last_seq + 1) {
        return None;
    }
    if r.u32().ok()? != APPEND_TAG {
        return None;
    }
    let start = st.log.last_index() + 1;
    if r.u64().ok()? != start {
        return None;
    }
    let n = r.usize().ok()?;
    let mut last_term = st.log.last_term();
    let mut cost = 0usize;
    let mut whole = true;
    for _ in 0..n {
        let Ok(e) = Entry::decode(&mut r) else {
            whole = false;
            break;
        };
        // `start` follows the snapshot, so no entry here is one it covers.
        if e.index != st.log.last_index() + 1 || e.term < last_term {
            whole = false;
            break;
        }
        last_term = e.term;
        cost += Log::copy_cost(&e);
        st.log.append(e);
    }
    if whole && r.finish().is_ok() {
        st.last_seq = seq;
        return Some(cost);
    }
    // Undo what went in: the log is as it was (`start` is past the
    // snapshot, and nothing before it changes).
    if st.log.last_index() >= start {
        st.log.truncate_from(start);
    }
    None
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

/// The checks a checkpoint's `Append` (the log after the snapshot, as of the
/// checkpoint) must pass; it replaces what replay holds from the returned
/// index on (entries the snapshot covers are skipped), and this drops that
/// part of the log for the caller to append the entries from there.
fn checkpoint_append(st: &mut DurableState, first_index: Index, entries: &[Entry]) -> Result<Index, JournalError> {
    let snap = st.log.snapshot_index();
    let from = first_index.max(snap + 1);
    if from > st.log.last_index() + 1 {
        return Err(JournalError::Discontiguous { seq: 0, reason: "checkpoint entries leave a gap" });
    }
    if entries.iter().enumerate().any(|(k, e)| e.index != first_index + k as u64) {
        return Err(JournalError::Discontiguous { seq: 0, reason: "checkpoint entries are not contiguous" });
    }
    if from <= st.log.last_index() {
        st.log.truncate_from(from);
    }
    Ok(from)
}

/// Recovers a journal split into segments, oldest first: every segment but the
/// last must be whole; the last may end in a torn frame, which is cut off
/// (its [`Scan`] — `valid_len`, `torn_at`; the records moved into the state —
/// is returned so the host can truncate the file). An error names
/// the segment (by position) and the byte offset within it.
pub fn recover_segments(segments: &[&[u8]]) -> Result<(DurableState, Scan), (usize, JournalError)> {
    recover_each(segments.len(), |replay, k| replay.replay_bytes(segments[k]))
}

/// [`recover_segments`] from segments in shared read buffers: the replayed
/// entries' payloads point into them (see [`Replay::replay_segment`]).
pub fn recover_segments_shared(segments: &[Arc<Vec<u8>>]) -> Result<(DurableState, Scan), (usize, JournalError)> {
    recover_each(segments.len(), |replay, k| replay.replay_segment(&segments[k]))
}

/// Replays segments `0..count` in order with `replay_one`, refusing damage
/// before the last one.
fn recover_each(
    count: usize,
    mut replay_one: impl FnMut(&mut Replay, usize) -> Result<Scan, JournalError>,
) -> Result<(DurableState, Scan), (usize, JournalError)> {
    let mut replay = Replay::new();
    let mut last = Scan::default();
    for k in 0..count {
        // Records replay as they are read; a damaged frame before the last
        // segment is refused once the scan has found it (what came before
        // it replayed, but the whole recovery fails).
        let s = replay_one(&mut replay, k).map_err(|e| (k, e))?;
        if let Some(at) = s.torn_at.or(s.lost_at) {
            if k + 1 < count {
                return Err((
                    k,
                    JournalError::Corrupt { offset: at, reason: "damaged record before the last segment" },
                ));
            }
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
    let scan = replay.replay_bytes(bytes)?;
    Ok((replay.finish(), scan))
}

/// [`recover`] from a segment in a shared read buffer: the replayed entries'
/// payloads point into it (see [`Replay::replay_segment`]).
pub fn recover_shared(segment: &Arc<Vec<u8>>) -> Result<(DurableState, Scan), JournalError> {
    let mut replay = Replay::new();
    let scan = replay.replay_segment(segment)?;
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

    /// One record of every kind, with every kind of payload, and edge values.
    fn every_kind_of_record() -> Vec<(Seq, Record)> {
        let entries = crate::entry::every_kind_of_entry();
        let hard = HardState { term: 9, voted_for: None, role: Role::Leader, lost_data: true };
        vec![
            (
                1,
                Record::HardState(HardState {
                    term: 3,
                    voted_for: Some(2),
                    role: Role::PreCandidate,
                    lost_data: false,
                }),
            ),
            (2, Record::Append { first_index: 1, entries: entries.clone() }),
            (3, Record::Append { first_index: 9, entries: Vec::new() }),
            (4, Record::Truncate { from_index: 4 }),
            (
                5,
                Record::Snapshot(SnapshotMeta {
                    index: 2,
                    term: 3,
                    membership: Box::new(Membership::bootstrap(&[1, 2, 3])),
                    id: u64::MAX,
                }),
            ),
            (CHECKPOINT_SEQ, Record::Checkpoint { last_seq: 5 }),
            (CHECKPOINT_SEQ, Record::Append { first_index: 1, entries }),
            (CHECKPOINT_SEQ, Record::BatchEnd { last_seq: u64::MAX, hard }),
            (u64::MAX, Record::HardState(hard)),
        ]
    }

    type Decoding = Result<(Seq, Record), DecodeError>;

    /// The hand-written decoder and serde's, on the same body.
    fn both_decoders(body: &[u8]) -> (Decoding, Decoding) {
        (decode_record(body), crate::codec::decode_body::<(Seq, Record)>(body))
    }

    #[test]
    fn the_replay_decoder_reads_and_refuses_what_serde_does() {
        for (seq, rec) in every_kind_of_record() {
            let mut frame = Vec::new();
            encode_record(seq, &rec, &mut frame);
            let body = &frame[FRAME_HEADER_LEN..];
            let (hand, serde) = both_decoders(body);
            assert_eq!(hand, Ok((seq, rec.clone())));
            assert_eq!(hand, serde);
            // Cut short anywhere, a byte more, a byte changed in any of a few
            // ways: both give the same value or the same error.
            for cut in 0..body.len() {
                let (hand, serde) = both_decoders(&body[..cut]);
                assert_eq!(hand, serde, "{} cut at {cut}", rec.name());
            }
            let mut longer = body.to_vec();
            longer.push(0);
            let (hand, serde) = both_decoders(&longer);
            assert_eq!((&hand, hand.is_err()), (&serde, true), "{} with a byte more", rec.name());
            for i in 0..body.len() {
                for flip in [0x01u8, 0x02, 0x7f, 0x80, 0xff] {
                    let mut bad = body.to_vec();
                    bad[i] ^= flip;
                    let (hand, serde) = both_decoders(&bad);
                    assert_eq!(hand, serde, "{} byte {i} ^ {flip:#x}", rec.name());
                }
            }
        }
    }

    #[test]
    fn an_entry_count_from_the_input_reserves_no_more_than_the_bytes_allow() {
        // A frame with valid checksums whose body claims 2^40 entries and
        // holds none: refused as corrupt, without reserving for the count.
        let mut body = Vec::new();
        for v in [1u64, u64::from(APPEND_TAG), 1, 1 << 40] {
            let mut v = v;
            while v >= 0x80 {
                body.push(v as u8 | 0x80);
                v >>= 7;
            }
            body.push(v as u8);
        }
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        seg.extend_from_slice(&(body.len() as u32).to_le_bytes());
        seg.extend_from_slice(&crc32c(&body).to_le_bytes());
        let hcrc = crc32c(&seg[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 8]);
        seg.extend_from_slice(&hcrc.to_le_bytes());
        seg.extend_from_slice(&body);
        let err = JournalError::Corrupt { offset: SEGMENT_HEADER_LEN, reason: UNDECODABLE };
        assert_eq!(recover(&seg).map(|_| ()), Err(err.clone()));
        assert_eq!(recover_shared(&Arc::new(seg)).map(|_| ()), Err(err));
    }

    /// Two segments as a host writes them: records, batch markers, then a
    /// new segment opened with the checkpoint of the state so far.
    fn two_segments(payload_len: usize) -> Vec<Vec<u8>> {
        let write = |i: u64| Payload::Write {
            session: 1,
            secret_hash: [i as u8; 32],
            seq: i,
            ack: i,
            command: vec![i as u8; payload_len].into(),
        };
        let e = |i: u64| Entry {
            term: 2 + i / 30,
            index: i,
            time: i,
            payload: if i % 3 == 0 { Payload::Command(vec![!(i as u8); payload_len].into()) } else { write(i) },
        };
        let hs = HardState { term: 2, voted_for: Some(1), role: Role::Follower, lost_data: false };
        let first = [
            Record::HardState(hs),
            Record::Append { first_index: 1, entries: (1..=20).map(e).collect() },
            Record::Truncate { from_index: 15 },
            Record::Append { first_index: 15, entries: (15..=40).map(e).collect() },
            Record::Snapshot(SnapshotMeta {
                index: 5,
                term: 2,
                membership: Box::new(Membership::bootstrap(&[1])),
                id: 5,
            }),
        ];
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        let mut mirror = Replay::new();
        for (seq, rec) in (1..).zip(first) {
            encode_record(seq, &rec, &mut seg);
            mirror.apply(seq, &rec).unwrap();
        }
        let st = mirror.state();
        encode_record(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq: st.last_seq, hard: st.hard }, &mut seg);
        let mut next = Vec::new();
        write_segment_header(&mut next);
        for rec in mirror.checkpoint() {
            encode_record(CHECKPOINT_SEQ, &rec, &mut next);
        }
        encode_record(6, &Record::Append { first_index: 41, entries: (41..=50).map(e).collect() }, &mut next);
        vec![seg, next]
    }

    fn assert_same_state(a: &DurableState, b: &DurableState) {
        assert_eq!((a.hard, &a.snapshot, a.last_seq), (b.hard, &b.snapshot, b.last_seq));
        assert_eq!(
            (a.log.snapshot_index(), a.log.snapshot_term(), a.log.bytes()),
            (b.log.snapshot_index(), b.log.snapshot_term(), b.log.bytes())
        );
        assert!(a.log.iter().eq(b.log.iter()), "the same entries");
    }

    #[test]
    fn replay_from_a_shared_buffer_gives_the_state_a_copying_replay_gives() {
        let segs = two_segments(100);
        let slices: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
        let (copied, copied_scan) = recover_segments(&slices).unwrap();
        // Through serde alone: scan every record, replay by reference.
        let mut by_serde = Replay::new();
        for seg in &segs {
            for (seq, rec) in scan(seg).unwrap().records {
                by_serde.apply(seq, &rec).unwrap();
            }
        }
        let by_serde = by_serde.finish();
        let bufs: Vec<Arc<Vec<u8>>> = segs.into_iter().map(Arc::new).collect();
        let mut replay = Replay::new();
        let mut scans = Vec::new();
        for buf in &bufs {
            scans.push(replay.replay_segment(buf).unwrap());
        }
        let shared = replay.finish();
        assert_same_state(&shared, &copied);
        assert_same_state(&by_serde, &copied);
        assert_eq!(scans.last(), Some(&copied_scan));
        assert_eq!((shared.log.first_index(), shared.log.last_index()), (6, 50));
        // The copies own their payloads; the shared replay's point into the
        // second segment (whose checkpoint replaced the first's entries).
        assert!(copied.log.iter().all(|e| e.payload.command().is_some_and(|b| !b.is_shared())));
        assert!(shared.log.iter().all(|e| e.payload.command().is_some_and(|b| b.is_shared())));
        assert_eq!(Arc::strong_count(&bufs[0]), 1, "nothing points into the first segment");
        assert_eq!(Arc::strong_count(&bufs[1]), 1 + shared.log.len());
    }

    #[test]
    fn replay_lets_go_of_a_buffer_its_log_barely_uses() {
        // 1,000 entries of 100 bytes, then a snapshot that covers all but
        // the last 5 (a crash before the host opened a new segment): 5 x 132
        // bytes as copies against a buffer of ~150 kB. Copied out, freed.
        let e = |i| Entry { term: 1, index: i, time: 0, payload: Payload::Command(vec![i as u8; 100].into()) };
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        encode_record(1, &Record::Append { first_index: 1, entries: (1..=1000).map(e).collect() }, &mut seg);
        let meta = SnapshotMeta { index: 995, term: 1, membership: Box::new(Membership::bootstrap(&[1])), id: 1 };
        encode_record(2, &Record::Snapshot(meta), &mut seg);
        let buf = Arc::new(seg);
        let (st, _) = recover_shared(&buf).unwrap();
        assert_eq!(st.log.len(), 5);
        assert!(st.log.iter().all(|x| x.payload.command().is_some_and(|b| !b.is_shared())));
        assert_eq!(Arc::strong_count(&buf), 1, "the buffer is ours alone: freed once we drop it");
        assert!(st.log.iter().eq((996..=1000).map(e).collect::<Vec<_>>().iter()));
    }

    #[test]
    fn small_live_payloads_stay_in_the_buffer() {
        // Like the replay bench: 16-byte payloads, every one live. As copies
        // they would take more than the buffer does; they stay slices.
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        for i in 1..=1000u64 {
            let entries = vec![Entry { term: 1, index: i, time: 0, payload: Payload::Command(vec![7; 16].into()) }];
            encode_record(i, &Record::Append { first_index: i, entries }, &mut seg);
        }
        let buf = Arc::new(seg);
        let (st, _) = recover_shared(&buf).unwrap();
        assert_eq!(st.log.len(), 1000);
        assert_eq!(Arc::strong_count(&buf), 1001);
        // The first compaction copies out the entries it keeps: the buffer
        // does not outlive it.
        let mut log = st.log;
        log.compact_to(990, 1);
        assert_eq!(log.len(), 10);
        assert!(log.iter().all(|x| x.payload.command().is_some_and(|b| !b.is_shared() && b.as_slice() == [7; 16])));
        assert_eq!(Arc::strong_count(&buf), 1);
    }

    /// A segment of `bodies` framed as a host would (checksums that hold,
    /// whatever the bodies say).
    fn framed(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut seg = Vec::new();
        write_segment_header(&mut seg);
        for body in bodies {
            let start = seg.len();
            seg.extend_from_slice(&(body.len() as u32).to_le_bytes());
            seg.extend_from_slice(&crc32c(body).to_le_bytes());
            let hcrc = crc32c(&seg[start..start + 8]);
            seg.extend_from_slice(&hcrc.to_le_bytes());
            seg.extend_from_slice(body);
        }
        seg
    }

    /// Replay of `seg` the general way: every record decoded whole, then
    /// applied (`apply_owned`), never appended in place.
    fn replay_generally(seg: &[u8]) -> Result<DurableState, JournalError> {
        let mut r = Replay::new();
        scan_each(seg, |seq, rec| r.apply_owned(seq, rec))?;
        Ok(r.finish())
    }

    #[test]
    fn appends_in_place_accept_and_refuse_what_the_general_path_does() {
        // A first append, then a second one of every kind of entry, its
        // body cut at every length and with bytes changed every way: framed
        // validly, so that only the decoder and replay's checks see it.
        // Replayed in place (`recover_shared`, `recover`) and the general
        // way, both give the same state or the same error.
        let body = |seq: Seq, rec: &Record| {
            let mut frame = Vec::new();
            encode_record(seq, rec, &mut frame);
            frame.split_off(FRAME_HEADER_LEN)
        };
        let first = Entry { term: 3, index: 1, time: 0, payload: Payload::Command(vec![1; 16].into()) };
        let first = body(1, &Record::Append { first_index: 1, entries: vec![first] });
        let mut entries = crate::entry::every_kind_of_entry();
        for (e, i) in entries.iter_mut().zip(2..) {
            e.index = i;
        }
        let second = body(2, &Record::Append { first_index: 2, entries });
        let mut variants = vec![second.clone()];
        variants.extend((0..second.len()).map(|cut| second[..cut].to_vec()));
        for i in 0..second.len() {
            for flip in [0x01u8, 0x02, 0x7f, 0x80, 0xff] {
                let mut bad = second.clone();
                bad[i] ^= flip;
                variants.push(bad);
            }
        }
        let mut outcomes = [0usize; 3];
        for (k, v) in variants.iter().enumerate() {
            let seg = framed(&[first.clone(), v.clone()]);
            let general = replay_generally(&seg);
            let shared = recover_shared(&Arc::new(seg.clone())).map(|(st, _)| st);
            let copied = recover(&seg).map(|(st, _)| st);
            for in_place in [shared, copied] {
                match (&in_place, &general) {
                    (Ok(a), Ok(b)) => assert_same_state(a, b),
                    (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err(), "variant {k}"),
                }
            }
            outcomes[match &general {
                Ok(_) => 0,
                Err(JournalError::Corrupt { .. }) => 1,
                Err(_) => 2,
            }] += 1;
        }
        // Some of each: accepted, undecodable, decoded but not fitting.
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }

    #[test]
    fn costs_counted_in_place_release_what_a_walk_of_the_log_releases() {
        // Appends alone, replayed in place: the costs are counted as they go
        // and no walk is needed. Writes of 1-byte commands take far more
        // room in the buffer than as copies (released); 16-byte commands
        // less (kept). Either way the result is the walk's.
        for (command_len, kept) in [(1, false), (16, true)] {
            let mut seg = Vec::new();
            write_segment_header(&mut seg);
            for i in 1..=100u64 {
                let payload = if command_len == 1 {
                    Payload::Write { session: 1, secret_hash: [2; 32], seq: i, ack: i, command: vec![3].into() }
                } else {
                    Payload::Command(vec![4; command_len].into())
                };
                let rec =
                    Record::Append { first_index: i, entries: vec![Entry { term: 1, index: i, time: i, payload }] };
                encode_record(i, &rec, &mut seg);
                encode_record(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq: i, hard: HardState::default() }, &mut seg);
            }
            let buf = Arc::new(seg);
            let mut counted = Replay::new();
            counted.replay_segment(&buf).unwrap();
            assert!(!counted.costs_unknown, "batch markers leave the counts exact");
            let counted = counted.finish();
            let mut walked = Replay::new();
            walked.replay_segment(&buf).unwrap();
            walked.costs_unknown = true;
            let walked = walked.finish();
            assert_same_state(&counted, &walked);
            let shared = |st: &DurableState| -> Vec<bool> {
                st.log.iter().map(|e| e.payload.command().is_some_and(|b| b.is_shared())).collect()
            };
            assert_eq!(shared(&counted), shared(&walked));
            assert_eq!(shared(&counted), vec![kept; 100], "commands of {command_len}");
            assert_eq!(Arc::strong_count(&buf), if kept { 201 } else { 1 });
        }
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
