//! Limits that protect memory are reached and hold (DESIGN.md §2: "nothing
//! grows without bound").

mod common;
use common::*;
use raft_core::sim::{Sim, SimConfig};
use raft_core::{Body, Config, DigestMachine, Entry, Message, Payload, ProposeError, Raft};

#[test]
fn a_leader_cut_off_refuses_work_past_its_uncommitted_bytes() {
    let mut cfg = SimConfig { nodes: 3, seed: seed(81), ..SimConfig::default() };
    cfg.raft.max_uncommitted_bytes = 2_000;
    let mut sim = Sim::new(cfg);
    let l = check_one_leader(&mut sim);
    sim.disconnect(l);
    let mut accepted = 0;
    let refused = loop {
        match sim.propose(l, vec![7; 200]) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1_000, "a minority leader kept appending");
    };
    assert_eq!(refused, ProposeError::Busy);
    // Each entry costs 232 bytes (200 of payload plus fixed fields): the limit
    // stops the leader after about 2,000 bytes.
    assert!((8..=10).contains(&accepted), "accepted {accepted} entries under a 2,000-byte limit");
    assert_safe(&sim);
}

#[test]
fn acknowledgements_waiting_for_a_slow_disk_are_bounded() {
    let mut cfg = Config::new(2, vec![1, 2, 3]);
    cfg.max_held_messages = 3;
    let mut r = Raft::new(cfg, DigestMachine::default()).unwrap();
    // Ten appends, none of them made durable: each ack must wait for the disk.
    for i in 1..=10u64 {
        let e = Entry { term: 1, index: i, time: 0, payload: Payload::Command(vec![1].into()) };
        let m = Message {
            from: 1,
            to: 2,
            term: 1,
            from_inc: 0,
            to_inc: 0,
            body: Body::Append {
                prev_index: i - 1,
                prev_term: if i == 1 { 0 } else { 1 },
                entries: vec![e],
                commit: 0,
                round: 0,
                to_epoch: 0,
            },
        };
        r.step(m).unwrap();
        let ready = r.take_ready();
        assert!(ready.messages.is_empty(), "an ack left before its entries were durable");
    }
    assert_eq!(r.held_messages(), 3, "held acks are capped; the oldest were dropped (the leader re-asks)");
    // Once durable, only the acks still held go out, the newest among them.
    let last = r.log().last_index();
    r.persisted(11); // the HardState of term 1, then ten appends
    let out = r.take_ready().messages;
    assert_eq!(out.len(), 3);
    assert!(matches!(out.last().unwrap().body, Body::AppendResp { index, success: true, .. } if index == last));
}
