//! Majorities: the only place that counts them.
//!
//! Commit (the largest index a majority holds durably), the vote and pre-vote
//! tallies, the ReadIndex round a majority acknowledged and CheckQuorum all
//! ask one of three questions of a configuration, answered here by pure
//! functions over `(id, value)` lookups:
//!
//! * [`JointConfig::committed`] — the largest value a quorum has reached;
//! * [`JointConfig::vote_result`] — whether a set of yes/no answers has won,
//!   lost, or can still go either way;
//! * [`JointConfig::is_quorum`] — whether a set of ids is a quorum.
//!
//! A [`JointConfig`] is two [`MajorityConfig`]s, `incoming` and `outgoing`;
//! while a membership change is in its joint phase, every decision needs a
//! majority of *both* (Raft dissertation §4.3). Outside a change `outgoing`
//! is empty and the joint answers reduce to the incoming majority's: an empty
//! majority agrees with anything (it commits `u64::MAX` and always votes yes),
//! so the minimum and the conjunction leave the other half's answer alone.
//!
//! Nothing here knows who the leader is. The caller's lookup answers for the
//! leader too (its own durable index, its own vote), and an id counts only
//! where it is a voter of that half: a leader that is removing itself still
//! replicates but is not counted by the half it is leaving.
//!
//! ```
//! use raft_core::quorum::{JointConfig, MajorityConfig, VoteResult};
//! let c = JointConfig::simple(MajorityConfig::new(vec![1, 2, 3]));
//! let matched = |id| [(1, 7), (2, 5), (3, 9)].iter().find(|p| p.0 == id).map(|p| p.1);
//! assert_eq!(c.committed(matched), 7);
//! assert_eq!(c.vote_result(|id| (id == 1).then_some(true)), VoteResult::Pending);
//! assert_eq!(c.vote_result(|id| (id != 3).then_some(true)), VoteResult::Won);
//! ```

use alloc::vec::Vec;

use crate::types::NodeId;

/// The outcome of a vote count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum said yes.
    Won,
    /// Enough said no that a quorum of yes is impossible.
    Lost,
    /// Still open: the missing answers could decide it either way.
    Pending,
}

/// A set of voters deciding by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    /// Sorted, without duplicates.
    voters: Vec<NodeId>,
}

impl MajorityConfig {
    /// A majority configuration of these voters (any order; duplicates are dropped).
    pub fn new(mut voters: Vec<NodeId>) -> Self {
        voters.sort_unstable();
        voters.dedup();
        MajorityConfig { voters }
    }

    /// The voters, sorted.
    pub fn ids(&self) -> &[NodeId] {
        &self.voters
    }

    /// Whether `id` votes here.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest value at least a majority of voters has reached, where
    /// `value(id)` is a voter's value (`None` counts as 0). An empty
    /// configuration reaches everything: `u64::MAX`.
    pub fn committed(&self, value: impl Fn(NodeId) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        // Sorting on the stack keeps the commit path free of allocation for
        // clusters of up to 16 voters; larger ones allocate.
        let mut buf = [0u64; 16];
        let mut heap: Vec<u64> = Vec::new();
        let vals: &mut [u64] = if self.voters.len() <= buf.len() {
            for (slot, &id) in buf.iter_mut().zip(&self.voters) {
                *slot = value(id).unwrap_or(0);
            }
            &mut buf[..self.voters.len()]
        } else {
            heap.extend(self.voters.iter().map(|&id| value(id).unwrap_or(0)));
            &mut heap
        };
        vals.sort_unstable_by(|a, b| b.cmp(a));
        vals[self.majority() - 1]
    }

    /// Counts yes/no answers; `vote(id)` is `None` for a voter not heard from.
    /// An empty configuration has won.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for &id in &self.voters {
            match vote(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.majority();
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// Whether the ids for which `member` holds make a majority.
    pub fn is_quorum(&self, member: impl Fn(NodeId) -> bool) -> bool {
        self.vote_result(|id| Some(member(id))) == VoteResult::Won
    }
}

/// A configuration that may be in the joint phase of a membership change:
/// every decision needs a majority of `incoming` and of `outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The voters being moved to (the only ones outside a change).
    pub incoming: MajorityConfig,
    /// The voters being left (empty outside a change).
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// A configuration outside any change.
    pub fn simple(voters: MajorityConfig) -> Self {
        JointConfig { incoming: voters, outgoing: MajorityConfig::default() }
    }

    /// Whether a change is in its joint phase.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Every voter of either half, sorted, once each.
    pub fn ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.incoming.ids().iter().chain(self.outgoing.ids()).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether the configuration has exactly one voter and it is `id`: such a
    /// node decides alone, at once.
    pub fn is_sole_voter(&self, id: NodeId) -> bool {
        let alone = |m: &MajorityConfig| m.is_empty() || m.ids() == [id];
        self.incoming.ids() == [id] && alone(&self.outgoing)
    }

