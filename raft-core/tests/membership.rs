//! Membership changes as an operator makes them (issue 11 item 9), on the
//! simulator with its safety checks after every event: grow and shrink,
//! remove the leader, transfer leadership under load, a learner that never
//! catches up is never promoted, a leader removing itself never counts itself.

mod common;
use common::*;
use raft_core::membership::{Change, ConfChange};
use raft_core::raft::ConfChangeRefused;
use raft_core::sim::{Sim, SimConfig};
use raft_core::NodeId;

fn direct(changes: Vec<Change>) -> ConfChange {
    ConfChange::Begin { joint: false, changes }
}

fn cluster(nodes: usize) -> Sim {
    let mut cfg = SimConfig { nodes, seed: seed(1), ..SimConfig::default() };
    cfg.raft.check_quorum = true;
    Sim::new(cfg)
}

/// Proposes `cc` at the current leader until it is accepted, then waits for
/// every live node to use a configuration with exactly `voters`.
fn change(sim: &mut Sim, cc: ConfChange, voters: &[NodeId]) {
    let deadline = sim.now() + 10 * SEC;
    loop {
        assert!(sim.now() < deadline, "change {cc:?} was never accepted");
        if let Some(l) = sim.leader() {
            match sim.propose_conf_change(l, cc.clone(), false) {
                Ok(_) => break,
                Err(ConfChangeRefused::Invalid(e)) => panic!("{cc:?}: {e}"),
                Err(_) => {}
            }
        }
        sim.run_for(50 * MS);
    }
    let ok = sim.run_until(5 * SEC, |s| {
        s.leader().and_then(|l| s.raft(l)).is_some_and(|r| {
            let m = r.committed_membership();
            !m.is_joint() && m.voter_ids() == voters
        })
    });
    assert!(ok, "the cluster did not settle on voters {voters:?}");
    assert_safe(sim);
}

/// Adds a fresh node as a learner and waits until it has caught up.
fn add_learner(sim: &mut Sim, voters: &[NodeId]) -> NodeId {
    let id = sim.add_node();
    change(sim, direct(vec![Change::AddLearner { id, inc: 0 }]), voters);
    let caught_up = sim.run_until(5 * SEC, |s| {
        let last = s.leader().and_then(|l| s.raft(l)).map_or(u64::MAX, |r| r.log().last_index());
        s.raft(id).is_some_and(|r| r.log().last_index() >= last)
    });
    assert!(caught_up, "learner {id} never caught up");
    id
}

#[test]
fn grow_one_to_three_to_five_then_shrink_to_three_removing_the_leader() {
    let mut sim = cluster(1);
    check_one_leader(&mut sim);
    one(&mut sim, cmd(1), 1, true);
    let mut voters = vec![1];
    for _ in 0..4 {
        let id = add_learner(&mut sim, &voters);
        voters.push(id);
        change(&mut sim, direct(vec![Change::AddVoter { id, inc: 0 }]), &voters);
        one(&mut sim, cmd(10 + id), voters.len(), true);
    }
    assert_eq!(voters, vec![1, 2, 3, 4, 5]);
    // Shrink 5 -> 3: first a follower, then the leader itself.
    let l = sim.leader().expect("a leader");
    let f = *voters.iter().find(|&&v| v != l).expect("a follower");
    voters.retain(|&v| v != f);
    change(&mut sim, direct(vec![Change::Remove { id: f }]), &voters);
    voters.retain(|&v| v != l);
    change(&mut sim, direct(vec![Change::Remove { id: l }]), &voters);
    sim.stop(l);
    sim.stop(f);
    let nl = check_one_leader(&mut sim);
    assert!(voters.contains(&nl));
    one(&mut sim, cmd(99), 3, true);
    assert_safe(&sim);
}

