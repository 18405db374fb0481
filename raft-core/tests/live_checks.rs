//! The simulator's checks are live: each deliberate bug (feature `bugs`) makes
//! it report a violation, and the same runs without the bug report none.

mod common;
use common::*;
use raft_core::sim::{incarnation, Sim, SimConfig};
use raft_core::Bugs;

/// The paper's Figure 8, built step by step on five nodes. An entry X of an
/// old term reaches a majority only after a newer leader S5 wrote a different
/// entry at the same index; a leader that commits X by counting replicas
/// (instead of waiting for an entry of its own term) loses it when S5 returns.
fn figure8_run(seed: u64, bugs: Bugs) -> Option<String> {
    let mut cfg = SimConfig { nodes: 5, seed, latency_us: (1_000, 1_000), disk_us: (200, 200), ..SimConfig::default() }
        .with_bugs(bugs);
    cfg.raft.pre_vote = false;
    cfg.raft.check_quorum = false;
    cfg.raft.max_entries_per_msg = 1;
    cfg.raft.max_inflight_msgs = 1;
    let mut sim = Sim::new(cfg);
    let leader = |s: &Sim, id| s.raft(id).is_some_and(|r| r.is_leader());
    sim.force_timeout(1);
    assert!(sim.run_until(SEC, |s| leader(s, 1)));
    one(&mut sim, cmd(1), 5, true);
    // (a) S1 appends X; only S2 receives it. S1 crashes.
    for to in [3, 4, 5] {
        sim.cut_link(1, to);
    }
    let (i, _) = sim.propose(1, cmd(0xA)).expect("S1 leads");
    sim.run_for(20 * MS);
    sim.crash(1);
    // (b) S5 wins the next term with S3 and S4 and writes its no-op at index i;
    // nobody receives it; S5 crashes.
    sim.force_timeout(5);
    assert!(sim.run_until(SEC, |s| leader(s, 5)), "S5 should win with S3 and S4");
    for to in 1..=4 {
        sim.cut_link(5, to);
    }
    sim.run_for(5 * MS);
    sim.crash(5);
    // (c) S1 returns and wins; it brings S3 up to X one entry at a time.
    sim.heal();
    sim.cut_link(1, 5);
    sim.restart(1);
    // (S1 may need a second try to overtake the term S5 raised; S2, which also
    // holds X, may win instead: either will do.)
    let mut l = None;
    for _ in 0..5 {
        sim.force_timeout(1);
        if sim.run_until(100 * MS, |s| leader(s, 1) || leader(s, 2)) {
            l = [1, 2].into_iter().find(|&id| leader(&sim, id));
            break;
        }
    }
    let l = l.expect("S1 or S2 should win again");
    assert!(sim.run_until(SEC, |s| s.raft(l).is_some_and(|r| r.commit_index() >= i)), "X should commit");
    // The moment X counts as committed, S1 and S2 go down before the new
    // leader's own-term entry reaches S3 or S4 (what is on the wire is lost).
    for from in [1, 2] {
        for to in [3, 4] {
            sim.cut_link(from, to);
        }
    }
    sim.crash(1);
    sim.crash(2);
    // (d) S5 returns and can win with S3 and S4: its entry at i is newer.
    sim.restart(5);
    for _ in 0..5 {
        sim.force_timeout(5);
        sim.run_for(300 * MS);
    }
    if std::env::var("TRACE").is_ok() {
        for (t, id, e) in sim.log.iter() {
            println!("{t} {id} {e:?}");
        }
        for id in sim.ids() {
            if let Some(r) = sim.raft(id) {
                let terms: Vec<u64> = r.log().iter().map(|e| e.term).collect();
                println!("{r:?} {terms:?}");
            }
        }
        println!("X at {i}");
    }
    sim.violations().first().cloned()
}

#[test]
fn figure8_bug_commit_old_term_is_caught() {
    let bug = Bugs { commit_old_term: true, ..Bugs::default() };
    let v = figure8_run(seed(1), bug).expect("committing an earlier-term entry by counting replicas went unnoticed");
    println!("caught: {v}");
    assert_eq!(figure8_run(seed(1), Bugs::default()), None, "without the bug the same run must be clean");
}

/// A vote that leaves before it is durable can be forgotten in a crash and
/// given again in the same term: two leaders for one term.
fn double_vote_run(seed: u64, bugs: Bugs) -> Option<String> {
    let mut cfg =
        SimConfig { nodes: 3, seed, latency_us: (500, 1_000), disk_us: (40_000, 40_000), ..SimConfig::default() }
            .with_bugs(bugs);
    cfg.raft.pre_vote = false;
    cfg.raft.check_quorum = false;
    let mut sim = Sim::new(cfg);
    check_one_leader(&mut sim);
    one(&mut sim, cmd(1), 3, true);
    // Node 1 and node 2 cannot hear each other; node 3 hears both.
    sim.cut_link(1, 2);
    sim.cut_link(2, 1);
    sim.run_for(10 * MS);
    // Node 1 campaigns; node 3 votes for it.
    sim.force_timeout(1);
    sim.run_for(5 * MS);
    // Node 3 crashes before its vote is durable, and comes straight back.
    sim.crash(3);
    sim.restart(3);
    // Node 2 campaigns in the same term and asks node 3 again.
    sim.force_timeout(2);
    sim.run_for(200 * MS);
    sim.violations().first().cloned()
}

