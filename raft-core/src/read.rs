//! Linearizable reads without log writes: ReadIndex (Raft dissertation §6.4),
//! batched per confirmation round.
//!
//! A read is safe to answer from a leader's state machine once (1) the leader
//! knows the commit index is current — it has committed an entry of its own
//! term, so nothing an earlier leader committed is missing — (2) it has
//! confirmed, after the read arrived, that it is still the leader — a quorum
//! answered a message it sent after the read arrived, in its term — and (3) its
//! state machine has applied up to the commit index recorded at arrival.
//!
//! Confirmation is batched: a read arriving while no round is in flight starts
//! one at once (a heartbeat carrying a new round id); reads arriving during a
//! round wait for the next. One round serves any number of reads, and a
//! one-node cluster confirms at once. On step-down every pending read fails
//! with `NotLeader` and the new leader's id if known.
//!
//! `ReadQueue` is the leader's bookkeeping of rounds and waiting reads. It
//! does not count acknowledgements (the quorum module does, over each
//! follower's highest acknowledged round) and does not send heartbeats (the
//! leader does, when `ReadQueue::push` or `ReadQueue::confirm` say a round
//! starts): it only knows which reads a confirmed round releases.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::client::{ClientError, ClientReply, ClientToken};
use crate::outbox::Outbox;
use crate::state_machine::StateMachine;
use crate::types::{Index, NodeId};

/// A read waiting at the leader.
#[derive(Clone, Debug)]
struct PendingRead {
    token: ClientToken,
    query: Vec<u8>,
    /// Commit index at arrival; `None` until an entry of this term commits.
    index: Option<Index>,
    /// The round whose quorum acknowledgement confirms this read.
    round: u64,
    confirmed: bool,
    /// A follower's `ReadIndex` request `(follower, id)`: answered with the
    /// index once confirmed, without waiting for this node to apply it.
    remote: Option<(NodeId, u64)>,
}

/// A follower's request answered (`Some(index)`) or refused (`None`): the
/// leader sends `ReadIndexResp` to `to`.
pub type RemoteAnswer = (NodeId, u64, Option<Index>);

/// A leader's confirmation rounds and the reads waiting on them.
#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// In arrival order (so also in round order).
    reads: VecDeque<PendingRead>,
    /// The newest round started (round ids increase within a term).
    round: u64,
    /// The newest round is still waiting for its quorum.
    in_flight: bool,
    /// Reads are waiting for the round after the one in flight.
    next_wanted: bool,
}

impl ReadQueue {
    /// Reads waiting.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// The newest round started.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Queues a read; `index` is the commit index to wait for (`None` until an
    /// entry of the leader's term has committed). Returns whether a new round
    /// starts now (the leader must then send every follower a heartbeat
    /// carrying [`ReadQueue::round`]).
    pub fn push(&mut self, token: ClientToken, query: Vec<u8>, index: Option<Index>) -> bool {
        self.push_read(token, query, index, None)
    }

    /// Queues a follower's `ReadIndex` request, as [`ReadQueue::push`] does
    /// a read of its own (the same rounds confirm it).
    pub fn push_remote(&mut self, from: NodeId, id: u64, index: Option<Index>) -> bool {
        self.push_read(0, Vec::new(), index, Some((from, id)))
    }

    fn push_read(
        &mut self,
        token: ClientToken,
        query: Vec<u8>,
        index: Option<Index>,
        remote: Option<(NodeId, u64)>,
    ) -> bool {
        let (round, start) = if self.in_flight {
            self.next_wanted = true;
            (self.round + 1, false)
        } else {
            self.round += 1;
            self.in_flight = true;
            (self.round, true)
        };
        self.reads.push_back(PendingRead { token, query, index, round, confirmed: false, remote });
        start
    }

    /// Queues a read that needs no round (answered under a lease): it waits
    /// only for `index` to be applied, and for the reads before it.
    pub fn push_confirmed(&mut self, token: ClientToken, query: Vec<u8>, index: Index) {
        // Keep rounds non-decreasing along the queue (`confirm` relies on it).
        let round = self.reads.back().map_or(self.round, |r| r.round);
        self.reads.push_back(PendingRead { token, query, index: Some(index), round, confirmed: true, remote: None });
    }

