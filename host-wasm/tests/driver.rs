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

#[test]
fn a_busy_cluster_commits_on_one_feed_line_per_run() {
    let mut d = cluster(12);
    d.run_until_leader(5_000_000).unwrap();
    d.act(Op::StartClients { count: 4, keys: 3 });
    let mut seen = 0;
    let mut shown: Vec<host_wasm::FeedItem> = Vec::new();
    let run = |f: &host_wasm::FeedItem| if f.replaces != 0 { f.replaces } else { f.id };
    // Read the feed the way the page does: new lines since the last one seen,
    // each possibly rewriting the line of its run shown before.
    for k in 0..25 {
        d.advance(if k % 2 == 0 { 100_000 } else { 7_000 });
        for f in d.feed_since(seen) {
            seen = f.id;
            if f.replaces != 0 {
                // The run's earlier line, if this reader saw it (a run may also
                // start and grow between two reads).
                let before = shown.len();
                shown.retain(|g| run(g) != f.replaces);
                assert!(before - shown.len() <= 1, "{} rewrites one line", f.id);
            }
            shown.push(f);
        }
    }
    let commits: Vec<&host_wasm::FeedItem> = shown.iter().filter(|f| f.kind == "commit").collect();
    // 2.5 s of steady commits (hundreds of commit events at five nodes) are a
    // few lines: a run only breaks on another line or after a simulated second.
    assert!((1..=4).contains(&commits.len()), "{commits:#?}");
    let last = commits.last().unwrap();
    assert!(last.major && last.text.contains("(leader) committed entries up to"), "{last:?}");
    assert!(last.text.contains("commits since") && last.text.contains("learned"), "{last:?}");
    let merged: usize = commits
        .iter()
        .filter_map(|f| f.text.split(" commits since").next()?.rsplit('(').next()?.parse::<usize>().ok())
        .sum();
    assert!(merged >= 20, "the lines stand for many commits: {commits:#?}");
    // What the page shows is what a fresh reader gets.
    let fresh: Vec<u64> = d.feed_since(0).iter().map(|f| f.id).collect();
    assert_eq!(fresh, shown.iter().map(|f| f.id).collect::<Vec<_>>());
}

/// The paper's Figure 8 through the page's actions (the recipe of the page's
/// scenario): X, written in term 1 at index i, reaches only node 2; node 5
/// wins term 2 and writes its own entry at i, which reaches nobody; node 1 (or
/// 2) returns, leads term 3 and copies X to a majority one entry at a time;
/// the moment its leader counts X committed, nodes 1 and 2 go down; node 5
/// comes back. Returns the driver and i.
fn figure8(bugs: host_wasm::options::BugOptions) -> (Driver, u64) {
    let o = Options {
        seed: 8,
        pre_vote: false,
        check_quorum: false,
        max_entries_per_msg: 1,
        max_inflight_msgs: 1,
        bugs,
        ..Options::default()
    };
    let mut d = Driver::new(o).unwrap();
    let until = |d: &mut Driver, what: &str, p: &dyn Fn(&Driver) -> bool| {
        for _ in 0..200_000 {
            if p(d) {
                return;
            }
            d.step();
        }
        panic!("never: {what}");
    };
    let leads = |d: &Driver, id| d.sim().raft(id).is_some_and(|r| r.is_leader());
    let last = |d: &Driver, id| d.sim().raft(id).map_or(0, |r| r.log().last_index());
    d.act(Op::Timeout { node: 1 });
    until(&mut d, "node 1 leads", &|d| leads(d, 1));
    d.act(put(1, "w", "0"));
    until(&mut d, "w=0 everywhere", &|d| (1..=5).all(|id| d.sim().raft(id).unwrap().commit_index() >= 3));
    for to in [3, 4, 5] {
        d.act(Op::Cut { from: 1, to, both: false });
    }
    d.act(put(1, "x", "1"));
    let i = last(&d, 1);
    until(&mut d, "node 2 holds X", &|d| last(d, 2) >= i);
    d.act(Op::Crash { node: 1 });
    d.act(Op::Timeout { node: 5 });
    until(&mut d, "node 5 leads", &|d| leads(d, 5));
    for to in 1..=4 {
        d.act(Op::Cut { from: 5, to, both: false });
    }
    // Its entry at i must be durable, and what it sent must be lost on the cut
    // links before they are restored.
    until(&mut d, "node 5's entry at i is durable and lost on the wire", &|d| {
        d.sim().raft(5).unwrap().durable_index() >= i && d.sim().in_flight().values().all(|f| f.msg.from != 5)
    });
    d.act(Op::Crash { node: 5 });
    d.act(Op::Heal);
    d.act(Op::Restart { node: 1 });
    let mut l = 0;
    for _ in 0..6 {
        d.act(Op::Timeout { node: 1 });
        let end = d.now() + 150_000;
        while d.now() < end && !leads(&d, 1) && !leads(&d, 2) {
            d.step();
        }
        if let Some(x) = [1, 2].into_iter().find(|&x| leads(&d, x)) {
            l = x;
            break;
        }
    }
    assert!(l != 0, "node 1 or 2 should lead again");
    until(&mut d, "X counts as committed", &|d| d.sim().raft(l).unwrap().commit_index() >= i);
    for from in [1, 2] {
        for to in [3, 4] {
            d.act(Op::Cut { from, to, both: false });
        }
    }
    d.act(Op::Crash { node: 1 });
    d.act(Op::Crash { node: 2 });
    d.act(Op::Restart { node: 5 });
    for _ in 0..5 {
        d.act(Op::Timeout { node: 5 });
        d.advance(300_000);
    }
    (d, i)
}

