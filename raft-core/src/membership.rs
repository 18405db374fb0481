//! Cluster membership: who votes, who only listens, and how a configuration
//! changes — as pure functions over values, in the spirit of etcd's
//! `confchange` package.
//!
//! A [`Membership`] lives in the log: every change is a [`ConfChange`] entry,
//! and a configuration takes effect on a node **as soon as its entry is
//! appended** there, not when it commits (dissertation §4.1: a node always
//! uses the latest configuration in its log, committed or not), and reverts if
//! the entry is truncated. The engine keeps the configurations of its log by
//! index for that; this module only computes the next configuration from the
//! current one.
//!
//! Two ways to change:
//!
//! * **Direct** (`joint: false`): at most one voter added or removed (learners
//!   may come and go with it). Any two majorities of configurations that differ
//!   by one voter intersect, so no joint phase is needed — provided a leader
//!   proposes it only after it has committed an entry of its own term (the
//!   2015 raft-dev bug) and only when no other change is unfinished.
//! * **Joint** (`joint: true`, dissertation §4.3): any change. The new
//!   configuration's voters become `voters` and the old ones stay as
//!   `outgoing`; every decision needs a majority of both, until a
//!   [`ConfChange::LeaveJoint`] entry drops `outgoing`. A voter demoted to
//!   learner during a joint change stays a voter of `outgoing` and is listed in
//!   `learners_next`; it becomes a learner when the joint phase ends (etcd's
//!   `LearnersNext`).
//!
//! [`Membership::apply`] refuses changes that would leave no voter, that name
//! an id inconsistently (removing an unknown id, adding a voter twice, one id
//! as voter and learner at once) or that need a joint phase but do not ask for
//! one. A follower applies a refused change found in its log as a no-op: the
//! refusal is a pure function of the log, so every replica makes the same one.
//!
//! ```
//! use raft_core::membership::{Change, ConfChange, Membership};
//! let m = Membership::bootstrap(&[1, 2, 3]);
//! // Replace 3 by 4 in one joint change.
//! let cc = ConfChange::Begin { joint: true, changes: vec![Change::AddVoter { id: 4, inc: 0 }, Change::Remove { id: 3 }] };
//! let joint = m.apply(&cc).unwrap();
//! assert!(joint.is_joint());
//! assert_eq!(joint.quorum().outgoing.ids(), &[1, 2, 3]);
//! let done = joint.apply(&ConfChange::LeaveJoint).unwrap();
//! assert_eq!(done.voter_ids(), vec![1, 2, 4]);
//! ```

use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::quorum::{JointConfig, MajorityConfig};
use crate::types::NodeId;

/// One member of a configuration: a node id and the incarnation of the
/// storage that was bound to this membership (0 where none is bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The node id.
    pub id: NodeId,
    /// The incarnation of its data directory bound here (0: unbound).
    pub inc: u64,
}

/// A configuration: voters (two halves while joint) and learners.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Voters of the configuration being moved to (the only voters outside a
    /// change). Sorted by id.
    pub voters: Vec<Member>,
    /// Voters of the configuration being left: non-empty only while joint.
    pub outgoing: Vec<Member>,
    /// Learners: receive entries and snapshots, never vote, never count.
    pub learners: Vec<Member>,
    /// Voters being demoted by a joint change: still voters of `outgoing`,
    /// learners once the joint phase ends.
    pub learners_next: Vec<Member>,
}

/// One step of a [`ConfChange::Begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// Make `id` a voter (a new node, or a learner being promoted), bound to
    /// incarnation `inc`.
    AddVoter {
        /// The node.
        id: NodeId,
        /// The incarnation the leader saw catch up (0: unbound).
        inc: u64,
    },
    /// Make `id` a learner (a new node, or a voter being demoted).
    AddLearner {
        /// The node.
        id: NodeId,
        /// Its incarnation (0: unbound).
        inc: u64,
    },
    /// Remove `id` from the configuration, whatever its role.
    Remove {
        /// The node.
        id: NodeId,
    },
}

