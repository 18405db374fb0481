//! The node's data directory and its journal on disk (DESIGN.md §3).
//!
//! ```text
//! DATA/identity          cluster id and node id (checked at every start)
//! DATA/journal/00000001.seg, 00000002.seg, ...   journal segments
//! DATA/snapshots/        snapshot files (reserved for the snapshot issue)
//! ```
//!
//! A segment is raft-core's journal format: a header and CRC-framed records
//! ([`raft_core::journal`]). Segments after the first begin with checkpoint
//! frames (sequence number 0) holding the current `HardState` and the latest
//! `Snapshot` record, so a segment can be replayed without the ones before it
//! once a snapshot covers everything they held.
//!
//! Writes are group-committed: the node hands the disk thread everything that
//! accumulated while the previous batch was being synced, and the thread writes
//! it with one `write` and one `fsync`. A failed write or fsync stops the
//! process: after a failed fsync the page cache cannot be trusted (the kernel
//! may have dropped the dirty pages and cleared the error).
//!
//! Recovery replays every segment in order. A torn frame at the very end of the
//! last segment is an unfinished write and is cut off; any other damage, in any
//! segment, refuses the start with the file and byte offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use raft_core::journal::{
    encode_record, scan, write_segment_header, DurableState, JournalError, Record, Replay, SnapshotMeta,
    CHECKPOINT_SEQ, SEGMENT_HEADER_LEN,
};
use raft_core::{HardState, Index, NodeId, Seq};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Why a node cannot start on its data directory.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn io_err(what: &str, path: &Path, e: io::Error) -> StartError {
    StartError(format!("{what} {}: {e}", path.display()))
}

/// Writes `bytes` to `dir/name` so that a crash leaves either the old file or
/// the new one, never a mix: temporary name, fsync, rename, fsync the
/// directory. Snapshot files will be written the same way.
pub fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

const IDENTITY_FILE: &str = "identity";

