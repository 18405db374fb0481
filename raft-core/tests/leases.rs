//! Leases on the simulator (issue 14, item 3): a grant is a session write (a
//! retry makes no second lease); keys attached to a lease go when it expires,
//! decided at apply on every replica; an idle cluster still expires leases,
//! because the leader appends a no-op (which carries the time) once its clock
//! passes the earliest deadline; a keep-alive keeps a lease; leases survive a
//! snapshot install. `bug_no_time_entry_is_caught...` switches the time entry
//! off (`Bugs::lease_no_time_entry`) and shows the lock then stays.

mod common;
use common::*;
use raft_core::kv::{KvOp, KvOutput};
use raft_core::sim::Sim;
use raft_core::sim::SimConfig;
use raft_core::{Bugs, ClientReply, ClientRequest, ClientToken, NodeId, Payload};

const T: ClientToken = 0xFFFF << 40;
const MS: u64 = 1_000;
/// The hash of every session secret in these tests.
const K: [u8; 32] = [7; 32];

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

fn write(sim: &mut Sim, node: NodeId, session: u64, seq: u64, op: KvOp) -> KvOutput {
    match ask(sim, node, ClientRequest::Write { session, secret_hash: K, seq, ack: seq, command: op.encode().into() }) {
        Some(ClientReply::Written { output }) => KvOutput::decode(&output).unwrap(),
        other => panic!("write failed: {other:?}"),
    }
}

fn present(sim: &Sim, node: NodeId, key: &str) -> bool {
    sim.raft(node).is_some_and(|r| r.state_machine().get(key).is_some())
}

/// Entries after `from` in the leader's log that are not no-ops.
fn non_noops_after(sim: &Sim, node: NodeId, from: u64) -> usize {
    let log = sim.raft(node).unwrap().log();
    (from + 1..=log.last_index()).filter(|&i| log.entry(i).is_some_and(|e| e.payload != Payload::Noop)).count()
}

#[test]
fn an_idle_cluster_expires_a_dead_holders_lock_within_ttl_plus_a_heartbeat() {
    let mut sim = sim(3, seed(140));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    let ttl_ms = 2_000;
    let KvOutput::Lease { id, .. } = write(&mut sim, l, s, 1, KvOp::LeaseGrant { ttl: ttl_ms }) else { panic!() };
    let granted_at = sim.now();
    let out = write(&mut sim, l, s, 2, KvOp::PutLease { key: "lock".into(), value: "me".into(), lease: id });
    assert!(matches!(out, KvOutput::Written { .. }));
    let last = sim.raft(l).unwrap().log().last_index();
    // The holder dies: nothing else is written. The bound: the TTL, plus at
    // most one heartbeat interval (100 ms) before the leader appends the
    // time entry, plus its commit (a round trip and a disk sync, under 20
    // ms here), plus the time the grant took to come back (counted from
    // before the grant's reply, so it is on the safe side).
    let bound = ttl_ms * MS + 100 * MS + 20 * MS;
    let gone = sim.run_until(bound + 500 * MS, |s| s.ids().iter().all(|&n| !present(s, n, "lock")));
    assert!(gone, "the lock never went");
    let took = sim.now() - granted_at;
    assert!(took <= bound, "the lock went after {} ms (bound {} ms)", took / MS, bound / MS);
    assert!(took >= ttl_ms * MS - 50 * MS, "not before its TTL: {} ms", took / MS);
    assert_eq!(non_noops_after(&sim, l, last), 0, "only time entries were appended");
    // The lease is gone with it: a keep-alive finds nothing.
    let out = write(&mut sim, l, s, 3, KvOp::LeaseKeepAlive { id });
    assert!(matches!(out, KvOutput::LeaseNotFound { .. }), "{out:?}");
    // ...and the idle cluster stops appending time entries.
    let now_last = sim.raft(l).unwrap().log().last_index();
    sim.run_for(3 * SEC);
    assert_eq!(sim.raft(l).unwrap().log().last_index(), now_last, "no deadline, no time entries");
    assert_safe(&sim);
}