#[test]
fn figure8_on_the_correct_build_commits_x_only_with_the_new_term_and_node_5_cannot_win() {
    let (mut d, i) = figure8(Default::default());
    assert!(d.sim().violations().is_empty(), "{:?}", d.sim().violations());
    assert_eq!(d.first_violation(), None);
    assert_eq!(d.committed_term(i), Some(1), "X (term 1) is what was committed at {i}");
    for id in [3, 4, 5] {
        let e = d.sim().raft(id).unwrap().log().term(i);
        assert_eq!(e, Some(1), "node {id} holds X at {i}: node 5 could not win with its term-2 entry");
    }
    let s = d.state(&ViewOptions::default());
    assert!(s.nodes.iter().all(|n| n.log.iter().all(|e| !e.x)), "nothing overwrote a committed entry");
}

#[cfg(feature = "bugs")]
#[test]
fn figure8_with_commit_old_term_loses_a_committed_entry_and_flags_the_cell() {
    let bugs = host_wasm::options::BugOptions { commit_old_term: true, ..Default::default() };
    let (mut d, i) = figure8(bugs);
    let v = d.sim().violations().to_vec();
    assert!(!v.is_empty(), "the lost entry went unnoticed");
    assert!(d.first_violation().is_some());
    assert_eq!(d.committed_term(i), Some(1));
    assert!(d.sim().raft(5).unwrap().term() > 1);
    let s = d.state(&ViewOptions::default());
    let flagged: Vec<(u64, u64)> =
        s.nodes.iter().flat_map(|n| n.log.iter().filter(|e| e.x).map(move |e| (n.id, e.i))).collect();
    assert!(flagged.contains(&(5, i)), "node 5's own entry at {i} is flagged: {flagged:?}");
    assert!(flagged.iter().any(|&(n, x)| (n == 3 || n == 4) && x == i), "the overwritten cell: {flagged:?}");
    let feed = d.feed_since(0);
    assert!(feed.iter().any(|f| f.kind == "truncate" && f.text.contains("a committed entry is lost")), "{feed:#?}");
    assert!(feed.iter().any(|f| f.kind == "violation"));
    // Replayed, the run stops right after the event that broke the check.
    let at = d.first_violation().unwrap();
    let mut r = Driver::replay(d.options().clone(), d.trace(), 0).unwrap();
    assert!(r.run_until_violation(d.now()), "the replay reaches the violation");
    assert_eq!(r.now(), at);
    assert_eq!(r.first_violation(), Some(at));
    assert!(!r.run_until_violation(r.now()), "nothing more happens in no time");
}

#[cfg(feature = "bugs")]
#[test]
fn a_stale_read_is_named_and_its_moment_replays() {
    let bugs = host_wasm::options::BugOptions { stale_read_local: true, ..Default::default() };
    let mut found = false;
    for seed in 1..=16 {
        let w = host_wasm::workload::WorkloadOptions { seed, bugs, ..Default::default() };
        let r = host_wasm::workload::run(&w).unwrap();
        if !matches!(r.verdict, host_wasm::workload::Verdict::NotLinearizable { .. }) {
            continue;
        }
        found = true;
        let blamed: Vec<_> = r.history.iter().filter(|o| o.culprit).collect();
        assert_eq!(blamed.len(), 1, "seed {seed}: one culprit: {:#?}", r.history);
        let c = blamed[0];
        // The op at which no order is left is one that read: the stale get
        // itself, or a later op whose read the stale answer made impossible
        // (a transaction's get).
        let reads = ["get ", "range", "prefix", "count"].iter().any(|p| c.op.starts_with(p)) || c.op.contains("Get {");
        assert!(reads, "seed {seed}: the culprit is an operation that read: {c:?}");
        assert_eq!(r.violation_at, Some(c.ret), "seed {seed}");
        // Loaded at that moment, the run has just delivered that read's answer.
        let d = Driver::replay(r.options.clone(), r.actions.clone(), c.ret).unwrap();
        let h = d.sim().history();
        assert!(
            h.iter().any(|o| o.client == c.client && o.call == c.call && o.ret == c.ret),
            "seed {seed}: the read has returned at {}",
            c.ret
        );
        assert!(d.now() >= c.ret && d.now() < c.ret + 1_000);
    }
    assert!(found, "no stale read in 16 seeds");
}
