//! Log agreement scenarios ported from the MIT 6.5840 Raft lab, part 3B.
//!
//! One difference from the lab shapes the index assertions: every new leader
//! appends a no-op entry (Raft §8), so a command's index is not the count of
//! commands before it. Where the lab asserts an exact index, these tests
//! assert the same property in terms of the indexes the cluster actually used.

mod common;
use common::*;
use raft_core::rng::Rng;

#[test]
fn basic_agree_3b() {
    let mut sim = sim(3, seed(11));
    let mut last = None;
    for i in 1..=3u64 {
        let xindex = one(&mut sim, cmd(100 + i), 3, false);
        if let Some(prev) = last {
            assert_eq!(xindex, prev + 1, "got index {xindex} but expected {}", prev + 1);
        }
        last = Some(xindex);
    }
    assert_safe(&sim);
}

#[test]
fn rpc_bytes_3b() {
    // Each command is sent to each follower once: bytes on the wire stay close
    // to the payload sent.
    let mut sim = sim(3, seed(12));
    one(&mut sim, cmd(99), 3, false);
    let bytes0 = sim.stats.bytes;
    let mut sent = 0u64;
    for i in 0..10u64 {
        let mut c = vec![b'x'; 5000];
        c[..8].copy_from_slice(&i.to_le_bytes());
        one(&mut sim, c, 3, false);
        sent += 5000;
    }
    let got = sim.stats.bytes - bytes0;
    let expected = 2 * sent; // two followers
    assert!(got <= expected + 50_000, "too many RPC bytes; got {got}, expected {expected}");
    assert_safe(&sim);
}

#[test]
fn follower_failure_3b() {
    let mut sim = sim(3, seed(13));
    one(&mut sim, cmd(101), 3, false);
    let leader1 = check_one_leader(&mut sim);
    sim.disconnect(leader1 % 3 + 1);
    // The leader and the remaining follower agree without the disconnected one.
    one(&mut sim, cmd(102), 2, false);
    sim.run_for(500 * MS);
    one(&mut sim, cmd(103), 2, false);
    // Disconnect the remaining follower(s).
    let leader2 = check_one_leader(&mut sim);
    for id in sim.ids() {
        if id != leader2 {
            sim.disconnect(id);
        }
    }
    let (index, _) = sim.propose(leader2, cmd(104)).expect("leader rejected Start()");
    sim.run_for(2 * 500 * MS);
    let (n, _) = n_committed(&sim, index);
    assert_eq!(n, 0, "{n} committed but no majority");
    assert_safe(&sim);
}

#[test]
fn leader_failure_3b() {
    let mut sim = sim(3, seed(14));
    one(&mut sim, cmd(101), 3, false);
    let leader1 = check_one_leader(&mut sim);
    sim.disconnect(leader1);
    // The remaining followers elect a new leader.
    one(&mut sim, cmd(102), 2, false);
    sim.run_for(500 * MS);
    one(&mut sim, cmd(103), 2, false);
    let leader2 = check_one_leader(&mut sim);
    sim.disconnect(leader2);
    // Submit a command to each server: none may commit.
    let mut indexes = Vec::new();
    for id in sim.ids() {
        if let Ok((i, _)) = sim.propose(id, cmd(104)) {
            indexes.push(i);
        }
    }
    sim.run_for(2 * 500 * MS);
    for i in indexes {
        // 104 must not be committed anywhere (earlier entries at that index may be).
        for id in sim.ids() {
            assert_ne!(sim.applied_at(id, i), Some(&cmd(104)[..]), "104 committed without a majority");
        }
    }
    assert_safe(&sim);
}

