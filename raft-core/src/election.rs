//! Leader election (Raft §5.2, §5.4.1; dissertation §9.6 PreVote, §6.2 CheckQuorum).
//!
//! A follower that hears nothing from a leader for its randomised election
//! timeout first becomes a *pre-candidate*: it asks its peers whether they would
//! vote for it in the next term, without changing anyone's term. Only if a
//! majority says yes does it raise its term and ask for real votes. A node cut
//! off in a minority therefore cannot inflate terms and depose a healthy leader
//! when it returns.
//!
//! A vote is granted only to a candidate whose term is current, whose log is at
//! least as up to date (last term, then last index), and only once per term.
//! The grant leaves only after the HardState recording it is durable: a node
//! that crashed and forgot its vote could otherwise vote twice in one term.
//!
//! With CheckQuorum, a follower that heard from a live leader within the
//! election timeout ignores (pre-)vote requests (leader stickiness), and a
//! leader that has not heard from a majority for an election timeout steps
//! down, so a deposed leader stops accepting work.

use alloc::vec::Vec;

use crate::message::{Body, Message};
use crate::progress::Progress;
use crate::raft::{Event, Raft};
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Payload, Role, Term};

/// An election timeout: `E + rand[0, E)`, or exactly `E` without jitter.
pub(crate) fn draw_timeout(cfg: &crate::raft::Config, rng: &mut crate::rng::Rng) -> u32 {
    let e = cfg.election_ticks;
    if cfg.election_jitter {
        e + rng.below(e as u64) as u32
    } else {
        e
    }
}

