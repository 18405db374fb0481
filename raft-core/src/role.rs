//! The state each role keeps, and only that role: a follower's snapshot
//! transfer, a (pre-)candidate's tally, a leader's view of every follower and
//! the client work it has promised to finish.
//!
//! Holding it in one enum makes impossible states unrepresentable: a follower
//! has no progress table to forget to clear, and a leader stepping down hands
//! its whole `Leader` back to the engine, which answers every pending write
//! and read from it before it is dropped.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::client::ClientToken;
use crate::election::Campaign;
use crate::lease::Lease;
use crate::progress::Progress;
use crate::quorum::JointConfig;
use crate::read::ReadQueue;
use crate::snapshot::Incoming;
use crate::types::{Index, NodeId, Role, Term};

/// What a follower keeps.
#[derive(Debug, Default)]
pub(crate) struct Follower {
    /// A snapshot transfer from the leader in progress.
    pub incoming: Option<Incoming>,
}

/// What a leader keeps.
#[derive(Debug)]
pub(crate) struct Leader {
    /// One entry per voter except the leader, sorted by id.
    pub progress: Vec<Progress>,
    /// Linearizable reads and their confirmation rounds.
    pub reads: ReadQueue,
    /// Client writes waiting for their entry to apply: (index, token, term),
    /// sorted by index (indexes only grow within a leadership).
    pub pending_writes: VecDeque<(Index, ClientToken, Term)>,
    /// Cluster time of the newest entry when this node took office, and ticks
    /// since: new entries are stamped `max(last entry's time, base + elapsed)`.
    pub time_base: u64,
    /// Ticks since taking office.
    pub time_elapsed: u64,
    /// Ticks since the last heartbeat round.
    pub heartbeat_elapsed: u32,
    /// Ticks since the last CheckQuorum.
    pub quorum_elapsed: u32,
    /// Bytes of entries above the commit index (for the Busy limit).
    pub uncommitted_bytes: usize,
    /// Followers need an AppendEntries at the next `take_ready` (proposals
    /// within one input share one message).
    pub pending_broadcast: bool,
    /// A leadership transfer in progress.
    pub transfer: Option<Transfer>,
    /// Lease reads: the send times of recent rounds and the lease they give.
    pub lease: Lease,
}

/// A leadership transfer in progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    /// The voter that is to lead.
    pub target: NodeId,
    /// Ticks since it started; abandoned after an election timeout.
    pub elapsed: u32,
    /// TimeoutNow has gone out.
    pub sent: bool,
}

impl Leader {
    /// A leader that just took office with its log ending at `last`,
    /// replicating to `followers` (sorted).
    pub fn new(followers: &[NodeId], last: Index, time_base: u64, uncommitted_bytes: usize) -> Self {
        let progress = followers.iter().map(|&id| Progress::new(id, last)).collect();
        Leader {
            progress,
            reads: ReadQueue::default(),
            pending_writes: VecDeque::new(),
            time_base,
            time_elapsed: 0,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            uncommitted_bytes,
            pending_broadcast: false,
            transfer: None,
            lease: Lease::default(),
        }
    }

    /// The progress of follower `id`.
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.progress.binary_search_by_key(&id, |p| p.id).ok().map(|i| &self.progress[i])
    }

    /// The progress of follower `id`, to change.
    pub fn progress_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.binary_search_by_key(&id, |p| p.id).ok().map(move |i| &mut self.progress[i])
    }

    /// Keeps one progress per id of `followers` (sorted): new ones start
    /// probing from `last + 1`, gone ones are dropped.
    pub fn track(&mut self, followers: &[NodeId], last: Index) {
        self.progress.retain(|p| followers.binary_search(&p.id).is_ok());
        for &id in followers {
            if let Err(at) = self.progress.binary_search_by_key(&id, |p| p.id) {
                self.progress.insert(at, Progress::new(id, last));
            }
        }
    }

    /// The highest index a quorum holds durably; the leader's own durable
    /// index is `own`, counted only where it is a voter.
    pub fn quorum_match(&self, me: NodeId, own: Index, config: &JointConfig) -> Index {
        // A follower that is recovering lost data is not counted (DESIGN §10).
        let counted = |p: &Progress| (!p.recovering && !p.unbound).then_some(p.match_index);
        config.committed(|id| if id == me { Some(own) } else { self.progress(id).and_then(counted) })
    }

    /// The newest confirmation round a quorum has acknowledged.
    pub fn quorum_round(&self, me: NodeId, config: &JointConfig) -> u64 {
        let round = self.reads.round();
        let counted = |p: &Progress| (!p.recovering && !p.unbound).then_some(p.acked_round);
        config.committed(|id| if id == me { Some(round) } else { self.progress(id).and_then(counted) })
    }

    /// Whether a quorum was heard from since the last CheckQuorum.
    pub fn quorum_active(&self, me: NodeId, config: &JointConfig) -> bool {
        config.is_quorum(|id| id == me || self.progress(id).is_some_and(|p| p.recent_active))
    }
}

/// The role and the state only it has.
#[derive(Debug)]
pub(crate) enum RoleState {
    /// Follows the leader of its term (or waits for one).
    Follower(Follower),
    /// Asks whether it could win, without changing any term.
    PreCandidate(Campaign),
    /// Raised its term, collects votes.
    Candidate(Campaign),
    /// Leads its term.
    Leader(Leader),
}

impl RoleState {
    /// The role's name.
    pub fn role(&self) -> Role {
        match self {
            RoleState::Follower(_) => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The leader's state, if this node leads.
    pub fn leader(&self) -> Option<&Leader> {
        match self {
            RoleState::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The leader's state, to change.
    pub fn leader_mut(&mut self) -> Option<&mut Leader> {
        match self {
            RoleState::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The campaign, if this node is a (pre-)candidate.
    pub fn campaign(&self) -> Option<&Campaign> {
        match self {
            RoleState::PreCandidate(c) | RoleState::Candidate(c) => Some(c),
            _ => None,
        }
    }

    /// The campaign, to change.
    pub fn campaign_mut(&mut self) -> Option<&mut Campaign> {
        match self {
            RoleState::PreCandidate(c) | RoleState::Candidate(c) => Some(c),
            _ => None,
        }
    }
}
