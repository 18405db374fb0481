//! Membership from the page, natively: adding nodes as learners and
//! promoting them, removing, joint changes, leadership transfer, wiped disks,
//! the refusals the page shows, and exact replay of all of it.

use host_wasm::action::{ClientOp, Op};
use host_wasm::view::ViewOptions;
use host_wasm::{Driver, Options};
use raft_core::KvOp;

fn cluster(nodes: usize, seed: u64) -> Driver {
    Driver::new(Options { nodes, seed, ..Options::default() }).unwrap()
}

fn put(key: &str, value: &str) -> Op {
    Op::Client { node: 0, req: ClientOp(KvOp::Put { key: key.into(), value: value.into() }) }
}

fn state_json(d: &mut Driver) -> String {
    serde_json::to_string(&d.state(&ViewOptions::default())).unwrap()
}

/// What node `id` is in the cluster's configuration, as the page sees it.
fn member(d: &mut Driver, id: u64) -> &'static str {
    d.state(&ViewOptions::default()).nodes[(id - 1) as usize].member
}

/// The cluster's configuration: (new or only voters, old voters, learners, joint, committed).
fn conf(d: &mut Driver) -> (Vec<u64>, Vec<u64>, Vec<u64>, bool, bool) {
    let c = d.state(&ViewOptions::default()).config.clone().expect("a live node");
    (c.voters, c.outgoing, c.learners, c.joint, c.committed)
}

/// A leader that has committed an entry of its term (so it takes changes).
fn settled_leader(d: &mut Driver) -> u64 {
    let l = d.run_until_leader(5_000_000).expect("a leader");
    d.advance(300_000);
    d.sim().leader().unwrap_or(l)
}

fn feed_has(d: &Driver, text: &str) -> bool {
    d.feed_since(0).iter().any(|f| f.text.contains(text))
}

fn refusal(d: &mut Driver, op: Op) -> String {
    match d.try_act(op.clone()) {
        Err(e) => e.0,
        Ok(()) => panic!("{op:?} was not refused"),
    }
}

#[test]
fn a_node_joins_as_a_learner_and_becomes_a_voter_when_promoted() {
    let mut d = cluster(3, 2);
    settled_leader(&mut d);
    d.try_act(Op::AddNode { voter: false }).unwrap();
    assert_eq!(d.node_count(), 4);
    assert_eq!(member(&mut d, 4), "learner");
    let (voters, _, learners, joint, _) = conf(&mut d);
    assert_eq!((voters, learners, joint), (vec![1, 2, 3], vec![4], false));
    d.advance(1_000_000);
    assert!(feed_has(&d, "learner 4 has caught up"), "{:?}", d.feed_since(0));
    // A learner is not promoted unless asked.
    assert_eq!(member(&mut d, 4), "learner");
    d.try_act(Op::Promote { node: 4 }).unwrap();
    assert_eq!(member(&mut d, 4), "voter");
    d.advance(500_000);
    assert_eq!(conf(&mut d), (vec![1, 2, 3, 4], vec![], vec![], false, true));
    // The new voter holds what the cluster commits from now on.
    d.act(put("x", "1"));
    d.advance(500_000);
    assert_eq!(d.sim().raft(4).unwrap().state_machine().get("x"), Some("1"));
    assert!(d.sim().violations().is_empty());
    assert!(feed_has(&d, "node 4 becomes a voter"));
}

#[test]
fn a_node_added_as_a_voter_is_promoted_once_it_has_caught_up() {
    let mut d = cluster(3, 5);
    settled_leader(&mut d);
    d.act(put("a", "1"));
    d.advance(200_000);
    d.try_act(Op::AddNode { voter: true }).unwrap();
    assert_eq!(member(&mut d, 4), "learner");
    d.advance(1_500_000);
    assert_eq!(member(&mut d, 4), "voter");
    assert_eq!(conf(&mut d).0, vec![1, 2, 3, 4]);
    let feed = d.feed_since(0);
    let caught = feed.iter().position(|f| f.text.contains("learner 4 has caught up")).expect("announced");
    let promoted = feed.iter().position(|f| f.text.contains("promotes learner 4 to voter")).expect("promoted");
    assert!(caught < promoted);
    // One action only: the promotion was the driver's, at a point a replay finds again.
    assert_eq!(d.actions().len(), 2);
}

