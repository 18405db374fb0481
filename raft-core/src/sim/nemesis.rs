//! Random faults for randomised runs (the tests' and the web demo's test mode).

use alloc::vec;
use alloc::vec::Vec;

use super::Sim;
use crate::rng::Rng;
use crate::types::NodeId;

/// Injects one random fault: crashes (a leader right after it appended, too;
/// each crashed node restarts after a random delay), partitions (the leader
/// alone, random halves, one-way cuts), healing, network trouble (loss,
/// duplication, long reordering) and forced elections.
pub fn random_fault(sim: &mut Sim, rng: &mut Rng, ids: &[NodeId]) {
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(12) {
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
        _ => {
            let id = pick(rng);
            sim.connect(id);
        }
    }
}