#[test]
fn fail_agree_3b() {
    let mut sim = sim(3, seed(15));
    one(&mut sim, cmd(101), 3, false);
    let leader = check_one_leader(&mut sim);
    sim.disconnect(leader % 3 + 1);
    for c in 102..=105 {
        one(&mut sim, cmd(c), 2, false);
    }
    sim.run_for(500 * MS);
    sim.connect(leader % 3 + 1);
    // The full set of servers agrees, the reconnected one included.
    one(&mut sim, cmd(106), 3, true);
    sim.run_for(500 * MS);
    one(&mut sim, cmd(107), 3, true);
    assert_safe(&sim);
}

#[test]
fn fail_no_agree_3b() {
    let mut sim = sim(5, seed(16));
    one(&mut sim, cmd(10), 5, false);
    let leader = check_one_leader(&mut sim);
    for k in 1..=3 {
        sim.disconnect((leader - 1 + k) % 5 + 1);
    }
    let (index, _) = sim.propose(leader, cmd(20)).expect("leader rejected Start()");
    sim.run_for(2 * 500 * MS);
    let (n, _) = n_committed(&sim, index);
    assert_eq!(n, 0, "{n} committed but no majority");
    for k in 1..=3 {
        sim.connect((leader - 1 + k) % 5 + 1);
    }
    let leader2 = check_one_leader(&mut sim);
    let (index2, _) = sim.propose(leader2, cmd(30)).expect("leader2 rejected Start()");
    // The lab allows index 2 or 3 (the uncommitted entry kept or overwritten);
    // a re-elected leader also appends its no-op, so allow one more.
    assert!(index2 >= index && index2 <= index + 2, "unexpected index {index2} (20 was at {index})");
    one(&mut sim, cmd(1000), 5, true);
    assert_safe(&sim);
}

#[test]
fn concurrent_starts_3b() {
    let mut sim = sim(3, seed(17));
    'again: for _try in 0..5 {
        if _try > 0 {
            sim.run_for(3 * SEC);
        }
        let leader = check_one_leader(&mut sim);
        let Ok((_, term)) = sim.propose(leader, cmd(1)) else { continue };
        let mut is = Vec::new();
        for i in 0..5u64 {
            match sim.propose(leader, cmd(100 + i)) {
                Ok((idx, t)) if t == term => is.push(idx),
                _ => continue 'again,
            }
        }
        for &ref_i in &is {
            if wait(&mut sim, ref_i, 3, Some(term)).is_none() {
                continue 'again; // the term moved on: try again
            }
        }
        let mut got: Vec<Vec<u8>> = is.iter().map(|&i| n_committed(&sim, i).1.unwrap()).collect();
        got.sort();
        let want: Vec<Vec<u8>> = (0..5u64).map(|i| cmd(100 + i)).collect();
        assert_eq!(got, want, "cmds missing");
        assert_safe(&sim);
        return;
    }
    panic!("term changed too often");
}

#[test]
fn rejoin_3b() {
    let mut sim = sim(3, seed(18));
    one(&mut sim, cmd(101), 3, true);
    // The leader is partitioned and gets entries it can never commit.
    let leader1 = check_one_leader(&mut sim);
    sim.disconnect(leader1);
    for c in [102, 103, 104] {
        let _ = sim.propose(leader1, cmd(c));
    }
    // The new leader commits, also for index 2.
    one(&mut sim, cmd(103), 2, true);
    // The new leader is partitioned; the old one comes back.
    let leader2 = check_one_leader(&mut sim);
    sim.disconnect(leader2);
    sim.connect(leader1);
    one(&mut sim, cmd(104), 2, true);
    // Everyone is back.
    sim.connect(leader2);
    one(&mut sim, cmd(105), 3, true);
    assert_safe(&sim);
}