    /// Starts a round now whether or not reads wait (lease reads renew the
    /// lease with every heartbeat). Reads waiting for the next round are
    /// served by this one: it is sent after they arrived.
    pub fn start_round(&mut self) {
        self.round += 1;
        self.in_flight = true;
        self.next_wanted = false;
    }

    /// A quorum has acknowledged every round up to `confirmed`. Returns whether
    /// the next round starts now (reads arrived while this one was in flight).
    pub fn confirm(&mut self, confirmed: u64) -> bool {
        for r in self.reads.iter_mut() {
            if r.round > confirmed {
                break;
            }
            r.confirmed = true;
        }
        if self.in_flight && confirmed >= self.round {
            self.in_flight = false;
            if self.next_wanted {
                self.next_wanted = false;
                self.round += 1;
                self.in_flight = true;
                return true;
            }
        }
        false
    }

    /// The first entry of the leader's term committed at `commit`: reads that
    /// arrived before learn the index they must wait for.
    pub fn on_term_commit(&mut self, commit: Index) {
        for r in self.reads.iter_mut().filter(|r| r.index.is_none()) {
            r.index = Some(commit);
        }
    }

    /// Answers confirmed reads whose index has been applied, in order; a
    /// follower's request needs only its index. Returns the followers'
    /// requests answered (for the leader to send).
    pub fn release<S: StateMachine>(&mut self, applied: Index, sm: &S, out: &mut Outbox) -> Vec<RemoteAnswer> {
        let mut remote = Vec::new();
        while let Some(r) = self.reads.front() {
            let Some(index) = r.index.filter(|_| r.confirmed) else { break };
            if r.remote.is_none() && index > applied {
                break;
            }
            let Some(r) = self.reads.pop_front() else { break };
            match r.remote {
                Some((to, id)) => remote.push((to, id, Some(index))),
                None => {
                    let output = sm.query(&r.query);
                    out.reply(r.token, Ok(ClientReply::Read { output: output.into() }));
                }
            }
        }
        remote
    }

    /// Step-down: every waiting read fails with the new leader's id, if known.
    /// Returns the followers' requests refused.
    pub fn fail(self, hint: Option<NodeId>, out: &mut Outbox) -> Vec<RemoteAnswer> {
        let mut remote = Vec::new();
        for r in self.reads {
            match r.remote {
                Some((to, id)) => remote.push((to, id, None)),
                None => out.reply(r.token, Err(ClientError::NotLeader { leader_hint: hint })),
            }
        }
        remote
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::DigestMachine;

    #[test]
    fn one_round_serves_the_reads_before_it_and_the_next_serves_the_rest() {
        let mut q = ReadQueue::default();
        let mut out = Outbox::new(1);
        let sm = DigestMachine::default();
        assert!(q.push(1, Vec::new(), Some(5)), "the first read starts round 1");
        assert!(!q.push(2, Vec::new(), Some(5)), "a read during round 1 waits for round 2");
        assert_eq!(q.round(), 1);
        assert!(q.confirm(1), "round 1 confirmed: round 2 starts for the waiting read");
        q.release(4, &sm, &mut out);
        assert_eq!(q.len(), 2, "not applied far enough yet");
        q.release(5, &sm, &mut out);
        assert_eq!(q.len(), 1, "read 1 answered; read 2 waits for round 2");
        assert!(!q.confirm(2));
        q.release(5, &sm, &mut out);
        assert_eq!(q.len(), 0);
        assert_eq!(out.take(Vec::new(), false).replies.len(), 2);
    }

    #[test]
    fn a_read_before_the_terms_first_commit_waits_for_it() {
        let mut q = ReadQueue::default();
        let mut out = Outbox::new(1);
        q.push(1, Vec::new(), None);
        q.confirm(1);
        q.release(100, &DigestMachine::default(), &mut out);
        assert_eq!(q.len(), 1, "no index yet: cannot be served");
        q.on_term_commit(7);
        q.release(7, &DigestMachine::default(), &mut out);
        assert_eq!(q.len(), 0);
    }
}
