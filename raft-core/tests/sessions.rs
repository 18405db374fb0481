//! Client sessions, exactly-once writes, limits and linearizable reads, on the
//! simulator (issue 3, item 10, and the task list's lines on sessions,
//! sequence numbers, reply paths and read batching).

mod common;
use common::*;
use raft_core::kv::{KvOp, KvOutput};
use raft_core::sim::{Sim, SimConfig};
use raft_core::{ClientError, ClientReply, ClientRequest, ClientToken, NodeId};

/// Tokens for hand-driven requests: high bits set so they belong to no simulated client.
const T: ClientToken = 0xFFFF << 40;

/// Submits at `node` and runs until its reply arrives (or `max_us` passes).
fn ask(sim: &mut Sim, node: NodeId, req: ClientRequest) -> Option<ClientReply> {
    let tok = T + sim.inbox.len() as u64 + sim.now();
    sim.submit(node, tok, req);
    sim.run_until(2 * SEC, |s| s.inbox.iter().any(|(t, _)| *t == tok));
    sim.inbox.iter().find(|(t, _)| *t == tok).map(|(_, r)| r.clone())
}

fn register(sim: &mut Sim, node: NodeId) -> u64 {
    match ask(sim, node, ClientRequest::Register { owner: 1, secret_hash: K }) {
        Some(ClientReply::Registered { session }) => session,
        other => panic!("register failed: {other:?}"),
    }
}

fn write(session: u64, seq: u64, ack: u64, op: KvOp) -> ClientRequest {
    ClientRequest::Write { session, secret_hash: K, seq, ack, command: op.encode().into() }
}

/// The secret hash every session of these tests has.
const K: [u8; 32] = [3; 32];

fn append(key: &str, v: &str) -> KvOp {
    KvOp::Append { key: key.into(), value: v.into() }
}

fn get(sim: &mut Sim, node: NodeId, key: &str) -> Result<Option<String>, ClientError> {
    match ask(sim, node, ClientRequest::Read { query: KvOp::Get { key: key.into() }.encode() }) {
        Some(ClientReply::Read { output }) => match KvOutput::decode(&output) {
            Ok(KvOutput::Value { kv, .. }) => Ok(kv.map(|kv| kv.value)),
            other => panic!("bad read output {other:?}"),
        },
        Some(ClientReply::Rejected(e)) => Err(e),
        other => panic!("unexpected read reply {other:?}"),
    }
}

fn written(r: Option<ClientReply>) -> KvOutput {
    match r {
        Some(ClientReply::Written { output }) => KvOutput::decode(&output).unwrap(),
        other => panic!("write failed: {other:?}"),
    }
}

#[test]
fn duplicate_write_is_suppressed_across_leader_change() {
    let mut sim = sim(3, seed(41));
    let l1 = check_one_leader(&mut sim);
    let s = register(&mut sim, l1);
    let first = written(ask(&mut sim, l1, write(s, 1, 1, append("k", "x"))));
    assert!(matches!(first, KvOutput::Written { .. }));
    // Everyone applied it; then the leader dies before the client believes it.
    sim.run_for(300 * MS);
    sim.crash(l1);
    let l2 = check_one_leader(&mut sim);
    assert_ne!(l1, l2);
    // The client retries the same (session, seq) at the new leader.
    assert_eq!(
        written(ask(&mut sim, l2, write(s, 1, 1, append("k", "x")))),
        first,
        "the cached reply, with the first attempt's revision"
    );
    assert_eq!(get(&mut sim, l2, "k"), Ok(Some("x".into())), "applied once, not twice");
    assert_safe(&sim);
}

#[test]
fn stale_seq_and_bad_ack_are_refused() {
    let mut sim = sim(3, seed(42));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    written(ask(&mut sim, l, write(s, 1, 1, append("k", "a"))));
    written(ask(&mut sim, l, write(s, 2, 2, append("k", "b"))));
    // ack 2 released seq 1: a late retry of it is stale and not applied.
    assert_eq!(ask(&mut sim, l, write(s, 1, 1, append("k", "a"))), Some(ClientReply::Rejected(ClientError::StaleSeq)));
    assert!(matches!(
        ask(&mut sim, l, write(s, 3, 4, append("k", "c"))),
        Some(ClientReply::Rejected(ClientError::BadRequest(_)))
    ));
    assert_eq!(get(&mut sim, l, "k"), Ok(Some("ab".into())));
    // A session that never existed.
    assert_eq!(
        ask(&mut sim, l, write(999_999, 1, 1, append("k", "z"))),
        Some(ClientReply::Rejected(ClientError::SessionExpired))
    );
    assert_safe(&sim);
}

