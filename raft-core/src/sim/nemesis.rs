//! Random faults for randomised runs (the tests' and the web demo's test mode).

use alloc::vec;
use alloc::vec::Vec;

use super::Sim;
use crate::rng::Rng;
use crate::types::NodeId;

/// Injects one random fault: crashes (a leader right after it appended, too;
/// each crashed node restarts after a random delay), partitions (the leader
/// alone, random halves, one-way cuts), healing, network trouble (loss,
/// duplication, long reordering), forced elections, snapshots a host takes on
/// its own schedule, and a follower whose answers are lost for a while as the
/// leader keeps committing (its snapshot can then run past what the leader
/// believes it holds).
pub fn random_fault(sim: &mut Sim, rng: &mut Rng, ids: &[NodeId]) {
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(15) {
        0 | 1 => {
            let id = pick(rng);
            sim.crash(id);
            sim.restart_after(id, rng.range(0, 1500) * 1_000);
        }
        2 => {
            // Crash the leader right after it appended something.
            if let Some(l) = sim.leader() {
                let _ = sim.propose(l, vec![0xEE]);
                sim.run_for(rng.range(0, 3) * 1_000);
                sim.crash(l);
                sim.restart_after(l, rng.range(0, 1000) * 1_000);
            }
        }
        3 => {
            if let Some(l) = sim.leader() {
                sim.disconnect(l);
            }
        }
        4 => {
            let mut side: Vec<u64> = ids.iter().copied().filter(|_| rng.chance(0.5)).collect();
            if side.is_empty() {
                side.push(pick(rng));
            }
            sim.partition(&side);
        }
        5 => {
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                sim.cut_link(a, b);
            }
        }
        6 | 7 => sim.heal(),
        8 => sim.set_network(rng.below(30) as f64 / 100.0, rng.below(10) as f64 / 100.0, rng.below(10) as f64 / 100.0),
        9 => sim.set_network(0.0, 0.0, 0.0),
        10 => sim.force_timeout(pick(rng)),
        11 => sim.take_snapshot(pick(rng)),
        12 | 13 => lose_acks(sim, rng, ids),
        _ => {
            let id = pick(rng);
            sim.connect(id);
        }
    }
}

/// Stalls one node's event loop (the leader more often than not) for 20–600
/// ms: a GC pause, a blocked thread, a descheduled VM. Its ticks, messages
/// and client requests wait, then arrive at once with its clock moved on —
/// what a lease read must survive: a leader that resumes after its lease
/// ran out must not answer from it.
pub fn stall(sim: &mut Sim, rng: &mut Rng, ids: &[NodeId]) {
    let id = match sim.leader() {
        Some(l) if rng.chance(0.6) => l,
        _ => ids[rng.below(ids.len() as u64) as usize],
    };
    sim.pause(id, rng.range(20, 600) * 1_000);
}

/// One-way loss of a follower's acks spanning several batches: the others
/// commit on under a steady load while the leader's view of this follower
/// stays put, and each message the follower still receives carries a higher
/// commit index; the follower then (usually) snapshots on the host's word, past
/// what the leader believes it holds. The cut heals by itself after 0.2–1.5 s.
/// This is the state in which a follower that ignored probes inside its
/// compacted log was never caught by 10,000 seeds of the other faults.
pub fn lose_acks(sim: &mut Sim, rng: &mut Rng, ids: &[NodeId]) {
    let Some(l) = sim.leader() else { return };
    let followers: Vec<NodeId> = ids.iter().copied().filter(|&id| id != l).collect();
    if followers.is_empty() {
        return;
    }
    let f = followers[rng.below(followers.len() as u64) as usize];
    let cut_ms = rng.range(200, 1_500);
    sim.cut_link_for(f, l, cut_ms * 1_000);
    let mut elapsed = 0;
    while elapsed < cut_ms / 2 {
        for k in 0..rng.range(1, 4) {
            let _ = sim.propose(l, vec![0xAC, elapsed as u8, k as u8]);
        }
        let pause = rng.range(2, 20);
        sim.run_for(pause * 1_000);
        elapsed += pause;
    }
    if rng.chance(0.7) {
        sim.take_snapshot(f);
    }
}

/// Most nodes a churning cluster grows to.
pub const MAX_CHURN_NODES: usize = 7;

