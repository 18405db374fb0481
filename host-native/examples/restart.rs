//! How long a node takes to restart from a big journal (issue 16, item 4).
//!
//! ```sh
//! cargo run --release -p host-native --example restart -- DIR [--mib 1024] [--cold]
//! ```
//!
//! The first run fills `DIR/journal` with MIB mebibytes of records through the
//! native host's own journal (`Journal::append`, one fsync per 1 MiB batch):
//! the records a leader under load writes — group commits of 16 client writes
//! on sessions, each a put of an 8-byte key and a 256-byte value — in one
//! segment (the segment limit is set above MIB, and no snapshot is taken: a
//! node configured with `snapshot_entries` and `snapshot_log_bytes` above the
//! journal's size keeps such a journal). Later runs reuse it.
//!
//! Then, three times each: **read** — every segment file read into memory
//! (what `cat` of the same bytes from the page cache costs, the floor), and
//! **restart** — what `raftkv node` does before it serves: open the journal
//! (read, check every CRC-32C, decode, replay into the log) and rebuild the
//! engine from it (`Raft::recover`). The page cache is warm (the journal was
//! just written or read); with `--cold`, the segment files are dropped from
//! the page cache (`posix_fadvise(DONTNEED)`) before the read and again
//! before the restart, so both come from the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use raft_core::journal::Record;
use raft_core::{Config, Entry, KvOp, KvStore, Payload, Raft};
use raftkv::journal::Journal;
use raftkv::metrics::Metrics;

const BATCH_BYTES: usize = 1 << 20;
const PER_RECORD: usize = 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut mib = 1024u64;
    let mut cold = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib takes a number"),
            "--cold" => cold = true,
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.expect("usage: restart DIR [--mib 1024] [--cold]");
    let segment_bytes = (mib + 64) << 20;
    let metrics = Arc::new(Metrics::default());
    if !dir.join("journal").exists() || std::fs::read_dir(dir.join("journal")).map_or(0, |d| d.count()) == 0 {
        fill(&dir, mib << 20, segment_bytes, metrics.clone());
    }
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .expect("journal directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    println!("crc32c in hardware: {}", raft_core::crc::hardware());
    for _ in 0..3 {
        if cold {
            evict(&files);
        }
        let t = Instant::now();
        let bytes: usize = files.iter().map(|p| std::fs::read(p).expect("read a segment").len()).sum();
        let read = t.elapsed();
        if cold {
            evict(&files);
        }
        let t = Instant::now();
        let (_journal, state, snapshot) = Journal::open(&dir, segment_bytes, metrics.clone()).expect("open");
        let opened = t.elapsed();
        let entries = state.log.len();
        let cfg = Config::new(1, vec![1, 2, 3]);
        let raft = Raft::recover(cfg, state, snapshot.as_deref(), KvStore::default()).expect("recover");
        let total = t.elapsed();
        let mb = bytes as f64 / 1e6;
        println!(
            "{:.0} MB, {entries} entries: read {:.0} ms ({:.0} MB/s); restart {:.0} ms ({:.0} MB/s; journal open {:.0} ms), {:.1}x the read",
            mb,
            read.as_secs_f64() * 1e3,
            mb / read.as_secs_f64(),
            total.as_secs_f64() * 1e3,
            mb / total.as_secs_f64(),
            opened.as_secs_f64() * 1e3,
            total.as_secs_f64() / read.as_secs_f64(),
        );
        drop(raft);
    }
}

/// Drops the files' pages from the page cache (they are clean: written and
/// synced), so that the next read comes from the disk.
fn evict(files: &[PathBuf]) {
    use std::os::fd::AsRawFd;
    for p in files {
        let f = std::fs::File::open(p).expect("open a segment");
        // SAFETY: a plain system call on a descriptor this function owns
        // for the duration of the call; it touches no memory of ours.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise on {}", p.display());
    }
}

/// Writes `bytes` of a loaded leader's records.
fn fill(dir: &std::path::Path, bytes: u64, segment_bytes: u64, metrics: Arc<Metrics>) {
    let t = Instant::now();
    let (mut journal, _, _) = Journal::open(dir, segment_bytes, metrics).expect("open an empty journal");
    let (mut seq, mut index, mut written) = (0u64, 0u64, 0u64);
    let value = "v".repeat(256);
    while written < bytes {
        let mut batch = Vec::new();
        let mut size = 0;
        while size < BATCH_BYTES {
            let entries: Vec<Entry> = (0..PER_RECORD as u64)
                .map(|k| {
                    index += 1;
                    let key = format!("{:08}", index % 10_000);
                    let command = KvOp::Put { key, value: value.clone() }.encode();
                    size += command.len() + 48;
                    let payload = Payload::Write {
                        session: 1 + k,
                        secret_hash: [7; 32],
                        seq: index,
                        ack: index,
                        command: command.into(),
                    };
                    Entry { term: 1, index, time: index / 100, payload }
                })
                .collect();
            seq += 1;
            batch.push((seq, Record::Append { first_index: index + 1 - PER_RECORD as u64, entries }));
        }
        journal.append(&batch).expect("append");
        written += size as u64;
    }
    println!(
        "wrote {} MB in {seq} records, {index} entries, in {:.1} s",
        written / 1_000_000,
        t.elapsed().as_secs_f64()
    );
}