fn short_sessions(nodes: usize, seed: u64, timeout_ticks: u64) -> Sim {
    let mut cfg = SimConfig { nodes, seed, ..SimConfig::default() };
    cfg.raft.sessions.timeout_ticks = timeout_ticks;
    Sim::new(cfg)
}

#[test]
fn idle_sessions_expire_at_the_same_log_position_everywhere() {
    let mut sim = short_sessions(3, seed(43), 100); // one second of cluster time
    let l = check_one_leader(&mut sim);
    let idle = register(&mut sim, l);
    let busy = register(&mut sim, l);
    // Only `busy` writes, for three seconds of cluster time.
    for seq in 1..=30 {
        written(ask(&mut sim, l, write(busy, seq, seq, append("k", "."))));
        sim.run_for(100 * MS);
    }
    sim.run_for(500 * MS);
    for id in sim.ids() {
        let r = sim.raft(id).unwrap();
        assert!(r.sessions().get(idle).is_none(), "node {id} still holds the idle session");
        assert!(r.sessions().get(busy).is_some(), "node {id} expired an active session");
        assert_eq!(r.sessions().len(), 1, "memory freed on node {id}");
    }
    // Every replica's table is identical at the same applied index.
    let first = sim.raft(1).unwrap();
    for id in sim.ids() {
        let r = sim.raft(id).unwrap();
        assert_eq!(r.applied_index(), first.applied_index());
        assert_eq!(r.sessions(), first.sessions(), "node {id} decided expiry differently");
    }
    assert_eq!(
        ask(&mut sim, l, write(idle, 1, 1, append("k", "late"))),
        Some(ClientReply::Rejected(ClientError::SessionExpired))
    );
    assert_safe(&sim);
}

