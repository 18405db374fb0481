//! Persistence and fault scenarios ported from the MIT 6.5840 Raft lab, part 3C.
//!
//! The simulator's crash is harsher than the lab's: a crashed node also loses
//! journal records it had written but not yet synced, and the last surviving
//! record may be torn. Every test ends with the simulator's safety checks.

mod common;
use common::*;
use raft_core::rng::Rng;
use raft_core::sim::Sim;

fn crash_restart(sim: &mut Sim, id: u64) {
    sim.crash(id);
    sim.restart(id);
}

#[test]
fn persist1_3c() {
    let mut sim = sim(3, seed(31));
    one(&mut sim, cmd(11), 3, true);
    // Crash and restart all.
    for id in sim.ids() {
        sim.crash(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    one(&mut sim, cmd(12), 3, true);
    let leader1 = check_one_leader(&mut sim);
    crash_restart(&mut sim, leader1);
    one(&mut sim, cmd(13), 3, true);
    let leader2 = check_one_leader(&mut sim);
    sim.crash(leader2);
    let i14 = one(&mut sim, cmd(14), 2, true);
    sim.restart(leader2);
    // Wait for the restarted leader to catch up.
    wait(&mut sim, i14, 3, None);
    let leader3 = check_one_leader(&mut sim);
    let f = leader3 % 3 + 1;
    sim.crash(f);
    one(&mut sim, cmd(15), 2, true);
    sim.restart(f);
    one(&mut sim, cmd(16), 3, true);
    assert_safe(&sim);
}

#[test]
fn persist2_3c() {
    let mut sim = sim(5, seed(32));
    let mut index = 1;
    for _ in 0..5 {
        one(&mut sim, cmd(10 + index), 5, true);
        index += 1;
        let leader1 = check_one_leader(&mut sim);
        let p = |k: u64| (leader1 - 1 + k) % 5 + 1;
        sim.crash(p(1));
        sim.crash(p(2));
        one(&mut sim, cmd(10 + index), 3, true);
        index += 1;
        sim.crash(p(0));
        sim.crash(p(3));
        sim.crash(p(4));
        sim.restart(p(1));
        sim.restart(p(2));
        sim.run_for(500 * MS);
        sim.restart(p(3));
        one(&mut sim, cmd(10 + index), 3, true);
        index += 1;
        sim.restart(p(4));
        sim.restart(p(0));
    }
    one(&mut sim, cmd(1000), 5, true);
    assert_safe(&sim);
}

#[test]
fn persist3_3c() {
    let mut sim = sim(3, seed(33));
    one(&mut sim, cmd(101), 3, true);
    let leader = check_one_leader(&mut sim);
    let p = |k: u64| (leader - 1 + k) % 3 + 1;
    sim.disconnect(p(2));
    one(&mut sim, cmd(102), 2, true);
    sim.crash(p(0));
    sim.crash(p(1));
    sim.connect(p(2));
    sim.restart(p(0));
    one(&mut sim, cmd(103), 2, true);
    sim.restart(p(1));
    one(&mut sim, cmd(104), 3, true);
    assert_safe(&sim);
}

/// The paper's Figure 8: leaders crash right after appending, new leaders
/// overwrite uncommitted entries; a leader must never commit an entry of an
/// earlier term by counting replicas.
fn figure8(sim: &mut Sim, rng: &mut Rng, iters: usize) {
    let n = sim.ids().len() as u64;
    one(sim, cmd(rng.next_u64()), 1, true);
    let mut nup = n;
    for _ in 0..iters {
        let mut leader = None;
        for id in sim.ids() {
            if sim.propose(id, cmd(rng.next_u64())).is_ok() {
                leader = Some(id);
            }
        }
        if rng.below(1000) < 100 {
            sim.run_for(rng.below(250 * MS));
        } else {
            sim.run_for(rng.below(13 * MS));
        }
        if let Some(l) = leader {
            sim.crash(l);
            nup -= 1;
        }
        if nup < 3 {
            let s = rng.range(1, n);
            if !sim.is_up(s) {
                sim.restart(s);
                nup += 1;
            }
        }
        assert_safe(sim);
    }
    for id in sim.ids() {
        if !sim.is_up(id) {
            sim.restart(id);
        }
    }
}

#[test]
fn figure8_3c() {
    let s = seed(34);
    let mut sim = sim(5, s);
    let mut rng = Rng::new(s);
    figure8(&mut sim, &mut rng, 1000);
    one(&mut sim, cmd(rng.next_u64()), 5, true);
    assert_safe(&sim);
}

#[test]
fn unreliable_agree_3c() {
    let mut sim = sim(5, seed(35));
    sim.set_network(0.1, 0.05, 0.0);
    for iters in 1..50u64 {
        // The lab runs four concurrent one() calls; here they interleave.
        for j in 0..4 {
            let _ = sim.ids().iter().find_map(|&id| sim.raft(id).filter(|r| r.is_leader()).map(|_| id)).map(|l| {
                let _ = sim.propose(l, cmd(100 * iters + j));
            });
        }
        one(&mut sim, cmd(iters), 1, true);
    }
    sim.set_network(0.0, 0.0, 0.0);
    one(&mut sim, cmd(100), 5, true);
    assert_safe(&sim);
}

#[test]
fn figure8_unreliable_3c() {
    let s = seed(36);
    let mut sim = sim(5, s);
    let mut rng = Rng::new(s);
    sim.set_network(0.1, 0.05, 0.2); // loss, duplication, long reordering
    one(&mut sim, cmd(rng.below(10_000)), 1, true);
    let mut nup = 5;
    for iters in 0..1000 {
        if iters == 200 {
            sim.set_network(0.1, 0.05, 0.2);
        }
        let mut leader = None;
        for id in sim.ids() {
            if sim.propose(id, cmd(rng.below(10_000))).is_ok() && !sim.is_disconnected(id) {
                leader = Some(id);
            }
        }
        if rng.below(1000) < 100 {
            sim.run_for(rng.below(250 * MS));
        } else {
            sim.run_for(rng.below(13 * MS));
        }
        if let Some(l) = leader {
            if rng.below(1000) < 500 {
                sim.disconnect(l);
                nup -= 1;
            }
        }
        if nup < 3 {
            let s = rng.range(1, 5);
            if sim.is_disconnected(s) {
                sim.connect(s);
                nup += 1;
            }
        }
        assert_safe(&sim);
    }
    for id in sim.ids() {
        sim.connect(id);
    }
    sim.set_network(0.0, 0.0, 0.0);
    // Long detours may still be in flight: give them time to land.
    sim.run_for(3 * SEC);
    one(&mut sim, cmd(rng.below(10_000)), 5, true);
    assert_safe(&sim);
}

/// The lab's internalChurn: clients propose at random servers while servers
/// crash, restart, disconnect and reconnect; every value a client saw commit
/// must be in the final log.
fn churn(unreliable: bool, s: u64) {
    let mut sim = sim(5, s);
    let mut rng = Rng::new(s ^ 0xC0FFEE);
    if unreliable {
        sim.set_network(0.1, 0.05, 0.05);
    }
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut next_val = 1u64;
    let mut next_churn = sim.now();
    let end = sim.now() + 5 * SEC;
    while sim.now() < end {
        // Three clients each try one value at a random server.
        for client in 0..3u64 {
            let id = rng.range(1, 5);
            let v = cmd(client << 48 | next_val);
            next_val += 1;
            if let Ok((i, _)) = sim.propose(id, v.clone()) {
                pending.push((i, v));
            }
        }
        sim.run_for(rng.range(1, 20) * MS);
        pending.retain(|(i, v)| match n_committed(&sim, *i) {
            (n, Some(c)) if n > 0 => {
                if &c == v {
                    seen.push(v.clone());
                }
                false
            }
            _ => true,
        });
        if sim.now() >= next_churn {
            next_churn = sim.now() + 350 * MS;
            let id = rng.range(1, 5);
            if rng.below(1000) < 200 {
                sim.disconnect(id);
            }
            let id = rng.range(1, 5);
            if rng.below(1000) < 500 {
                if !sim.is_up(id) {
                    sim.restart(id);
                }
                sim.connect(id);
            }
            let id = rng.range(1, 5);
            if rng.below(1000) < 200 {
                sim.crash(id);
            }
        }
        assert_safe(&sim);
    }
    sim.set_network(0.0, 0.0, 0.0);
    for id in sim.ids() {
        if !sim.is_up(id) {
            sim.restart(id);
        }
        sim.connect(id);
    }
    sim.run_for(3 * SEC);
    let last = one(&mut sim, cmd(u64::MAX), 5, true);
    let mut really: Vec<Vec<u8>> = Vec::new();
    for i in 1..=last {
        if let (_, Some(v)) = n_committed(&sim, i) {
            really.push(v);
        }
    }
    for v in &seen {
        assert!(really.contains(v), "seed {s}: a value a client saw commit is missing from the final log");
    }
    assert!(seen.len() > 10, "seed {s}: only {} values committed under churn", seen.len());
    assert_safe(&sim);
}

#[test]
fn reliable_churn_3c() {
    churn(false, seed(37));
}

#[test]
fn unreliable_churn_3c() {
    churn(true, seed(38));
}
