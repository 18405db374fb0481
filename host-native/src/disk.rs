//! The node task's way to its journal: the journal thread, and the inline
//! path that skips it when it is idle.
//!
//! File I/O blocks, so the [`Journal`] lives on its own OS thread, which
//! merges whatever queued during a sync into its next write (group commit).
//! Handing it a batch and hearing back costs two thread wake-ups (a futex
//! to wake the thread, an eventfd to wake the event loop) on the path of
//! every write; on a loaded machine each can take tens of microseconds.
//!
//! A follower has nothing to overlap with its sync: it acknowledges an
//! `Append` only once the entries are durable, and new `Append`s wait in the
//! socket either way. So when the journal thread is idle (nothing queued,
//! its lock free), the node task writes and syncs a batch itself and tells
//! the core at once ([`Disk::submit`] answers [`Submitted::Durable`]). What
//! would hold the event loop for long — a snapshot file, a new segment,
//! preallocating zeros, deleting old files — still goes to the thread. A
//! leader keeps the thread by default (`journal_inline = "followers"`): its
//! sync overlaps the round trip to the followers, and during it the event
//! loop keeps reading requests and sending `Append`s. (Writing inline on the
//! leader too was measured and is slower: its peer messages leave only when
//! the event loop is free again, after the sync, so the followers' syncs
//! start late.)
//!
//! Order on disk is the order of [`Disk::submit`]: the inline path runs only
//! when every batch handed to the thread has been written (`queued` is 0),
//! and both paths write under the journal's lock.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Instant;

use raft_core::Seq;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::journal::{Batch, Journal};
use crate::metrics::Metrics;

/// Jobs the node may queue for the journal thread before it holds records
/// back itself.
pub const DISK_QUEUE: usize = 256;

/// Which roles write to the journal from the event loop when the journal
/// thread is idle (config `journal_inline`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InlineSync {
    /// Followers, candidates and learners; a leader hands every batch to the
    /// journal thread (the default).
    #[default]
    Followers,
    /// No role: every batch goes through the journal thread.
    Never,
}

impl InlineSync {
    /// Whether a node that is (`leader`) or is not the leader writes inline.
    pub fn allows(self, leader: bool) -> bool {
        match self {
            InlineSync::Followers => !leader,
            InlineSync::Never => false,
        }
    }
}

/// What the journal thread is handed.
enum Job {
    /// Records to write (and a snapshot file to store first).
    Batch(Batch),
    /// Rotation, preallocation and clean-up after an inline write (the id of
    /// the snapshot its records named, if any).
    Maintain(Option<u64>),
}

/// What the journal thread and the node task share.
struct Shared {
    journal: Mutex<Journal>,
    /// Jobs handed to the thread and not yet finished.
    queued: AtomicUsize,
}

/// What became of a batch handed to [`Disk::submit`].
#[derive(Debug)]
pub enum Submitted {
    /// Written and synced already: the records up to this one are durable.
    Durable(Seq),
    /// Queued for the journal thread, which reports on the `done` channel.
    Queued,
    /// The journal thread's queue is full: try again later.
    Full(Batch),
}

/// The node task's handle on its journal.
pub struct Disk {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl Disk {
    /// Starts the journal thread, which reports the last sequence number of
    /// each batch it made durable on `done` (a group holding a snapshot
    /// reports the records before the snapshot first, see
    /// `Journal::write_batch`).
    pub fn spawn(journal: Journal, done: mpsc::Sender<Seq>, metrics: Arc<Metrics>) -> io::Result<Disk> {
        let shared = Arc::new(Shared { journal: Mutex::new(journal), queued: AtomicUsize::new(0) });
        let (tx, rx) = mpsc::channel::<Job>(DISK_QUEUE);
        let thread_shared = shared.clone();
        std::thread::Builder::new().name("journal".into()).spawn(move || run_thread(&thread_shared, rx, &done))?;
        Ok(Disk { shared, tx, metrics })
    }