#[test]
fn expiry_ignores_a_new_leaders_own_clock() {
    // Cluster time continues from the newest entry, whatever the new leader's
    // own tick count: a freshly restarted leader (clock "behind") and a node
    // that ticked alone for a long time (clock "ahead") both keep sessions.
    let mut sim = short_sessions(3, seed(44), 300);
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    written(ask(&mut sim, l, write(s, 1, 1, append("k", "a"))));
    let clock = sim.raft(l).unwrap().sessions().clock();
    // Behind: every node restarts with its tick counter at zero.
    for id in sim.ids() {
        sim.crash(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    let l2 = check_one_leader(&mut sim);
    written(ask(&mut sim, l2, write(s, 2, 2, append("k", "b"))));
    let r = sim.raft(l2).unwrap();
    assert!(r.sessions().clock() >= clock, "cluster time went backwards");
    assert!(r.sessions().get(s).is_some(), "session lost under a leader whose clock is behind");
    // Ahead: a node ticks alone for a minute, then leads.
    let lonely = l2 % 3 + 1;
    sim.disconnect(lonely);
    for _ in 0..60 {
        // The client keeps its session alive (a third of the timeout, idle).
        assert_eq!(
            ask(&mut sim, l2, ClientRequest::KeepAlive { session: s, secret_hash: K, ack: 3 }),
            Some(ClientReply::KeptAlive)
        );
        sim.run_for(SEC);
    }
    written(ask(&mut sim, l2, write(s, 3, 3, append("k", "c"))));
    let before = sim.raft(l2).unwrap().sessions().clock();
    sim.connect(lonely);
    sim.crash(l2);
    let l3 = check_one_leader(&mut sim);
    written(ask(&mut sim, l3, write(s, 4, 4, append("k", "d"))));
    let after = sim.raft(l3).unwrap().sessions().clock();
    assert!(after >= before && after - before < 300, "cluster time jumped by {} ticks", after - before);
    assert!(sim.raft(l3).unwrap().sessions().get(s).is_some());
    assert_eq!(get(&mut sim, l3, "k"), Ok(Some("abcd".into())));
    sim.restart(l2);
    assert_safe(&sim);
}

#[test]
fn session_limit_and_busy_queues() {
    let mut cfg = SimConfig { nodes: 3, seed: seed(45), ..SimConfig::default() };
    cfg.raft.sessions.max_sessions = 2;
    cfg.raft.max_pending_writes = 2;
    cfg.raft.max_pending_reads = 3;
    let mut sim = Sim::new(cfg);
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    register(&mut sim, l);
    assert_eq!(
        ask(&mut sim, l, ClientRequest::Register { owner: 1, secret_hash: K }),
        Some(ClientReply::Rejected(ClientError::Busy))
    );
    for id in sim.ids() {
        assert_eq!(sim.raft(id).unwrap().sessions().len(), 2);
    }
    // Three writes submitted in one instant: the third finds the queue full.
    for seq in 1..=3 {
        sim.submit(l, T + 100 + seq, write(s, seq, 1, append("q", "x")));
    }
    for seq in 1..=4 {
        sim.submit(l, T + 200 + seq, ClientRequest::Read { query: KvOp::Get { key: "q".into() }.encode() });
    }
    sim.run_for(SEC);
    let reply = |t| sim.inbox.iter().find(|(x, _)| *x == t).map(|r| r.1.clone());
    assert_eq!(reply(T + 103), Some(ClientReply::Rejected(ClientError::Busy)));
    assert!(matches!(reply(T + 101), Some(ClientReply::Written { .. })));
    assert_eq!(reply(T + 204), Some(ClientReply::Rejected(ClientError::Busy)));
    assert!(matches!(reply(T + 201), Some(ClientReply::Read { .. })));
    assert_safe(&sim);
}

#[test]
fn writes_at_a_follower_get_the_leader_hint_and_reads_are_served_there() {
    let mut sim = sim(3, seed(46));
    let l = check_one_leader(&mut sim);
    let f = l % 3 + 1;
    // Follower reads (on by default): the follower asks the leader for a
    // read index and answers itself.
    assert_eq!(get(&mut sim, f, "k"), Ok(None));
    let s = register(&mut sim, l);
    assert_eq!(
        ask(&mut sim, f, write(s, 1, 1, append("k", "x"))),
        Some(ClientReply::Rejected(ClientError::NotLeader { leader_hint: Some(l) }))
    );
    assert_eq!(get(&mut sim, l, "k"), Ok(None), "the refused write never entered the log");
    written(ask(&mut sim, l, write(s, 1, 1, append("k", "x"))));
    assert_eq!(get(&mut sim, f, "k"), Ok(Some("x".into())), "a follower read sees the acknowledged write");
}

#[test]
fn without_follower_reads_a_follower_refuses_reads_with_the_hint() {
    let mut cfg = SimConfig { nodes: 3, seed: seed(46), ..SimConfig::default() };
    cfg.raft.follower_reads = false;
    let mut sim = Sim::new(cfg);
    let l = check_one_leader(&mut sim);
    let f = l % 3 + 1;
    assert_eq!(get(&mut sim, f, "k"), Err(ClientError::NotLeader { leader_hint: Some(l) }));
}

#[test]
fn one_round_serves_many_reads() {
    let mut sim = sim(5, seed(47));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    written(ask(&mut sim, l, write(s, 1, 1, KvOp::Put { key: "k".into(), value: "v".into() })));
    let round0 = sim.raft(l).unwrap().round();
    for i in 0..500 {
        sim.submit(l, T + 1000 + i, ClientRequest::Read { query: KvOp::Get { key: "k".into() }.encode() });
    }
    sim.run_for(200 * MS);
    let answered = sim.inbox.iter().filter(|(t, r)| *t >= T + 1000 && matches!(r, ClientReply::Read { .. })).count();
    assert_eq!(answered, 500);
    let rounds = sim.raft(l).unwrap().round() - round0;
    assert!(rounds <= 3, "500 reads took {rounds} confirmation rounds (heartbeats may add one)");
}

#[test]
fn a_deposed_leader_answers_no_reads() {
    let mut sim = sim(3, seed(48));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    written(ask(&mut sim, l, write(s, 1, 1, KvOp::Put { key: "k".into(), value: "old".into() })));
    // The leader is cut off but does not know yet; the others elect a leader
    // and overwrite the value.
    sim.disconnect(l);
    let tok = T + 77;
    sim.submit(l, tok, ClientRequest::Read { query: KvOp::Get { key: "k".into() }.encode() });
    sim.run_for(50 * MS);
    let others: Vec<NodeId> = sim.ids().into_iter().filter(|&i| i != l).collect();
    sim.run_until(5 * SEC, |s| others.iter().any(|&i| s.raft(i).is_some_and(|r| r.is_leader())));
    let l2 = others.iter().copied().find(|&i| sim.raft(i).unwrap().is_leader()).unwrap();
    written(ask(&mut sim, l2, write(s, 2, 2, KvOp::Put { key: "k".into(), value: "new".into() })));
    sim.run_for(2 * SEC);
    // The old leader's read never got a quorum: it failed with a hint, never "old".
    let r = sim.inbox.iter().find(|(t, _)| *t == tok).map(|x| x.1.clone());
    assert!(matches!(r, Some(ClientReply::Rejected(ClientError::NotLeader { .. }))), "got {r:?}");
    assert_safe(&sim);
}

#[test]
fn a_one_node_cluster_serves_reads_and_writes() {
    let mut sim = sim(1, seed(49));
    sim.run_until(2 * SEC, |s| s.leader().is_some());
    let s = register(&mut sim, 1);
    written(ask(&mut sim, 1, write(s, 1, 1, append("k", "x"))));
    assert_eq!(get(&mut sim, 1, "k"), Ok(Some("x".into())));
}