#[test]
fn vote_before_durable_bug_is_caught() {
    let bug = Bugs { vote_before_durable: true, ..Bugs::default() };
    let caught = (1..=50).find_map(|s| double_vote_run(s, bug).map(|v| (s, v)));
    let (s, v) = caught.expect("a vote sent before its HardState was durable went unnoticed");
    println!("caught at seed {s}: {v}");
    assert_eq!(double_vote_run(s, Bugs::default()), None, "seed {s} without the bug must be clean");
}

/// The single-server change bug (raft-dev, 2015), built step by step. Four
/// voters; S1 leads term 1 and appends "add S5", which only S5 receives; S1
/// crashes. S2 wins term 2 with S3 and S4 and — the bug — at once appends
/// "remove S1" before anything of its own term has committed; with S4 cut
/// off, S2 and S3 commit it (a majority of {2,3,4}). S1 returns: in its
/// configuration {1,2,3,4,5} it wins with S4 and S5 (S4's log is older than
/// S1's), and overwrites the committed removal. The fixed engine refuses
/// S2's change (`TermNotCommitted`) and the run is clean.
fn single_server_change_run(seed: u64, bugs: Bugs) -> Option<String> {
    use raft_core::membership::{Change, ConfChange};
    let mut cfg = SimConfig { nodes: 4, seed, latency_us: (1_000, 1_000), disk_us: (200, 200), ..SimConfig::default() }
        .with_bugs(bugs);
    cfg.raft.pre_vote = false;
    cfg.raft.check_quorum = false;
    let mut sim = Sim::new(cfg);
    let leader = |s: &Sim, id| s.raft(id).is_some_and(|r| r.is_leader());
    let direct = |change| ConfChange::Begin { joint: false, changes: vec![change] };
    sim.force_timeout(1);
    assert!(sim.run_until(SEC, |s| leader(s, 1)));
    one(&mut sim, cmd(1), 4, true);
    let s5 = sim.add_node();
    sim.run_for(50 * MS);
    // (1) S1 appends "add S5"; only S5 receives it. S1 crashes.
    for to in [2, 3, 4] {
        sim.cut_link(1, to);
    }
    // Forced, and S1 has not heard from S5 yet: the operator names the
    // incarnation of S5's new directory (as `--join` reports it).
    let inc = incarnation(s5, 0);
    sim.propose_conf_change(1, direct(Change::AddVoter { id: s5, inc }), true).expect("S1 may add S5");
    sim.run_for(20 * MS);
    sim.crash(1);
    sim.heal();
    // S5 must not disturb term 2: it hears nothing and says nothing until (3).
    sim.disconnect(s5);
    // (2) S2 wins term 2 with S3 and S4; S4 is cut off from S2 at once.
    sim.force_timeout(2);
    assert!(sim.run_until(SEC, |s| leader(s, 2)), "S2 should win with S3 and S4");
    sim.cut_link(2, 4);
    let pending: Vec<u64> =
        sim.in_flight().iter().filter(|(_, f)| f.msg.from == 2 && f.msg.to == 4).map(|(&id, _)| id).collect();
    for id in pending {
        sim.drop_message(id);
    }
    let refused = sim.propose_conf_change(2, direct(Change::Remove { id: 1 }), true).is_err();
    sim.run_for(100 * MS);
    // (3) S2 and S3 go away; S1 returns and campaigns with S4 and S5.
    sim.connect(s5);
    for peer in [2, 3] {
        for other in [1, 4, s5] {
            sim.cut_link(peer, other);
            sim.cut_link(other, peer);
        }
    }
    sim.restart(1);
    for _ in 0..5 {
        sim.force_timeout(1);
        sim.run_for(300 * MS);
        if leader(&sim, 1) {
            break;
        }
    }
    // (4) The partition heals: S1's log meets the committed removal.
    sim.heal();
    sim.run_for(2 * SEC);
    if bugs == Bugs::default() {
        assert!(refused, "the fixed engine refuses a change before its term's first commit");
    }
    sim.violations().first().cloned()
}

#[test]
fn single_server_change_before_term_commit_is_caught() {
    let bug = Bugs { conf_change_before_term_commit: true, ..Bugs::default() };
    let v = single_server_change_run(seed(1), bug).expect("a change before the term's first commit went unnoticed");
    println!("caught: {v}");
    assert_eq!(single_server_change_run(seed(1), Bugs::default()), None, "without the bug the same run must be clean");
}