    /// Makes `batch` durable: at once, on the event loop, if `inline` allows
    /// it, the batch names no snapshot file and the journal thread is idle;
    /// otherwise through the journal thread. A failed write or fsync ends the
    /// process (the page cache cannot be trusted after one).
    pub fn submit(&self, batch: Batch, inline: bool) -> Submitted {
        if inline && batch.snapshot.is_none() && self.shared.queued.load(Ordering::Acquire) == 0 {
            match self.shared.journal.try_lock() {
                Ok(mut journal) => return self.write_inline(&mut journal, batch),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Poisoned(_)) => fail_on_poison(),
            }
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(Job::Batch(batch)) {
            Ok(()) => Submitted::Queued,
            Err(e) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(Job::Batch(b)) => Submitted::Full(b),
                    _ => {
                        tracing::error!("the journal thread is gone; stopping");
                        std::process::exit(1);
                    }
                }
            }
        }
    }

    fn write_inline(&self, journal: &mut Journal, batch: Batch) -> Submitted {
        let Some(&(last, _)) = batch.records.last() else { return Submitted::Queued };
        let maintain = match journal.write_now(&batch.records) {
            Ok(m) => m,
            Err(e) => fail(journal, &e),
        };
        self.metrics.journal_inline_syncs_total.inc();
        if let Some(new_snapshot) = maintain {
            // The thread does it; the next batch queues behind it.
            self.shared.queued.fetch_add(1, Ordering::AcqRel);
            if self.tx.try_send(Job::Maintain(new_snapshot)).is_err() {
                // Queue full (it was empty a moment ago) or thread gone: do it here.
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                if let Err(e) = journal.maintain(new_snapshot) {
                    fail(journal, &e);
                }
            }
        }
        Submitted::Durable(last)
    }
}