#[test]
fn refused_changes_say_why_and_change_nothing() {
    let mut d = cluster(3, 3);
    // No leader yet.
    assert!(refusal(&mut d, Op::AddNode { voter: false }).contains("no leader"));
    assert_eq!(d.node_count(), 3);
    let l = settled_leader(&mut d);
    // A second change while the first is unfinished.
    d.try_act(Op::AddNode { voter: false }).unwrap();
    let second = refusal(&mut d, Op::AddNode { voter: false });
    assert!(second.contains("unfinished"), "{second}");
    assert_eq!(d.node_count(), 4, "a refused add leaves no node behind");
    let remove = refusal(&mut d, Op::Remove { node: 2 });
    assert!(remove.contains("unfinished"), "{remove}");
    d.advance(1_000_000);
    // Nonsense.
    assert_eq!(refusal(&mut d, Op::Promote { node: 12 }), "there is no node 12");
    assert!(refusal(&mut d, Op::Promote { node: l }).contains("already a voter"));
    assert!(refusal(&mut d, Op::Transfer { node: 4 }).contains("not a voter"));
    assert!(refusal(&mut d, Op::Transfer { node: l }).contains("already leads"));
    // A learner far behind is not promoted.
    d.act(Op::Isolate { node: 4 });
    for i in 0..14 {
        d.act(put("k", &i.to_string()));
        d.advance(30_000);
    }
    d.advance(300_000);
    let behind = refusal(&mut d, Op::Promote { node: 4 });
    assert!(behind.contains("entries behind"), "{behind}");
    assert_eq!(member(&mut d, 4), "learner");
    // Every refusal is in the feed and in the trace (a replay refuses it again).
    let refused = d.feed_since(0).iter().filter(|f| f.kind == "refused").count();
    assert_eq!(refused, 8);
    assert!(d.actions().iter().any(|a| a.op == Op::Promote { node: 12 }));
}

#[test]
fn the_last_voter_cannot_be_removed() {
    let mut d = cluster(1, 1);
    settled_leader(&mut d);
    let e = refusal(&mut d, Op::Remove { node: 1 });
    assert!(e.contains("no voter"), "{e}");
    assert_eq!(conf(&mut d).0, vec![1]);
}

#[test]
fn a_removed_node_leaves_the_configuration_and_a_removed_leader_steps_down() {
    let mut d = cluster(5, 7);
    let l = settled_leader(&mut d);
    let f = if l == 5 { 4 } else { 5 };
    d.try_act(Op::Remove { node: f }).unwrap();
    assert_eq!(member(&mut d, f), "none");
    d.advance(500_000);
    let (voters, _, _, _, committed) = conf(&mut d);
    assert!(committed && voters.len() == 4 && !voters.contains(&f), "{voters:?}");
    d.act(put("x", "1"));
    d.advance(500_000);
    assert_eq!(d.sim().raft(l).unwrap().state_machine().get("x"), Some("1"));
    assert_eq!(d.sim().raft(f).unwrap().state_machine().get("x"), None, "no longer replicated to");
    // The leader removes itself: it steps down once that commits, and the others elect one.
    d.try_act(Op::Remove { node: l }).unwrap();
    d.advance(2_000_000);
    let l2 = d.sim().leader().expect("a new leader");
    assert!(l2 != l && l2 != f);
    assert_eq!(conf(&mut d).0.len(), 3);
    assert!(feed_has(&d, &format!("node {l} was removed from the cluster and stepped down")));
    assert!(d.sim().violations().is_empty());
}