/// Creates the data directory if needed and checks (or, the first time,
/// records) which cluster and node it belongs to. A node refuses a directory
/// of another cluster or node: starting on it would mix two journals.
pub fn check_identity(dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<(), StartError> {
    fs::create_dir_all(dir).map_err(|e| io_err("cannot create data directory", dir, e))?;
    let path = dir.join(IDENTITY_FILE);
    let expected = format!("raftkv data directory\ncluster_id = {cluster_id:?}\nnode_id = {node_id}\n");
    match fs::read_to_string(&path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(StartError(format!(
            "data directory {} belongs to another cluster or node: its identity file says\n{}but this node is cluster {cluster_id:?}, node {node_id}",
            dir.display(),
            found
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::read_dir(dir.join("journal")).is_ok_and(|mut d| d.next().is_some()) {
                return Err(StartError(format!(
                    "data directory {} holds a journal but no identity file; refusing to guess whose it is",
                    dir.display()
                )));
            }
            write_file_atomically(dir, IDENTITY_FILE, expected.as_bytes())
                .map_err(|e| io_err("cannot write identity file in", dir, e))
        }
        Err(e) => Err(io_err("cannot read", &path, e)),
    }
}

/// What the journal knows about one segment file.
#[derive(Clone, Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    /// Highest log index appended in this segment (0: none).
    max_index: Index,
    /// Index of the Snapshot checkpoint at the segment's start (0: none).
    ckpt_snap: Index,
    /// First index appended in this segment, if any.
    first_append: Option<Index>,
}

impl Segment {
    /// Updates what is known about the segment with a record it holds.
    fn note(&mut self, seq: Seq, rec: &Record) {
        match rec {
            Record::Snapshot(meta) if seq == CHECKPOINT_SEQ && self.first_append.is_none() => {
                self.ckpt_snap = self.ckpt_snap.max(meta.index);
            }
            Record::Append { first_index, entries } => {
                self.first_append.get_or_insert(*first_index);
                self.max_index = self.max_index.max(entries.last().map_or(0, |e| e.index));
            }
            _ => {}
        }
    }
}

fn segment_name(number: u64) -> String {
    format!("{number:08}.seg")
}

/// The journal of one node: recovery, appends with group commit, rotation.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    len: u64,
    segment_bytes: u64,
    /// The latest HardState and Snapshot record written (for checkpoints).
    hard: HardState,
    snapshot: Option<SnapshotMeta>,
    buf: Vec<u8>,
    metrics: Arc<Metrics>,
}

impl Journal {
    /// Opens the journal in `data_dir/journal`, replaying what is there.
    /// Returns the journal, ready to append, and the state to restart from.
    pub fn open(
        data_dir: &Path,
        segment_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<(Journal, DurableState), StartError> {
        let dir = data_dir.join("journal");
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let snaps = data_dir.join("snapshots");
        fs::create_dir_all(&snaps).map_err(|e| io_err("cannot create", &snaps, e))?;

        let mut numbers = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_err("cannot list", &dir, e))? {
            let entry = entry.map_err(|e| io_err("cannot list", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".seg").and_then(|s| s.parse::<u64>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();

        let mut replay = Replay::new();
        let mut segments = Vec::new();
        let mut append_len = None;
        for (k, &number) in numbers.iter().enumerate() {
            let last = k + 1 == numbers.len();
            let path = dir.join(segment_name(number));
            let bytes = fs::read(&path).map_err(|e| io_err("cannot read", &path, e))?;
            let where_ = |offset: usize, what: &str| {
                StartError(format!(
                    "journal file {} is corrupt at byte offset {offset}: {what}; refusing to start \
                     (move the data directory aside to rejoin empty, or restore it)",
                    path.display()
                ))
            };
            // A segment cut short while its header was being written (a crash
            // during rotation) holds nothing: only the last one may be so.
            if bytes.len() < SEGMENT_HEADER_LEN && last {
                fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
                tracing::warn!(file = %path.display(), "removed a journal segment torn inside its header");
                continue;
            }
            let s = match scan(&bytes) {
                Ok(s) => s,
                Err(JournalError::Corrupt { offset, reason }) => return Err(where_(offset, reason)),
                Err(e) => return Err(where_(0, &e.to_string())),
            };
            if let Some(at) = s.torn_at {
                if !last {
                    return Err(where_(at, "damaged record before the end of the journal"));
                }
                tracing::warn!(file = %path.display(), offset = at, "cutting a torn record off the end of the journal");
            }
            let mut seg = Segment { number, path: path.clone(), max_index: 0, ckpt_snap: 0, first_append: None };
            for (seq, rec) in &s.records {
                seg.note(*seq, rec);
                replay
                    .apply(*seq, rec)
                    .map_err(|e| StartError(format!("journal file {}: {e}; refusing to start", path.display())))?;
            }
            if last {
                append_len = Some((s.valid_len, bytes.len(), s.records.is_empty() && k > 0));
            }
            segments.push(seg);
        }

        let state = replay.finish();
        let mut journal = Journal {
            file: match segments.last() {
                // Append mode: every write goes to the end, whatever the offset.
                Some(seg) => {
                    OpenOptions::new().append(true).open(&seg.path).map_err(|e| io_err("cannot open", &seg.path, e))?
                }
                None => tempfile_placeholder(&dir)?,
            },
            dir,
            segments,
            len: 0,
            segment_bytes,
            hard: state.hard,
            snapshot: state.snapshot.clone(),
            buf: Vec::new(),
            metrics,
        };
        match append_len {
            // An empty segment after others (a crash during rotation) may lack
            // its checkpoints: start it again properly.
            Some((_, _, true)) => {
                let seg = journal.segments.pop().expect("the last segment exists");
                fs::remove_file(&seg.path).map_err(|e| io_err("cannot remove", &seg.path, e))?;
                journal.start_segment(seg.number).map_err(|e| io_err("cannot create a segment in", &journal.dir, e))?;
            }
            Some((valid, total, false)) => {
                if valid < total {
                    journal
                        .file
                        .set_len(valid as u64)
                        .map_err(|e| io_err("cannot cut the torn tail of", &journal.dir, e))?;
                    journal.file.sync_all().map_err(|e| io_err("cannot sync", &journal.dir, e))?;
                }
                journal.len = valid as u64;
            }
            None => {
                let next = journal.segments.last().map_or(1, |s| s.number + 1);
                journal.start_segment(next).map_err(|e| io_err("cannot create a segment in", &journal.dir, e))?;
            }
        }
        Ok((journal, state))
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Creates segment `number`: header and checkpoints, synced, directory synced.
    fn start_segment(&mut self, number: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(number));
        let mut file = OpenOptions::new().append(true).create_new(true).open(&path)?;
        let mut buf = Vec::new();
        write_segment_header(&mut buf);
        if number > 1 || self.hard != HardState::default() {
            encode_record(CHECKPOINT_SEQ, &Record::HardState(self.hard), &mut buf);
        }
        if let Some(snap) = &self.snapshot {
            encode_record(CHECKPOINT_SEQ, &Record::Snapshot(snap.clone()), &mut buf);
        }
        file.write_all(&buf)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.len = buf.len() as u64;
        let ckpt_snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        self.segments.push(Segment { number, path, max_index: 0, ckpt_snap, first_append: None });
        self.metrics.journal_segments_created_total.inc();
        Ok(())
    }

    /// Appends records and makes them durable with one fsync (the caller
    /// batches: group commit). Rotates to a new segment past the size limit.
    pub fn append(&mut self, records: &[(Seq, Record)]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let seg = self.segments.len() - 1;
        let mut new_snapshot = false;
        for (seq, rec) in records {
            encode_record(*seq, rec, &mut self.buf);
            self.segments[seg].note(*seq, rec);
            match rec {
                Record::HardState(hs) => self.hard = *hs,
                Record::Snapshot(meta) => {
                    self.snapshot = Some(meta.clone());
                    new_snapshot = true;
                }
                Record::Append { .. } | Record::Truncate { .. } => {}
            }
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        self.metrics.journal_records_total.add(records.len() as u64);
        self.metrics.journal_bytes_total.add(self.buf.len() as u64);
        self.metrics.journal_syncs_total.inc();
        // A new snapshot starts a new segment at once, so that its checkpoint
        // holds the snapshot and older segments can go.
        if self.len >= self.segment_bytes || new_snapshot {
            let next = self.segments[seg].number + 1;
            self.start_segment(next)?;
        }
        if new_snapshot {
            self.collect_garbage()?;
        }
        Ok(())
    }

    /// Deletes the oldest segments once a later segment can stand in for all
    /// of them: its checkpoints hold the HardState current when it began and a
    /// snapshot covering every entry they appended, so replay starting from it
    /// yields the same state.
    fn collect_garbage(&mut self) -> io::Result<()> {
        let mut prefix_max = Vec::with_capacity(self.segments.len());
        let mut m = 0;
        for seg in &self.segments {
            prefix_max.push(m); // max index appended before this segment
            m = m.max(seg.max_index);
        }
        let stand_in = (1..self.segments.len()).rev().find(|&k| {
            let seg = &self.segments[k];
            // raft-core's replay needs the segment's first append to continue
            // right after its checkpoint snapshot (it does not skip entries
            // the snapshot already covers).
            seg.ckpt_snap > 0
                && prefix_max[k] <= seg.ckpt_snap
                && seg.first_append.is_none_or(|f| f == seg.ckpt_snap + 1)
        });
        let Some(k) = stand_in else { return Ok(()) };
        for seg in self.segments.drain(..k) {
            fs::remove_file(&seg.path)?;
            self.metrics.journal_segments_deleted_total.inc();
        }
        sync_dir(&self.dir)
    }
}

/// A journal directory with no segment yet: the first segment is created right
/// after; this handle is only a stand-in until then.
fn tempfile_placeholder(dir: &Path) -> Result<File, StartError> {
    File::open(dir).map_err(|e| io_err("cannot open", dir, e))
}

/// Runs the journal on its own OS thread (file I/O blocks) and returns the
/// channel the node sends batches on. Each batch is written and synced at
/// once, then its last sequence number is sent back on `done`. A failed
/// write or fsync ends the process.
pub fn spawn_disk_thread(
    mut journal: Journal,
    done: mpsc::Sender<Seq>,
) -> io::Result<mpsc::Sender<Vec<(Seq, Record)>>> {
    // Capacity 1: the node sends one batch only when the previous one is
    // durable, so while a sync runs records pile up in the node and the next
    // batch carries all of them (group commit).
    let (tx, mut rx) = mpsc::channel::<Vec<(Seq, Record)>>(1);
    std::thread::Builder::new().name("journal".into()).spawn(move || {
        while let Some(batch) = rx.blocking_recv() {
            let Some(last) = batch.last().map(|(s, _)| *s) else { continue };
            let started = Instant::now();
            if let Err(e) = journal.append(&batch) {
                tracing::error!(error = %e, dir = %journal.dir.display(), "journal write or fsync failed; stopping the node");
                eprintln!("raftkv: journal write or fsync failed in {}: {e}; stopping", journal.dir.display());
                std::process::exit(1);
            }
            tracing::trace!(records = batch.len(), last, took_us = started.elapsed().as_micros() as u64, "journal batch durable");
            if done.blocking_send(last).is_err() {
                break;
            }
        }
    })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Entry, Payload, Role};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftkv-journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn append(first: Index, n: u64, term: u64) -> Record {
        let entries = (first..first + n)
            .map(|i| Entry { term, index: i, time: 0, payload: Payload::Command(vec![i as u8; 100]) })
            .collect();
        Record::Append { first_index: first, entries }
    }

    #[test]
    fn identity_is_checked() {
        let d = tmpdir("id");
        check_identity(&d, "c", 1).unwrap();
        check_identity(&d, "c", 1).unwrap();
        assert!(check_identity(&d, "c", 2).unwrap_err().0.contains("another cluster or node"));
        assert!(check_identity(&d, "other", 1).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotate_recover_and_collect() {
        let d = tmpdir("rot");
        let m = Arc::new(Metrics::default());
        let (mut j, st) = Journal::open(&d, 4096, m.clone()).unwrap();
        assert_eq!(st.last_seq, 0);
        let hs = HardState { term: 3, voted_for: Some(1), role: Role::Leader };
        j.append(&[(1, Record::HardState(hs))]).unwrap();
        let mut seq = 2;
        for k in 0..40 {
            j.append(&[(seq, append(k * 5 + 1, 5, 3))]).unwrap();
            seq += 1;
        }
        assert!(j.segment_count() > 3, "rotated: {}", j.segment_count());
        drop(j);
        let (j, st) = Journal::open(&d, 4096, m.clone()).unwrap();
        assert_eq!(st.hard, hs);
        assert_eq!(st.log.last_index(), 200);
        assert_eq!(st.last_seq, seq - 1);
        let before = j.segment_count();
        drop(j);

        // A snapshot at 150 cannot free the segment holding 151..: only
        // segments wholly below it may go, and none can stand in yet.
        let (mut j, _) = Journal::open(&d, 4096, m.clone()).unwrap();
        j.append(&[(seq, Record::Snapshot(SnapshotMeta { index: 150, term: 3, voters: vec![1], id: 1 }))]).unwrap();
        seq += 1;
        assert_eq!(m.journal_segments_deleted_total.get(), 0);
        assert_eq!(j.segment_count(), before + 1, "a snapshot starts a segment");
        // A snapshot of everything frees every older segment.
        let snap = SnapshotMeta { index: 200, term: 3, voters: vec![1], id: 2 };
        j.append(&[(seq, Record::Snapshot(snap.clone()))]).unwrap();
        seq += 1;
        assert_eq!(j.segment_count(), 1);
        for k in 0..10 {
            j.append(&[(seq, append(201 + k * 5, 5, 3))]).unwrap();
            seq += 1;
        }
        drop(j);
        let (_, st) = Journal::open(&d, 4096, m).unwrap();
        assert_eq!(st.snapshot, Some(snap));
        assert_eq!(st.hard, hs);
        assert_eq!(st.log.last_index(), 250);
        assert_eq!(st.log.snapshot_index(), 200);
        assert_eq!(st.last_seq, seq - 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_corruption_named() {
        let d = tmpdir("torn");
        let m = Arc::new(Metrics::default());
        let (mut j, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        j.append(&[(1, append(1, 3, 1))]).unwrap();
        j.append(&[(2, append(4, 3, 1))]).unwrap();
        drop(j);
        let seg = d.join("journal").join(segment_name(1));
        let good = fs::read(&seg).unwrap();
        // Half a frame at the end: cut, nothing lost.
        let mut torn = good.clone();
        torn.extend_from_slice(&good[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 30]);
        fs::write(&seg, &torn).unwrap();
        let (mut j, st) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        assert_eq!(st.log.last_index(), 6);
        assert_eq!(fs::read(&seg).unwrap(), good);
        j.append(&[(3, append(7, 1, 1))]).unwrap();
        drop(j);
        // A flipped byte inside the first frame: refused, file and offset named.
        let mut bad = fs::read(&seg).unwrap();
        bad[SEGMENT_HEADER_LEN + 20] ^= 0x10;
        fs::write(&seg, &bad).unwrap();
        let err = Journal::open(&d, 1 << 20, m).unwrap_err().0;
        assert!(err.contains("00000001.seg") && err.contains("offset 8"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }
}
