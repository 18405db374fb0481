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