#[test]
fn transfer_makes_the_chosen_node_leader() {
    let mut d = cluster(5, 4);
    let l = settled_leader(&mut d);
    let to = if l == 3 { 2 } else { 3 };
    let term = d.sim().raft(l).unwrap().term();
    d.try_act(Op::Transfer { node: to }).unwrap();
    d.advance(500_000);
    assert_eq!(d.sim().leader(), Some(to));
    assert!(d.sim().raft(to).unwrap().term() > term);
    assert!(feed_has(&d, &format!("hands leadership to node {to}")));
}

#[test]
fn a_wiped_node_restarts_empty_catches_up_and_votes_again_once_readmitted() {
    let mut d = cluster(3, 6);
    let l = settled_leader(&mut d);
    for i in 0..5 {
        d.act(put("k", &i.to_string()));
        d.advance(50_000);
    }
    d.advance(300_000);
    let f = if l == 1 { 2 } else { 1 };
    let old_inc = d.state(&ViewOptions::default()).nodes[(f - 1) as usize].inc;
    d.try_act(Op::Wipe { node: f }).unwrap();
    {
        let s = d.state(&ViewOptions::default());
        let n = &s.nodes[(f - 1) as usize];
        assert!(n.up && n.last == 0 && n.term == 0 && n.voted_for.is_none(), "empty after the wipe");
        assert_ne!(n.inc, old_inc, "a new storage incarnation");
        assert!(n.unbound, "the configuration names its old disk");
    }
    d.advance(1_000_000);
    let commit = d.sim().raft(l).unwrap().commit_index();
    assert!(d.sim().raft(f).unwrap().log().last_index() >= commit, "caught up");
    assert_eq!(d.sim().raft(f).unwrap().state_machine().get("k"), Some("4"));
    assert!(d.state(&ViewOptions::default()).nodes[(f - 1) as usize].unbound, "still not readmitted");
    // Readmitted through a joint change that binds its new disk.
    d.try_act(Op::Promote { node: f }).unwrap();
    assert!(conf(&mut d).3, "rebinding goes through a joint configuration");
    d.advance(1_000_000);
    assert!(!d.state(&ViewOptions::default()).nodes[(f - 1) as usize].unbound);
    assert!(!conf(&mut d).3);
    assert!(feed_has(&d, "readmits node"));
    assert!(d.sim().violations().is_empty());
}

#[test]
fn a_joint_change_needs_both_majorities_and_is_left_once_committed() {
    let mut d = cluster(3, 2);
    settled_leader(&mut d);
    d.try_act(Op::AddNode { voter: false }).unwrap();
    d.advance(600_000);
    d.try_act(Op::AddNode { voter: false }).unwrap();
    d.advance(600_000);
    assert_eq!(conf(&mut d).2, vec![4, 5]);
    let l = d.sim().leader().unwrap();
    let gone = [1, 2, 3].into_iter().find(|&x| x != l).unwrap();
    // The newcomers are cut off: the old voters alone could commit, the new half cannot.
    d.act(Op::Isolate { node: 4 });
    d.act(Op::Isolate { node: 5 });
    d.try_act(Op::Joint { add: vec![4, 5], remove: vec![gone] }).unwrap();
    let (voters, outgoing, _, joint, committed) = conf(&mut d);
    assert!(joint && !committed);
    assert_eq!(outgoing, vec![1, 2, 3]);
    let mut want: Vec<u64> = [1, 2, 3, 4, 5].into_iter().filter(|&x| x != gone).collect();
    want.sort_unstable();
    assert_eq!(voters, want);
    assert_eq!(member(&mut d, gone), "outgoing");
    assert_eq!(member(&mut d, 4), "incoming");
    assert_eq!(member(&mut d, l), "voter");
    let at = d.sim().raft(l).unwrap().log().last_index();
    d.advance(1_000_000);
    assert!(d.sim().raft(l).unwrap().commit_index() < at, "the joint entry waits for the new majority");
    assert!(conf(&mut d).3, "still joint");
    d.act(Op::Rejoin { node: 4 });
    d.act(Op::Rejoin { node: 5 });
    d.advance(2_000_000);
    let (voters, outgoing, _, joint, committed) = conf(&mut d);
    assert!(!joint && committed && outgoing.is_empty());
    assert_eq!(voters, want);
    assert!(feed_has(&d, "enters a joint configuration"));
    assert!(feed_has(&d, "leaves the joint configuration"));
    assert!(d.sim().violations().is_empty());
}