    /// The largest value a quorum of both halves has reached.
    pub fn committed(&self, value: impl Fn(NodeId) -> Option<u64>) -> u64 {
        self.incoming.committed(&value).min(self.outgoing.committed(&value))
    }

    /// Both halves must win; either losing loses.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        match (self.incoming.vote_result(&vote), self.outgoing.vote_result(&vote)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether the ids for which `member` holds are a quorum of both halves.
    pub fn is_quorum(&self, member: impl Fn(NodeId) -> bool) -> bool {
        self.incoming.is_quorum(&member) && self.outgoing.is_quorum(&member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn lookup(pairs: &[(NodeId, u64)]) -> impl Fn(NodeId) -> Option<u64> + '_ {
        move |id| pairs.iter().find(|p| p.0 == id).map(|p| p.1)
    }

    #[test]
    fn committed_is_the_majority_point() {
        let c = MajorityConfig::new(vec![1, 2, 3]);
        assert_eq!(c.committed(lookup(&[(1, 5), (2, 3), (3, 9)])), 5);
        let c = MajorityConfig::new(vec![1, 2, 3, 4, 5]);
        assert_eq!(c.committed(lookup(&[(1, 1), (2, 7), (3, 7), (4, 2), (5, 2)])), 2);
        assert_eq!(MajorityConfig::new(vec![4]).committed(lookup(&[(4, 4)])), 4);
        // Missing values count as 0; ids outside the configuration do not count.
        assert_eq!(c.committed(lookup(&[(1, 9), (2, 9), (6, 9), (7, 9)])), 0);
        // More voters than fit on the stack.
        let big = MajorityConfig::new((1..=21).collect());
        assert_eq!(big.committed(|id| Some(id * 10)), 110);
    }

    #[test]
    fn a_leader_outside_the_configuration_is_not_counted() {
        // Leader 1 is removing itself: voters are {2, 3, 4}; its own index does not count.
        let c = MajorityConfig::new(vec![2, 3, 4]);
        assert_eq!(c.committed(lookup(&[(1, 100), (2, 10), (3, 5), (4, 1)])), 5);
    }

    #[test]
    fn votes_win_lose_or_wait() {
        let c = MajorityConfig::new(vec![1, 2, 3, 4]);
        let v = |yes: &'static [NodeId], no: &'static [NodeId]| {
            move |id| {
                if yes.contains(&id) {
                    Some(true)
                } else if no.contains(&id) {
                    Some(false)
                } else {
                    None
                }
            }
        };
        assert_eq!(c.vote_result(v(&[1, 2], &[])), VoteResult::Pending);
        assert_eq!(c.vote_result(v(&[1, 2, 3], &[])), VoteResult::Won);
        assert_eq!(c.vote_result(v(&[1], &[2, 3])), VoteResult::Lost);
        assert_eq!(c.vote_result(v(&[1, 2], &[3, 4])), VoteResult::Lost);
        assert!(MajorityConfig::new(vec![1, 2, 3]).is_quorum(|id| id != 2));
        assert!(!MajorityConfig::new(vec![1, 2, 3]).is_quorum(|id| id == 2));
    }

    #[test]
    fn joint_needs_both_halves() {
        let j =
            JointConfig { incoming: MajorityConfig::new(vec![1, 2, 3]), outgoing: MajorityConfig::new(vec![3, 4, 5]) };
        assert!(j.is_joint());
        // 1, 2 are a majority of incoming but nothing of outgoing.
        assert_eq!(j.vote_result(|id| (id <= 2).then_some(true)), VoteResult::Pending);
        assert_eq!(j.vote_result(|id| Some(id <= 2)), VoteResult::Lost);
        assert_eq!(j.vote_result(|id| Some(id == 2 || id == 3 || id == 4)), VoteResult::Won);
        let m = lookup(&[(1, 9), (2, 9), (3, 4), (4, 2), (5, 1)]);
        assert_eq!(j.committed(m), 2, "the outgoing half holds back the commit point");
        assert!(j.is_quorum(|id| [1, 3, 4].contains(&id)));
        assert!(!j.is_quorum(|id| [1, 2, 4].contains(&id)));
        assert_eq!(j.ids(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_simple_config_is_its_incoming_majority() {
        let j = JointConfig::simple(MajorityConfig::new(vec![3, 1, 2, 2]));
        assert!(!j.is_joint());
        assert_eq!(j.incoming.ids(), &[1, 2, 3]);
        assert_eq!(j.committed(Some), 2);
        assert!(JointConfig::simple(MajorityConfig::new(vec![7])).is_sole_voter(7));
        assert!(!j.is_sole_voter(1));
    }
}
