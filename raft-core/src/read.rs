//! Linearizable reads without log writes: ReadIndex (Raft dissertation §6.4),
//! batched per confirmation round.
//!
//! A read is safe to answer from a leader's state machine once (1) the leader
//! knows the commit index is current — it has committed an entry of its own
//! term, so nothing an earlier leader committed is missing — (2) it has
//! confirmed, after the read arrived, that it is still the leader — a majority
//! answered a message it sent after the read arrived, in its term — and (3) its
//! state machine has applied up to the commit index recorded at arrival.
//!
//! Confirmation is batched: a read arriving while no round is in flight starts
//! one at once (a heartbeat carrying a new round id); reads arriving during a
//! round wait for the next. One round serves any number of reads, and a
//! one-node cluster confirms at once. On step-down every pending read fails
//! with `NotLeader` and the new leader's id if known.

use alloc::vec::Vec;

use crate::client::{ClientError, ClientReply, ClientToken};
use crate::raft::Raft;
use crate::state_machine::StateMachine;
use crate::types::{Index, NodeId, Role};

/// A read waiting at the leader.
#[derive(Clone, Debug)]
pub(crate) struct PendingRead {
    pub token: ClientToken,
    pub query: Vec<u8>,
    /// Commit index at arrival; `None` until an entry of this term commits.
    pub index: Option<Index>,
    /// The round whose majority acknowledgement confirms this read.
    pub round: u64,
    pub confirmed: bool,
}

impl<S: StateMachine> Raft<S> {
    pub(crate) fn read(&mut self, token: ClientToken, query: Vec<u8>) {
        debug_assert_eq!(self.role, Role::Leader);
        if let Err(why) = self.sm.validate_query(&query) {
            return self.reply(token, Err(ClientError::BadRequest(why.into())));
        }
        if self.reads.len() >= self.cfg.max_pending_reads {
            return self.reply(token, Err(ClientError::Busy));
        }
        if self.bug(|b| b.stale_read_local) {
            let output = self.sm.query(&query);
            return self.reply(token, Ok(ClientReply::Read { output: output.into() }));
        }
        let term_committed = self.log.term(self.commit) == Some(self.term);
        let index = if term_committed || self.bug(|b| b.read_index_before_commit) { Some(self.commit) } else { None };
        let round = if self.round_in_flight {
            self.next_round_wanted = true;
            self.round + 1
        } else {
            self.start_round();
            self.round
        };
        self.reads.push_back(PendingRead { token, query, index, round, confirmed: false });
        if self.voters.len() == 1 {
            self.on_round_ack();
        }
    }

    /// Starts a confirmation round: every follower hears from us now.
    fn start_round(&mut self) {
        self.round += 1;
        self.round_in_flight = true;
        if self.voters.len() > 1 {
            self.broadcast_append(true);
        }
    }

    /// A follower acknowledged a round: confirm what a majority has confirmed.
    pub(crate) fn on_round_ack(&mut self) {
        let confirmed =
            crate::replication::quorum_value(self.round, self.progress.iter().map(|p| p.acked_round), self.quorum());
        for r in self.reads.iter_mut() {
            if r.round > confirmed {
                break;
            }
            r.confirmed = true;
        }
        if self.round_in_flight && confirmed >= self.round {
            self.round_in_flight = false;
            if self.next_round_wanted {
                self.next_round_wanted = false;
                self.start_round();
                if self.voters.len() == 1 {
                    return self.on_round_ack();
                }
            }
        }
        self.release_reads();
    }

    /// The first entry of this term committed: reads that arrived before now
    /// learn the commit index they must wait for.
    pub(crate) fn on_term_commit(&mut self) {
        let commit = self.commit;
        for r in self.reads.iter_mut() {
            if r.index.is_none() {
                r.index = Some(commit);
            }
        }
    }

    /// Answers confirmed reads whose index has been applied, in order.
    pub(crate) fn release_reads(&mut self) {
        while let Some(r) = self.reads.front() {
            if !r.confirmed || r.index.is_none_or(|i| i > self.applied) {
                break;
            }
            let Some(r) = self.reads.pop_front() else { break };
            let output = self.sm.query(&r.query);
            self.reply(r.token, Ok(ClientReply::Read { output: output.into() }));
        }
    }

    pub(crate) fn fail_reads(&mut self, hint: Option<NodeId>) {
        let reads = core::mem::take(&mut self.reads);
        for r in reads {
            self.reply(r.token, Err(ClientError::NotLeader { leader_hint: hint }));
        }
    }
}
