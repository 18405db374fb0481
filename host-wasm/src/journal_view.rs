//! What the page shows of each node's journal: its records as words
//! ([`RecordView`]), parsed incrementally frame by frame ([`JournalCache`]),
//! and what a restart of a crashed node would recover ([`DiskState`]).
//!
//! The driver keeps one cache per node and the view reads them; this module
//! needs neither.

use std::collections::VecDeque;

use raft_core::journal::{self, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use raft_core::sim::Disk;
use raft_core::{Entry, Index, NodeId, Term};
use serde::Serialize;

use crate::words;

/// One log entry.
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    /// Index.
    pub i: Index,
    /// Term.
    pub t: Term,
    /// Kind: noop, register, write, keepalive, command, conf.
    pub k: &'static str,
    /// Short text.
    pub s: String,
    /// Overwrites a committed entry: another term was committed at this index
    /// (never on a correct build; set by the view, see [`crate::committed`]).
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    pub x: bool,
}

/// The view of one entry.
pub fn entry_view(e: &Entry) -> EntryView {
    let (k, s) = words::entry(e);
    EntryView { i: e.index, t: e.term, k, s, x: false }
}

/// One journal record.
#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    /// Sequence number (0: a checkpoint frame repeating earlier state).
    pub seq: u64,
    /// Segment number (0: oldest kept).
    pub seg: usize,
    /// Byte offset in its segment.
    pub offset: usize,
    /// Frame length in bytes.
    pub len: usize,
    /// Kind: hard_state, append, truncate, snapshot.
    pub kind: &'static str,
    /// What it says.
    pub text: String,
    /// Whether it is durable (synced); set when the view is built.
    pub durable: bool,
}

/// A node's journal, parsed incrementally: only frames written since the
/// last look are decoded, unless a crash or a segment change rewrote history.
#[derive(Default)]
pub struct JournalCache {
    closed: usize,
    closed_records: usize,
    parsed_len: usize,
    last_frame: Vec<u8>,
    current: usize,
    tail: VecDeque<RecordView>,
    error: Option<String>,
    /// What a restart would recover, for a crashed node: (key, state).
    disk: Option<((usize, usize), DiskState)>,
}

const TAIL_KEEP: usize = 200;

/// Walks `bytes` (a whole segment or the continuation of one, starting at a
/// frame boundary `base`) and returns each record with its offset and length.
fn frames(seg: usize, base: usize, data: &[u8], out: &mut Vec<RecordView>) -> Result<usize, String> {
    let mut buf = Vec::with_capacity(SEGMENT_HEADER_LEN + data.len());
    journal::write_segment_header(&mut buf);
    buf.extend_from_slice(data);
    let scan = journal::scan(&buf).map_err(|e| format!("{e:?}"))?;
    let mut pos = SEGMENT_HEADER_LEN;
    for (seq, rec) in &scan.records {
        let len = FRAME_HEADER_LEN + u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let (kind, text) = words::record(rec);
        out.push(RecordView {
            seq: *seq,
            seg,
            offset: base + pos - SEGMENT_HEADER_LEN,
            len,
            kind,
            text,
            durable: true,
        });
        pos += len;
    }
    Ok(scan.valid_len - SEGMENT_HEADER_LEN)
}

impl JournalCache {
    fn keep(&mut self, recs: Vec<RecordView>) {
        for r in recs {
            if self.tail.len() >= TAIL_KEEP {
                self.tail.pop_front();
            }
            self.tail.push_back(r);
        }
    }

    /// Brings the cache up to date with `disk`; returns the number of records.
    pub fn refresh(&mut self, disk: &Disk) -> usize {
        let b = &disk.bytes;
        let valid = self.closed == disk.closed.len()
            && self.parsed_len >= SEGMENT_HEADER_LEN
            && b.len() >= self.parsed_len
            && b[self.parsed_len - self.last_frame.len()..self.parsed_len] == self.last_frame[..];
        if !valid {
            *self = JournalCache { disk: self.disk.take(), ..JournalCache::default() };
            self.closed = disk.closed.len();
            for (k, seg) in disk.closed.iter().enumerate() {
                let mut recs = Vec::new();
                if seg.len() >= SEGMENT_HEADER_LEN {
                    if let Err(e) = frames(k, SEGMENT_HEADER_LEN, &seg[SEGMENT_HEADER_LEN..], &mut recs) {
                        self.error = Some(format!("segment {k}: {e}"));
                    }
                }
                self.closed_records += recs.len();
                self.keep(recs);
            }
            self.parsed_len = SEGMENT_HEADER_LEN.min(b.len());
            if b.len() < SEGMENT_HEADER_LEN {
                return self.closed_records;
            }
        }
        if b.len() > self.parsed_len {
            let mut recs = Vec::new();
            match frames(self.closed, self.parsed_len, &b[self.parsed_len..], &mut recs) {
                Ok(used) => {
                    if let Some(last) = recs.last() {
                        self.last_frame = b[last.offset..last.offset + last.len].to_vec();
                    }
                    self.parsed_len += used;
                }
                Err(e) => self.error = Some(format!("current segment: {e}")),
            }
            self.current += recs.len();
            self.keep(recs);
        }
        self.closed_records + self.current
    }

