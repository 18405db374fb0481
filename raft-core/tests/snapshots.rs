//! Snapshots, log compaction and InstallSnapshot: the MIT 6.5840 Raft lab's
//! part 3D scenarios on the simulator, and a million-entry run that shows
//! memory and the journal stay bounded.

mod common;
use common::*;
use raft_core::kv::KvOp;
use raft_core::rng::Rng;
use raft_core::sim::{Sim, SimConfig};
use raft_core::snapshot::SnapshotBody;
use raft_core::{KvStore, StateMachine};

/// The lab's SnapShotInterval.
const INTERVAL: u64 = 10;

/// `off_loop`: snapshots are built by the host after a delay, while the node
/// applies on ([`raft_core::Config::async_snapshots`]).
fn snap_sim(seed: u64, off_loop: bool) -> Sim {
    let mut cfg = SimConfig { nodes: 3, seed, segment_bytes: 4 << 10, ..SimConfig::default() };
    cfg.raft.snapshot_entries = INTERVAL;
    cfg.raft.async_snapshots = off_loop;
    cfg.raft.snapshot_chunk_bytes = 64; // several chunks per snapshot
    Sim::new(cfg)
}

/// Persisted state must stay small: journal segments are rotated and deleted,
/// so what a replay reads is bounded whatever the history's length.
fn check_persisted_small(sim: &Sim) {
    for id in sim.ids() {
        let d = &sim.node(id).disk;
        let bytes = d.journal_bytes();
        assert!(bytes <= 3 * sim.config().segment_bytes, "node {id}: journal holds {bytes} bytes (log size too large)");
        if let Some(r) = sim.raft(id) {
            assert!(
                r.log().len() as u64 <= 2 * INTERVAL + 64,
                "node {id}: in-memory log holds {} entries",
                r.log().len()
            );
        }
    }
}

/// The lab's snapcommon.
fn snapcommon(seed: u64, disconnect: bool, reliable: bool, crash: bool, off_loop: bool) {
    let mut sim = snap_sim(seed, off_loop);
    let mut rng = Rng::new(seed);
    if !reliable {
        sim.set_network(0.1, 0.05, 0.0);
    }
    let servers = 3u64;
    one(&mut sim, cmd(rng.next_u64()), servers as usize, true);
    let mut leader1 = check_one_leader(&mut sim);
    for i in 0..30 {
        let mut victim = leader1 % servers + 1;
        let mut sender = leader1;
        if i % 3 == 1 {
            sender = victim;
            victim = leader1;
        }
        if disconnect {
            sim.disconnect(victim);
            one(&mut sim, cmd(rng.next_u64()), 2, true);
        }
        if crash {
            sim.crash(victim);
            one(&mut sim, cmd(rng.next_u64()), 2, true);
        }
        // Perhaps send enough to get a snapshot.
        let nn = INTERVAL / 2 + rng.below(INTERVAL);
        for _ in 0..nn {
            let _ = sim.propose(sender, cmd(rng.next_u64()));
        }
        if !disconnect && !crash {
            // All followers catch up, so a snapshot is taken everywhere.
            one(&mut sim, cmd(rng.next_u64()), servers as usize, true);
        } else {
            one(&mut sim, cmd(rng.next_u64()), 2, true);
        }
        check_persisted_small(&sim);
        if disconnect {
            // Reconnect a follower that may need to install a snapshot.
            sim.connect(victim);
            one(&mut sim, cmd(rng.next_u64()), servers as usize, true);
            leader1 = check_one_leader(&mut sim);
        }
        if crash {
            sim.restart(victim);
            sim.connect(victim);
            one(&mut sim, cmd(rng.next_u64()), servers as usize, true);
            leader1 = check_one_leader(&mut sim);
        }
    }
    assert!(
        sim.log.iter().any(|(_, _, e)| matches!(e, raft_core::Event::SnapshotTaken { .. })),
        "no snapshot was ever taken"
    );
    assert_safe(&sim);
}

#[test]
fn snapshot_basic_3d() {
    snapcommon(seed(61), false, true, false, false);
}

#[test]
fn snapshot_install_3d() {
    snapcommon(seed(62), true, true, false, false);
}

#[test]
fn snapshot_install_unreliable_3d() {
    snapcommon(seed(63), true, false, false, false);
}

