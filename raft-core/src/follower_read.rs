//! Follower reads: a follower answers a linearizable read from its own state
//! machine after asking the leader for a read index (the Raft dissertation
//! §6.4.1, etcd's `ReadIndex` forwarded from followers).
//!
//! 1. Reads arriving at a follower within one input are batched into one
//!    `ReadIndex` request to the leader, sent when the input's `Ready` is
//!    taken. A read joins only a request *not yet sent*: a request already
//!    in flight may reach the leader, and be given an index, before the read
//!    arrived — a write acknowledged in between would be missing.
//! 2. The leader treats the request like a read of its own (ReadIndex, or its
//!    lease): it notes its commit index when the request arrives, once an
//!    entry of its term has committed, and answers `ReadIndexResp` with that
//!    index after a confirmation round started after the arrival (a quorum
//!    still follows it, so nothing newer was committed elsewhere).
//! 3. The follower waits until it has applied that index, then runs the
//!    query. Its state then holds every write that completed before the read
//!    was invoked.
//!
//! A request unanswered for an election timeout, a refusal (`index: None`),
//! or a change of leader fails the reads still waiting for an index with
//! `NotLeader` (they can be retried anywhere). Reads that already have an
//! index stay: the index was confirmed after they arrived, whoever leads now.
//!
//! `FollowerReads` is the follower's bookkeeping; the engine sends the
//! requests and answers.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::client::{ClientError, ClientReply, ClientToken};
use crate::outbox::Outbox;
use crate::state_machine::StateMachine;
use crate::types::{Index, NodeId};

/// Most `ReadIndex` requests one follower has in flight; reads arriving
/// while all are out wait for the next one that can be sent.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 16;

/// A request sent to the leader, not yet answered.
#[derive(Clone, Debug)]
struct Request {
    id: u64,
    leader: NodeId,
    reads: Vec<(ClientToken, Vec<u8>)>,
    /// Ticks since it was sent.
    age: u32,
}

/// A follower's reads: waiting for a request, waiting for the leader's
/// answer, and waiting to apply the index it gave.
#[derive(Clone, Debug, Default)]
pub(crate) struct FollowerReads {
    /// Arrived since the last request was sent: they go in the next one.
    unsent: Vec<(ClientToken, Vec<u8>)>,
    in_flight: VecDeque<Request>,
    /// `(index, token, query)`: confirmed, waiting for the state machine.
    indexed: Vec<(Index, ClientToken, Vec<u8>)>,
    next_id: u64,
}

impl FollowerReads {
    /// Reads held, in every stage.
    pub fn len(&self) -> usize {
        self.unsent.len() + self.in_flight.iter().map(|r| r.reads.len()).sum::<usize>() + self.indexed.len()
    }

    /// Whether no read is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a read for the next request. With `join_in_flight` (the
    /// `follower_read_joins_inflight` bug) it joins the newest request
    /// already sent instead, if there is one.
    pub fn push(&mut self, token: ClientToken, query: Vec<u8>, join_in_flight: bool) {
        if join_in_flight {
            if let Some(r) = self.in_flight.back_mut() {
                r.reads.push((token, query));
                return;
            }
        }
        self.unsent.push((token, query));
    }

    /// Whether [`FollowerReads::take_request`] would give a request now.
    pub fn has_request(&self) -> bool {
        !self.unsent.is_empty() && self.in_flight.len() < MAX_REQUESTS_IN_FLIGHT
    }

