//! One complete randomised, checked run: a cluster under random faults with
//! simulated clients, judged by the simulator's safety checks and by the
//! linearizability checker, and watchers judged by the watch checker. The tests run it over many seeds; the web demo's
//! test mode runs it in a Web Worker.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::clients::ClientConfig;
use super::nemesis::{churn, damage, random_fault, readmit_all, stall};
use super::{Sim, SimConfig};
use crate::checker::{self, Limits, Operation, Verdict};
use crate::kv::watch::Selector;
use crate::lease::LeaseTiming;
use crate::raft::Bugs;
use crate::rng::Rng;

/// Clock drift in the runs with lease reads: every node's clock rate is
/// within 30 % of real time, and the leases allow exactly that (a margin of
/// 60 %). Far more than real clocks drift, so that a lease that ignores
/// drift is caught.
pub const SIM_DRIFT_PPM: u32 = 300_000;

/// What a checked run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Events simulated.
    pub events: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Client operations recorded.
    pub operations: usize,
    /// Operations that completed with a result.
    pub completed: usize,
    /// Safety violations the simulator found.
    pub violations: Vec<String>,
    /// The linearizability checker's verdict on the client history.
    pub verdict: Verdict,
    /// The whole client history.
    pub history: Vec<Operation>,
    /// Watches run (a compaction starts a new one).
    pub watches: usize,
    /// Frames they received.
    pub frames: usize,
    /// What the watch checker found wrong ([`Sim::watch_violations`]).
    pub watch_violations: Vec<String>,
    /// Whether the run read under leases (with drifting clocks and stalls).
    pub leases: bool,
    /// Reads answered under a lease.
    pub lease_reads: u64,
    /// Whether the nodes built their snapshots off the event loop.
    pub async_snapshots: bool,
    /// Snapshots built off the loop and reported stored.
    pub snapshots_built: u64,
}

impl RunReport {
    /// Whether nothing was wrong.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.watch_violations.is_empty() && matches!(self.verdict, Verdict::Linearizable)
    }
}