#[test]
fn snapshot_install_crash_3d() {
    snapcommon(seed(64), false, true, true, false);
}

#[test]
fn snapshot_install_uncrash_3d() {
    snapcommon(seed(65), false, false, true, false);
}

#[test]
fn snapshot_install_unreliable_3d_off_loop() {
    snapcommon(seed(163), true, false, false, true);
}

#[test]
fn snapshot_install_crash_3d_off_loop() {
    snapcommon(seed(164), false, true, true, true);
}

#[test]
fn snapshot_install_uncrash_3d_off_loop() {
    snapcommon(seed(165), false, false, true, true);
}

fn put(key: u64, value: u64) -> Vec<u8> {
    KvOp::Put { key: format!("k{key:03}"), value: format!("v{value}") }.encode()
}

#[test]
fn a_snapshot_built_off_the_loop_holds_exactly_its_index() {
    // Building takes 300 ms here, while writes keep coming: the snapshot must
    // hold the state as of the index it was frozen at, none of the writes
    // applied while it was being built; and a node restarted from it plus the
    // journal's tail must end up with the same state as its peers.
    let s = seed(69);
    let mut sim = {
        let mut cfg = SimConfig { nodes: 3, seed: s, segment_bytes: 4 << 10, ..SimConfig::default() };
        cfg.raft.snapshot_entries = 50;
        cfg.raft.async_snapshots = true;
        cfg.snapshot_build_us = (300_000, 300_001);
        cfg.snapshot_build_failure = 0.0;
        Sim::new(cfg)
    };
    one(&mut sim, put(0, 0), 3, true);
    let leader = check_one_leader(&mut sim);
    let mut n = 1;
    // Write until the leader hands a snapshot to build.
    let frozen_at = loop {
        one(&mut sim, put(n % 20, n), 3, true);
        n += 1;
        if let Some(i) = sim.raft(leader).and_then(|r| r.snapshot_building()) {
            break i;
        }
        assert!(n < 500, "no snapshot was started");
    };
    let state_then = sim.raft(leader).unwrap().state_machine().clone();
    assert_eq!(state_then.revision(), frozen_at);
    // More writes while it builds, overwriting the same keys.
    let mut during = 0;
    while sim.raft(leader).and_then(|r| r.snapshot_building()).is_some() {
        let _ = sim.propose(leader, put(n % 20, n));
        n += 1;
        during += 1;
        sim.run_for(5 * MS);
    }
    assert!(during > 10, "only {during} writes were proposed while the snapshot was built");
    let r = sim.raft(leader).unwrap();
    assert!(r.applied_index() > frozen_at + 10, "the node did not apply on while the snapshot was built");
    let snap = r.snapshot().expect("the built snapshot was adopted").clone();
    assert_eq!(snap.meta.index, frozen_at);
    let file = sim.node(leader).disk.snapshots.get(&snap.meta.id).expect("the snapshot file is on the disk").clone();
    assert_eq!(file, snap.data);
    let body = SnapshotBody::decode(&file, 1 << 30).unwrap();
    let mut restored = KvStore::default();
    restored.restore(&body.state).unwrap();
    assert!(restored == state_then, "the snapshot does not hold the state of its index");
    assert!(restored != *r.state_machine(), "later writes should have changed the live state");
    // Let the record become durable and the log compact, then restart the
    // node from the snapshot and the journal's tail.
    one(&mut sim, put(999, 0), 3, true);
    assert!(sim.raft(leader).unwrap().log().snapshot_index() >= frozen_at, "the log was not compacted");
    sim.crash(leader);
    sim.restart(leader);
    for i in 0..20 {
        one(&mut sim, put(i, 10_000 + i), 3, true);
    }
    sim.run_for(SEC);
    let states: Vec<KvStore> = sim.ids().iter().map(|&id| sim.raft(id).unwrap().state_machine().clone()).collect();
    assert!(states.iter().all(|st| *st == states[0]), "a restarted node differs from its peers");
    assert!(sim.stats.snapshots_built >= 1);
    assert_safe(&sim);
}

