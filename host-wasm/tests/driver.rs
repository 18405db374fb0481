//! The driver natively: elections, crashes, partitions, the client, and exact replay.

use host_wasm::action::{ClientOp, Op};
use host_wasm::view::ViewOptions;
use host_wasm::{Driver, Options};
use raft_core::KvOp;

fn cluster(seed: u64) -> Driver {
    Driver::new(Options { seed, ..Options::default() }).unwrap()
}

fn put(node: u64, key: &str, value: &str) -> Op {
    Op::Client { node, req: ClientOp(KvOp::Put { key: key.into(), value: value.into() }) }
}

fn state_json(d: &mut Driver) -> String {
    serde_json::to_string(&d.state(&ViewOptions::default())).unwrap()
}

#[test]
fn a_leader_appears_and_a_crash_elects_another_with_a_higher_term() {
    let mut d = cluster(3);
    let l = d.run_until_leader(5_000_000).expect("a leader within 5 s");
    let term = d.sim().raft(l).unwrap().term();
    d.act(Op::Crash { node: l });
    d.advance(100_000);
    let l2 = d.run_until_leader(5_000_000).expect("a new leader");
    assert_ne!(l, l2);
    assert!(d.sim().raft(l2).unwrap().term() > term);
    d.act(Op::Restart { node: l });
    d.advance(1_000_000);
    assert!(d.sim().violations().is_empty());
    let feed = d.feed_since(0);
    assert!(feed.iter().any(|f| f.kind == "crash"), "{feed:?}");
    assert!(feed.iter().any(|f| f.kind == "restart" && f.text.contains("replayed its journal")));
    assert!(feed.iter().any(|f| f.text.contains("started an election for term")));
}

#[test]
fn a_put_reaches_every_node_and_a_get_reads_it() {
    let mut d = cluster(5);
    d.run_until_leader(5_000_000).unwrap();
    d.act(put(0, "x", "1"));
    d.advance(1_000_000);
    for id in 1..=5 {
        assert_eq!(d.sim().raft(id).unwrap().state_machine().get("x"), Some("1"), "node {id}");
    }
    d.act(Op::Client { node: 0, req: ClientOp(KvOp::Get { key: "x".into() }) });
    d.advance(500_000);
    let answers: Vec<_> = d.state(&ViewOptions::default()).client.answers.iter().cloned().collect();
    assert!(answers.iter().any(|a| a.text == "get x" && a.result == "\"1\"" && a.ok), "{answers:?}");
}

#[test]
fn a_minority_leader_cannot_commit_and_its_reads_fail() {
    let mut d = cluster(7);
    let l = d.run_until_leader(5_000_000).unwrap();
    d.act(put(l, "x", "1"));
    d.advance(500_000);
    let other = if l == 1 { 2 } else { 1 };
    d.act(Op::Partition { side: vec![l, other] });
    let commit = d.sim().raft(l).unwrap().commit_index();
    d.act(put(l, "x", "2"));
    d.act(Op::Client { node: l, req: ClientOp(KvOp::Get { key: "x".into() }) });
    d.advance(2_000_000);
    // The old leader never committed the second put (it may have stepped down).
    let r = d.sim().raft(l).unwrap();
    assert_eq!(r.commit_index(), commit, "a minority leader committed");
    let answers: Vec<_> = d.state(&ViewOptions::default()).client.answers.iter().cloned().collect();
    assert!(answers.iter().any(|a| a.text == "get x" && !a.ok), "the read at the old leader must fail: {answers:?}");
    // The majority side elected a new leader in a higher term.
    let majority_leader = d.sim().leader().unwrap();
    assert!(majority_leader != l && majority_leader != other);
    d.act(Op::Heal);
    d.advance(2_000_000);
    assert!(d.sim().violations().is_empty());
    for id in 1..=5 {
        assert_eq!(d.sim().raft(id).unwrap().state_machine().get("x"), Some("1"));
    }
}

#[test]
fn a_retry_with_the_same_seq_is_applied_once() {
    let mut d = cluster(11);
    let l = d.run_until_leader(5_000_000).unwrap();
    d.act(Op::Client { node: l, req: ClientOp(KvOp::Append { key: "k".into(), value: "a".into() }) });
    d.advance(1_000_000);
    d.act(Op::Retry { seq: 1, node: 0 });
    d.advance(1_000_000);
    assert_eq!(d.sim().raft(l).unwrap().state_machine().get("k"), Some("a"));
}

