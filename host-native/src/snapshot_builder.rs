//! Building snapshots off the node's event loop.
//!
//! With `async_snapshots` on (the native host always sets it), the core hands
//! the node task a [`SnapshotJob`] — the applied state frozen at an index —
//! instead of encoded bytes. Encoding the whole store and checksumming it took
//! several milliseconds on the event loop every `snapshot_entries` entries,
//! and writing and syncing the file held up the journal's next group commit;
//! both were most of the p99.9 of writes (BENCHMARKS.md). Here a blocking
//! thread encodes the job and stores the file (temporary name, fsync, rename,
//! directory fsync), then reports back to the node task, which tells the core
//! ([`Raft::snapshot_stored`](raft_core::Raft::snapshot_stored)); only then
//! does the core issue the `Snapshot` record that names the file, so the
//! journal never waits for it.
//!
//! The core hands out one job at a time, so at most one build runs: the
//! report channel needs room for one.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use raft_core::snapshot::{Snapshot, SnapshotJob};
use raft_core::Index;

use crate::journal::{snapshot_name, write_file_atomically};

/// How a build ended.
#[derive(Debug)]
pub enum Built {
    /// The snapshot's file is durable.
    Stored(Arc<Snapshot>),
    /// It could not be built or stored (the core will ask again).
    Failed {
        /// The snapshot's index.
        index: Index,
        /// Why.
        error: io::Error,
    },
}

/// Runs snapshot jobs on tokio's blocking threads, one at a time.
pub struct SnapshotBuilder {
    /// Where snapshot files live (the journal's `snapshots` directory).
    dir: PathBuf,
    done_tx: mpsc::Sender<Built>,
    done_rx: mpsc::Receiver<Built>,
}

impl SnapshotBuilder {
    /// A builder that stores snapshot files in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        // The core hands out one job at a time: one report is ever queued
        // (two leave room for a report of a job the core gave up waiting on).
        let (done_tx, done_rx) = mpsc::channel(2);
        SnapshotBuilder { dir, done_tx, done_rx }
    }

    /// Starts building `job` on a blocking thread; its outcome comes out of
    /// [`SnapshotBuilder::next`].
    pub fn start(&self, job: Arc<SnapshotJob>) {
        let (dir, tx) = (self.dir.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let snap = job.build();
            let built = match write_file_atomically(&dir, &snapshot_name(snap.meta.id), &snap.data) {
                Ok(()) => Built::Stored(Arc::new(snap)),
                Err(error) => Built::Failed { index: job.meta.index, error },
            };
            // The node task gone means the process is stopping.
            let _ = tx.blocking_send(built);
        });
    }

    /// The next build that ended.
    pub async fn next(&mut self) -> Option<Built> {
        self.done_rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::snapshot::SnapshotBody;
    use raft_core::{ClientReply, Config, KvOp, KvStore, Raft};

    /// A one-node cluster, written to until the core hands out a job.
    fn node_with_job() -> (Raft<KvStore>, Arc<SnapshotJob>) {
        let mut cfg = Config::new(1, vec![1]);
        cfg.snapshot_entries = 20;
        cfg.async_snapshots = true;
        let mut r = Raft::new(cfg, KvStore::default()).unwrap();
        let mut job = None;
        for i in 0..1_000u64 {
            r.tick();
            if r.is_leader() {
                let op = KvOp::Put { key: format!("k{}", i % 7), value: format!("v{i}") };
                let _ = r.propose(op.encode());
            }
            loop {
                let ready = r.take_ready();
                if ready.is_empty() {
                    break;
                }
                assert!(ready.snapshot.is_none(), "no snapshot is encoded in the step");
                assert!(!ready.replies.iter().any(|(_, rep)| matches!(rep, ClientReply::Rejected(_))));
                if let Some(j) = ready.snapshot_job {
                    job = Some(j);
                }
                if let Some((seq, _)) = ready.records.last() {
                    r.persisted(*seq);
                }
            }
            if let Some(job) = job {
                return (r, job);
            }
        }
        panic!("no snapshot job was handed out");
    }

    #[tokio::test]
    async fn a_job_is_built_and_stored_off_the_loop() {
        let d = std::env::temp_dir().join(format!("raftkv-snapbuild-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (mut r, job) = node_with_job();
        let index = job.meta.index;
        let frozen = r.state_machine().clone();
        // More writes while it builds: they must not be in the file.
        for i in 0..50u64 {
            let _ = r.propose(KvOp::Put { key: "k1".into(), value: format!("later{i}") }.encode());
            let ready = r.take_ready();
            if let Some((seq, _)) = ready.records.last() {
                r.persisted(*seq);
            }
            let _ = r.take_ready();
        }
        assert!(r.applied_index() > index);
        let mut b = SnapshotBuilder::new(d.clone());
        b.start(job);
        let Some(Built::Stored(snap)) = b.next().await else { panic!("the build failed") };
        let file = std::fs::read(d.join(snapshot_name(snap.meta.id))).unwrap();
        assert_eq!(file, snap.data);
        let body = SnapshotBody::decode(&file, 1 << 30).unwrap();
        assert_eq!(body.index, index);
        let mut restored = KvStore::default();
        raft_core::StateMachine::restore(&mut restored, &body.state).unwrap();
        assert!(restored == frozen, "the file holds the state of its index, not a later one");
        // Reported, the core issues the record naming it.
        assert!(r.snapshot_stored(snap.clone()));
        let ready = r.take_ready();
        assert!(ready
            .records
            .iter()
            .any(|(_, rec)| matches!(rec, raft_core::journal::Record::Snapshot(m) if m.index == index)));
        assert!(!r.snapshot_stored(snap), "a second report changes nothing");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_failed_store_is_reported() {
        // The directory does not exist: the file cannot be written.
        let d = std::env::temp_dir().join(format!("raftkv-snapbuild-missing-{}/x", std::process::id()));
        let (mut r, job) = node_with_job();
        let index = job.meta.index;
        let mut b = SnapshotBuilder::new(d);
        b.start(job);
        let Some(Built::Failed { index: failed, .. }) = b.next().await else { panic!("the store should fail") };
        assert_eq!(failed, index);
        r.snapshot_failed(index);
        assert_eq!(r.snapshot_building(), None);
    }
}