/// The journal thread: takes every batch queued when it is ready for the next
/// write and writes it with one `write` and one `fdatasync` (whatever arrives
/// during a sync goes into the next one, without a round trip through the
/// node).
fn run_thread(shared: &Shared, mut rx: mpsc::Receiver<Job>, done: &mpsc::Sender<Seq>) {
    // A job taken from the queue but left for the next group.
    let mut held: Option<Job> = None;
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => match rx.blocking_recv() {
                Some(j) => j,
                None => return,
            },
        };
        let mut journal = match shared.journal.lock() {
            Ok(j) => j,
            Err(_) => fail_on_poison(),
        };
        let mut taken = 1;
        let mut group = match job {
            Job::Maintain(new_snapshot) => {
                if let Err(e) = journal.maintain(new_snapshot) {
                    fail(&journal, &e);
                }
                drop(journal);
                shared.queued.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            Job::Batch(b) => b,
        };
        // Merge what is queued; a group holds at most one snapshot, at its end.
        while group.snapshot.is_none() {
            match rx.try_recv() {
                Ok(Job::Batch(b)) => {
                    taken += 1;
                    group.records.extend(b.records);
                    group.snapshot = b.snapshot;
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        match journal.write_batch(&group, done) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => fail(&journal, &e),
        }
        drop(journal);
        shared.queued.fetch_sub(taken, Ordering::AcqRel);
        tracing::trace!(
            records = group.records.len(),
            took_us = started.elapsed().as_micros() as u64,
            "journal batch durable"
        );
    }
}

fn fail(journal: &Journal, e: &io::Error) -> ! {
    tracing::error!(error = %e, dir = %journal.dir().display(), "journal write or fsync failed; stopping the node");
    eprintln!("raftkv: journal write or fsync failed in {}: {e}; stopping", journal.dir().display());
    std::process::exit(1);
}

fn fail_on_poison() -> ! {
    tracing::error!("the journal's lock is poisoned (a write panicked); stopping the node");
    eprintln!("raftkv: the journal's lock is poisoned (a write panicked); stopping");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::journal::Record;
    use raft_core::{Entry, Index, Payload};
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftkv-disk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// One record appending entry `index` (term 1).
    fn batch(seq: Seq, index: Index) -> Batch {
        let entries = vec![Entry { term: 1, index, time: 0, payload: Payload::Command(vec![index as u8; 200].into()) }];
        Batch { snapshot: None, records: vec![(seq, Record::Append { first_index: index, entries })] }
    }

    fn open(d: &std::path::Path, segment_bytes: u64) -> (Disk, mpsc::Receiver<Seq>, Arc<Metrics>) {
        let m = Arc::new(Metrics::default());
        let (journal, _, _) = Journal::open(d, segment_bytes, m.clone()).unwrap();
        let (done_tx, done_rx) = mpsc::channel(DISK_QUEUE + 8);
        (Disk::spawn(journal, done_tx, m.clone()).unwrap(), done_rx, m)
    }

    /// Waits until the journal thread has finished every job handed to it.
    fn idle(disk: &Disk) {
        while disk.shared.queued.load(Ordering::Acquire) != 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn replayed(d: &std::path::Path) -> Vec<Index> {
        let (_, st, _) = Journal::open(d, 1 << 20, Arc::new(Metrics::default())).unwrap();
        st.log.iter().map(|e| e.index).collect()
    }

    #[test]
    fn an_idle_journal_is_written_inline_a_busy_one_queues_in_order() {
        let d = tmpdir("order");
        let (disk, mut done, m) = open(&d, 64 << 20);
        // Idle: durable on return, the thread never involved.
        assert!(matches!(disk.submit(batch(1, 1), true), Submitted::Durable(1)));
        // Not allowed by the role: through the thread.
        assert!(matches!(disk.submit(batch(2, 2), false), Submitted::Queued));
        assert_eq!(done.blocking_recv(), Some(2));
        idle(&disk);
        // The thread busy (here: its lock held, as during a sync): queued.
        let held = disk.shared.journal.lock().unwrap();
        assert!(matches!(disk.submit(batch(3, 3), true), Submitted::Queued));
        drop(held);
        // Batch 3 may still be queued or being written: 4 must not pass it
        // (queued behind it, and maybe merged with it into one write).
        let fourth_inline = matches!(disk.submit(batch(4, 4), true), Submitted::Durable(4));
        let mut last = done.blocking_recv().unwrap();
        assert!(last == 3 || (last == 4 && !fourth_inline));
        if last == 3 && !fourth_inline {
            last = done.blocking_recv().unwrap();
        }
        assert_eq!(last, if fourth_inline { 3 } else { 4 });
        idle(&disk);
        assert!(matches!(disk.submit(batch(5, 5), true), Submitted::Durable(5)));
        drop(disk);
        assert_eq!(m.journal_inline_syncs_total.get(), if fourth_inline { 3 } else { 2 });
        assert_eq!(replayed(&d), vec![1, 2, 3, 4, 5]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_journal_threads_queue_is_bounded() {
        let d = tmpdir("full");
        let (disk, mut done, _) = open(&d, 64 << 20);
        let held = disk.shared.journal.lock().unwrap();
        // The thread takes the first batch and waits for the lock; the queue
        // then holds DISK_QUEUE batches and refuses the next, intact.
        assert!(matches!(disk.submit(batch(1, 1), true), Submitted::Queued));
        let mut seq = 2;
        let refused = loop {
            match disk.submit(batch(seq, seq), true) {
                Submitted::Queued => seq += 1,
                Submitted::Full(b) => break b,
                Submitted::Durable(_) => panic!("written inline past a queued batch"),
            }
            assert!(seq <= DISK_QUEUE as u64 + 2, "the queue took more than DISK_QUEUE batches");
        };
        assert!(seq == DISK_QUEUE as u64 + 1 || seq == DISK_QUEUE as u64 + 2, "refused at {seq}");
        assert_eq!(refused.records[0].0, seq);
        drop(held);
        let mut last = 0;
        while last < seq - 1 {
            last = done.blocking_recv().unwrap();
        }
        idle(&disk);
        assert!(matches!(disk.submit(refused, true), Submitted::Durable(s) if s == seq));
        drop(disk);
        assert_eq!(replayed(&d), (1..=seq).collect::<Vec<_>>());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotation_after_an_inline_write_is_left_to_the_thread() {
        let d = tmpdir("rotate");
        // Segments of 8 KiB: a new one is due every few dozen records, and
        // preallocation after each.
        let (disk, _done, m) = open(&d, 8192);
        let mut queued_behind_maintenance = 0;
        for seq in 1..=100 {
            match disk.submit(batch(seq, seq), true) {
                Submitted::Durable(s) => assert_eq!(s, seq),
                Submitted::Queued => queued_behind_maintenance += 1,
                Submitted::Full(_) => panic!("queue full"),
            }
            if seq % 2 == 0 {
                idle(&disk);
            }
        }
        idle(&disk);
        assert!(m.journal_segments_created_total.get() > 5, "the thread started new segments");
        assert!(queued_behind_maintenance > 0, "a write right after rotation waits for the thread");
        assert_eq!(m.journal_inline_syncs_total.get(), 100 - queued_behind_maintenance);
        assert!(m.journal_inline_syncs_total.get() >= 50, "after each idle wait the next write is inline");
        drop(disk);
        assert_eq!(replayed(&d), (1..=100).collect::<Vec<_>>());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