/// One membership change, as an operator would make it on a running cluster:
/// a fresh node joins as a learner, a learner is promoted (refused while it
/// lags), a voter is removed (the leader too, sometimes), a learner replaces a
/// voter in one joint change, leadership moves, or a change races a leader
/// crash and another follows the moment a new leader is elected. Changes the
/// leader refuses (another unfinished, its term not committed yet) are simply
/// not made.
/// Voters stay between 3 and 5, so "at most f nodes damaged" keeps its meaning.
pub fn churn(sim: &mut Sim, rng: &mut Rng) {
    use crate::membership::{Change, ConfChange};
    let Some(l) = sim.leader() else { return };
    let Some(m) = sim.raft(l).map(|r| r.membership().clone()) else { return };
    let voters = m.voter_ids();
    let learners: Vec<NodeId> = m.learners.iter().map(|x| x.id).collect();
    let pick = |rng: &mut Rng, v: &[NodeId]| v[rng.below(v.len() as u64) as usize];
    let direct = |changes| ConfChange::Begin { joint: false, changes };
    match rng.below(7) {
        0 | 1 if sim.ids().len() < MAX_CHURN_NODES => {
            let id = sim.add_node();
            let _ = sim.propose_conf_change(l, direct(vec![Change::AddLearner { id, inc: 0 }]), false);
        }
        2 if !learners.is_empty() && voters.len() < 5 => {
            let id = pick(rng, &learners);
            let _ = sim.propose_conf_change(l, direct(vec![Change::AddVoter { id, inc: 0 }]), false);
        }
        3 if voters.len() > 3 => {
            let id = pick(rng, &voters);
            let _ = sim.propose_conf_change(l, direct(vec![Change::Remove { id }]), false);
        }
        4 if !learners.is_empty() => {
            let (new, old) = (pick(rng, &learners), pick(rng, &voters));
            let cc = ConfChange::Begin {
                joint: true,
                changes: vec![Change::AddVoter { id: new, inc: 0 }, Change::Remove { id: old }],
            };
            let _ = sim.propose_conf_change(l, cc, false);
        }
        5 => {
            // A change in flight as its leader crashes, then another the
            // moment a new leader is elected (before it has committed
            // anything of its own term, which it must refuse).
            let change = |sim: &mut Sim, rng: &mut Rng, at: NodeId| {
                let m = sim.raft(at).map(|r| r.membership().clone()).unwrap_or_default();
                let voters = m.voter_ids();
                let cc = if voters.len() > 3 && rng.chance(0.5) {
                    direct(vec![Change::Remove { id: pick(rng, &voters) }])
                } else if sim.ids().len() < MAX_CHURN_NODES {
                    let id = sim.add_node();
                    direct(vec![Change::AddVoter { id, inc: 0 }])
                } else {
                    return;
                };
                // Forced: the point is a change racing a leader change.
                let _ = sim.propose_conf_change(at, cc, true);
            };
            change(sim, rng, l);
            sim.run_for(rng.range(0, 3) * 1_000);
            sim.crash(l);
            sim.restart_after(l, rng.range(100, 1_000) * 1_000);
            if sim.run_until(2_000_000, |s| s.leader().is_some_and(|x| x != l)) {
                if let Some(n) = sim.leader() {
                    change(sim, rng, n);
                }
            }
        }
        _ => {
            let _ = sim.transfer_leadership(l, None);
        }
    }
}

/// Damages one node's disk, as hardware and operators do: wipes it (a new
/// incarnation that must not vote as its old self), or flips a byte in one
/// of its recent durable records (a lost tail the node must detect and
/// repair from the cluster before it votes again); the node restarts after a
/// while. At most f voters are damaged or unbound at a time, so the cluster
/// can stay live; past that the fault readmits a wiped node instead (an
/// operator's `member replace`), which it also does at random.
pub fn damage(sim: &mut Sim, rng: &mut Rng) {
    let ids = sim.ids();
    // Only on a cluster that has a leader (one whose configuration says
    // what f is), and never past f.
    let Some(voters) = sim.leader().and_then(|l| sim.raft(l)).map(|r| r.membership().voter_ids()) else { return };
    let f = voters.len().saturating_sub(1) / 2;
    let unbound = sim.unbound_voters();
    // Any damaged node counts (a learner may be promoted while damaged), and
    // so does one still flagged lost_data (the checker may already see its
    // committed prefix repaired while the node waits for a leader's word).
    // A node that is down counts as well: whether it is flagged is not known
    // until it restarts.
    let flagged = |id: NodeId| sim.raft(id).is_none_or(|r| r.lost_data());
    let hurt = ids.iter().filter(|&&id| sim.is_damaged(id) || unbound.contains(&id) || flagged(id)).count();
    if hurt >= f || (!unbound.is_empty() && rng.chance(0.4)) {
        sim.readmit_wiped();
        return;
    }
    let healthy: Vec<NodeId> =
        ids.iter().copied().filter(|&id| !sim.is_damaged(id) && !unbound.contains(&id)).collect();
    if healthy.is_empty() {
        return;
    }
    let id = healthy[rng.below(healthy.len() as u64) as usize];
    if rng.chance(0.5) {
        sim.wipe(id);
    } else {
        sim.lose_durable(id, rng.range(1, 24) as usize);
    }
    sim.restart_after(id, rng.range(0, 1_000) * 1_000);
}

/// Readmits every wiped voter, one joint change at a time, as an operator
/// does before expecting the cluster to be whole again; gives up after
/// `attempts` tries (each waits for a leader and for the change to finish).
pub fn readmit_all(sim: &mut Sim, attempts: usize) {
    for _ in 0..attempts {
        if sim.unbound_voters().is_empty() {
            return;
        }
        if !sim.run_until(3_000_000, |s| s.leader().is_some()) {
            continue;
        }
        sim.readmit_wiped();
        sim.run_for(500_000);
    }
}