#[test]
fn replace_a_failed_voter_with_a_fresh_node_in_one_joint_change() {
    let mut sim = cluster(3);
    let l = check_one_leader(&mut sim);
    one(&mut sim, cmd(1), 3, true);
    let dead = sim.ids().into_iter().find(|&id| id != l).expect("a follower");
    sim.stop(dead);
    let new = add_learner(&mut sim, &[1, 2, 3]);
    let mut voters: Vec<NodeId> = vec![1, 2, 3, new].into_iter().filter(|&v| v != dead).collect();
    voters.sort_unstable();
    let cc = ConfChange::Begin {
        joint: true,
        changes: vec![Change::AddVoter { id: new, inc: 0 }, Change::Remove { id: dead }],
    };
    change(&mut sim, cc, &voters);
    // The old leader goes too: the newcomer's vote elects the next one.
    sim.crash(l);
    let nl = check_one_leader(&mut sim);
    assert_ne!(nl, l);
    one(&mut sim, cmd(2), 2, true);
    assert_safe(&sim);
}

#[test]
fn transfer_leadership_under_load_loses_no_acknowledged_write() {
    let mut sim = cluster(3);
    let l = check_one_leader(&mut sim);
    let mut acked = Vec::new();
    let mut transferred = false;
    for k in 0..300u64 {
        if let Some(at) = sim.leader() {
            if let Ok((i, _)) = sim.propose(at, cmd(1_000 + k)) {
                acked.push((i, cmd(1_000 + k)));
            }
            if k == 100 {
                transferred = sim.transfer_leadership(at, None).is_ok();
            }
        }
        sim.run_for(2 * MS);
    }
    assert!(transferred, "the transfer started");
    sim.run_for(2 * SEC);
    let nl = check_one_leader(&mut sim);
    assert_ne!(nl, l, "leadership moved");
    // Every write whose index committed holds the command proposed there or
    // was superseded before commit; none committed differently (the checker
    // asserts that), and the latest term's writes all commit.
    one(&mut sim, cmd(9), 3, true);
    assert_safe(&sim);
}

#[test]
fn a_learner_that_never_catches_up_is_never_promoted() {
    let mut sim = cluster(3);
    check_one_leader(&mut sim);
    let id = sim.add_node();
    sim.disconnect(id);
    change(&mut sim, direct(vec![Change::AddLearner { id, inc: 0 }]), &[1, 2, 3]);
    for k in 0..1_200 {
        if let Some(l) = sim.leader() {
            let _ = sim.propose(l, cmd(k));
        }
        if k % 50 == 0 {
            sim.run_for(5 * MS);
        }
    }
    sim.run_for(SEC);
    for _ in 0..5 {
        let l = sim.leader().expect("a leader");
        let r = sim.propose_conf_change(l, direct(vec![Change::AddVoter { id, inc: 0 }]), false);
        assert!(
            matches!(r, Err(ConfChangeRefused::LearnerBehind { .. }) | Err(ConfChangeRefused::UnknownIncarnation(_))),
            "a learner that never caught up was promoted: {r:?}"
        );
        sim.run_for(200 * MS);
    }
    let l = sim.leader().expect("a leader");
    assert!(!sim.raft(l).is_some_and(|r| r.membership().is_voter(id)));
    assert_safe(&sim);
}

#[test]
fn a_leader_removing_itself_from_four_voters_never_counts_itself() {
    let mut sim = cluster(3);
    check_one_leader(&mut sim);
    let id = add_learner(&mut sim, &[1, 2, 3]);
    change(&mut sim, direct(vec![Change::AddVoter { id, inc: 0 }]), &[1, 2, 3, 4]);
    let l = sim.leader().expect("a leader");
    let rest: Vec<NodeId> = [1, 2, 3, 4].into_iter().filter(|&v| v != l).collect();
    // Two of the three others are cut off: the removal needs two of the
    // three remaining voters, and the leader's own copy does not count.
    for &v in &rest[..2] {
        sim.cut_link(l, v);
    }
    let (i, _) = sim.propose_conf_change(l, direct(vec![Change::Remove { id: l }]), false).expect("accepted");
    sim.run_for(2 * SEC);
    let committed = sim.raft(l).map_or(0, |r| r.commit_index());
    assert!(committed < i, "the removal committed with the leader counting itself ({committed} >= {i})");
    sim.heal();
    let ok = sim.run_until(5 * SEC, |s| s.leader().is_some_and(|x| x != l));
    assert!(ok, "a remaining voter leads once the removal commits");
    assert_safe(&sim);
}
