//! Leader election (Raft §5.2, §5.4.1; dissertation §9.6 PreVote, §6.2
//! CheckQuorum): the timer, the rules for granting a (pre-)vote, and a
//! campaign's tally.
//!
//! A follower that hears nothing from a leader for its randomised election
//! timeout first becomes a *pre-candidate*: it asks its peers whether they would
//! vote for it in the next term, without changing anyone's term. Only if a
//! quorum says yes does it raise its term and ask for real votes. A node cut
//! off in a minority therefore cannot inflate terms and depose a healthy leader
//! when it returns.
//!
//! A vote is granted only to a candidate whose term is current, whose log is at
//! least as up to date (last term, then last index), and only once per term.
//! The grant leaves only after the HardState recording it is durable: a node
//! that crashed and forgot its vote could otherwise vote twice in one term.
//!
//! With CheckQuorum, a follower that heard from a live leader within the
//! minimum election timeout ignores (pre-)vote requests (leader stickiness),
//! and a leader that has not heard from a quorum for an election timeout steps
//! down, so a deposed leader stops accepting work.
//!
//! The engine ([`crate::raft`]) owns the transitions; this module holds the
//! decisions, each borrowing only what it needs.

use alloc::vec::Vec;

use crate::config::Config;
use crate::log::Log;
use crate::quorum::{JointConfig, VoteResult};
use crate::rng::Rng;
use crate::types::{Index, NodeId, Seq, Term};

/// An election timeout: `E + rand[0, E)`, or exactly `E` without jitter.
pub(crate) fn draw_timeout(cfg: &Config, rng: &mut Rng) -> u32 {
    let e = cfg.election_ticks;
    if cfg.election_jitter {
        e + rng.below(e as u64) as u32
    } else {
        e
    }
}

/// Counts ticks toward an election (followers and candidates).
#[derive(Clone, Debug)]
pub(crate) struct ElectionTimer {
    /// Ticks since the last reset.
    pub elapsed: u32,
    /// The randomised timeout it counts toward.
    pub timeout: u32,
    rng: Rng,
}

impl ElectionTimer {
    /// A timer with its first timeout drawn.
    pub fn new(cfg: &Config) -> Self {
        let mut rng = Rng::new(cfg.seed ^ cfg.id.rotate_left(32));
        let timeout = draw_timeout(cfg, &mut rng);
        ElectionTimer { elapsed: 0, timeout, rng }
    }

    /// Starts counting again toward a fresh timeout.
    pub fn reset(&mut self, cfg: &Config) {
        self.elapsed = 0;
        self.timeout = draw_timeout(cfg, &mut self.rng);
    }

    /// One tick; returns whether the timeout has passed.
    pub fn tick(&mut self) -> bool {
        self.elapsed = self.elapsed.saturating_add(1);
        self.elapsed >= self.timeout
    }
}

/// Whether a node that heard from a live leader `elapsed` ticks ago should
/// ignore requests to elect someone else (leader stickiness, with CheckQuorum).
pub(crate) fn in_lease(cfg: &Config, leader: Option<NodeId>, elapsed: u32) -> bool {
    cfg.check_quorum && leader.is_some() && elapsed < cfg.election_ticks
}

/// Whether the candidate's log, ending at `(last_index, last_term)`, is at
/// least as up to date as `log` (the election restriction, Raft §5.4.1).
/// `skip_check` is the `vote_without_log_check` bug.
pub(crate) fn log_ok(log: &Log, last_index: Index, last_term: Term, skip_check: bool) -> bool {
    skip_check || log.is_up_to_date(last_index, last_term)
}

/// Whether to grant a real vote in the current term: not promised to anyone
/// else, no leader known for the term, and (checked by the caller) the log
/// rule. Only a follower votes: a candidate voted for itself, a leader is one.
pub(crate) fn can_vote(voted_for: Option<NodeId>, leader: Option<NodeId>, candidate: NodeId) -> bool {
    voted_for == Some(candidate) || (voted_for.is_none() && leader.is_none())
}

/// A (pre-)campaign in progress: who answered what.
#[derive(Clone, Debug, Default)]
pub(crate) struct Campaign {
    /// (voter, granted), each voter once.
    votes: Vec<(NodeId, bool)>,
    /// A candidate's own vote counts only once this HardState record is
    /// durable (a pre-candidate's counts at once: it changes nothing durable).
    pub self_vote_seq: Option<Seq>,
}

impl Campaign {
    /// A campaign whose own vote waits for `self_vote_seq` to be durable.
    pub fn new(self_vote_seq: Option<Seq>) -> Self {
        Campaign { votes: Vec::new(), self_vote_seq }
    }

    /// Records an answer (a second answer from the same voter is ignored) and
    /// returns the tally.
    pub fn record(&mut self, from: NodeId, granted: bool, config: &JointConfig) -> VoteResult {
        if !self.votes.iter().any(|&(v, _)| v == from) {
            self.votes.push((from, granted));
        }
        self.result(config)
    }

    /// The tally so far.
    pub fn result(&self, config: &JointConfig) -> VoteResult {
        config.vote_result(|id| self.votes.iter().find(|v| v.0 == id).map(|v| v.1))
    }

    /// The answers so far.
    pub fn votes(&self) -> &[(NodeId, bool)] {
        &self.votes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MajorityConfig;
    use alloc::vec;

    #[test]
    fn without_jitter_the_timeout_is_exact() {
        let mut cfg = Config::new(1, vec![1]);
        cfg.election_jitter = false;
        let mut t = ElectionTimer::new(&cfg);
        assert_eq!(t.timeout, cfg.election_ticks);
        t.reset(&cfg);
        assert_eq!(t.timeout, cfg.election_ticks);
        cfg.election_jitter = true;
        let drawn: Vec<u32> = (0..50).map(|_| draw_timeout(&cfg, &mut Rng::new(3))).collect();
        assert!(drawn.iter().all(|&d| (cfg.election_ticks..2 * cfg.election_ticks).contains(&d)));
    }

    #[test]
    fn a_campaign_counts_each_voter_once() {
        let c = JointConfig::simple(MajorityConfig::new(vec![1, 2, 3]));
        let mut camp = Campaign::new(None);
        assert_eq!(camp.record(1, true, &c), VoteResult::Pending);
        assert_eq!(camp.record(1, true, &c), VoteResult::Pending, "a duplicate is not a second vote");
        assert_eq!(camp.record(2, false, &c), VoteResult::Pending);
        assert_eq!(camp.record(2, true, &c), VoteResult::Pending, "a voter cannot change its answer");
        assert_eq!(camp.record(3, false, &c), VoteResult::Lost);
    }

    #[test]
    fn one_vote_per_term() {
        assert!(can_vote(None, None, 2));
        assert!(can_vote(Some(2), None, 2), "a repeated request gets the same answer");
        assert!(!can_vote(Some(3), None, 2));
        assert!(!can_vote(None, Some(3), 2), "a leader is known for this term");
    }
}