#[test]
fn a_membership_run_replays_exactly() {
    let mut d = cluster(3, 11);
    settled_leader(&mut d);
    d.act(Op::AddNode { voter: true });
    d.advance(150_000);
    d.act(Op::AddNode { voter: false }); // maybe refused: the first is unfinished
    d.advance(900_000);
    d.act(Op::AddNode { voter: false });
    d.act(put("x", "1"));
    d.advance(800_000);
    d.act(Op::Promote { node: 5 });
    d.advance(400_000);
    d.act(Op::Wipe { node: 2 });
    d.advance(700_000);
    d.act(Op::Promote { node: 2 });
    d.advance(700_000);
    d.act(Op::Transfer { node: 4 });
    d.advance(500_000);
    d.act(Op::Remove { node: 1 });
    d.advance(600_000);
    d.act(Op::Joint { add: vec![], remove: vec![3] });
    d.advance(1_000_000);
    let t = d.now();
    assert_eq!(d.node_count(), 6);
    assert!(d.sim().violations().is_empty());
    let want = state_json(&mut d);
    let feed: Vec<String> = d.feed_since(0).into_iter().map(|f| format!("{} {}", f.t, f.text)).collect();
    // Through JSON, as a shared link carries it.
    let actions: Vec<host_wasm::Action> = serde_json::from_str(&serde_json::to_string(&d.trace()).unwrap()).unwrap();
    let mut r = Driver::replay(d.options().clone(), actions.clone(), t).unwrap();
    assert_eq!(r.events(), d.events());
    assert_eq!(state_json(&mut r), want);
    let again: Vec<String> = r.feed_since(0).into_iter().map(|f| format!("{} {}", f.t, f.text)).collect();
    assert_eq!(again, feed);
    // Rewound to the middle and played on in uneven strides, as frames do.
    let mut mid = Driver::replay(d.options().clone(), actions, t / 2).unwrap();
    let mut stride = 1_000;
    while mid.now() < t {
        mid.run_until((mid.now() + stride).min(t));
        stride = stride * 7 % 90_001 + 1;
    }
    assert_eq!(state_json(&mut mid), want);
}

#[test]
fn a_node_added_later_can_be_wiped_and_readmitted_too() {
    let mut d = cluster(3, 9);
    settled_leader(&mut d);
    d.try_act(Op::AddNode { voter: true }).unwrap();
    d.advance(1_500_000);
    assert_eq!(member(&mut d, 4), "voter");
    d.try_act(Op::Wipe { node: 4 }).unwrap();
    assert!(d.state(&ViewOptions::default()).nodes[3].unbound);
    d.advance(1_000_000);
    d.try_act(Op::Promote { node: 4 }).unwrap();
    d.advance(1_000_000);
    assert!(!d.state(&ViewOptions::default()).nodes[3].unbound);
    // It counts again: with one of the four voters down, every decision needs node 4.
    let l = d.sim().leader().unwrap();
    let down = if l == 4 { 1 } else { l };
    d.act(Op::Crash { node: down });
    d.advance(1_500_000);
    assert!(d.sim().leader().is_some_and(|x| x != down), "an election with node 4's vote");
    d.act(put("y", "2"));
    d.advance(500_000);
    let up: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&x| x != down).collect();
    for id in up {
        assert_eq!(d.sim().raft(id).unwrap().state_machine().get("y"), Some("2"), "node {id}");
    }
    assert!(d.sim().violations().is_empty());
}
