//! Randomised simulator runs mixing every fault, judged by the simulator's
//! safety checks after every event, then a liveness check once faults stop.
//!
//! * `cargo test -p raft-core --test random` runs 200 seeds of at least 10,000
//!   events each (set `SEEDS=n` for more; the README documents 10,000).
//! * A failure prints its seed; `SEED=n cargo test -p raft-core --test random`
//!   replays exactly that run.
//!
//! `bugs_are_caught_vote_without_log_check` switches on a deliberate protocol
//! bug and asserts that these runs report a violation (see also `live_checks.rs`).

mod common;
use common::*;
use raft_core::rng::Rng;
use raft_core::sim::nemesis::random_fault as fault;
use raft_core::sim::{Sim, SimConfig};
use raft_core::Bugs;

const EVENTS: u64 = 10_000;

/// One randomised run. Returns the simulator so callers can inspect it.
fn random_run(seed: u64, bugs: Bugs, liveness: bool) -> Sim {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let nodes = if rng.chance(0.5) { 3 } else { 5 };
    let slow_disk = rng.chance(0.3);
    let mut cfg = SimConfig {
        nodes,
        seed,
        latency_us: (200, rng.range(1_000, 20_000)),
        disk_us: if slow_disk { (1_000, 30_000) } else { (50, 3_000) },
        ..SimConfig::default()
    }
    .with_bugs(bugs);
    cfg.raft.max_inflight_msgs = rng.range(1, 16) as usize;
    cfg.raft.max_entries_per_msg = rng.range(1, 64) as usize;
    cfg.raft.pre_vote = rng.chance(0.8);
    if rng.chance(0.6) {
        // Snapshot often and in small chunks, with small journal segments, so
        // every fault also lands across snapshot boundaries and transfers.
        cfg.raft.snapshot_entries = rng.range(5, 200);
        cfg.raft.snapshot_chunk_bytes = rng.range(16, 4096) as usize;
        cfg.segment_bytes = rng.range(1 << 10, 64 << 10) as usize;
    }
    cfg.raft.check_quorum = rng.chance(0.8);
    let mut sim = Sim::new(cfg);
    let ids = sim.ids();
    let mut next_cmd = 1u64;
    let mut next_fault = 0u64;
    while sim.stats.events < EVENTS {
        // Clients: propose a few commands wherever a leader is believed to be.
        for _ in 0..rng.range(0, 3) {
            let id = match sim.leader() {
                Some(l) if rng.chance(0.9) => l,
                _ => ids[rng.below(ids.len() as u64) as usize],
            };
            let _ = sim.propose(id, next_cmd.to_le_bytes().to_vec());
            next_cmd += 1;
        }
        sim.run_for(rng.range(1, 30) * MS);
        if sim.now() >= next_fault {
            next_fault = sim.now() + rng.range(50, 400) * MS;
            fault(&mut sim, &mut rng, &ids);
        }
        if !sim.violations().is_empty() {
            return sim;
        }
    }
    if liveness {
        // Faults stop: the cluster must elect a leader and commit again.
        sim.heal();
        sim.set_network(0.0, 0.0, 0.0);
        for &id in &ids {
            if !sim.is_up(id) {
                sim.restart(id);
            }
        }
        sim.run_for(3 * SEC);
        one(&mut sim, u64::MAX.to_le_bytes().to_vec(), ids.len(), true);
    }
    sim.final_check();
    sim
}

#[test]
fn random_faults_preserve_safety_and_liveness() {
    let started = std::time::Instant::now();
    let seeds = seeds();
    let mut events = 0u64;
    let mut crashes = 0u64;
    for &s in &seeds {
        let sim = random_run(s, Bugs::default(), true);
        assert!(
            sim.violations().is_empty(),
            "seed {s} violated safety (replay: SEED={s} cargo test -p raft-core --test random):\n{}",
            sim.violations().join("\n")
        );
        assert!(sim.stats.events >= EVENTS);
        events += sim.stats.events;
        crashes += sim.stats.crashes;
    }
    println!("{} seeds, {events} events, {crashes} crashes, 0 violations in {:.2?}", seeds.len(), started.elapsed());
}

/// Runs seeds with a bug switched on until one reports a violation.
fn caught_within(bugs: Bugs, max_seeds: u64) -> Option<(u64, String)> {
    for s in 1..=max_seeds {
        let sim = random_run(s, bugs, false);
        if let Some(v) = sim.violations().first() {
            return Some((s, v.clone()));
        }
    }
    None
}

#[test]
fn bugs_are_caught_vote_without_log_check() {
    let found = caught_within(Bugs { vote_without_log_check: true, ..Bugs::default() }, 200);
    let (s, v) = found.expect("granting votes without the up-to-date check went unnoticed");
    println!("vote-without-log-check bug caught at seed {s}: {v}");
}