#[test]
fn replay_reproduces_the_run_exactly() {
    let mut d = cluster(21);
    d.run_until_leader(5_000_000).unwrap();
    d.act(put(0, "a", "1"));
    d.advance(123_456);
    for _ in 0..37 {
        d.step();
    }
    d.act(Op::Crash { node: 2 });
    d.advance(700_000);
    d.act(Op::Network { loss: 0.2, duplicate: 0.1, long_delay: 0.05 });
    d.act(Op::StartClients { count: 3, keys: 3 });
    d.advance(1_500_000);
    d.act(Op::Partition { side: vec![1, 2] });
    let id = *d.sim().in_flight().keys().next().unwrap_or(&0);
    d.act(Op::Drop { id });
    d.advance(900_000);
    d.act(Op::Restart { node: 2 });
    d.act(Op::Heal);
    d.advance(2_000_000);
    let t = d.now();
    let want = state_json(&mut d);
    let mut r = Driver::replay(d.options().clone(), d.trace(), t).unwrap();
    assert_eq!(r.now(), t);
    assert_eq!(r.events(), d.events());
    assert_eq!(state_json(&mut r), want);
    // Rewind to the middle, then play forward again: the queued actions apply on the way.
    let mut mid = Driver::replay(d.options().clone(), d.trace(), t / 2).unwrap();
    mid.run_until(t);
    assert_eq!(state_json(&mut mid), want);
    // Through JSON, as a shared link carries it.
    let actions: Vec<host_wasm::Action> = serde_json::from_str(&serde_json::to_string(&d.trace()).unwrap()).unwrap();
    let mut j = Driver::replay(d.options().clone(), actions, t).unwrap();
    assert_eq!(state_json(&mut j), want);
}

#[test]
fn the_journal_view_follows_appends_crashes_and_rotation() {
    let mut d = Driver::new(Options { seed: 4, ..Options::default() }).unwrap();
    d.run_until_leader(5_000_000).unwrap();
    for i in 0..30 {
        d.act(put(0, "k", &format!("v{i}")));
        d.advance(30_000);
        let _ = state_json(&mut d);
    }
    d.act(Op::Crash { node: 3 });
    let _ = state_json(&mut d);
    d.act(Op::Restart { node: 3 });
    d.advance(1_000_000);
    let s = d.state(&ViewOptions::default());
    for n in &s.nodes {
        let full = d.journal(n.id);
        assert_eq!(n.journal.records, full.len(), "node {}", n.id);
        let tail: Vec<_> = full.iter().rev().take(n.journal.tail.len()).rev().map(|r| r.text.clone()).collect();
        let got: Vec<_> = n.journal.tail.iter().map(|r| r.text.clone()).collect();
        assert_eq!(got, tail);
    }
}

#[test]
fn snapshot_and_install_snapshot_bring_a_far_behind_follower_back() {
    let mut d = cluster(9);
    let l = d.run_until_leader(5_000_000).unwrap();
    let f = if l == 5 { 4 } else { 5 };
    d.act(Op::Crash { node: f });
    for i in 0..20 {
        d.act(put(0, &format!("k{i}"), "v"));
        d.advance(50_000);
    }
    d.act(Op::Snapshot { node: l });
    d.advance(500_000);
    d.act(Op::Restart { node: f });
    d.advance(2_000_000);
    let r = d.sim().raft(f).unwrap();
    assert_eq!(r.state_machine().get("k19"), Some("v"));
    assert!(r.log().snapshot_index() > 0, "caught up by snapshot");
    assert!(d.feed_since(0).iter().any(|x| x.text.contains("installed the leader's snapshot")));
}

#[test]
fn test_mode_runs_are_clean_and_their_trace_replays() {
    for seed in 1..=3 {
        let w = host_wasm::workload::WorkloadOptions { seed, ..Default::default() };
        let t = std::time::Instant::now();
        let r = host_wasm::workload::run(&w).unwrap();
        eprintln!("seed {seed}: {:?} in {:?}, {} events, ops {:?}", r.verdict, t.elapsed(), r.events, r.ops);
        assert_eq!(r.verdict, host_wasm::workload::Verdict::Ok, "{:?}", r.violations);
        assert!(r.ops.1 > 10, "clients made progress: {:?}", r.ops);
        let d = Driver::replay(r.options.clone(), r.actions.clone(), r.end).unwrap();
        assert_eq!(d.events(), r.events);
    }
}

#[cfg(feature = "bugs")]
#[test]
fn test_mode_catches_stale_reads_with_the_bug_on() {
    let mut caught = Vec::new();
    for seed in 1..=16 {
        let w = host_wasm::workload::WorkloadOptions {
            seed,
            bugs: host_wasm::options::BugOptions { stale_read_local: true, ..Default::default() },
            ..Default::default()
        };
        let r = host_wasm::workload::run(&w).unwrap();
        if r.verdict != host_wasm::workload::Verdict::Ok {
            caught.push((seed, r.verdict.clone(), r.history.len()));
        }
    }
    eprintln!("caught: {caught:?}");
    assert!(!caught.is_empty(), "stale reads went unnoticed in 16 seeds");
}