    /// Records held, in all segments.
    pub fn count(&self) -> usize {
        self.closed_records + self.current
    }

    /// The newest `n` records, each marked durable if `disk` has synced it.
    pub fn tail(&self, n: usize, disk: &Disk) -> Vec<RecordView> {
        let cur = disk.closed.len();
        self.tail
            .iter()
            .skip(self.tail.len().saturating_sub(n))
            .cloned()
            .map(|mut r| {
                r.durable = r.seg < cur || r.offset + r.len <= disk.durable_len;
                r
            })
            .collect()
    }

    /// Why part of the journal could not be parsed, if it could not.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// For a node that is down (`up` false): what a restart would recover
    /// from `disk`, with the last `log_tail` entries. Recomputed only when the
    /// disk changed since the last call; a running node has none.
    pub fn disk_state(&mut self, disk: &Disk, up: bool, log_tail: usize) -> Option<DiskState> {
        if up {
            self.disk = None;
            return None;
        }
        let mut d = self.recovered(disk).clone();
        d.log = d.log.split_off(d.log.len().saturating_sub(log_tail));
        Some(d)
    }

    /// The entries with indexes `lo..=hi` a restart would recover from `disk`
    /// (the log table shows them for a crashed node).
    pub fn disk_entries(&mut self, disk: &Disk, lo: Index, hi: Index) -> Vec<EntryView> {
        self.recovered(disk).log.iter().filter(|e| (lo..=hi).contains(&e.i)).cloned().collect()
    }

    /// What `disk` recovers to, whole log included, cached until the disk changes.
    fn recovered(&mut self, disk: &Disk) -> &DiskState {
        let key = (disk.closed.len(), disk.bytes.len());
        if self.disk.as_ref().map(|d| d.0) != Some(key) {
            self.disk = Some((key, disk_state(disk)));
        }
        &self.disk.as_ref().expect("set above").1
    }
}

/// Every record of a node's journal (for the journal panel).
pub fn journal_records(disk: &Disk) -> Vec<RecordView> {
    let mut out = Vec::new();
    let n = disk.closed.len();
    for (k, seg) in disk.closed.iter().chain(std::iter::once(&disk.bytes)).enumerate() {
        if seg.len() >= SEGMENT_HEADER_LEN {
            let _ = frames(k, SEGMENT_HEADER_LEN, &seg[SEGMENT_HEADER_LEN..], &mut out);
        }
    }
    for r in out.iter_mut() {
        r.durable = r.seg < n || r.offset + r.len <= disk.durable_len;
    }
    out
}

/// What a crashed node's disk holds (what a restart would recover).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskState {
    /// Term on disk.
    pub term: Term,
    /// Vote on disk.
    pub voted_for: Option<NodeId>,
    /// Snapshot index on disk.
    pub snapshot_index: Index,
    /// Last log index on disk.
    pub last_index: Index,
    /// Entries on disk (after the snapshot; the view sends only the last few).
    pub log: Vec<EntryView>,
    /// Recovery would fail with this.
    pub error: Option<String>,
}

fn disk_state(disk: &Disk) -> DiskState {
    let mut segs: Vec<&[u8]> = disk.closed.iter().map(Vec::as_slice).collect();
    segs.push(&disk.bytes);
    match journal::recover_segments(&segs) {
        Ok((s, _)) => {
            let last = s.log.last_index();
            let lo = s.log.first_index();
            DiskState {
                term: s.hard.term,
                voted_for: s.hard.voted_for,
                snapshot_index: s.log.snapshot_index(),
                last_index: last,
                log: (lo..=last).filter_map(|i| s.log.entry(i)).map(entry_view).collect(),
                error: None,
            }
        }
        Err((seg, e)) => DiskState { error: Some(format!("segment {seg}: {e:?}")), ..DiskState::default() },
    }
}
