//! The node's data directory and its journal on disk (DESIGN.md §3).
//!
//! ```text
//! DATA/identity          cluster id and node id (checked at every start)
//! DATA/journal/00000001.seg, 00000002.seg, ...   journal segments
//! DATA/snapshots/00000000000000012345.snap   snapshot files, named by id
//! ```
//!
//! A segment is raft-core's journal format: a header and CRC-framed records
//! ([`raft_core::journal`]). Segments after the first begin with checkpoint
//! frames (sequence number 0) holding the current `HardState`, the latest
//! `Snapshot` record and every log entry after it — the whole durable state,
//! kept by the disk thread as a mirror of what it wrote — so once a new
//! segment's checkpoint is synced, every older segment is deleted. A segment
//! is started past the size limit and after every snapshot, so the journal
//! stays about one snapshot interval long.
//!
//! A snapshot file is written (temporary name, fsync, rename, directory fsync)
//! before the `Snapshot` record that names it (records of the same batch
//! before that one are synced and reported durable first: they do not wait
//! for the file); older files are deleted once that record is durable.
//! Starting a segment and deleting files happen after the batch is reported
//! durable: they delay the next batch, not the one that caused them.
//!
//! Writes are group-committed: the node hands the disk thread the records of
//! each of its turns at once, and the thread writes everything that queued up
//! while the previous write was being synced with one `write` and one `fsync`
//! (the thread, and the inline path a follower takes when the thread is idle,
//! are in `crate::disk`). A failed write or fsync stops the process: after a
//! failed fsync the page cache cannot be trusted (the kernel may have dropped
//! the dirty pages and cleared the error).
//!
//! Segments are preallocated: zeros are written (and synced) up to 1 MiB ahead
//! of the records, after a batch is reported durable, so that appends overwrite
//! space the file already has and each `fdatasync` writes the data but not the
//! file's size. Zeros after the last record are free space, not damage.
//!
//! Recovery replays every segment in order. A torn frame at the very end of the
//! last segment (followed by nothing, or only by preallocated zeros) is an
//! unfinished write and is cut off; any other damage, in any segment, refuses
//! the start with the file and byte offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_core::journal::{
    encode_record, write_segment_header, DurableState, JournalError, Record, Replay, CHECKPOINT_SEQ, SEGMENT_HEADER_LEN,
};
use raft_core::snapshot::Snapshot;
use raft_core::{NodeId, Seq};
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

/// How far ahead of the records a segment is filled with zeros.
const PREALLOCATE: u64 = 1 << 20;

/// Reads a segment file whole into `spare` (a buffer left from an earlier
/// segment, if any: its allocation is reused), read straight into memory of
/// the file's size with no zeroing first (`read_to_end` fills spare
/// capacity as it is).
fn read_segment(path: &Path, spare: Option<Vec<u8>>) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(|_| io::Error::other("segment larger than memory"))?;
    let mut buf = spare.unwrap_or_default();
    buf.clear();
    buf.reserve_exact(len);
    file.read_to_end(&mut buf)?;
    Ok(buf)
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

/// One segment file.
#[derive(Clone, Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
}

fn segment_name(number: u64) -> String {
    format!("{number:08}.seg")
}

/// The journal of one node: recovery, appends with group commit, rotation.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    snapshots: PathBuf,
    segments: Vec<Segment>,
    file: File,
    /// Where the next record goes.
    len: u64,
    /// The file's size: past `len` it holds zeros written in advance.
    allocated: u64,
    segment_bytes: u64,
    /// The durable state as of the last record written: what a checkpoint holds.
    mirror: Replay,
    buf: Vec<u8>,
    metrics: Arc<Metrics>,
}

/// The name of snapshot `id`'s file.
pub fn snapshot_name(id: u64) -> String {
    format!("{id:020}.snap")
}

/// What the node task hands the disk thread: a snapshot to store first (if
/// one was taken or received), then records to append with one sync.
#[derive(Debug, Default)]
pub struct Batch {
    /// Written durably before `records` (which include the record naming it).
    pub snapshot: Option<Arc<Snapshot>>,
    /// Journal records, in order.
    pub records: Vec<(Seq, Record)>,
}

