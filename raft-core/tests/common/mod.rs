//! Helpers shared by the simulator tests, in the shape of the MIT 6.5840 lab's
//! `config.go`: find the one leader, count how many nodes applied an index,
//! and `one()` — agree on a command or fail.
#![allow(dead_code)]

use raft_core::sim::{Sim, SimConfig};
use raft_core::{Index, NodeId, Role};

pub const MS: u64 = 1_000;
pub const SEC: u64 = 1_000_000;

/// The seed for a test: `SEED=n` overrides the default.
pub fn seed(default: u64) -> u64 {
    std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The seeds a randomised suite runs: `SEED=n` replays one, `SEEDS=n` runs
/// `1..=n`, and the default is `1..=200`.
pub fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SEED") {
        return vec![s.parse().expect("SEED must be a number")];
    }
    let n: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    (1..=n).collect()
}

pub fn sim(nodes: usize, seed: u64) -> Sim {
    Sim::new(SimConfig { nodes, seed, ..SimConfig::default() })
}

/// Panics (with the seed) if the simulator found a safety violation.
pub fn assert_safe(sim: &Sim) {
    let v = sim.violations();
    assert!(v.is_empty(), "seed {}: safety violations:\n{}", sim.config().seed, v.join("\n"));
}

/// Whether `id` is up and reachable from at least one other node (the lab's "connected").
pub fn connected(sim: &Sim, id: NodeId) -> bool {
    sim.is_up(id) && !sim.is_disconnected(id)
}

/// The lab's checkOneLeader: within 5 s (in 10 rounds), exactly one leader
/// among connected nodes in the newest term that has one.
pub fn check_one_leader(sim: &mut Sim) -> NodeId {
    for _ in 0..10 {
        sim.run_for(450 * MS + sim.now() % (100 * MS));
        let mut by_term: std::collections::BTreeMap<u64, Vec<NodeId>> = Default::default();
        for id in sim.ids() {
            if !connected(sim, id) && sim.ids().len() > 1 {
                continue;
            }
            if let Some(r) = sim.raft(id) {
                if r.role() == Role::Leader {
                    by_term.entry(r.term()).or_default().push(id);
                }
            }
        }
        for (t, ls) in &by_term {
            assert!(ls.len() <= 1, "seed {}: term {t} has {} leaders", sim.config().seed, ls.len());
        }
        if let Some((_, ls)) = by_term.iter().next_back() {
            assert_safe(sim);
            return ls[0];
        }
    }
    panic!("seed {}: expected one leader, got none", sim.config().seed);
}

/// The lab's checkNoLeader among connected nodes.
pub fn check_no_leader(sim: &Sim) {
    for id in sim.ids() {
        if connected(sim, id) {
            if let Some(r) = sim.raft(id) {
                assert_ne!(r.role(), Role::Leader, "seed {}: node {id} is leader but should not be", sim.config().seed);
            }
        }
    }
}

/// The lab's checkTerms: connected nodes agree on the term.
pub fn check_terms(sim: &Sim) -> u64 {
    let mut term = None;
    for id in sim.ids() {
        if connected(sim, id) {
            let t = sim.raft(id).map(|r| r.term()).unwrap_or(0);
            match term {
                None => term = Some(t),
                Some(x) => assert_eq!(x, t, "seed {}: servers disagree on term", sim.config().seed),
            }
        }
    }
    term.unwrap_or(0)
}

/// How many nodes have applied `index`, and the command there (all must agree).
pub fn n_committed(sim: &Sim, index: Index) -> (usize, Option<Vec<u8>>) {
    let mut count = 0;
    let mut cmd: Option<Vec<u8>> = None;
    for id in sim.ids() {
        if let Some(c) = sim.applied_at(id, index) {
            if let Some(prev) = &cmd {
                assert_eq!(prev.as_slice(), c, "seed {}: committed values differ at {index}", sim.config().seed);
            }
            cmd = Some(c.to_vec());
            count += 1;
        }
    }
    (count, cmd)
}

pub fn cmd(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// The lab's one(): keep trying for 10 s to have a leader accept `c`, then
/// wait up to 2 s for `expected` nodes to apply it. Returns its index.
pub fn one(sim: &mut Sim, c: Vec<u8>, expected: usize, retry: bool) -> Index {
    let deadline = sim.now() + 10 * SEC;
    while sim.now() < deadline {
        let mut index = None;
        for id in sim.ids() {
            if connected(sim, id) || sim.ids().len() == 1 {
                if let Ok((i, _)) = sim.propose(id, c.clone()) {
                    index = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = index {
            let t1 = sim.now() + 2 * SEC;
            while sim.now() < t1 {
                let (n, got) = n_committed(sim, i);
                if n >= expected && got.as_deref() == Some(c.as_slice()) {
                    assert_safe(sim);
                    return i;
                }
                sim.run_for(20 * MS);
            }
            if !retry {
                panic!("seed {}: one({:?}) failed to reach agreement", sim.config().seed, c);
            }
        } else {
            sim.run_for(50 * MS);
        }
    }
    panic!("seed {}: one({:?}) failed to reach agreement in 10s", sim.config().seed, c);
}

/// Waits for `index` to be applied by at least `n` nodes (the lab's wait()).
pub fn wait(sim: &mut Sim, index: Index, n: usize, start_term: Option<u64>) -> Option<Vec<u8>> {
    let mut to = 10 * MS;
    for _ in 0..30 {
        let (nd, _) = n_committed(sim, index);
        if nd >= n {
            break;
        }
        sim.run_for(to);
        if to < SEC {
            to *= 2;
        }
        if let Some(t) = start_term {
            if sim.ids().iter().any(|&id| sim.raft(id).is_some_and(|r| r.term() > t)) {
                return None;
            }
        }
    }
    let (nd, c) = n_committed(sim, index);
    assert!(nd >= n, "seed {}: only {nd} decided for index {index}; wanted {n}", sim.config().seed);
    c
}