/// A membership change, as carried by a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfChange {
    /// Apply `changes`; with `joint`, through a joint phase.
    Begin {
        /// Whether to enter a joint configuration (required for any change of
        /// more than one voter).
        joint: bool,
        /// The changes, applied in order.
        changes: Vec<Change>,
    },
    /// End the joint phase: drop the outgoing voters, turn `learners_next`
    /// into learners.
    LeaveJoint,
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeError {
    /// A change begins while the configuration is joint.
    AlreadyJoint,
    /// `LeaveJoint` outside a joint configuration.
    NotJoint,
    /// More than one voter changes without a joint phase.
    NeedsJoint,
    /// The change would leave no voter.
    NoVoters,
    /// An id is added as a voter but already is one.
    AlreadyVoter(NodeId),
    /// An id is added as a learner but already is one.
    AlreadyLearner(NodeId),
    /// An id is removed but is not a member.
    NotMember(NodeId),
    /// Node id 0 is reserved.
    ReservedId,
    /// A `Begin` with no changes.
    Empty,
}

impl fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChangeError::AlreadyJoint => f.write_str("a joint configuration must be left before another change"),
            ConfChangeError::NotJoint => f.write_str("the configuration is not joint"),
            ConfChangeError::NeedsJoint => f.write_str("more than one voter changes: use a joint change"),
            ConfChangeError::NoVoters => f.write_str("the change would leave no voter"),
            ConfChangeError::AlreadyVoter(id) => write!(f, "node {id} is already a voter"),
            ConfChangeError::AlreadyLearner(id) => write!(f, "node {id} is already a learner"),
            ConfChangeError::NotMember(id) => write!(f, "node {id} is not a member"),
            ConfChangeError::ReservedId => f.write_str("node id 0 is reserved"),
            ConfChangeError::Empty => f.write_str("the change names no node"),
        }
    }
}

fn ids(members: &[Member]) -> impl Iterator<Item = NodeId> + '_ {
    members.iter().map(|m| m.id)
}

fn find(members: &[Member], id: NodeId) -> Option<usize> {
    members.binary_search_by_key(&id, |m| m.id).ok()
}

fn insert(members: &mut Vec<Member>, m: Member) {
    match members.binary_search_by_key(&m.id, |x| x.id) {
        Ok(at) => members[at] = m,
        Err(at) => members.insert(at, m),
    }
}

fn remove(members: &mut Vec<Member>, id: NodeId) -> Option<Member> {
    find(members, id).map(|at| members.remove(at))
}

impl Membership {
    /// The configuration a cluster starts with: these voters, unbound.
    pub fn bootstrap(voters: &[NodeId]) -> Self {
        let members: Vec<Member> = voters.iter().map(|&id| Member { id, inc: 0 }).collect();
        Self::bootstrap_bound(&members)
    }

    /// The configuration a cluster starts with: these voters, each bound to
    /// the incarnation given.
    pub fn bootstrap_bound(voters: &[Member]) -> Self {
        let mut m = Membership::default();
        for &v in voters {
            insert(&mut m.voters, v);
        }
        m
    }

