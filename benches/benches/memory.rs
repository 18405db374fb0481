//! Memory costs (issue 7, item 4), measured with a counting allocator:
//! heap bytes per log entry held by a leader, and per idle session.
//! Prints its figures; run with `cargo bench -p benches --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use benches::MemCluster;
use raft_core::{ClientRequest, DigestMachine, KvStore};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    // Per log entry: a 1-node "cluster" (no followers holding copies), entries
    // committed and applied but not compacted, so the leader holds them all.
    for size in [16usize, 256] {
        let mut c = MemCluster::with_config(
            1,
            |_| DigestMachine::default(),
            |cfg| {
                cfg.snapshot_entries = 0;
                cfg.snapshot_log_bytes = usize::MAX;
            },
        );
        let n = 100_000;
        let before = live();
        for _ in 0..n / 1000 {
            c.propose_batch(1000, size);
            c.pump();
        }
        let after = live();
        let per = (after - before) as f64 / n as f64;
        println!(
            "leader heap per log entry ({size} B payload): {per:.1} bytes ({} entries held)",
            c.leader().log().len()
        );
    }
    // Per idle session: register 10,000 sessions on a 1-node cluster.
    let mut c = MemCluster::with_config(1, |_| KvStore::default(), |cfg| cfg.sessions.max_sessions = 1 << 20);
    c.propose_batch(0, 0);
    c.pump();
    let before = live();
    let n = 10_000u64;
    for i in 0..n {
        c.submit(i, ClientRequest::Register { owner: i, secret_hash: [0; 32] });
    }
    c.pump();
    c.replies.clear();
    c.replies.shrink_to_fit();
    let after_reg = live();
    println!(
        "heap per idle session (including its Register log entry): {:.1} bytes over {n} sessions",
        (after_reg - before) as f64 / n as f64
    );
}