impl Journal {
    /// The journal's directory (`data_dir/journal`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the journal in `data_dir/journal`, replaying what is there.
    /// Returns the journal, ready to append, the state to restart from, and
    /// the bytes of the snapshot that state names (if any).
    pub fn open(
        data_dir: &Path,
        segment_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<(Journal, DurableState, Option<Vec<u8>>), StartError> {
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
        let mut lost = false;
        // The previous segment's read buffer, reused for the next segment once
        // no replayed payload points into it any more.
        let mut previous: Option<Arc<Vec<u8>>> = None;
        for (k, &number) in numbers.iter().enumerate() {
            let last = k + 1 == numbers.len();
            let path = dir.join(segment_name(number));
            let spare = previous.take().and_then(|b| Arc::try_unwrap(b).ok());
            let bytes = Arc::new(read_segment(&path, spare).map_err(|e| io_err("cannot read", &path, e))?);
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
            // Scanned and replayed in one pass, the payloads left in the
            // buffer (a torn last frame in preallocated space is followed by
            // zeros rather than by the end of the file: the scan reports it
            // torn like any other). A damaged segment before the last one
            // refuses the start below, whatever it replayed.
            let mut s = match replay.replay_segment(&bytes) {
                Ok(s) => s,
                Err(JournalError::Corrupt { offset, reason }) => return Err(where_(offset, reason)),
                Err(e @ JournalError::BadHeader(_)) => return Err(where_(0, &e.to_string())),
                Err(e @ JournalError::Discontiguous { .. }) => {
                    return Err(StartError(format!("journal file {}: {e}; refusing to start", path.display())))
                }
            };
            // Zeros after the last record are preallocated space, not damage.
            if s.torn_at.is_some_and(|at| bytes[at..].iter().all(|&b| b == 0)) {
                s.torn_at = None;
            }
            if let Some(at) = s.torn_at.or(s.lost_at) {
                if !last {
                    return Err(where_(at, "damaged record before the end of the journal"));
                }
            }
            if let Some(at) = s.torn_at {
                tracing::warn!(file = %path.display(), offset = at, "cutting a torn record off the end of the journal");
            }
            let seg = Segment { number, path: path.clone() };
            // Every valid frame is a record: none if the valid part is the header.
            let no_records = s.valid_len == SEGMENT_HEADER_LEN;
            if let Some(at) = s.lost_at {
                // A damaged record before a batch marker that survived: data
                // this node had made durable (and may have acknowledged) is
                // gone. The replay cut there, kept the newest term and vote the
                // marker gives, and flagged the node: it will not vote or count
                // until it has caught up with a leader (DESIGN §10).
                tracing::warn!(
                    file = %path.display(),
                    offset = at,
                    "journal records this node had made durable are damaged: cutting them off; \
                     the node will not vote until it has caught up with the leader"
                );
                lost = true;
            }
            if last {
                let cut = s.torn_at.is_some() || s.lost_at.is_some();
                append_len = Some((s.valid_len, bytes.len(), cut, no_records && k > 0));
            }
            segments.push(seg);
            previous = Some(bytes);
        }
        drop(previous);

        let state = replay.finish();
        let snapshot = match &state.snapshot {
            Some(meta) => {
                let path = snaps.join(snapshot_name(meta.id));
                Some(fs::read(&path).map_err(|e| {
                    StartError(format!(
                        "the journal names snapshot {} (index {}) but {} cannot be read: {e}; refusing to start",
                        meta.id,
                        meta.index,
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        let mut journal = Journal {
            file: match segments.last() {
                // Written at `len`, into preallocated space.
                Some(seg) => {
                    OpenOptions::new().write(true).open(&seg.path).map_err(|e| io_err("cannot open", &seg.path, e))?
                }
                None => tempfile_placeholder(&dir)?,
            },
            dir,
            snapshots: snaps,
            segments,
            len: 0,
            allocated: 0,
            segment_bytes,
            mirror: Replay::from_state(state.clone()),
            buf: Vec::new(),
            metrics,
        };
        match append_len {
            // An empty segment after others (a crash during rotation) may lack
            // its checkpoints: start it again properly.
            Some((_, _, _, true)) => {
                let seg = journal.segments.pop().expect("the last segment exists");
                fs::remove_file(&seg.path).map_err(|e| io_err("cannot remove", &seg.path, e))?;
                journal.start_segment(seg.number).map_err(|e| io_err("cannot create a segment in", &journal.dir, e))?;
            }
            Some((valid, total, torn, false)) => {
                journal.allocated = total as u64;
                if torn {
                    journal
                        .file
                        .set_len(valid as u64)
                        .map_err(|e| io_err("cannot cut the torn tail of", &journal.dir, e))?;
                    journal.file.sync_all().map_err(|e| io_err("cannot sync", &journal.dir, e))?;
                    journal.allocated = valid as u64;
                }
                journal.len = valid as u64;
            }
            None => {
                let next = journal.segments.last().map_or(1, |s| s.number + 1);
                journal.start_segment(next).map_err(|e| io_err("cannot create a segment in", &journal.dir, e))?;
            }
        }
        if lost {
            // The evidence (the damaged frames) is cut: make the finding
            // durable before anything else, so a crash cannot forget it.
            journal.metrics.journal_losses_found_total.inc();
            journal.write_marker().map_err(|e| io_err("cannot write to", &journal.dir, e))?;
        }
        Ok((journal, state, snapshot))
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Creates segment `number`: header and checkpoint frames holding the whole
    /// durable state, synced, directory synced. Every older segment is then
    /// deleted: the new one stands in for all of them.
    fn start_segment(&mut self, number: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(number));
        let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let mut buf = Vec::new();
        write_segment_header(&mut buf);
        let st = self.mirror.state();
        let pristine = st.last_seq == 0 && st.snapshot.is_none() && st.log.last_index() == 0;
        if !pristine {
            for rec in self.mirror.checkpoint() {
                encode_record(CHECKPOINT_SEQ, &rec, &mut buf);
            }
            let marker = Record::BatchEnd { last_seq: st.last_seq, hard: st.hard };
            encode_record(CHECKPOINT_SEQ, &marker, &mut buf);
        }
        file.write_all(&buf)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.len = buf.len() as u64;
        self.allocated = self.len;
        self.metrics.journal_segments_created_total.inc();
        for seg in self.segments.drain(..) {
            fs::remove_file(&seg.path)?;
            self.metrics.journal_segments_deleted_total.inc();
        }
        self.segments.push(Segment { number, path });
        sync_dir(&self.dir)
    }

    /// Stores a snapshot durably (before the records that name it).
    pub fn store_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        write_file_atomically(&self.snapshots, &snapshot_name(snap.meta.id), &snap.data)
    }

    /// Appends records and makes them durable with one fsync (the caller
    /// batches: group commit). Past the size limit, or after a snapshot, a
    /// new segment begins and the old ones go.
    pub fn append(&mut self, records: &[(Seq, Record)]) -> io::Result<()> {
        let snapshot = self.write_synced(records)?;
        self.maintain(snapshot)
    }

    /// Writes records with one `write` and makes them durable with one
    /// `fdatasync`. Returns the id of the newest snapshot they name, for
    /// [`Journal::maintain`].
    fn write_synced(&mut self, records: &[(Seq, Record)]) -> io::Result<Option<u64>> {
        if records.is_empty() {
            return Ok(None);
        }
        self.buf.clear();
        let mut new_snapshot = None;
        for (seq, rec) in records {
            encode_record(*seq, rec, &mut self.buf);
            self.mirror
                .apply(*seq, rec)
                .map_err(|e| io::Error::other(format!("record does not fit the journal: {e}")))?;
            if let Record::Snapshot(meta) = rec {
                new_snapshot = Some(meta.id);
            }
        }
        // The batch marker, in the same write: recovery tells a batch cut
        // by a crash (no marker) from damage to one written whole.
        let st = self.mirror.state();
        encode_record(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq: st.last_seq, hard: st.hard }, &mut self.buf);
        let end = self.len + self.buf.len() as u64;
        if end > self.allocated {
            // No room left (a batch bigger than the space prepared): the
            // write grows the file, and this sync writes its size too.
            self.allocated = end;
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.file.sync_data()?;
        self.len = end;
        self.metrics.journal_records_total.add(records.len() as u64);
        self.metrics.journal_bytes_total.add(self.buf.len() as u64);
        self.metrics.journal_syncs_total.inc();
        Ok(new_snapshot)
    }

    /// Writes and syncs a batch marker alone (restating the durable state's
    /// last record and HardState).
    fn write_marker(&mut self) -> io::Result<()> {
        self.buf.clear();
        let st = self.mirror.state();
        encode_record(CHECKPOINT_SEQ, &Record::BatchEnd { last_seq: st.last_seq, hard: st.hard }, &mut self.buf);
        let end = self.len + self.buf.len() as u64;
        self.allocated = self.allocated.max(end);
        self.file.write_all_at(&self.buf, self.len)?;
        self.file.sync_data()?;
        self.len = end;
        self.metrics.journal_syncs_total.inc();
        Ok(())
    }

    /// Writes records that name no snapshot file with one `write` and one
    /// `fdatasync`, as the node task does when the journal thread is idle
    /// (crate::disk). Returns whether [`Journal::maintain`] has work to do
    /// now (`Some(snapshot)` or `Some(None)`: rotation, preallocation), which
    /// the caller hands to the journal thread so that it does not delay the
    /// event loop.
    pub(crate) fn write_now(&mut self, records: &[(Seq, Record)]) -> io::Result<Option<Option<u64>>> {
        let new_snapshot = self.write_synced(records)?;
        let due = new_snapshot.is_some() || self.len >= self.segment_bytes || self.preallocation_due();
        Ok(due.then_some(new_snapshot))
    }

    /// Whether fewer than `PREALLOCATE / 2` zeros are left ahead of the
    /// records and [`Journal::preallocate`] would write more.
    fn preallocation_due(&self) -> bool {
        self.allocated < self.len + PREALLOCATE / 2 && (self.len + PREALLOCATE).min(self.segment_bytes) > self.allocated
    }

    /// The work that follows a durable write but that no record waits for:
    /// a new segment past the size limit or after a snapshot (`new_snapshot`),
    /// and deleting snapshot files older than the new one.
    pub(crate) fn maintain(&mut self, new_snapshot: Option<u64>) -> io::Result<()> {
        if self.len >= self.segment_bytes || new_snapshot.is_some() {
            let next = self.segments.last().map_or(1, |s| s.number + 1);
            self.start_segment(next)?;
        }
        if let Some(id) = new_snapshot {
            self.drop_snapshots_before(id)?;
        }
        if self.preallocation_due() {
            self.preallocate()?;
        }
        Ok(())
    }

    /// Writes zeros past the end of the records, up to `PREALLOCATE` bytes
    /// ahead (but not past the segment size limit), and syncs them. An append then overwrites space that already
    /// belongs to the file: the file's size does not change, so `fdatasync`
    /// writes only the data, not the inode as well (one I/O fewer per batch).
    /// Recovery reads zeros after the last record as free space.
    fn preallocate(&mut self) -> io::Result<()> {
        // Not past the segment's size limit: a new segment starts there.
        let target = (self.len + PREALLOCATE).min(self.segment_bytes);
        if target <= self.allocated {
            return Ok(());
        }
        let zeros = vec![0u8; (target - self.allocated) as usize];
        self.file.write_all_at(&zeros, self.allocated)?;
        self.file.sync_data()?;
        self.allocated = target;
        self.metrics.journal_syncs_total.inc();
        Ok(())
    }

    /// Writes one batch: the records before its first `Snapshot` record
    /// (which do not depend on the snapshot file) are made durable and
    /// reported to `durable` first; then the snapshot file, the remaining
    /// records, and the report of the last one. Segment rotation and clean-up
    /// come after the report, so they delay the next batch, not this one.
    /// `Ok(false)`: nobody listens to the reports any more.
    pub(crate) fn write_batch(&mut self, batch: &Batch, durable: &mpsc::Sender<Seq>) -> io::Result<bool> {
        let Some(&(last, _)) = batch.records.last() else { return Ok(true) };
        let split = match batch.snapshot {
            Some(_) => batch.records.iter().position(|(_, r)| matches!(r, Record::Snapshot(_))).unwrap_or(0),
            None => 0,
        };
        if split > 0 {
            self.write_synced(&batch.records[..split])?;
            if durable.blocking_send(batch.records[split - 1].0).is_err() {
                return Ok(false);
            }
        }
        if let Some(snap) = &batch.snapshot {
            self.store_snapshot(snap)?;
        }
        let new_snapshot = self.write_synced(&batch.records[split..])?;
        if durable.blocking_send(last).is_err() {
            return Ok(false);
        }
        self.maintain(new_snapshot)?;
        Ok(true)
    }

    /// Deletes snapshot files older than `id`, whose record is now durable.
    fn drop_snapshots_before(&self, id: u64) -> io::Result<()> {
        for entry in fs::read_dir(&self.snapshots)? {
            let entry = entry?;
            let name = entry.file_name();
            let old = name.to_string_lossy().strip_suffix(".snap").and_then(|n| n.parse::<u64>().ok());
            if old.is_some_and(|n| n < id) {
                fs::remove_file(entry.path())?;
            }
        }
        sync_dir(&self.snapshots)
    }
}

/// A journal directory with no segment yet: the first segment is created right
/// after; this handle is only a stand-in until then.
fn tempfile_placeholder(dir: &Path) -> Result<File, StartError> {
    File::open(dir).map_err(|e| io_err("cannot open", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::journal::{scan, SnapshotMeta};
    use raft_core::{Entry, HardState, Index, Payload, Role};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftkv-journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn append(first: Index, n: u64, term: u64) -> Record {
        let entries = (first..first + n)
            .map(|i| Entry { term, index: i, time: 0, payload: Payload::Command(vec![i as u8; 100].into()) })
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
        let (mut j, st, snap) = Journal::open(&d, 4096, m.clone()).unwrap();
        assert_eq!((st.last_seq, snap), (0, None));
        let hs = HardState { term: 3, voted_for: Some(1), role: Role::Leader, lost_data: false };
        j.append(&[(1, Record::HardState(hs))]).unwrap();
        let mut seq = 2;
        for k in 0..40 {
            j.append(&[(seq, append(k * 5 + 1, 5, 3))]).unwrap();
            seq += 1;
        }
        // Rotation without a snapshot: each new segment's checkpoint holds the
        // whole log, so the older ones are gone.
        assert_eq!(j.segment_count(), 1);
        assert!(m.journal_segments_deleted_total.get() > 3, "rotated");
        drop(j);
        let (mut j, st, _) = Journal::open(&d, 4096, m.clone()).unwrap();
        assert_eq!(st.hard, hs);
        assert_eq!(st.log.last_index(), 200);
        assert_eq!(st.last_seq, seq - 1);

        // A snapshot (file first, then its record) starts a new segment that
        // holds only the entries after it.
        let meta =
            SnapshotMeta { index: 150, term: 3, membership: Box::new(raft_core::Membership::bootstrap(&[1])), id: 150 };
        let data = vec![42u8; 64];
        j.store_snapshot(&Snapshot { meta: meta.clone(), data: data.clone() }).unwrap();
        j.append(&[(seq, Record::Snapshot(meta.clone()))]).unwrap();
        seq += 1;
        for k in 0..10 {
            j.append(&[(seq, append(201 + k * 5, 5, 3))]).unwrap();
            seq += 1;
        }
        let newer =
            SnapshotMeta { index: 220, term: 3, membership: Box::new(raft_core::Membership::bootstrap(&[1])), id: 220 };
        j.store_snapshot(&Snapshot { meta: newer.clone(), data: vec![7u8; 8] }).unwrap();
        j.append(&[(seq, Record::Snapshot(newer.clone()))]).unwrap();
        let snaps: Vec<_> = fs::read_dir(d.join("snapshots")).unwrap().collect();
        assert_eq!(snaps.len(), 1, "the older snapshot file is deleted once the newer record is durable");
        drop(j);
        let (_, st, snap) = Journal::open(&d, 4096, m).unwrap();
        assert_eq!(st.snapshot, Some(newer));
        assert_eq!(snap, Some(vec![7u8; 8]));
        assert_eq!(st.hard, hs);
        assert_eq!((st.log.snapshot_index(), st.log.last_index()), (220, 250));
        assert_eq!(st.last_seq, seq);
        let bytes: u64 = fs::read_dir(d.join("journal")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(bytes < 4 * 4096, "the journal stays about one snapshot interval long ({bytes} bytes)");
        fs::remove_dir_all(&d).unwrap();
    }

    fn all_shared(st: &DurableState) -> Vec<bool> {
        st.log.iter().map(|e| e.payload.command().is_some_and(|b| b.is_shared())).collect()
    }

    #[test]
    fn replayed_payloads_point_into_the_segment_unless_it_is_mostly_free_space() {
        let d = tmpdir("shared");
        let m = Arc::new(Metrics::default());
        let (mut j, _, _) = Journal::open(&d, 64 << 20, m.clone()).unwrap();
        j.append(&[(1, append(1, 5, 1))]).unwrap();
        drop(j);
        // 5 payloads against a segment of a megabyte of preallocated zeros:
        // copied out, the buffer freed (the retention rule).
        let (j, st, _) = Journal::open(&d, 64 << 20, m.clone()).unwrap();
        assert_eq!(all_shared(&st), vec![false; 5]);
        drop(j);
        let mut j = Journal::open(&d, 64 << 20, m.clone()).unwrap().0;
        for (seq, k) in (2..).zip(0..200) {
            j.append(&[(seq, append(6 + k * 100, 100, 1))]).unwrap();
        }
        drop(j);
        // 20,005 payloads of 100 bytes fill most of it: they stay slices.
        let (_, st, _) = Journal::open(&d, 64 << 20, m).unwrap();
        assert_eq!(st.log.last_index(), 20_005);
        assert_eq!(all_shared(&st), vec![true; 20_005]);
        assert!(st
            .log
            .iter()
            .zip(1..)
            .all(|(e, i)| e.payload.command().is_some_and(|b| b.as_slice() == [i as u8; 100])));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_segment_is_read_into_the_spare_buffer() {
        let d = tmpdir("spare");
        let path = d.join("x.seg");
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        fs::write(&path, &data).unwrap();
        let spare = vec![7u8; 50_000];
        let at = spare.as_ptr();
        let got = read_segment(&path, Some(spare)).unwrap();
        assert_eq!(got, data);
        assert_eq!(got.as_ptr(), at, "the same allocation");
        assert_eq!(read_segment(&path, None).unwrap(), data);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_damage_is_loss() {
        let d = tmpdir("torn");
        let m = Arc::new(Metrics::default());
        let (mut j, _, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        j.append(&[(1, append(1, 3, 1))]).unwrap();
        j.append(&[(2, append(4, 3, 1))]).unwrap();
        drop(j);
        let seg = d.join("journal").join(segment_name(1));
        let written = fs::read(&seg).unwrap();
        let end = scan(&written).unwrap().valid_len;
        assert!(written.len() > end && written[end..].iter().all(|&b| b == 0), "preallocated");
        let good = written[..end].to_vec();
        // Half a frame where the next record goes: cut, nothing lost.
        let mut torn = written.clone();
        torn[end..end + 30].copy_from_slice(&good[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 30]);
        fs::write(&seg, &torn).unwrap();
        let (mut j, st, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        assert_eq!(st.log.last_index(), 6);
        assert_eq!(fs::read(&seg).unwrap(), good);
        // The same at the end of the file, without preallocated space.
        j.append(&[(3, append(7, 1, 1))]).unwrap();
        drop(j);
        let written = fs::read(&seg).unwrap();
        let end = scan(&written).unwrap().valid_len;
        let mut torn = written[..end].to_vec();
        torn.extend_from_slice(&good[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 30]);
        fs::write(&seg, &torn).unwrap();
        let (mut j, st, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        assert_eq!(st.log.last_index(), 7);
        assert_eq!(fs::read(&seg).unwrap(), written[..end]);
        // The batch marker short of its last byte, followed by zeros: a torn
        // marker; the record before it was written whole and stays.
        j.append(&[(4, append(8, 1, 1))]).unwrap();
        drop(j);
        let written = fs::read(&seg).unwrap();
        let end = scan(&written).unwrap().valid_len;
        let mut torn = written.clone();
        torn[end - 1] = 0;
        fs::write(&seg, &torn).unwrap();
        let (j, st, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        assert_eq!(st.log.last_index(), 8);
        assert!(!st.hard.lost_data, "a torn marker is not loss");
        drop(j);
        // A flipped byte inside the first frame, before batch markers that
        // survive: loss. The node starts, cut before the damage, flagged; the
        // flag is durable (a second start still has it).
        let mut bad = fs::read(&seg).unwrap();
        bad[SEGMENT_HEADER_LEN + 20] ^= 0x10;
        fs::write(&seg, &bad).unwrap();
        let (j, st, _) = Journal::open(&d, 1 << 20, m.clone()).unwrap();
        assert!(st.hard.lost_data);
        assert_eq!(st.log.last_index(), 0);
        assert_eq!(m.journal_losses_found_total.get(), 1);
        drop(j);
        let (_, st, _) = Journal::open(&d, 1 << 20, m).unwrap();
        assert!(st.hard.lost_data, "the finding survives a restart");
        fs::remove_dir_all(&d).unwrap();
    }
}