impl<S: StateMachine> Raft<S> {
    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_timeout = draw_timeout(&self.cfg, &mut self.rng);
    }

    /// Ticks of a follower or (pre-)candidate: count toward an election.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.randomized_timeout {
            self.campaign(self.cfg.pre_vote);
        }
    }

    /// Ticks of a leader: heartbeats, cluster time, and CheckQuorum.
    pub(crate) fn tick_leader(&mut self) {
        self.time_elapsed += 1;
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let active = 1 + self.progress.iter().filter(|p| p.recent_active).count();
                if active < self.quorum() {
                    let term = self.term;
                    self.event(Event::LostQuorum { term });
                    self.become_follower(term, None);
                    return;
                }
            }
            for p in self.progress.iter_mut() {
                p.recent_active = false;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.heartbeat();
        }
    }

    /// Whether this node heard from a live leader recently enough to ignore
    /// requests to elect someone else (leader stickiness).
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum && self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let changed = term != self.term || self.role != Role::Follower;
        let was_leader = self.role == Role::Leader;
        if term != self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.self_vote_seq = None;
        self.progress.clear();
        self.pending_broadcast = false;
        self.reset_election_timer();
        if was_leader {
            self.abandon_client_work();
        }
        if changed {
            self.write_hard_state();
            self.event(Event::BecameFollower { term, leader });
        }
    }

    /// Starts a (pre-)campaign.
    pub(crate) fn campaign(&mut self, pre: bool) {
        if pre {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.votes.clear();
            self.self_vote_seq = None;
            self.reset_election_timer();
            self.write_hard_state();
            let term = self.term;
            self.event(Event::BecamePreCandidate { term });
            // Our own pre-vote changes nothing durable: count it at once.
            self.record_vote(self.cfg.id, true);
            if self.role != Role::PreCandidate {
                return; // a one-node cluster went straight on
            }
            let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
            let peers: Vec<NodeId> = self.peers().collect();
            for p in peers {
                let m = Message {
                    from: self.cfg.id,
                    to: p,
                    term: self.term + 1,
                    body: Body::PreVote { last_index, last_term },
                };
                self.ready.messages.push(m);
            }
        } else {
            self.term += 1;
            self.voted_for = Some(self.cfg.id);
            self.role = Role::Candidate;
            self.leader = None;
            self.votes.clear();
            self.reset_election_timer();
            let seq = self.write_hard_state();
            let term = self.term;
            self.event(Event::BecameCandidate { term });
            // The request may leave now; our own vote counts once it is durable.
            self.self_vote_seq = Some(seq);
            if self.bug(|b| b.vote_before_durable) || seq <= self.durable_seq {
                self.self_vote_seq = None;
                self.record_vote(self.cfg.id, true);
                if self.role != Role::Candidate {
                    return;
                }
            }
            let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
            let peers: Vec<NodeId> = self.peers().collect();
            for p in peers {
                self.send(p, Body::Vote { last_index, last_term, transfer: false });
            }
        }
    }

    /// Counts a (pre-)vote and acts on the outcome.
    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        if self.votes.iter().any(|&(v, _)| v == from) {
            return;
        }
        self.votes.push((from, granted));
        let yes = self.votes.iter().filter(|v| v.1).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.campaign(false),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if no >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    fn become_leader(&mut self) {
        debug_assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.self_vote_seq = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.round = 0;
        self.round_in_flight = false;
        self.next_round_wanted = false;
        let last = self.log.last_index();
        let peers: Vec<NodeId> = self.peers().collect();
        self.progress = peers.into_iter().map(|p| Progress::new(p, last)).collect();
        // Cluster time continues from the newest entry we hold.
        self.time_base = self.log.entry(last).map_or(0, |e| e.time);
        self.time_elapsed = 0;
        self.uncommitted_bytes = 0;
        for i in self.commit + 1..=last {
            self.uncommitted_bytes += self.log.entry(i).map_or(0, |e| e.size());
        }
        self.write_hard_state();
        let term = self.term;
        self.event(Event::BecameLeader { term });
        // A no-op of our own term lets us commit (and learn the commit point)
        // without waiting for a client (Raft §8). It bypasses the Busy limit.
        let entry = crate::types::Entry { term, index: last + 1, time: self.cluster_time(), payload: Payload::Noop };
        self.uncommitted_bytes += entry.size();
        self.append_entries(alloc::vec![entry]);
        self.broadcast_append(false);
        if self.voters.len() == 1 {
            self.maybe_commit();
        }
    }

    /// Term bookkeeping common to every role; returns whether to go on handling
    /// the message.
    pub(crate) fn step_checked(&mut self, m: Message) {
        if m.term > self.term {
            match &m.body {
                Body::PreVote { .. } => {} // asking does not change terms
                Body::PreVoteResp { granted: true } => {}
                Body::Vote { transfer, .. } if !transfer && self.in_lease() => return,
                Body::Append { .. } | Body::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            // A stale sender learns our term so it steps down instead of
            // stalling the cluster (a partitioned old leader, a late candidate).
            match m.body {
                Body::Append { .. } => self
                    .send(m.from, Body::AppendResp { index: 0, success: false, hint_index: 0, hint_term: 0, round: 0 }),
                Body::PreVote { .. } => self.send(m.from, Body::PreVoteResp { granted: false }),
                Body::Vote { .. } => self.send(m.from, Body::VoteResp { granted: false }),
                Body::InstallSnapshot { index, snap_term, .. } => {
                    self.send(m.from, Body::InstallSnapshotResp { index, snap_term, offset: 0, done: false })
                }
                _ => {}
            }
            return;
        }
        match m.body {
            Body::PreVote { last_index, last_term } => self.handle_pre_vote(m.from, m.term, last_index, last_term),
            Body::Vote { last_index, last_term, .. } => self.handle_vote(m.from, last_index, last_term),
            Body::PreVoteResp { granted } => {
                if self.role == Role::PreCandidate && m.term == self.term + 1 {
                    self.record_vote(m.from, granted);
                } else if self.role == Role::PreCandidate && !granted && m.term == self.term {
                    self.record_vote(m.from, false);
                }
            }
            Body::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.record_vote(m.from, granted);
                }
            }
            Body::Append { prev_index, prev_term, entries, commit, round } => {
                if self.role != Role::Follower {
                    // A leader of our term exists: step down (a leader never sees this:
                    // there is one leader per term).
                    debug_assert_ne!(self.role, Role::Leader, "two leaders in term {}", self.term);
                    let term = self.term;
                    self.become_follower(term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.election_elapsed = 0;
                self.handle_append(m.from, prev_index, prev_term, entries, commit, round);
            }
            Body::AppendResp { index, success, hint_index, hint_term, round } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(m.from, index, success, hint_index, hint_term, round);
                }
            }
            Body::InstallSnapshot { index, snap_term, offset, data, done } => {
                if self.role != Role::Follower {
                    let term = self.term;
                    self.become_follower(term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.election_elapsed = 0;
                self.handle_install_snapshot(m.from, index, snap_term, offset, data, done);
            }
            Body::InstallSnapshotResp { index, snap_term, offset, done } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_resp(m.from, index, snap_term, offset, done);
                }
            }
        }
    }

    fn handle_pre_vote(&mut self, from: NodeId, term: Term, last_index: u64, last_term: Term) {
        // Grant if the asker's next term is ahead of ours, its log is up to date,
        // and we have not heard from a live leader recently.
        let up_to_date = self.bug(|b| b.vote_without_log_check) || self.log.is_up_to_date(last_index, last_term);
        let granted = term > self.term && up_to_date && !self.in_lease();
        let reply_term = if granted { term } else { self.term };
        let m = Message { from: self.cfg.id, to: from, term: reply_term, body: Body::PreVoteResp { granted } };
        self.ready.messages.push(m);
    }

    fn handle_vote(&mut self, from: NodeId, last_index: u64, last_term: Term) {
        let can_vote = self.voted_for == Some(from) || (self.voted_for.is_none() && self.leader.is_none());
        let up_to_date = self.bug(|b| b.vote_without_log_check) || self.log.is_up_to_date(last_index, last_term);
        if can_vote && up_to_date && self.role == Role::Follower {
            self.voted_for = Some(from);
            self.reset_election_timer();
            let seq = self.write_hard_state();
            if self.bug(|b| b.vote_before_durable) {
                self.send(from, Body::VoteResp { granted: true });
            } else {
                self.send_after(seq, from, Body::VoteResp { granted: true });
            }
        } else {
            self.send(from, Body::VoteResp { granted: false });
        }
    }
}