/// Runs `seed` for at least `events` events with random faults and clients,
/// then heals everything, lets in-flight operations finish, and judges.
pub fn checked_run(seed: u64, events: u64, bugs: Bugs) -> RunReport {
    let mut rng = Rng::new(seed ^ 0x11AE);
    let nodes = if rng.chance(0.6) { 3 } else { 5 };
    let mut cfg = SimConfig {
        nodes,
        seed,
        latency_us: (200, rng.range(1_000, 15_000)),
        disk_us: if rng.chance(0.3) { (1_000, 20_000) } else { (50, 2_000) },
        ..SimConfig::default()
    }
    .with_bugs(bugs);
    let short_sessions = rng.chance(0.3);
    if short_sessions {
        cfg.raft.sessions.timeout_ticks = rng.range(100, 400);
    }
    cfg.raft.check_quorum = rng.chance(0.8);
    cfg.raft.pre_vote = rng.chance(0.8);
    if rng.chance(0.5) {
        cfg.raft.snapshot_entries = rng.range(5, 200);
        cfg.raft.snapshot_chunk_bytes = rng.range(16, 4096) as usize;
        cfg.segment_bytes = rng.range(1 << 10, 64 << 10) as usize;
    }
    // Half the runs with CheckQuorum read under leases, with clocks that
    // drift by up to SIM_DRIFT_PPM and event loops that stall. Drawn from a
    // PRNG of their own, so the other runs' faults stay as they were.
    let mut lease_rng = Rng::new(seed ^ 0x001E_A5E5);
    let leases = cfg.raft.check_quorum && lease_rng.chance(0.5);
    if leases {
        cfg.raft.lease_reads = Some(LeaseTiming { tick: cfg.tick_us, drift_ppm: SIM_DRIFT_PPM });
        cfg.clock_drift_ppm = SIM_DRIFT_PPM;
    }
    // Half the runs build their snapshots off the event loop (as the native
    // host does): a frozen copy handed over, reported stored or failed later.
    // Also from a PRNG of its own.
    cfg.raft.async_snapshots = Rng::new(seed ^ 0x05A9_5A05).chance(0.5);
    let mut sim = Sim::new(cfg);
    sim.start_clients(ClientConfig {
        clients: rng.range(2, 6) as usize,
        keys: rng.range(1, 4) as usize,
        long_idle: if short_sessions { 0.05 } else { 0.0 },
        ..ClientConfig::default()
    });
    // Watchers on every kind of selector, on different nodes, from the
    // start; one more joins halfway, from "now". They move to another node
    // when theirs goes down.
    let ids = sim.ids();
    sim.add_watcher(ids[0], Selector::Prefix(String::from("k")), 1, true);
    sim.add_watcher(ids[1 % ids.len()], Selector::Key(String::from("k0")), 1, false);
    sim.add_watcher(ids[ids.len() - 1], Selector::Prefix(String::new()), 1, false);
    let mut late_watcher = false;
    // Half the runs change membership while clients work (see nemesis::churn),
    // those with CheckQuorum (leader stickiness keeps removed nodes harmless).
    let churning = rng.chance(0.5) && sim.config().raft.check_quorum;
    // Half of the other runs damage disks (wipes, lost durable records;
    // DESIGN §10). Not together with churn: a node flagged lost_data
    // (it may not vote until a leader exists) plus a leader that crashed
    // with its own removal appended but not committed (it no longer
    // campaigns, and its longer log refuses the others) can leave a
    // three-voter cluster with no electable node — a liveness limit of the
    // rules, not a safety one, which these runs would report as stuck.
    let damaging = !churning && rng.chance(0.5);
    let mut next_fault = 0u64;
    let mut next_stall = 0u64;
    while sim.stats.events < events {
        sim.run_for(rng.range(1, 40) * 1_000);
        if leases && sim.now() >= next_stall {
            next_stall = sim.now() + lease_rng.range(200, 1_500) * 1_000;
            let ids = sim.ids();
            match sim.leader() {
                // Cut the leader off while clients still think it leads: it
                // must stop answering on its lease before others elect.
                Some(l) if lease_rng.chance(0.4) => sim.disconnect(l),
                _ => stall(&mut sim, &mut lease_rng, &ids),
            }
        }
        if !late_watcher && sim.stats.events >= events / 2 {
            late_watcher = true;
            let node = sim.leader().unwrap_or(ids[0]);
            sim.add_watcher(node, Selector::Prefix(String::from("k1")), 0, true);
        }
        if sim.now() >= next_fault {
            next_fault = sim.now() + rng.range(100, 600) * 1_000;
            let ids = sim.ids();
            if churning && rng.chance(0.3) {
                churn(&mut sim, &mut rng);
            } else if damaging && rng.chance(0.15) {
                damage(&mut sim, &mut rng);
            } else {
                random_fault(&mut sim, &mut rng, &ids);
            }
        }
    }
    // Let in-flight operations finish before judging.
    sim.stop_clients();
    sim.heal();
    sim.set_network(0.0, 0.0, 0.0);
    for id in sim.ids() {
        if !sim.is_up(id) {
            sim.restart(id);
        }
    }
    readmit_all(&mut sim, 10);
    sim.run_for(5_000_000);
    sim.final_check();
    let verdict = checker::check(sim.history(), &Limits::default());
    let watch_violations = sim.watch_violations();
    RunReport {
        seed,
        nodes,
        events: sim.stats.events,
        crashes: sim.stats.crashes,
        operations: sim.history().len(),
        completed: sim.completed_ops(),
        violations: {
            // A safety violation is reported with the faults that led to it.
            let mut v = sim.violations().to_vec();
            if !v.is_empty() {
                v.extend(sim.fault_log.iter().map(|f| format!("  (fault) {f}")));
            }
            v
        },
        verdict,
        history: sim.history().to_vec(),
        watches: sim.watch_logs().len(),
        frames: sim.watch_logs().iter().map(|l| l.frames.len()).sum(),
        watch_violations,
        leases,
        lease_reads: sim.stats.lease_reads,
        async_snapshots: sim.config().raft.async_snapshots,
        snapshots_built: sim.stats.snapshots_built,
    }
}