    /// The voting configuration for the quorum functions.
    pub fn quorum(&self) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(ids(&self.voters).collect()),
            outgoing: MajorityConfig::new(ids(&self.outgoing).collect()),
        }
    }

    /// Whether a change is in its joint phase.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes (in either half).
    pub fn is_voter(&self, id: NodeId) -> bool {
        find(&self.voters, id).is_some() || find(&self.outgoing, id).is_some()
    }

    /// Whether `id` is a learner (now, or once the joint phase ends and it is
    /// no longer a voter).
    pub fn is_learner(&self, id: NodeId) -> bool {
        find(&self.learners, id).is_some() || (find(&self.learners_next, id).is_some() && !self.is_voter(id))
    }

    /// Whether `id` belongs to the configuration in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || find(&self.learners, id).is_some() || find(&self.learners_next, id).is_some()
    }

    /// The member entry of `id`, whatever its role.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        [&self.voters, &self.outgoing, &self.learners, &self.learners_next]
            .into_iter()
            .find_map(|set| find(set, id).map(|at| set[at]))
    }

    /// Whether this configuration names `id` with incarnation `inc`, in any
    /// role: the test a node applies to itself before it votes or campaigns.
    pub fn names(&self, id: NodeId, inc: u64) -> bool {
        [&self.voters, &self.outgoing, &self.learners, &self.learners_next]
            .into_iter()
            .any(|set| find(set, id).is_some_and(|at| set[at].inc == inc))
    }

    /// Whether every half in which `id` votes binds it to `inc`: the test a
    /// candidate applies before counting `id`'s vote. While a member is
    /// replaced by a new incarnation of itself, the halves disagree and its
    /// vote counts in neither (safe: the rest of each half decides).
    pub fn votes_as(&self, id: NodeId, inc: u64) -> bool {
        [&self.voters, &self.outgoing].into_iter().all(|set| find(set, id).is_none_or(|at| set[at].inc == inc))
    }

    /// Every voter id of either half, sorted, once each.
    pub fn voter_ids(&self) -> Vec<NodeId> {
        self.quorum().ids()
    }

    /// Every member id (voters of both halves, learners), sorted, once each:
    /// the nodes a leader replicates to.
    pub fn member_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = ids(&self.voters)
            .chain(ids(&self.outgoing))
            .chain(ids(&self.learners))
            .chain(ids(&self.learners_next))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The configuration after `cc`, or why it is refused.
    pub fn apply(&self, cc: &ConfChange) -> Result<Membership, ConfChangeError> {
        match cc {
            ConfChange::LeaveJoint => {
                if !self.is_joint() {
                    return Err(ConfChangeError::NotJoint);
                }
                let mut next = self.clone();
                next.outgoing.clear();
                for m in core::mem::take(&mut next.learners_next) {
                    insert(&mut next.learners, m);
                }
                Ok(next)
            }
            ConfChange::Begin { joint, changes } => {
                if self.is_joint() {
                    return Err(ConfChangeError::AlreadyJoint);
                }
                if changes.is_empty() {
                    return Err(ConfChangeError::Empty);
                }
                let mut next = self.clone();
                if *joint {
                    next.outgoing = self.voters.clone();
                }
                for change in changes {
                    next.step(*change, *joint)?;
                }
                if next.voters.is_empty() {
                    return Err(ConfChangeError::NoVoters);
                }
                if !*joint {
                    let before: Vec<NodeId> = ids(&self.voters).collect();
                    let after: Vec<NodeId> = ids(&next.voters).collect();
                    let changed = before.iter().filter(|id| !after.contains(id)).count()
                        + after.iter().filter(|id| !before.contains(id)).count();
                    if changed > 1 {
                        return Err(ConfChangeError::NeedsJoint);
                    }
                }
                if !next.is_joint() {
                    next.outgoing.clear();
                }
                Ok(next)
            }
        }
    }

    /// One change of a `Begin`, on the incoming configuration.
    fn step(&mut self, change: Change, joint: bool) -> Result<(), ConfChangeError> {
        match change {
            Change::AddVoter { id, inc } => {
                if id == 0 {
                    return Err(ConfChangeError::ReservedId);
                }
                if let Some(at) = find(&self.voters, id) {
                    // The same id with another incarnation: its directory was
                    // replaced. Rebinding takes a joint change (the outgoing
                    // half keeps the old incarnation, whose vote no longer
                    // comes), never a direct one.
                    if self.voters[at].inc == inc || inc == 0 {
                        return Err(ConfChangeError::AlreadyVoter(id));
                    }
                    if !joint {
                        return Err(ConfChangeError::NeedsJoint);
                    }
                }
                remove(&mut self.learners, id);
                remove(&mut self.learners_next, id);
                insert(&mut self.voters, Member { id, inc });
            }
            Change::AddLearner { id, inc } => {
                if id == 0 {
                    return Err(ConfChangeError::ReservedId);
                }
                if find(&self.learners, id).is_some() || find(&self.learners_next, id).is_some() {
                    return Err(ConfChangeError::AlreadyLearner(id));
                }
                let was_voter = remove(&mut self.voters, id);
                let m = Member { id, inc: was_voter.map_or(inc, |v| v.inc) };
                if joint && find(&self.outgoing, id).is_some() {
                    // Still a voter of the outgoing half until the joint phase ends.
                    insert(&mut self.learners_next, m);
                } else {
                    insert(&mut self.learners, m);
                }
            }
            Change::Remove { id } => {
                let known = remove(&mut self.voters, id).is_some()
                    | remove(&mut self.learners, id).is_some()
                    | remove(&mut self.learners_next, id).is_some()
                    | find(&self.outgoing, id).is_some();
                if !known {
                    return Err(ConfChangeError::NotMember(id));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn voter(id: NodeId) -> Change {
        Change::AddVoter { id, inc: 0 }
    }
    fn learner(id: NodeId) -> Change {
        Change::AddLearner { id, inc: 0 }
    }
    fn direct(changes: Vec<Change>) -> ConfChange {
        ConfChange::Begin { joint: false, changes }
    }
    fn joint(changes: Vec<Change>) -> ConfChange {
        ConfChange::Begin { joint: true, changes }
    }

    #[test]
    fn one_voter_may_change_directly() {
        let m = Membership::bootstrap(&[1, 2, 3]);
        let added = m.apply(&direct(vec![voter(4)])).unwrap();
        assert_eq!(added.voter_ids(), vec![1, 2, 3, 4]);
        assert!(!added.is_joint());
        let removed = added.apply(&direct(vec![Change::Remove { id: 1 }])).unwrap();
        assert_eq!(removed.voter_ids(), vec![2, 3, 4]);
        // Learners may come along with a direct change.
        let with_learner = m.apply(&direct(vec![voter(4), learner(5)])).unwrap();
        assert!(with_learner.is_learner(5) && !with_learner.is_voter(5));
        assert_eq!(m.apply(&direct(vec![voter(4), voter(5)])), Err(ConfChangeError::NeedsJoint));
        assert_eq!(m.apply(&direct(vec![voter(4), Change::Remove { id: 3 }])), Err(ConfChangeError::NeedsJoint));
    }

    #[test]
    fn joint_keeps_the_old_voters_until_it_is_left() {
        let m = Membership::bootstrap(&[1, 2, 3]);
        let j = m.apply(&joint(vec![voter(4), voter(5), Change::Remove { id: 1 }])).unwrap();
        assert!(j.is_joint());
        assert_eq!(j.quorum().incoming.ids(), &[2, 3, 4, 5]);
        assert_eq!(j.quorum().outgoing.ids(), &[1, 2, 3]);
        assert!(j.is_voter(1), "a removed voter still votes in the outgoing half");
        assert_eq!(j.apply(&direct(vec![voter(6)])), Err(ConfChangeError::AlreadyJoint));
        let left = j.apply(&ConfChange::LeaveJoint).unwrap();
        assert_eq!(left.voter_ids(), vec![2, 3, 4, 5]);
        assert!(!left.contains(1));
        assert_eq!(left.apply(&ConfChange::LeaveJoint), Err(ConfChangeError::NotJoint));
    }

    #[test]
    fn demotion_in_joint_waits_in_learners_next() {
        let m = Membership::bootstrap(&[1, 2, 3]);
        let j = m.apply(&joint(vec![learner(3)])).unwrap();
        assert!(j.is_voter(3), "3 still votes in the outgoing half");
        assert!(!j.is_learner(3));
        assert_eq!(j.learners_next, vec![Member { id: 3, inc: 0 }]);
        let left = j.apply(&ConfChange::LeaveJoint).unwrap();
        assert!(left.is_learner(3) && !left.is_voter(3));
        // Promotion back is a change like any other.
        let back = left.apply(&direct(vec![voter(3)])).unwrap();
        assert!(back.is_voter(3) && !back.is_learner(3));
    }

    #[test]
    fn inconsistent_changes_are_refused() {
        let m = Membership::bootstrap(&[1, 2, 3]);
        assert_eq!(m.apply(&direct(vec![voter(2)])), Err(ConfChangeError::AlreadyVoter(2)));
        assert_eq!(m.apply(&direct(vec![Change::Remove { id: 9 }])), Err(ConfChangeError::NotMember(9)));
        assert_eq!(m.apply(&direct(vec![voter(0)])), Err(ConfChangeError::ReservedId));
        assert_eq!(m.apply(&direct(vec![])), Err(ConfChangeError::Empty));
        let one = Membership::bootstrap(&[1]);
        assert_eq!(one.apply(&direct(vec![Change::Remove { id: 1 }])), Err(ConfChangeError::NoVoters));
        let with_learner = m.apply(&direct(vec![learner(4)])).unwrap();
        assert_eq!(with_learner.apply(&direct(vec![learner(4)])), Err(ConfChangeError::AlreadyLearner(4)));
    }

    #[test]
    fn incarnations_travel_with_the_member() {
        let m = Membership::bootstrap(&[1]);
        let l = m.apply(&direct(vec![Change::AddLearner { id: 2, inc: 77 }])).unwrap();
        assert_eq!(l.member(2), Some(Member { id: 2, inc: 77 }));
        let v = l.apply(&direct(vec![Change::AddVoter { id: 2, inc: 78 }])).unwrap();
        assert_eq!(v.member(2), Some(Member { id: 2, inc: 78 }), "promotion binds the incarnation seen catching up");
    }
}
