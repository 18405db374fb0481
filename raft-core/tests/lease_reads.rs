//! Lease reads under clock drift and stalls (raft-core/src/lease.rs).
//!
//! The randomised checked runs (`linearizability.rs`) read under leases in
//! half their seeds, with drifting clocks and stalled event loops, and stay
//! clean. These runs set up the case the drift margin exists for: the leader's
//! clock runs 30 % slow, its followers' 30 % fast, and the leader is cut off
//! while a client keeps reading from it. With the margin, the old leader
//! stops answering on its lease before the others can elect anyone; without
//! it (`bugs::lease_without_margin`), it answers after a new leader exists,
//! which the simulator's lease check reports.

mod common;
use common::*;
use raft_core::kv::KvOp;
use raft_core::lease::LeaseTiming;
use raft_core::sim::{Sim, SimConfig};
use raft_core::{Bugs, ClientRequest};

const DRIFT_PPM: u32 = 300_000;

/// One run: returns the violations and how many reads were answered on a lease.
fn drifting_leader_cut_off(seed: u64, bugs: Bugs) -> (Vec<String>, u64) {
    let mut cfg = SimConfig { nodes: 3, seed, latency_us: (200, 2_000), ..SimConfig::default() }.with_bugs(bugs);
    cfg.raft.lease_reads = Some(LeaseTiming { tick: cfg.tick_us, drift_ppm: DRIFT_PPM });
    let mut sim = Sim::new(cfg);
    assert!(sim.run_until(5 * SEC, |s| s.leader().is_some()), "seed {seed}: no leader");
    let old = sim.leader().unwrap_or(1);
    for id in sim.ids() {
        let ppm = i64::from(DRIFT_PPM);
        sim.set_clock_rate(id, if id == old { -ppm } else { ppm });
    }
    // Writes keep rounds going; a read now and then is answered on the lease.
    let read = || ClientRequest::Read { query: KvOp::Get { key: "k".into() }.encode() };
    let mut token = 1u64 << 50;
    for i in 0..30u64 {
        let _ = sim.propose(old, KvOp::Put { key: "k".into(), value: i.to_string() }.encode());
        token += 1;
        sim.submit(old, token, read());
        sim.run_for(10 * MS);
    }
    // Cut off: a client still reading from it every millisecond.
    sim.disconnect(old);
    for _ in 0..800 {
        token += 1;
        sim.submit(old, token, read());
        sim.run_for(MS);
    }
    sim.connect(old);
    sim.run_for(SEC);
    (sim.violations().to_vec(), sim.stats.lease_reads)
}

#[test]
fn a_drifting_leader_cut_off_stops_answering_on_its_lease_in_time() {
    let mut lease_reads = 0;
    for seed in 1..=20 {
        let (v, n) = drifting_leader_cut_off(seed, Bugs::default());
        assert!(v.is_empty(), "seed {seed}: {}", v.join("\n"));
        lease_reads += n;
    }
    assert!(lease_reads > 100, "leases were used ({lease_reads} reads on a lease)");
    println!("20 seeds clean, {lease_reads} reads on a lease");
}

#[test]
fn bug_lease_without_drift_margin_is_caught() {
    let bugs = Bugs { lease_without_margin: true, ..Bugs::default() };
    let caught: Vec<u64> = (1..=20).filter(|&s| !drifting_leader_cut_off(s, bugs).0.is_empty()).collect();
    assert!(!caught.is_empty(), "a lease without the drift margin went unnoticed in 20 seeds");
    let first = drifting_leader_cut_off(caught[0], bugs).0;
    println!("caught in {} of 20 seeds; seed {}: {}", caught.len(), caught[0], first[0]);
}
