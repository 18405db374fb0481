//! Leader election scenarios ported from the MIT 6.5840 Raft lab, part 3A,
//! written on the simulator. Each asserts what the original asserts.

mod common;
use common::*;

#[test]
fn initial_election_3a() {
    let mut sim = sim(3, seed(1));
    check_one_leader(&mut sim);
    // Terms agree, and stay put with no failures.
    sim.run_for(50 * MS);
    let t1 = check_terms(&sim);
    assert!(t1 >= 1, "term is {t1}, but should be at least 1");
    sim.run_for(2 * 500 * MS);
    let t2 = check_terms(&sim);
    assert_eq!(t1, t2, "term changed even though there were no failures");
    check_one_leader(&mut sim);
    assert_safe(&sim);
}

#[test]
fn re_election_3a() {
    let mut sim = sim(3, seed(2));
    let l1 = check_one_leader(&mut sim);
    // The leader leaves: a new one is elected.
    sim.disconnect(l1);
    check_one_leader(&mut sim);
    // The old leader rejoins: it must not disturb the new one.
    sim.connect(l1);
    let l2 = check_one_leader(&mut sim);
    // No quorum: no leader.
    sim.disconnect(l2);
    sim.disconnect(l2 % 3 + 1);
    sim.run_for(2 * 500 * MS);
    check_no_leader(&sim);
    // Quorum back: a leader.
    sim.connect(l2 % 3 + 1);
    check_one_leader(&mut sim);
    sim.connect(l2);
    check_one_leader(&mut sim);
    assert_safe(&sim);
}

#[test]
fn many_elections_3a() {
    let mut sim = sim(7, seed(3));
    let mut rng = raft_core::rng::Rng::new(seed(3));
    check_one_leader(&mut sim);
    for _ in 0..10 {
        let mut out = Vec::new();
        while out.len() < 3 {
            let id = rng.range(1, 7);
            if !out.contains(&id) {
                out.push(id);
            }
        }
        for &id in &out {
            sim.disconnect(id);
        }
        // Either the current leader is still alive or the remaining four elect one.
        check_one_leader(&mut sim);
        for &id in &out {
            sim.connect(id);
        }
    }
    check_one_leader(&mut sim);
    assert_safe(&sim);
}

/// A node cut off from the others keeps trying PreVote rounds; each one is a
/// role change (follower → pre-candidate → follower) whose HardState is
/// written for the record, but since neither term nor vote changes, none of
/// them asks for an fsync: an idle cluster with a partitioned node does no
/// disk syncs at all. The same node without PreVote raises its term each
/// time and must sync every one.
#[test]
fn failed_pre_votes_cost_no_fsync() {
    let idle_syncs = |pre_vote: bool| {
        let mut cfg = raft_core::sim::SimConfig { nodes: 3, seed: seed(11), ..Default::default() };
        cfg.raft.pre_vote = pre_vote;
        let mut sim = raft_core::sim::Sim::new(cfg);
        let l = check_one_leader(&mut sim);
        one(&mut sim, cmd(1), 3, true);
        let lonely = sim.ids().into_iter().find(|&id| id != l).expect("a follower");
        sim.disconnect(lonely);
        sim.run_for(SEC); // let the last syncs land
        let before = sim.stats.syncs;
        let rounds_before = sim.log.iter().filter(|e| e.1 == lonely).count();
        sim.run_for(10 * SEC);
        let rounds = sim.log.iter().filter(|e| e.1 == lonely).count() - rounds_before;
        assert!(rounds >= 10, "the cut-off node should keep campaigning (saw {rounds} role changes)");
        sim.stats.syncs - before
    };
    assert_eq!(idle_syncs(true), 0, "failed pre-vote rounds must not fsync");
    assert!(idle_syncs(false) >= 10, "real campaigns raise the term: each must be synced");
}
