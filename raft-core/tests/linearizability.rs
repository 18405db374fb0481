//! Randomised runs with simulated clients, judged by the linearizability
//! checker as well as the simulator's safety checks (`sim::workload`).
//!
//! Clients open sessions and issue gets, puts, appends, deletes and
//! compare-and-swaps on a few keys, following leader hints, retrying writes
//! with the same seq, timing out; faults crash nodes (tearing journals),
//! isolate leaders, lose, duplicate and reorder messages; some seeds use a
//! short session timeout with clients that go idle long enough to expire;
//! half snapshot often. The histories go to the checker.
//!
//! * `cargo test -p raft-core --test linearizability` runs 200 seeds.
//! * `SEEDS=10000 cargo test --release -p raft-core --test linearizability -- --nocapture kv_histories`
//! * `SEED=n` replays one seed; a failure prints the smallest failing history.
//!
//! Watchers follow a key, a prefix and every key on different nodes, moving
//! to another node when theirs goes down; each watch is checked against the
//! committed history's events (`checker::watch`).
//!
//! The `bug_*` tests switch on deliberate read, session and watch bugs and assert
//! that the checker catches each within the seeds the test command runs.

mod common;
use common::seeds;
use raft_core::checker::{self, Verdict};
use raft_core::sim::workload::{checked_run, RunReport};
use raft_core::Bugs;

const EVENTS: u64 = 10_000;

#[test]
fn kv_histories_are_linearizable_under_faults() {
    let started = std::time::Instant::now();
    let (mut ops, mut completed, mut crashes) = (0usize, 0usize, 0u64);
    let (mut watches, mut frames, mut lease_runs, mut lease_reads) = (0usize, 0usize, 0usize, 0u64);
    let (mut async_runs, mut built) = (0usize, 0u64);
    let seeds = seeds();
    for &s in &seeds {
        let r = checked_run(s, EVENTS, Bugs::default());
        let replay = format!("replay: SEED={s} cargo test -p raft-core --test linearizability");
        assert!(r.violations.is_empty(), "seed {s}: safety violations ({replay}):\n{}", r.violations.join("\n"));
        match &r.verdict {
            Verdict::Linearizable => {}
            Verdict::Violation { key, ops } => panic!(
                "seed {s}: history on key {key} is not linearizable ({replay}); smallest failing history:\n{}",
                checker::render(ops)
            ),
            Verdict::Inconclusive { key } => panic!("seed {s}: checker gave up on key {key}"),
        }
        assert!(
            r.watch_violations.is_empty(),
            "seed {s}: watch streams ({replay}):\n{}",
            r.watch_violations.join("\n")
        );
        ops += r.operations;
        completed += r.completed;
        crashes += r.crashes;
        watches += r.watches;
        frames += r.frames;
        lease_runs += usize::from(r.leases);
        lease_reads += r.lease_reads;
        async_runs += usize::from(r.async_snapshots && r.snapshots_built > 0);
        built += r.snapshots_built;
    }
    if seeds.len() >= 50 {
        // The checks covered snapshots built off the event loop, not just
        // runs configured for them.
        assert!(async_runs * 10 >= seeds.len(), "only {async_runs} runs built a snapshot off the loop");
    }
    assert!(completed > seeds.len() * 20, "too few operations completed ({completed}) for the runs to mean much");
    println!(
        "{} seeds ({lease_runs} with lease reads, {lease_reads} reads on a lease): {ops} operations ({completed} completed), {crashes} crashes, \
         {watches} watches ({frames} frames), {built} snapshots built off the loop in {async_runs} runs, 0 violations, in {:.2?}",
        seeds.len(),
        started.elapsed()
    );
}

/// Runs up to `max` seeds with `bugs`; returns the first report the checker
/// (or the simulator) rejects.
fn caught(bugs: Bugs, max: u64) -> Option<RunReport> {
    (1..=max).map(|s| checked_run(s, EVENTS, bugs)).find(|r| !r.ok())
}

fn describe(r: &RunReport) -> String {
    match &r.verdict {
        Verdict::Violation { key, ops } => format!("seed {}: key {key}:\n{}", r.seed, checker::render(ops)),
        _ if !r.watch_violations.is_empty() => format!("seed {}: {}", r.seed, r.watch_violations.join("\n")),
        _ => format!("seed {}: {}", r.seed, r.violations.join("\n")),
    }
}

#[test]
fn bug_stale_reads_from_a_deposed_leader_are_caught() {
    let r = caught(Bugs { stale_read_local: true, ..Bugs::default() }, 200)
        .expect("reads answered without a quorum round went unnoticed");
    println!("caught {}", describe(&r));
}

#[test]
fn bug_read_index_before_term_commit_is_caught() {
    let r = caught(Bugs { read_index_before_commit: true, ..Bugs::default() }, 200)
        .expect("reads indexed before the leader's term committed went unnoticed");
    println!("caught {}", describe(&r));
}

#[test]
fn bug_no_duplicate_detection_is_caught() {
    let r = caught(Bugs { no_dedup: true, ..Bugs::default() }, 200).expect("writes applied twice went unnoticed");
    println!("caught {}", describe(&r));
}

#[test]
fn bug_watch_resume_skipping_a_revision_is_caught() {
    let r = caught(Bugs { watch_resume_skips: true, ..Bugs::default() }, 200)
        .expect("watchers that skip a revision on reconnect went unnoticed");
    assert!(!r.watch_violations.is_empty(), "caught by the watch checker: {}", describe(&r));
    println!("caught {}", describe(&r));
}

/// A follower read that joins a `ReadIndex` request already sent: the leader
/// may have fixed the index before the read arrived, and a write
/// acknowledged in between is missing from the answer.
#[test]
fn bug_follower_read_joining_a_request_in_flight_is_caught() {
    let r = caught(Bugs { follower_read_joins_inflight: true, ..Bugs::default() }, 300)
        .expect("follower reads joining a request in flight went unnoticed");
    println!("caught {}", describe(&r));
}