#[test]
fn keep_alive_keeps_and_a_retried_grant_makes_no_second_lease() {
    let mut sim = sim(3, seed(141));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    let first = write(&mut sim, l, s, 1, KvOp::LeaseGrant { ttl: 1_000 });
    // The same (session, seq) again: the cached reply, not a new lease.
    let again = write(&mut sim, l, s, 1, KvOp::LeaseGrant { ttl: 1_000 });
    assert_eq!(first, again);
    assert_eq!(sim.raft(l).unwrap().state_machine().leases().len(), 1);
    let KvOutput::Lease { id, .. } = first else { panic!("{first:?}") };
    write(&mut sim, l, s, 2, KvOp::PutLease { key: "svc/a".into(), value: "up".into(), lease: id });
    for seq in 3..9 {
        sim.run_for(500 * MS);
        let out = write(&mut sim, l, s, seq, KvOp::LeaseKeepAlive { id });
        assert!(matches!(out, KvOutput::Lease { .. }), "{out:?}");
        assert!(present(&sim, l, "svc/a"), "kept alive every 0.5 s, a 1 s lease stays");
    }
    sim.run_for(2 * SEC);
    assert!(sim.ids().iter().all(|&n| !present(&sim, n, "svc/a")), "no more keep-alives: gone");
    assert_safe(&sim);
}

#[test]
fn expiry_is_decided_at_apply_the_same_everywhere_and_survives_snapshots() {
    let mut sim = sim(3, seed(142));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    let KvOutput::Lease { id, .. } = write(&mut sim, l, s, 1, KvOp::LeaseGrant { ttl: 800 }) else { panic!() };
    for (i, k) in ["b", "a", "c"].iter().enumerate() {
        write(&mut sim, l, s, 2 + i as u64, KvOp::PutLease { key: (*k).into(), value: "v".into(), lease: id });
    }
    // A follower takes a snapshot with the lease in it, then restarts from it.
    let f = sim.ids().into_iter().find(|&n| n != l).unwrap();
    sim.take_snapshot(f);
    sim.run_for(50 * MS);
    sim.crash(f);
    sim.restart(f);
    sim.run_for(2 * SEC);
    for n in sim.ids() {
        let r = sim.raft(n).unwrap();
        assert!(r.state_machine().is_empty(), "node {n}: the keys went with the lease");
        assert!(r.state_machine().leases().is_empty());
        // One revision deleted all three, in key order.
        let at: Vec<(u64, u32, String)> =
            r.state_machine().events().from(0).map(|e| (e.revision, e.sub, e.kv.key.clone())).collect();
        let deletes: Vec<&(u64, u32, String)> = at.iter().filter(|e| e.2.len() == 1).rev().take(3).collect();
        if deletes.len() == 3 {
            assert!(deletes.iter().all(|e| e.0 == deletes[0].0), "node {n}: one revision: {at:?}");
        }
    }
    assert_safe(&sim);
}

#[test]
fn bug_no_time_entry_is_caught_a_dead_holders_lock_stays() {
    // The same run as the first test with the time entry switched off: the
    // lock outlives its TTL by far, so that test would fail.
    let bugs = Bugs { lease_no_time_entry: true, ..Bugs::default() };
    let mut sim = Sim::new(SimConfig { nodes: 3, seed: seed(140), ..SimConfig::default() }.with_bugs(bugs));
    let l = check_one_leader(&mut sim);
    let s = register(&mut sim, l);
    let KvOutput::Lease { id, .. } = write(&mut sim, l, s, 1, KvOp::LeaseGrant { ttl: 2_000 }) else { panic!() };
    write(&mut sim, l, s, 2, KvOp::PutLease { key: "lock".into(), value: "me".into(), lease: id });
    let gone = sim.run_until(10 * SEC, |s| s.ids().iter().all(|&n| !present(s, n, "lock")));
    assert!(!gone, "without time entries an idle cluster cannot expire a lease");
    assert_safe(&sim);
}