    /// The request to send to `leader` now, if reads wait for one and fewer
    /// than [`MAX_REQUESTS_IN_FLIGHT`] are out: its id.
    pub fn take_request(&mut self, leader: NodeId) -> Option<u64> {
        if self.unsent.is_empty() || self.in_flight.len() >= MAX_REQUESTS_IN_FLIGHT {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        let reads = core::mem::take(&mut self.unsent);
        self.in_flight.push_back(Request { id, leader, reads, age: 0 });
        Some(id)
    }

    /// The leader `from` answered request `id`: with an index, its reads wait
    /// to apply it; without, they fail.
    pub fn on_answer(&mut self, from: NodeId, id: u64, index: Option<Index>, hint: Option<NodeId>, out: &mut Outbox) {
        let Some(at) = self.in_flight.iter().position(|r| r.id == id && r.leader == from) else { return };
        let Some(req) = self.in_flight.remove(at) else { return };
        match index {
            Some(i) => self.indexed.extend(req.reads.into_iter().map(|(t, q)| (i, t, q))),
            None => {
                for (token, _) in req.reads {
                    out.reply(token, Err(ClientError::NotLeader { leader_hint: hint }));
                }
            }
        }
    }

    /// Answers every read whose index has been applied.
    pub fn release<S: StateMachine>(&mut self, applied: Index, sm: &S, out: &mut Outbox) {
        if self.indexed.iter().all(|(i, _, _)| *i > applied) {
            return;
        }
        self.indexed.retain(|(i, token, query)| {
            if *i > applied {
                return true;
            }
            let output = sm.query(query);
            out.reply(*token, Ok(ClientReply::Read { output: output.into() }));
            false
        });
    }

    /// One tick: requests unanswered for `timeout` ticks fail their reads.
    pub fn tick(&mut self, timeout: u32, hint: Option<NodeId>, out: &mut Outbox) {
        for r in self.in_flight.iter_mut() {
            r.age = r.age.saturating_add(1);
        }
        while self.in_flight.front().is_some_and(|r| r.age >= timeout) {
            if let Some(r) = self.in_flight.pop_front() {
                for (token, _) in r.reads {
                    out.reply(token, Err(ClientError::NotLeader { leader_hint: hint }));
                }
            }
        }
    }

    /// The leader changed (or this node is no longer a follower): reads
    /// without an index fail; reads with one stay.
    pub fn fail_unindexed(&mut self, hint: Option<NodeId>, out: &mut Outbox) {
        let unsent = core::mem::take(&mut self.unsent);
        let in_flight = core::mem::take(&mut self.in_flight);
        for (token, _) in unsent.into_iter().chain(in_flight.into_iter().flat_map(|r| r.reads)) {
            out.reply(token, Err(ClientError::NotLeader { leader_hint: hint }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::DigestMachine;

    #[test]
    fn a_read_joins_only_a_request_not_yet_sent() {
        let mut f = FollowerReads::default();
        f.push(1, Vec::new(), false);
        assert_eq!(f.take_request(9), Some(1));
        f.push(2, Vec::new(), false);
        let mut out = Outbox::new(1);
        f.on_answer(9, 1, Some(5), None, &mut out);
        f.release(5, &DigestMachine::default(), &mut out);
        assert_eq!(f.len(), 1, "read 2 waits for its own request");
        assert_eq!(f.take_request(9), Some(2));
    }

    #[test]
    fn indexed_reads_wait_for_the_state_machine() {
        let mut f = FollowerReads::default();
        let mut out = Outbox::new(1);
        f.push(1, Vec::new(), false);
        let id = f.take_request(9).unwrap();
        f.on_answer(9, id, Some(7), None, &mut out);
        f.release(6, &DigestMachine::default(), &mut out);
        assert_eq!(f.len(), 1);
        f.fail_unindexed(None, &mut out);
        assert_eq!(f.len(), 1, "an index confirmed after the read arrived stays good");
        f.release(7, &DigestMachine::default(), &mut out);
        assert!(f.is_empty());
    }

    #[test]
    fn answers_from_another_node_or_unknown_ids_are_ignored() {
        let mut f = FollowerReads::default();
        let mut out = Outbox::new(1);
        f.push(1, Vec::new(), false);
        let id = f.take_request(9).unwrap();
        f.on_answer(8, id, Some(7), None, &mut out);
        f.on_answer(9, id + 1, Some(7), None, &mut out);
        assert_eq!(f.in_flight.len(), 1);
    }

    #[test]
    fn requests_in_flight_are_bounded_and_time_out() {
        let mut f = FollowerReads::default();
        let mut out = Outbox::new(1);
        for t in 0..=MAX_REQUESTS_IN_FLIGHT as u64 {
            f.push(t, Vec::new(), false);
            let _ = f.take_request(9);
        }
        assert_eq!(f.in_flight.len(), MAX_REQUESTS_IN_FLIGHT);
        assert_eq!(f.unsent.len(), 1, "the last read waits for a free slot");
        for _ in 0..3 {
            f.tick(3, Some(9), &mut out);
        }
        assert!(f.in_flight.is_empty(), "unanswered requests fail after the timeout");
        assert_eq!(f.len(), 1);
    }
}