#[test]
fn backup_3b() {
    // A leader must back up quickly over many conflicting entries.
    let mut sim = sim(5, seed(19));
    let mut rng = Rng::new(seed(19));
    let mut r = || cmd(rng.next_u64());
    one(&mut sim, r(), 5, true);
    // Put the leader and one follower in a partition.
    let leader1 = check_one_leader(&mut sim);
    let peer = |k: u64| (leader1 - 1 + k) % 5 + 1;
    for k in 2..=4 {
        sim.disconnect(peer(k));
    }
    // Lots of commands that won't commit.
    for _ in 0..50 {
        let _ = sim.propose(leader1, r());
    }
    sim.run_for(250 * MS);
    sim.disconnect(peer(0));
    sim.disconnect(peer(1));
    // Allow the other partition to recover.
    for k in 2..=4 {
        sim.connect(peer(k));
    }
    // Lots of successful commands to the new group.
    for _ in 0..50 {
        one(&mut sim, r(), 3, true);
    }
    // Now another partitioned leader and one follower.
    let leader2 = check_one_leader(&mut sim);
    let other = (2..=4).map(peer).find(|&p| p != leader2).unwrap();
    sim.disconnect(other);
    // Lots more commands that won't commit.
    for _ in 0..50 {
        let _ = sim.propose(leader2, r());
    }
    sim.run_for(250 * MS);
    // Bring the original leader back to life.
    for id in sim.ids() {
        sim.disconnect(id);
    }
    sim.connect(peer(0));
    sim.connect(peer(1));
    sim.connect(other);
    // Lots of successful commands to the new group.
    let before = sim.stats.rejects;
    for _ in 0..50 {
        one(&mut sim, r(), 3, true);
    }
    // Fast back-off: catching up over 50+ conflicting entries costs a handful of
    // rejected round trips (one per conflicting term), not one per entry.
    let used = sim.stats.rejects - before;
    assert!(used <= 10, "backing up took {used} rejected appends");
    // Now everyone.
    for id in sim.ids() {
        sim.connect(id);
    }
    one(&mut sim, r(), 5, true);
    assert_safe(&sim);
}

#[test]
fn count_3b() {
    let mut sim = sim(3, seed(20));
    check_one_leader(&mut sim);
    let total1 = sim.stats.messages;
    assert!((1..=30).contains(&total1), "too many or few messages ({total1}) to elect initial leader");

    'again: for _try in 0..5 {
        if _try > 0 {
            sim.run_for(3 * SEC);
        }
        let leader = check_one_leader(&mut sim);
        let total1 = sim.stats.messages;
        let appends1 = sim.stats.appends;
        sim.trace = true;
        let iters = 10u64;
        let Ok((starti, term)) = sim.propose(leader, cmd(1)) else { continue };
        let mut cmds = vec![cmd(1)];
        for i in 1..iters + 2 {
            let x = cmd(1000 + i);
            cmds.push(x.clone());
            match sim.propose(leader, x) {
                Ok((idx, t)) if t == term => assert_eq!(idx, starti + i, "Start() failed"),
                _ => continue 'again,
            }
        }
        for i in 1..=iters {
            match wait(&mut sim, starti + i, 3, Some(term)) {
                Some(c) => assert_eq!(c, cmds[i as usize], "wrong value committed"),
                None => continue 'again,
            }
        }
        if sim.ids().iter().any(|&id| sim.raft(id).is_some_and(|r| r.term() != term)) {
            continue;
        }
        let total2 = sim.stats.messages;
        let appends = sim.stats.appends - appends1;
        // About one AppendEntries per follower per command (plus heartbeats).
        assert!(
            appends <= (iters + 1 + 3) * 2,
            "{}\ntoo many appends ({appends}) for {iters} entries",
            sim.trace_lines.join("\n")
        );
        assert!(
            total2 - total1 <= (iters + 1 + 3) * 3 * 2,
            "too many messages ({}) for {iters} entries",
            total2 - total1
        );
        break;
    }

    sim.run_for(SEC);
    let total2 = sim.stats.messages;
    sim.run_for(SEC);
    let total3 = sim.stats.messages;
    assert!(total3 - total2 <= 60, "too many messages ({}) in 1 second of idleness", total3 - total2);
    assert_safe(&sim);
}