#[test]
fn snapshot_install_is_exercised() {
    // A follower cut off while the others snapshot past its log must be brought
    // back by InstallSnapshot, not by replaying entries.
    let mut sim = snap_sim(seed(66), false);
    one(&mut sim, cmd(1), 3, true);
    let leader = check_one_leader(&mut sim);
    let lagger = leader % 3 + 1;
    sim.disconnect(lagger);
    for i in 0..100 {
        one(&mut sim, cmd(100 + i), 2, true);
    }
    sim.connect(lagger);
    one(&mut sim, cmd(999), 3, true);
    let installed =
        sim.log.iter().any(|(_, id, e)| *id == lagger && matches!(e, raft_core::Event::SnapshotInstalled { .. }));
    assert!(installed, "the lagging follower caught up without InstallSnapshot");
    assert_safe(&sim);
}

#[test]
fn snapshot_all_crash_3d() {
    // Crash and restart all servers after snapshots: the commit index never goes back.
    let s = seed(67);
    let mut sim = snap_sim(s, false);
    let mut rng = Rng::new(s);
    one(&mut sim, cmd(rng.next_u64()), 3, true);
    for _ in 0..5 {
        let nn = INTERVAL / 2 + rng.below(INTERVAL);
        for _ in 0..nn {
            one(&mut sim, cmd(rng.next_u64()), 3, true);
        }
        let index1 = one(&mut sim, cmd(rng.next_u64()), 3, true);
        for id in sim.ids() {
            sim.crash(id);
        }
        for id in sim.ids() {
            sim.restart(id);
        }
        let index2 = one(&mut sim, cmd(rng.next_u64()), 3, true);
        assert!(index2 > index1, "index decreased from {index1} to {index2}");
    }
    assert_safe(&sim);
}

#[test]
fn snapshot_init_3d() {
    // A node restarted from a snapshot reports the right state.
    let s = seed(68);
    let mut sim = snap_sim(s, false);
    let mut rng = Rng::new(s);
    one(&mut sim, cmd(rng.next_u64()), 3, true);
    for _ in 0..=INTERVAL {
        one(&mut sim, cmd(rng.next_u64()), 3, true);
    }
    for id in sim.ids() {
        sim.crash(id);
    }
    for id in sim.ids() {
        sim.restart(id);
        assert!(sim.raft(id).unwrap().applied_index() > 0, "node {id} restarted without its snapshot");
    }
    one(&mut sim, cmd(rng.next_u64()), 3, true);
    for id in sim.ids() {
        sim.crash(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    one(&mut sim, cmd(rng.next_u64()), 3, true);
    assert_safe(&sim);
}

#[test]
fn a_million_entries_in_bounded_memory() {
    // Commit 1,000,000 entries with a snapshot every 1,000. No node's
    // in-memory log may exceed the threshold plus the in-flight window, and
    // the journal a replay reads stays bounded.
    let started = std::time::Instant::now();
    let threshold = 1_000u64;
    let window = 1_000usize;
    let mut cfg = SimConfig { nodes: 3, seed: seed(69), segment_bytes: 256 << 10, ..SimConfig::default() };
    cfg.raft.snapshot_entries = threshold;
    cfg.raft.max_uncommitted_entries = window;
    let mut sim = Sim::new(cfg);
    sim.record_applied = false;
    let leader = check_one_leader(&mut sim);
    let (mut max_log, mut max_journal, mut next) = (0usize, 0usize, 0u64);
    let target = 1_000_000u64;
    while sim.committed_index() < target {
        // Keep the leader's window full.
        while sim.propose(leader, next.to_le_bytes().to_vec()).is_ok() {
            next += 1;
        }
        sim.run_for(MS);
        for id in sim.ids() {
            let r = sim.raft(id).unwrap();
            max_log = max_log.max(r.log().len());
            max_journal = max_journal.max(sim.node(id).disk.journal_bytes());
        }
        assert!(sim.raft(leader).unwrap().is_leader(), "the leader changed in a quiet cluster");
    }
    let bound = 2 * threshold as usize + window;
    assert!(max_log <= bound, "an in-memory log held {max_log} entries (bound {bound})");
    assert!(max_journal <= 4 * (256 << 10), "a journal held {max_journal} bytes");
    assert_safe(&sim);
    println!(
        "1,000,000 entries committed: max in-memory log {max_log} entries (bound {bound}), max journal {max_journal} bytes, in {:.1?}",
        started.elapsed()
    );
}
