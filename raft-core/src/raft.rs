//! The Raft engine: one struct, stepped one input at a time, that hands its
//! outputs to the host in a [`Ready`].
//!
//! This file is the only one that sees the whole node. It holds the inputs
//! ([`Raft::tick`], [`Raft::step`], [`Raft::submit`], [`Raft::propose`],
//! [`Raft::persisted`]), the term rules every message passes first, one step
//! function per role (`step_follower`, `step_candidate`, `step_leader`, as in
//! etcd's `raft.go`), the role transitions, and commit and apply. The
//! decisions live in modules that borrow only what they need and never import
//! this one:
//!
//! * [`quorum`](crate::quorum) — every majority count;
//! * [`election`] — timer, vote rules, a campaign's tally;
//! * [`replication`] — what a leader sends, what it learns
//!   from answers, what a follower does with entries;
//! * [`read`](crate::read) — ReadIndex rounds; [`apply`](crate::apply) — the
//!   state machine and sessions; [`snapshot`] — formats,
//!   policy and transfer chunks;
//! * [`storage`](crate::storage) — the log and journal records;
//!   [`outbox`](crate::outbox) — messages (held until durable), replies, events;
//! * [`role`](crate::role) — the state only one role has.
//!
//! At the end of every input the engine checks its invariants
//! (`debug_check`: `applied ≤ commit ≤ last`, `durable ≤ last`, a leader and
//! only a leader knows itself as leader, …) in debug builds: they are the
//! documentation that cannot go stale.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::apply::Machine;
use crate::client::{ClientError, ClientReply, ClientRequest, ClientToken};
use crate::election::{self, Campaign, ElectionTimer};
use crate::entry::{Entry, Payload};
use crate::follower_read::FollowerReads;
use crate::journal::{DurableState, Record, SnapshotMeta};
use crate::lease;
use crate::log::Log;
use crate::membership::{Change, ConfChange, ConfChangeError, Membership};
use crate::message::{Body, Message};
use crate::outbox::Outbox;
use crate::progress::{Progress, ProgressState};
use crate::quorum::{JointConfig, VoteResult};
use crate::replication::{self, Leading, Learnt, Verdict};
use crate::role::{Follower, Leader, RoleState};
use crate::session::Sessions;
use crate::snapshot::{
    self, BodyRef, Chunk, Incoming, RecoverError, Snapshot, SnapshotBody, SnapshotError, SnapshotJob, SnapshotOut,
};
use crate::state_machine::StateMachine;
use crate::storage::Storage;
use crate::types::{HardState, Index, NodeId, Role, Seq, Term};

pub use crate::config::{Bugs, Config, ConfigError};
pub use crate::ready::{Applied, Event, Ready};

/// Why a proposal was refused. Either way the command never entered the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader; `leader_hint` is the leader of its term, if known.
    NotLeader {
        /// Where to go instead.
        leader_hint: Option<NodeId>,
    },
    /// The leader holds too many uncommitted entries or bytes; try again later.
    Busy,
}

/// Why an input was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The message is addressed to another node.
    WrongRecipient,
    /// The sender claims to be this node, or the reserved id 0.
    UnknownSender,
}

/// Why a membership change was refused before it entered the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeRefused {
    /// Only the leader changes the configuration.
    NotLeader {
        /// The leader of this node's term, if known.
        leader_hint: Option<NodeId>,
    },
    /// The leader has not yet committed an entry of its own term: a change
    /// proposed now could be decided by a quorum that misses one an earlier
    /// leader made (the single-server change bug of 2015).
    TermNotCommitted,
    /// Another change is unfinished: its entry is not committed, or the
    /// configuration is still joint.
    ChangeInProgress,
    /// A leadership transfer is in progress.
    Transferring,
    /// The change itself is inconsistent with the configuration.
    Invalid(ConfChangeError),
    /// A learner (or new node) to be made a voter lags the leader's log by
    /// more than `Config::max_promotion_lag` entries (pass `force` to override).
    LearnerBehind {
        /// The node.
        id: NodeId,
        /// Entries it lacks.
        lag: u64,
    },
    /// The leader's log holds too much that is uncommitted.
    Busy,
    /// A voter would be bound to no incarnation: the cluster binds its
    /// members (this leader has one), the change named none, and the leader
    /// has not heard the node answer yet. Such a voter could never vote.
    /// Add it as a learner first, or name its incarnation.
    UnknownIncarnation(NodeId),
}

impl fmt::Display for ConfChangeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChangeRefused::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader (node {l} is)"),
            ConfChangeRefused::NotLeader { leader_hint: None } => f.write_str("not the leader (none known)"),
            ConfChangeRefused::TermNotCommitted => f.write_str("the leader has not committed an entry of its term yet"),
            ConfChangeRefused::ChangeInProgress => f.write_str("another membership change is unfinished"),
            ConfChangeRefused::Transferring => f.write_str("a leadership transfer is in progress"),
            ConfChangeRefused::Invalid(e) => write!(f, "{e}"),
            ConfChangeRefused::LearnerBehind { id, lag } => write!(f, "node {id} is {lag} entries behind the leader"),
            ConfChangeRefused::Busy => f.write_str("the leader is busy"),
            ConfChangeRefused::UnknownIncarnation(id) => {
                write!(f, "node {id} has not answered yet, so its incarnation is unknown: add it as a learner first")
            }
        }
    }
}

/// Why a leadership transfer could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader transfers leadership.
    NotLeader {
        /// The leader of this node's term, if known.
        leader_hint: Option<NodeId>,
    },
    /// The target is this node.
    AlreadyLeader,
    /// The target does not vote in the configuration in force.
    NotAVoter(NodeId),
    /// There is no other voter to hand leadership to.
    NoOtherVoter,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader (node {l} is)"),
            TransferError::NotLeader { leader_hint: None } => f.write_str("not the leader (none known)"),
            TransferError::AlreadyLeader => f.write_str("this node already leads"),
            TransferError::NotAVoter(id) => write!(f, "node {id} is not a voter"),
            TransferError::NoOtherVoter => f.write_str("there is no other voter"),
        }
    }
}

/// Where a linearizable read that arrives at the leader stands
/// ([`Raft::read_at`]).
enum ReadAt {
    /// On the leader's lease: answerable at this index without a round.
    Lease(u64),
    /// Waits for a round that confirms leadership, at this index (`None`
    /// until an entry of the leader's term has committed).
    Round(Option<u64>),
}

/// One Raft node: the consensus engine and the state machine it drives.
///
/// Create it with [`Raft::new`] (a new node) or [`Raft::recover`] (from the
/// state replayed out of its journal), feed it inputs, and drain its [`Ready`].
pub struct Raft<S: StateMachine> {
    cfg: Config,
    /// The configuration in force: the newest in the log (see [`crate::configs`]).
    membership: Membership,
    /// Its voters, for the quorum functions (joint during a change).
    config: JointConfig,
    /// The `ConfigLog` version and commit index `membership` was taken at.
    membership_seen: (u64, Index),
    /// Index of the committed configuration the leader's followers were last
    /// matched against.
    committed_config_seen: Index,
    term: Term,
    voted_for: Option<NodeId>,
    /// See [`HardState::lost_data`]: set at recovery from the journal,
    /// cleared (durably) once this node matched a leader up to its commit.
    lost_data: bool,
    /// Ticks since this node started (saturating): a node that has just
    /// started ignores vote requests for the minimum election timeout.
    ticks_since_start: u32,
    /// The host's monotonic clock as last passed in ([`Raft::set_clock`]);
    /// used only for lease reads.
    clock: u64,
    /// Reads this node serves as a follower ([`crate::follower_read`]).
    follower_reads: FollowerReads,
    /// The leader of the current term, once known (this node when it leads).
    leader: Option<NodeId>,
    role: RoleState,
    /// Followers and candidates count toward an election; a leader ignores it.
    timer: ElectionTimer,
    storage: Storage,
    commit: Index,
    machine: Machine<S>,
    /// The latest snapshot, taken or installed (kept to send to followers).
    snapshot: Option<Arc<Snapshot>>,
    /// A Snapshot record not yet durable: (seq, index, term); compact after.
    compact_pending: Option<(Seq, Index, Term)>,
    /// The snapshot the host is building off its event loop
    /// (`Config::async_snapshots`), until it reports it stored or failed.
    building: Option<SnapshotMeta>,
    out: Outbox,
}

impl<S: StateMachine> Raft<S> {
    /// A brand-new node with an empty journal.
    pub fn new(cfg: Config, sm: S) -> Result<Self, ConfigError> {
        Self::restart(cfg, DurableState::default(), sm)
    }

    /// A node restarting from the state replayed out of its journal, when the
    /// journal names no snapshot (otherwise use [`Raft::recover`]).
    pub fn restart(cfg: Config, durable: DurableState, sm: S) -> Result<Self, ConfigError> {
        if durable.snapshot.is_some() {
            return Err(ConfigError("the journal names a snapshot: use Raft::recover with its data"));
        }
        Self::recover(cfg, durable, None, sm).map_err(|e| match e {
            RecoverError::Config(c) => c,
            RecoverError::Snapshot(_) => ConfigError("snapshot"),
        })
    }

    /// A node restarting from its journal and the snapshot it names. It always
    /// starts as a follower; its commit index is the snapshot's until a leader
    /// says more.
    pub fn recover(cfg: Config, durable: DurableState, snapshot: Option<&[u8]>, sm: S) -> Result<Self, RecoverError> {
        cfg.validate().map_err(RecoverError::Config)?;
        let meta = durable.snapshot.clone();
        // The state machine starts at the snapshot (restored below) and
        // replays the log as the commit index is learnt again.
        let snap_index = durable.log.snapshot_index();
        let no_dedup = cfg!(feature = "bugs") && cfg.bugs.no_dedup;
        // The configuration as of the log's start: the snapshot's (restored
        // below, before the log's own changes are read), or the bootstrap one.
        let snap_body = match (&meta, snapshot) {
            (Some(meta), Some(data)) => {
                let body = SnapshotBody::decode(data, cfg.max_snapshot_bytes).map_err(RecoverError::Snapshot)?;
                if body.index != meta.index || body.term != meta.term {
                    return Err(RecoverError::Snapshot(SnapshotError::Mismatch));
                }
                Some(body)
            }
            (Some(_), None) => return Err(RecoverError::Snapshot(SnapshotError::Missing)),
            (None, _) => None,
        };
        let base =
            snap_body.as_ref().map_or_else(|| Membership::bootstrap_bound(&cfg.voters), |b| b.membership.clone());
        let hard = durable.hard;
        let storage = Storage::new(durable, base);
        let membership = storage.configs().latest().clone();
        let mut node = Raft {
            config: membership.quorum(),
            membership,
            membership_seen: (u64::MAX, 0),
            committed_config_seen: 0,
            term: hard.term,
            voted_for: hard.voted_for,
            lost_data: hard.lost_data,
            // A node that has never seen a term followed no leader whose
            // lease its restart could cut short: it is settled from the start.
            ticks_since_start: if hard.term == 0 { cfg.election_ticks } else { 0 },
            clock: 0,
            follower_reads: FollowerReads::default(),
            leader: None,
            role: RoleState::Follower(Follower::default()),
            timer: ElectionTimer::new(&cfg),
            commit: snap_index,
            machine: Machine::new(sm, cfg.sessions, no_dedup, snap_index),
            snapshot: None,
            compact_pending: None,
            building: None,
            out: Outbox::new(cfg.max_held_messages),
            storage,
            cfg,
        };
        if let (Some(meta), Some(body), Some(data)) = (meta, snap_body, snapshot) {
            node.restore(body).map_err(RecoverError::Snapshot)?;
            node.snapshot = Some(Arc::new(Snapshot { meta, data: data.to_vec() }));
        }
        node.sync_membership();
        node.out.take(Vec::new(), false); // a recovered configuration is not news
        node.debug_check();
        Ok(node)
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// The host's monotonic clock now, in the units of
    /// [`Config::lease_reads`]' timing. With lease reads on, call it before
    /// every input (tick, step, submit, persisted): the engine stamps the
    /// rounds it sends with it, and checks a read's lease against it. A
    /// value below the last one is ignored (the clock never runs back).
    /// Without lease reads it is not needed.
    ///
    /// ```
    /// use raft_core::{Config, DigestMachine, Raft};
    /// let mut node = Raft::new(Config::new(1, vec![1, 2, 3]), DigestMachine::default()).unwrap();
    /// node.set_clock(1_000);
    /// node.set_clock(900); // ignored
    /// assert_eq!(node.clock(), 1_000);
    /// ```
    pub fn set_clock(&mut self, now: u64) {
        self.clock = self.clock.max(now);
    }

    /// Until when (on this node's clock) its lease holds, if it leads and
    /// holds one ([`crate::lease`]).
    pub fn lease_until(&self) -> Option<u64> {
        self.role.leader().and_then(|l| l.lease.until()).filter(|&u| u > self.clock)
    }

    /// The clock as last passed in with [`Raft::set_clock`].
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.ticks_since_start = self.ticks_since_start.saturating_add(1);
        if !self.follower_reads.is_empty() {
            let hint = self.leader;
            self.follower_reads.tick(self.cfg.election_ticks, hint, &mut self.out);
        }
        if self.is_leader() {
            self.tick_leader();
        } else if self.timer.tick() {
            if self.may_campaign() {
                self.campaign(self.cfg.pre_vote);
            } else {
                // A learner, a removed node or one still joining never
                // campaigns: it waits to hear from a leader.
                self.timer.reset(&self.cfg);
            }
        }
        self.debug_check();
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.cfg.id {
            return Err(StepError::WrongRecipient);
        }
        // Senders outside this node's configuration are still heard: a
        // leader may already use a configuration this node has not yet
        // appended, and a candidate's votes count only where it is a voter.
        if m.from == self.cfg.id || m.from == 0 {
            return Err(StepError::UnknownSender);
        }
        if self.step_term(&m) {
            match m.body {
                Body::PreVote { last_index, last_term } => {
                    self.handle_pre_vote(m.from, m.to_inc, m.term, last_index, last_term)
                }
                Body::Vote { last_index, last_term, transfer } => {
                    self.handle_vote(m.from, m.to_inc, transfer, last_index, last_term)
                }
                _ => match self.role {
                    RoleState::Follower(_) => self.step_follower(m),
                    RoleState::PreCandidate(_) | RoleState::Candidate(_) => self.step_candidate(m),
                    RoleState::Leader(_) => self.step_leader(m),
                },
            }
        }
        self.debug_check();
        Ok(())
    }

    /// Proposes a command. On success returns the (index, term) it was appended
    /// at; the result arrives in [`Ready::applied`] once it commits. A refusal
    /// guarantees the command never entered the log.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        let r = if self.transferring() {
            Err(ProposeError::Busy)
        } else {
            self.propose_payload(Payload::Command(data.into()), false)
        };
        self.debug_check();
        r
    }

    /// A client request. The reply arrives in [`Ready::replies`] under `token`:
    /// at once if it is refused before queueing, otherwise once its entry is
    /// applied (writes) or its confirmation round completes (reads).
    pub fn submit(&mut self, token: ClientToken, request: ClientRequest) {
        self.submit_request(token, request);
        self.debug_check();
    }

    /// The host reports that journal records up to `seq` are durable.
    pub fn persisted(&mut self, seq: Seq) {
        if self.storage.persisted(seq) {
            let s = &self.storage;
            self.out.release(s.durable_seq(), self.term, s.truncations());
            self.maybe_compact();
            let durable = self.storage.durable_seq();
            let own_vote_durable =
                matches!(&self.role, RoleState::Candidate(c) if c.self_vote_seq.is_some_and(|s| s <= durable));
            if own_vote_durable {
                if let Some(c) = self.role.campaign_mut() {
                    c.self_vote_seq = None;
                }
                self.record_vote(self.cfg.id, true);
            }
            if self.is_leader() {
                self.maybe_commit();
            }
        }
        self.debug_check();
    }

    /// Makes this node time out and start an election now (for tests and the
    /// demo). With lease reads on, a node that heard from its leader within
    /// the minimum election timeout does not: the leader's lease counts on
    /// it not to campaign (nor vote) before then.
    pub fn force_timeout(&mut self) {
        // The same test as a timeout: a wiped or damaged node must not
        // campaign (and count its own vote as its old self's) however it is
        // prodded. (Found by the simulator, seed 6150 of 10,000: a forced
        // timeout of a follower that had just acknowledged the leader's
        // round elected another leader within the lease.)
        let holds_lease_for_leader = self.cfg.lease_reads.is_some() && self.in_lease();
        if !self.is_leader() && self.may_campaign() && !holds_lease_for_leader {
            self.campaign(self.cfg.pre_vote);
        }
        self.debug_check();
    }

    /// Proposes a membership change (see [`crate::membership`]). It is refused
    /// before it enters the log unless this node leads, has committed an entry
    /// of its own term, and no other change is unfinished; a learner (or a new
    /// node) to be made a voter must lag by at most `max_promotion_lag`
    /// entries unless `force`. On success returns where the change was
    /// appended: it is in force from now on, and a joint change is left
    /// automatically once it commits.
    ///
    /// ```
    /// use raft_core::{Change, ConfChange, Config, DigestMachine, Raft};
    /// let mut node = Raft::new(Config::new(1, vec![1]), DigestMachine::default()).unwrap();
    /// node.force_timeout();
    /// let seq = node.take_ready().records.last().unwrap().0;
    /// node.persisted(seq); // the vote, then the no-op: a one-node cluster commits alone
    /// let seq = node.take_ready().records.last().unwrap().0;
    /// node.persisted(seq);
    /// let add = ConfChange::Begin { joint: false, changes: vec![Change::AddLearner { id: 2, inc: 0 }] };
    /// node.propose_conf_change(add, false).unwrap();
    /// assert!(node.membership().is_learner(2));
    /// ```
    pub fn propose_conf_change(&mut self, cc: ConfChange, force: bool) -> Result<(Index, Term), ConfChangeRefused> {
        let cc = self.bind_incarnations(cc);
        let r = self.check_conf_change(&cc, force).and_then(|()| {
            self.propose_payload(Payload::ConfChange(cc), false).map_err(|e| match e {
                ProposeError::NotLeader { leader_hint } => ConfChangeRefused::NotLeader { leader_hint },
                ProposeError::Busy => ConfChangeRefused::Busy,
            })
        });
        self.debug_check();
        r
    }

    /// A member added with incarnation 0 ("whatever it is now") is bound to
    /// the incarnation this leader last heard it answer from: a promotion
    /// binds the storage the leader saw catch up, not any later one.
    fn bind_incarnations(&self, mut cc: ConfChange) -> ConfChange {
        let Some(l) = self.role.leader() else { return cc };
        if let ConfChange::Begin { changes, .. } = &mut cc {
            for change in changes.iter_mut() {
                if let Change::AddVoter { id, inc } | Change::AddLearner { id, inc } = change {
                    if *inc == 0 {
                        *inc = if *id == self.cfg.id { self.cfg.inc } else { l.progress(*id).map_or(0, |p| p.inc) };
                    }
                }
            }
        }
        cc
    }

    fn check_conf_change(&self, cc: &ConfChange, force: bool) -> Result<(), ConfChangeRefused> {
        let Some(l) = self.role.leader() else {
            return Err(ConfChangeRefused::NotLeader { leader_hint: self.leader });
        };
        if l.transfer.is_some() {
            return Err(ConfChangeRefused::Transferring);
        }
        let term_committed = self.storage.log().term(self.commit) == Some(self.term);
        if !term_committed && !self.bug(|b| b.conf_change_before_term_commit) {
            return Err(ConfChangeRefused::TermNotCommitted);
        }
        if self.storage.configs().latest_index() > self.commit || self.membership.is_joint() {
            return Err(ConfChangeRefused::ChangeInProgress);
        }
        self.membership.apply(cc).map_err(ConfChangeRefused::Invalid)?;
        if let ConfChange::Begin { changes, .. } = cc {
            let last = self.storage.log().last_index();
            for change in changes {
                if let Change::AddVoter { id, inc } = *change {
                    if inc == 0 && self.cfg.inc != 0 {
                        return Err(ConfChangeRefused::UnknownIncarnation(id));
                    }
                    let already = self.membership.member(id).is_some_and(|m| m.inc == inc);
                    if id == self.cfg.id || (self.membership.is_voter(id) && already) {
                        continue;
                    }
                    let matched = l.progress(id).map_or(0, |p| p.match_index);
                    let lag = last.saturating_sub(matched);
                    if lag > self.cfg.max_promotion_lag && !force {
                        return Err(ConfChangeRefused::LearnerBehind { id, lag });
                    }
                }
            }
        }
        Ok(())
    }

    /// Hands leadership to `target` (or, with `None`, to the voter whose log
    /// is most up to date): proposals are refused (`Busy`) meanwhile, the
    /// target is brought up to the leader's last index and then told to
    /// campaign at once (TimeoutNow); the transfer is abandoned if it has not
    /// happened within an election timeout. Returns the chosen target.
    pub fn transfer_leadership(&mut self, target: Option<NodeId>) -> Result<NodeId, TransferError> {
        let r = self.start_transfer(target);
        self.debug_check();
        r
    }

    fn start_transfer(&mut self, target: Option<NodeId>) -> Result<NodeId, TransferError> {
        let me = self.cfg.id;
        let Some(l) = self.role.leader() else {
            return Err(TransferError::NotLeader { leader_hint: self.leader });
        };
        let candidates = || self.membership.voter_ids().into_iter().filter(move |&id| id != me);
        let target = match target {
            Some(t) if t == me => return Err(TransferError::AlreadyLeader),
            Some(t) if !self.membership.is_voter(t) => return Err(TransferError::NotAVoter(t)),
            Some(t) => t,
            None => candidates()
                .max_by_key(|&id| (l.progress(id).map_or(0, |p| p.match_index), core::cmp::Reverse(id)))
                .ok_or(TransferError::NoOtherVoter)?,
        };
        if let Some(l) = self.role.leader_mut() {
            l.transfer = Some(crate::role::Transfer { target, elapsed: 0, sent: false });
        }
        self.send_append(target, false);
        self.maybe_send_timeout_now(target);
        Ok(target)
    }

    /// Sends TimeoutNow to the transfer's target once its log matches ours.
    fn maybe_send_timeout_now(&mut self, from: NodeId) {
        let last = self.storage.log().last_index();
        let Some(l) = self.role.leader_mut() else { return };
        let Some(t) = l.transfer.as_mut() else { return };
        if t.target != from || t.sent {
            return;
        }
        if l.progress.iter().any(|p| p.id == from && p.match_index == last) {
            if let Some(t) = l.transfer.as_mut() {
                t.sent = true;
            }
            // The target campaigns through the voters' stickiness: the lease
            // argument no longer holds for the rest of this term.
            l.lease.revoke();
            self.send(from, Body::TimeoutNow);
        }
    }

    /// Takes everything the host must do now (see [`Ready`] for the contract).
    pub fn take_ready(&mut self) -> Ready {
        if let (RoleState::Follower(_), Some(leader)) = (&self.role, self.leader) {
            if let Some(id) = self.follower_reads.take_request(leader) {
                self.send(leader, Body::ReadIndex { id });
            }
        }
        let leases = self.cfg.lease_reads.is_some();
        if let Some(l) = self.role.leader_mut() {
            if core::mem::take(&mut l.pending_broadcast) {
                if leases {
                    // New entries go out as a round of their own: under write
                    // load their answers keep the lease fresh between heartbeats.
                    l.reads.start_round();
                }
                self.broadcast_append(false);
            }
        }
        if self.out.is_empty() && !self.storage.has_records() {
            return Ready::default();
        }
        let (records, must_sync) = self.storage.take_records();
        self.out.take(records, must_sync)
    }

    /// Whether [`Raft::take_ready`] would return anything.
    pub fn has_ready(&self) -> bool {
        let read_request =
            matches!(self.role, RoleState::Follower(_)) && self.leader.is_some() && self.follower_reads.has_request();
        !self.out.is_empty()
            || self.storage.has_records()
            || self.role.leader().is_some_and(|l| l.pending_broadcast)
            || read_request
    }

    // ------------------------------------------------------------------
    // Observation
    // ------------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role.role()
    }
    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }
    /// The leader of the current term, if known (this node when it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Vote cast in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// Commit index.
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    /// Highest index applied to the state machine.
    pub fn applied_index(&self) -> Index {
        self.machine.index
    }
    /// Highest index whose entry is durable in this node's journal.
    pub fn durable_index(&self) -> Index {
        self.storage.durable_index()
    }
    /// Highest record sequence number reported durable.
    pub fn durable_seq(&self) -> Seq {
        self.storage.durable_seq()
    }
    /// The in-memory log.
    pub fn log(&self) -> &Log {
        self.storage.log()
    }
    /// The state machine.
    pub fn state_machine(&self) -> &S {
        &self.machine.sm
    }
    /// The session table.
    pub fn sessions(&self) -> &Sessions {
        &self.machine.sessions
    }
    /// Leader: reads waiting for confirmation or apply (0 otherwise).
    pub fn pending_reads(&self) -> usize {
        self.role.leader().map_or(0, |l| l.reads.len()) + self.follower_reads.len()
    }
    /// Leader: client writes waiting to apply (0 otherwise).
    pub fn pending_writes(&self) -> usize {
        self.role.leader().map_or(0, |l| l.pending_writes.len())
    }
    /// Leader: the current confirmation round (0 otherwise).
    pub fn round(&self) -> u64 {
        self.role.leader().map_or(0, |l| l.reads.round())
    }
    /// Voters (of the incoming half while joint), sorted.
    pub fn voters(&self) -> &[NodeId] {
        self.config.incoming.ids()
    }
    /// The configuration in force (the newest in this node's log).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The newest configuration this node knows to be committed.
    pub fn committed_membership(&self) -> &Membership {
        self.storage.configs().as_of(self.commit)
    }
    /// Every node this one should keep a link to: the members of the
    /// configuration in force and, until a removal commits, of the committed
    /// one (a node being removed must still learn that it was).
    pub fn link_ids(&self) -> Vec<NodeId> {
        let mut ids = self.membership.member_ids();
        ids.extend(self.committed_membership().member_ids());
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| id != self.cfg.id);
        ids
    }
    /// The voting configuration (joint during a membership change).
    pub fn quorum_config(&self) -> &JointConfig {
        &self.config
    }
    /// Leader only: replication progress of each peer, sorted by id (empty otherwise).
    pub fn progress(&self) -> &[Progress] {
        self.role.leader().map_or(&[], |l| &l.progress)
    }
    /// Ticks counted and the timeout they count toward: the election timer
    /// for followers and candidates, the CheckQuorum interval for a leader.
    pub fn election_timer(&self) -> (u32, u32) {
        match self.role.leader() {
            Some(l) => (l.quorum_elapsed, self.cfg.election_ticks),
            None => (self.timer.elapsed, self.timer.timeout),
        }
    }
    /// Votes collected in the current campaign (empty outside one).
    pub fn votes(&self) -> &[(NodeId, bool)] {
        self.role.campaign().map_or(&[], Campaign::votes)
    }
    /// Leader: the target of a leadership transfer in progress.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.role.leader().and_then(|l| l.transfer).map(|t| t.target)
    }
    /// Whether this node lost durable records at recovery and has not yet
    /// caught up with a leader (see [`HardState::lost_data`]): it neither
    /// votes nor campaigns meanwhile.
    pub fn lost_data(&self) -> bool {
        self.lost_data
    }
    /// Messages waiting for durability.
    pub fn held_messages(&self) -> usize {
        self.out.held()
    }
    /// The current HardState.
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, voted_for: self.voted_for, role: self.role(), lost_data: self.lost_data }
    }
    /// The latest snapshot (taken or installed), if any.
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// The records a host writes at the start of a new journal segment so that
    /// the segment, with the snapshot it names, holds the node's whole durable
    /// state: the HardState, the latest Snapshot record, and every log entry
    /// after it (journal checkpoint frames, sequence number 0). Call it only
    /// when every record issued so far has been written.
    pub fn checkpoint(&self) -> Vec<Record> {
        let last_seq = self.storage.last_seq();
        let mut out = alloc::vec![Record::Checkpoint { last_seq }, Record::HardState(self.hard_state())];
        if let Some(s) = &self.snapshot {
            out.push(Record::Snapshot(s.meta.clone()));
        }
        let log = self.storage.log();
        let from = log.first_index().max(self.snapshot.as_ref().map_or(0, |s| s.meta.index + 1));
        let entries = log.slice(from, log.last_index(), usize::MAX, usize::MAX);
        if !entries.is_empty() {
            out.push(Record::Append { first_index: from, entries });
        }
        out
    }

    // ------------------------------------------------------------------
    // The term rules, then one step function per role
    // ------------------------------------------------------------------

    /// Term bookkeeping common to every role (Raft Figure 2, "all servers");
    /// returns whether to go on handling the message.
    fn step_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            match &m.body {
                Body::PreVote { .. } => {} // asking does not change terms
                Body::PreVoteResp { granted: true } => {}
                Body::Vote { transfer, .. } if !transfer && self.in_lease() => return false,
                Body::Append { .. } | Body::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            // A stale sender learns our term so it steps down instead of
            // stalling the cluster (a partitioned old leader, a late candidate).
            let answer = match m.body {
                Body::Append { .. } => Some(Body::AppendResp {
                    index: 0,
                    success: false,
                    hint_index: 0,
                    hint_term: 0,
                    round: 0,
                    epoch: self.cfg.epoch,
                    recovering: self.lost_data,
                }),
                Body::PreVote { .. } => Some(Body::PreVoteResp { granted: false }),
                Body::Vote { .. } => Some(Body::VoteResp { granted: false }),
                Body::InstallSnapshot { index, snap_term, .. } => {
                    Some(Body::InstallSnapshotResp { index, snap_term, offset: 0, done: false })
                }
                _ => None,
            };
            if let Some(body) = answer {
                self.send(m.from, body);
            }
            return false;
        }
        true
    }

    fn step_follower(&mut self, m: Message) {
        match m.body {
            Body::Append { prev_index, prev_term, entries, commit, round, to_epoch } => {
                self.heard_from_leader(m.from);
                self.handle_append(m.from, (prev_index, prev_term), entries, (commit, to_epoch), round);
            }
            Body::InstallSnapshot { index, snap_term, offset, data, done } => {
                self.heard_from_leader(m.from);
                self.handle_install_snapshot(m.from, index, snap_term, offset, &data, done);
            }
            Body::TimeoutNow if self.may_campaign() => {
                // Our leader hands over: campaign now, past PreVote and the
                // voters' stickiness.
                self.campaign_now(true);
            }
            Body::ReadIndexResp { id, index } => {
                let hint = self.leader;
                self.follower_reads.on_answer(m.from, id, index, hint, &mut self.out);
                self.release_reads();
            }
            Body::ReadIndex { id } => self.send(m.from, Body::ReadIndexResp { id, index: None }),
            // Answers to requests of a past role or term: nothing to do.
            _ => {}
        }
    }

    fn step_candidate(&mut self, m: Message) {
        let pre = matches!(self.role, RoleState::PreCandidate(_));
        match m.body {
            // Granted answers carry the term we would campaign in; a refusal
            // carries the responder's (our) term.
            Body::PreVoteResp { granted } if pre && (m.term == self.term + 1 || (!granted && m.term == self.term)) => {
                self.record_answer(m.from, m.from_inc, granted)
            }
            Body::VoteResp { granted } if !pre => self.record_answer(m.from, m.from_inc, granted),
            Body::ReadIndex { id } => self.send(m.from, Body::ReadIndexResp { id, index: None }),
            Body::Append { .. } | Body::InstallSnapshot { .. } => {
                // A leader of our term exists: follow it.
                self.become_follower(self.term, Some(m.from));
                self.step_follower(m);
            }
            _ => {}
        }
    }

    fn step_leader(&mut self, m: Message) {
        match m.body {
            Body::AppendResp { index, success, hint_index, hint_term, round, epoch, recovering }
                if self.note_epoch(m.from, m.from_inc, epoch) =>
            {
                self.note_recovering(m.from, m.from_inc, recovering);
                self.handle_append_resp(m.from, index, success, hint_index, hint_term, round)
            }
            Body::InstallSnapshotResp { index, snap_term, offset, done } => {
                let unbound = !self.membership.votes_as(m.from, m.from_inc) && !self.bug(|b| b.ignore_incarnation);
                if let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(m.from)) {
                    pr.unbound = unbound;
                }
                self.handle_snapshot_resp(m.from, index, snap_term, offset, done)
            }
            Body::Append { .. } | Body::InstallSnapshot { .. } => {
                debug_assert!(false, "two leaders in term {}", self.term);
            }
            Body::ReadIndex { id } => self.remote_read(m.from, id),
            _ => {}
        }
    }

    // ------------------------------------------------------------------
    // Elections
    // ------------------------------------------------------------------

    /// Whether this node heard from a live leader recently enough to ignore
    /// requests to elect someone else (for a leader: within its CheckQuorum
    /// interval).
    fn in_lease(&self) -> bool {
        let elapsed = self.role.leader().map_or(self.timer.elapsed, |l| l.quorum_elapsed);
        election::in_lease(&self.cfg, self.leader, elapsed)
    }

    fn heard_from_leader(&mut self, from: NodeId) {
        if self.leader != Some(from) {
            self.leader = Some(from);
            self.leader_changed();
        }
        self.timer.elapsed = 0;
    }

    /// Whether this node may campaign: it votes in its latest configuration,
    /// which binds it to its own incarnation, and it has lost no data.
    fn may_campaign(&self) -> bool {
        self.membership.is_voter(self.cfg.id) && self.may_vote()
    }

    /// Whether this node may grant a (pre-)vote at all (DESIGN §10): a
    /// configuration it holds names it with its own incarnation (a node whose
    /// directory was wiped is not the node the cluster counted on), and it
    /// has not lost durable records it may have voted or acknowledged with.
    fn may_vote(&self) -> bool {
        let bound = self.bug(|b| b.ignore_incarnation) || self.membership.names(self.cfg.id, self.cfg.inc);
        bound && (!self.lost_data || self.bug(|b| b.ignore_lost_data))
    }

    /// Whether a (pre-)vote request may be considered at all: this node may
    /// vote, the asker addressed this incarnation of it, and it has not just
    /// started (with CheckQuorum a restarted node stays sticky for the
    /// minimum election timeout, so a restart cannot hand a vote away while
    /// the leader it followed may still hold its lease; a transfer the leader
    /// asked for passes).
    fn may_consider_vote(&self, to_inc: u64, transfer: bool) -> bool {
        let addressed = to_inc == self.cfg.inc || self.bug(|b| b.ignore_incarnation);
        let settled = !self.cfg.check_quorum
            || !self.cfg.sticky_after_start
            || transfer
            || self.ticks_since_start >= self.cfg.election_ticks;
        self.may_vote() && addressed && settled
    }

    fn handle_pre_vote(&mut self, from: NodeId, to_inc: u64, term: Term, last_index: Index, last_term: Term) {
        // Grant if the asker's next term is ahead of ours, its log is up to date,
        // and we have not heard from a live leader recently.
        let log_ok =
            election::log_ok(self.storage.log(), last_index, last_term, self.bug(|b| b.vote_without_log_check));
        let granted = term > self.term && log_ok && !self.in_lease() && self.may_consider_vote(to_inc, false);
        let reply_term = if granted { term } else { self.term };
        let msg = self.message(from, reply_term, Body::PreVoteResp { granted });
        self.out.send(msg);
    }

    fn handle_vote(&mut self, from: NodeId, to_inc: u64, transfer: bool, last_index: Index, last_term: Term) {
        let log_ok =
            election::log_ok(self.storage.log(), last_index, last_term, self.bug(|b| b.vote_without_log_check));
        let follower = matches!(self.role, RoleState::Follower(_));
        let may = self.may_consider_vote(to_inc, transfer);
        if !(follower && log_ok && may && election::can_vote(self.voted_for, self.leader, from)) {
            return self.send(from, Body::VoteResp { granted: false });
        }
        self.timer.reset(&self.cfg);
        // A repeated request gets the same grant, once the record holding the
        // first is durable; a new vote needs its own record.
        let seq = if self.voted_for == Some(from) {
            self.storage.vote_seq()
        } else {
            self.voted_for = Some(from);
            self.write_hard_state()
        };
        if self.bug(|b| b.vote_before_durable) {
            self.send(from, Body::VoteResp { granted: true });
        } else {
            self.send_after(seq, from, Body::VoteResp { granted: true });
        }
    }

    /// Starts a (pre-)campaign.
    fn campaign(&mut self, pre: bool) {
        debug_assert!(self.may_campaign(), "node {} campaigns without being a bound voter", self.cfg.id);
        if pre {
            self.pre_campaign();
        } else {
            self.campaign_now(false);
        }
    }

    fn pre_campaign(&mut self) {
        let me = self.cfg.id;
        let (last_index, last_term) = (self.storage.log().last_index(), self.storage.log().last_term());
        {
            self.role = RoleState::PreCandidate(Campaign::new(None));
            self.leader = None;
            self.leader_changed();
            self.timer.reset(&self.cfg);
            // Written for the record (the role changed); it asks for no fsync.
            self.write_hard_state();
            self.out.event(Event::BecamePreCandidate { term: self.term });
            // Our own pre-vote changes nothing durable: count it at once.
            self.record_vote(me, true);
            if !matches!(self.role, RoleState::PreCandidate(_)) {
                return; // a one-node cluster went straight on
            }
            let term = self.term + 1;
            for to in self.config.ids().into_iter().filter(|&id| id != me) {
                let msg = self.message(to, term, Body::PreVote { last_index, last_term });
                self.out.send(msg);
            }
        }
    }

    /// Raises the term and asks for votes; `transfer` marks a campaign the
    /// leader asked for (TimeoutNow), which voters let through stickiness.
    fn campaign_now(&mut self, transfer: bool) {
        let me = self.cfg.id;
        let (last_index, last_term) = (self.storage.log().last_index(), self.storage.log().last_term());
        {
            self.term += 1;
            self.voted_for = Some(me);
            self.leader = None;
            self.role = RoleState::Candidate(Campaign::new(None));
            self.leader_changed();
            self.timer.reset(&self.cfg);
            let seq = self.write_hard_state();
            self.out.event(Event::BecameCandidate { term: self.term });
            // The request may leave now; our own vote counts once it is durable.
            if self.bug(|b| b.vote_before_durable) || seq <= self.storage.durable_seq() {
                self.record_vote(me, true);
                if !matches!(self.role, RoleState::Candidate(_)) {
                    return;
                }
            } else if let Some(c) = self.role.campaign_mut() {
                c.self_vote_seq = Some(seq);
            }
            for to in self.config.ids().into_iter().filter(|&id| id != me) {
                self.send(to, Body::Vote { last_index, last_term, transfer });
            }
        }
    }

    /// A (pre-)vote answer from a peer. A grant counts only from the
    /// incarnation our configuration binds the voter to: a node whose storage
    /// was replaced is not the voter the configuration counted on.
    fn record_answer(&mut self, from: NodeId, from_inc: u64, granted: bool) {
        if granted && !self.membership.votes_as(from, from_inc) && !self.bug(|b| b.ignore_incarnation) {
            return;
        }
        self.record_vote(from, granted);
    }

    /// Counts a (pre-)vote and acts on the outcome.
    fn record_vote(&mut self, from: NodeId, granted: bool) {
        let Some(campaign) = self.role.campaign_mut() else { return };
        match campaign.record(from, granted, &self.config) {
            VoteResult::Won if matches!(self.role, RoleState::PreCandidate(_)) => self.campaign_now(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let new_term = term != self.term;
        let changed = new_term || !matches!(self.role, RoleState::Follower(_));
        if new_term {
            self.term = term;
            self.voted_for = None;
        }
        let leader_moved = self.leader != leader;
        self.leader = leader;
        if leader_moved || changed {
            self.leader_changed();
        }
        self.timer.reset(&self.cfg);
        if changed {
            let old = core::mem::replace(&mut self.role, RoleState::Follower(Follower::default()));
            if let RoleState::Leader(l) = old {
                self.abandon_client_work(l);
            }
            self.write_hard_state();
            self.out.event(Event::BecameFollower { term, leader });
        }
    }

    fn become_leader(&mut self) {
        debug_assert!(matches!(self.role, RoleState::Candidate(_)));
        let me = self.cfg.id;
        let log = self.storage.log();
        let last = log.last_index();
        // Cluster time continues from the newest entry we hold.
        let time_base = log.entry(last).map_or(0, |e| e.time);
        let uncommitted: usize = (self.commit + 1..=last).map(|i| log.entry(i).map_or(0, Entry::size)).sum();
        let followers = self.link_ids();
        self.role = RoleState::Leader(Leader::new(&followers, last, time_base, uncommitted));
        self.leader = Some(me);
        self.write_hard_state();
        let term = self.term;
        self.out.event(Event::BecameLeader { term });
        // A no-op of our own term lets us commit (and learn the commit point)
        // without waiting for a client (Raft §8). It bypasses the Busy limit.
        let entry = Entry { term, index: last + 1, time: self.cluster_time(), payload: Payload::Noop };
        if let Some(l) = self.role.leader_mut() {
            l.uncommitted_bytes += entry.size();
        }
        self.storage.append(alloc::vec![entry]);
        self.broadcast_append(false);
        if self.config.is_sole_voter(me) {
            self.maybe_commit();
        }
    }

    /// Ticks of a leader: cluster time, CheckQuorum and heartbeats.
    fn tick_leader(&mut self) {
        let me = self.cfg.id;
        let Some(l) = self.role.leader_mut() else { return };
        l.time_elapsed += 1;
        l.heartbeat_elapsed += 1;
        l.quorum_elapsed += 1;
        if let Some(t) = l.transfer.as_mut() {
            t.elapsed += 1;
            if t.elapsed >= self.cfg.election_ticks {
                // The target did not take over within an election timeout:
                // take proposals again.
                l.transfer = None;
            }
        }
        if l.quorum_elapsed >= self.cfg.election_ticks {
            l.quorum_elapsed = 0;
            if self.cfg.check_quorum && !l.quorum_active(me, &self.config) {
                let term = self.term;
                self.out.event(Event::LostQuorum { term });
                self.become_follower(term, None);
                return;
            }
            for p in l.progress.iter_mut() {
                p.recent_active = false;
            }
        }
        if l.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            l.heartbeat_elapsed = 0;
            self.heartbeat();
        }
        self.maybe_time_entry();
    }

    /// Cluster time moves only with entries: once the clock passes the state
    /// machine's next deadline (a lease), append a no-op, which carries the
    /// time, so an idle cluster still reaches it. At most one per heartbeat
    /// interval, and none while an entry already carries a time past it.
    fn maybe_time_entry(&mut self) {
        if cfg!(feature = "bugs") && self.cfg.bugs.lease_no_time_entry {
            return;
        }
        let Some(deadline) = self.machine.sm.next_deadline() else { return };
        let log = self.storage.log();
        let last = log.entry(log.last_index()).map_or(0, |e| e.time);
        let now = self.cluster_time();
        if now >= deadline && last < deadline && last + u64::from(self.cfg.heartbeat_ticks) <= now {
            let _ = self.propose_payload(Payload::Noop, false);
        }
    }

    // ------------------------------------------------------------------
    // Replication, leader side
    // ------------------------------------------------------------------

    /// Sends whatever each follower's flow control allows.
    fn broadcast_append(&mut self, heartbeat: bool) {
        for i in 0..self.progress().len() {
            let id = self.progress()[i].id;
            self.send_append(id, heartbeat);
        }
    }

    /// A heartbeat round: every follower hears from us, and stalled pipelines
    /// (messages lost in the network) fall back to probing.
    fn heartbeat(&mut self) {
        let leases = self.cfg.lease_reads.is_some();
        if let Some(l) = self.role.leader_mut() {
            for pr in l.progress.iter_mut() {
                pr.on_heartbeat();
            }
            if leases {
                // Every heartbeat is a round: its acknowledgement renews the lease.
                l.reads.start_round();
            }
        }
        self.broadcast_append(true);
    }

    /// Sends AppendEntries (or the next snapshot chunk) to follower `to` as
    /// flow control allows. With `heartbeat`, something is sent even if there
    /// is nothing new.
    fn send_append(&mut self, to: NodeId, heartbeat: bool) {
        let Raft { cfg, role, storage, out, term, commit, .. } = self;
        let Some(l) = role.leader_mut() else { return };
        let round = l.reads.round();
        if cfg.lease_reads.is_some() {
            l.lease.on_sent(round, self.clock);
        }
        let Some(pr) = l.progress_mut(to) else { return };
        if pr.state == ProgressState::Snapshot {
            return self.send_snapshot_chunk(to);
        }
        let at = Leading { log: storage.log(), cfg, commit: *commit, round };
        let (from, term, from_inc) = (cfg.id, *term, cfg.inc);
        let to_inc = self.membership.member(to).map_or(0, |m| m.inc);
        let mut send = |body| out.send(Message { from, to, term, from_inc, to_inc, body });
        let needs_snapshot = replication::send_appends(pr, &at, heartbeat, &mut send);
        if needs_snapshot {
            self.start_snapshot_transfer(to);
        }
    }

    /// A follower's answer carries its incarnation and epoch: a newer epoch
    /// means it restarted, another incarnation that its storage was replaced
    /// (either way its progress is reset, and the answer then read afresh);
    /// an older epoch of the same incarnation is a message from its previous
    /// life (ignored). Returns whether to go on.
    fn note_epoch(&mut self, from: NodeId, inc: u64, epoch: u64) -> bool {
        let last = self.storage.log().last_index();
        let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(from)) else { return true };
        if pr.epoch == 0 {
            // The first answer this term: nothing to compare with.
            pr.inc = inc;
            pr.epoch = epoch;
        } else if inc != pr.inc || epoch > pr.epoch {
            let new_incarnation = inc != pr.inc;
            pr.restarted(inc, epoch, last);
            self.out.event(Event::FollowerRestarted { id: from, new_incarnation });
        } else if epoch < pr.epoch {
            return false;
        }
        true
    }

    /// A follower's answer says whether it is still recovering lost data,
    /// and from which incarnation it comes: until it has caught up, and
    /// while the configuration binds it to another incarnation, its match is
    /// not counted toward commit or a read round (DESIGN §10).
    fn note_recovering(&mut self, from: NodeId, inc: u64, recovering: bool) {
        let recovering = recovering && !self.bug(|b| b.ignore_lost_data);
        let unbound = !self.membership.votes_as(from, inc) && !self.bug(|b| b.ignore_incarnation);
        if let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(from)) {
            pr.recovering = recovering;
            pr.unbound = unbound;
        }
    }

    /// Leader side: a follower answered an AppendEntries.
    fn handle_append_resp(
        &mut self,
        from: NodeId,
        index: Index,
        success: bool,
        hint_index: Index,
        hint_term: Term,
        round: u64,
    ) {
        let Some(l) = self.role.leader_mut() else { return };
        let current_round = l.reads.round();
        let Some(pr) = l.progress_mut(from) else { return };
        pr.recent_active = true;
        if round > pr.acked_round && round <= current_round {
            // Any answer in our term acknowledges our leadership as of `round`.
            pr.acked_round = round;
            self.on_round_ack();
        }
        let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(from)) else { return };
        match replication::on_append_resp(pr, self.storage.log(), index, success, hint_index, hint_term) {
            Learnt::Nothing => {}
            Learnt::Progress { advanced } => {
                if advanced {
                    self.maybe_commit();
                }
                self.send_append(from, false);
                self.maybe_send_timeout_now(from);
            }
        }
    }

    /// Moves the commit index to the highest index a quorum holds durably, if
    /// that entry is of the current term, and applies at once.
    fn maybe_commit(&mut self) {
        let me = self.cfg.id;
        let log = self.storage.log();
        let own = self.storage.durable_index().min(log.last_index());
        let Some(l) = self.role.leader() else { return };
        let q = l.quorum_match(me, own, &self.config);
        if q <= self.commit {
            return;
        }
        // Only an entry of the leader's own term commits by counting; earlier
        // ones commit with it (the paper's Figure 8).
        let current_term = log.term(q) == Some(self.term);
        if !current_term && !self.bug(|b| b.commit_old_term) {
            return;
        }
        let freed: usize = (self.commit + 1..=q).map(|i| log.entry(i).map_or(0, Entry::size)).sum();
        let Some(l) = self.role.leader_mut() else { return };
        l.uncommitted_bytes = l.uncommitted_bytes.saturating_sub(freed);
        if current_term {
            l.reads.on_term_commit(q);
        }
        self.commit = q;
        self.out.event(Event::Committed { index: q });
        self.apply_committed();
        self.after_leader_commit();
    }

    // ------------------------------------------------------------------
    // Replication, follower side
    // ------------------------------------------------------------------

    /// AppendEntries from the leader of our term.
    fn handle_append(
        &mut self,
        from: NodeId,
        prev: (Index, Term),
        entries: Vec<Entry>,
        (commit, to_epoch): (Index, u64),
        round: u64,
    ) {
        let silent_bug = self.bug(|b| b.silent_compacted_append);
        let (verdict, truncated) = replication::accept(&mut self.storage, self.commit, prev, entries, silent_bug);
        self.sync_membership();
        if let Some(from_index) = truncated {
            // Truncating a committed entry is a safety violation. With the `bugs`
            // feature the simulator must be the one to notice, so it may happen.
            debug_assert!(cfg!(feature = "bugs") || from_index > self.commit, "committed entry {from_index} truncated");
            self.out.event(Event::Truncated { from_index });
        }
        match verdict {
            Verdict::Silent => {}
            Verdict::Reject { hint_index, hint_term } => {
                let index = prev.0;
                let epoch = self.cfg.epoch;
                self.send(
                    from,
                    Body::AppendResp {
                        index,
                        success: false,
                        hint_index,
                        hint_term,
                        round,
                        epoch,
                        recovering: self.lost_data,
                    },
                );
            }
            Verdict::Accept { last } => {
                // Commit what the leader says is committed, but only as far as
                // this message proved our log matches the leader's.
                let new_commit = commit.min(last);
                if new_commit > self.commit {
                    self.commit = new_commit;
                    self.out.event(Event::Committed { index: new_commit });
                    self.apply_committed();
                    self.sync_membership();
                }
                let epoch = self.cfg.epoch;
                let ack = Body::AppendResp {
                    index: last,
                    success: true,
                    hint_index: 0,
                    hint_term: 0,
                    round,
                    epoch,
                    recovering: self.lost_data,
                };
                match self.storage.sync_point(last) {
                    None => self.send(from, ack),
                    Some(seq) => self.send_after(seq, from, ack),
                }
                // Our log now matches this leader's up to its commit index, in
                // a message sent after it heard from this life of ours (an
                // older one may carry a commit index from before our loss),
                // and that index holds an entry of the leader's term (so it
                // covers everything committed before). The cleared flag is
                // written after the entries, so it is never durable before
                // them; it needs no fsync of its own (lost, the node just
                // stays cautious a while longer).
                let fresh = to_epoch == self.cfg.epoch;
                let term_committed = self.storage.log().term(commit) == Some(self.term);
                if self.lost_data && fresh && term_committed && last >= commit {
                    self.lost_data = false;
                    self.write_hard_state();
                    self.out.event(Event::RecoveredLostData { index: commit });
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // Apply and client work
    // ------------------------------------------------------------------

    /// Applies every committed entry not yet applied, in order, right away,
    /// replying to each client as its entry is applied.
    fn apply_committed(&mut self) {
        while self.machine.index < self.commit {
            let index = self.machine.index + 1;
            let Some(entry) = self.storage.log().entry(index) else {
                // Committed entries are held until applied; a gap is a bug.
                debug_assert!(false, "committed entry {index} missing from the log");
                return;
            };
            let term = entry.term;
            let outcome = self.machine.apply(entry);
            if let Some(l) = self.role.leader_mut() {
                let hint = self.leader;
                while l.pending_writes.front().is_some_and(|w| w.0 < index) {
                    // Cannot happen (applies are in order); never strand a client.
                    if let Some((_, token, _)) = l.pending_writes.pop_front() {
                        self.out.reply(token, Err(ClientError::UnknownOutcome { leader_hint: hint }));
                    }
                }
                if l.pending_writes.front().is_some_and(|w| w.0 == index) {
                    if let Some((_, token, t)) = l.pending_writes.pop_front() {
                        match outcome.reply {
                            Some(r) if t == term => self.out.reply(token, r),
                            // Another leader's entry took this index: ours was lost.
                            _ => self.out.reply(token, Err(ClientError::UnknownOutcome { leader_hint: hint })),
                        }
                    }
                }
            }
            self.out.applied(Applied { index, term, output: outcome.output });
        }
        self.release_reads();
        self.maybe_snapshot();
    }

    fn submit_request(&mut self, token: ClientToken, request: ClientRequest) {
        if !self.is_leader() {
            let following = matches!(self.role, RoleState::Follower(_)) && self.leader.is_some();
            if let ClientRequest::Read { query } = request {
                if self.cfg.follower_reads && following {
                    return self.follower_read(token, query);
                }
            }
            let hint = self.leader;
            return self.out.reply(token, Err(ClientError::NotLeader { leader_hint: hint }));
        }
        let payload = match request {
            ClientRequest::Read { query } => return self.read(token, query),
            ClientRequest::Register { owner, secret_hash } => Payload::Register { owner, secret_hash },
            ClientRequest::Write { session, secret_hash, seq, ack, command } => {
                if let Err(e) = self.machine.sessions.precheck(session, &secret_hash, seq, ack) {
                    return self.out.reply(token, Err(e));
                }
                if let Err(why) = self.machine.sm.validate_command(&command) {
                    return self.out.reply(token, Err(ClientError::BadRequest(why.into())));
                }
                Payload::Write { session, secret_hash, seq, ack, command }
            }
            ClientRequest::KeepAlive { session, secret_hash, ack } => {
                if ack == 0 {
                    return self.out.reply(token, Err(ClientError::BadRequest("ack starts at 1".into())));
                }
                Payload::KeepAlive { session, secret_hash, ack }
            }
        };
        // While leadership moves, nothing new is taken: the target must catch up.
        if self.pending_writes() >= self.cfg.max_pending_writes || self.transferring() {
            return self.out.reply(token, Err(ClientError::Busy));
        }
        match self.propose_payload(payload, false) {
            Ok((index, term)) => {
                // A one-node cluster may already have applied it.
                if index > self.machine.index {
                    if let Some(l) = self.role.leader_mut() {
                        l.pending_writes.push_back((index, token, term));
                    }
                }
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                self.out.reply(token, Err(ClientError::NotLeader { leader_hint }))
            }
            Err(ProposeError::Busy) => self.out.reply(token, Err(ClientError::Busy)),
        }
    }

    /// Appends an entry as leader. `internal` entries (leaving a joint
    /// configuration) pass the Busy limits: they must never wait on clients.
    fn propose_payload(&mut self, payload: Payload, internal: bool) -> Result<(Index, Term), ProposeError> {
        let time = self.cluster_time();
        let (commit, durable) = (self.commit, self.storage.durable_index());
        let last = self.storage.log().last_index();
        let Some(l) = self.role.leader_mut() else {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        };
        // Entries not yet both committed and durable here: bounds memory even
        // when followers commit faster than this leader's own disk syncs.
        let uncommitted = (last - commit.min(durable)) as usize;
        let full =
            uncommitted >= self.cfg.max_uncommitted_entries || l.uncommitted_bytes >= self.cfg.max_uncommitted_bytes;
        if full && !internal {
            return Err(ProposeError::Busy);
        }
        let conf = matches!(payload, Payload::ConfChange(_));
        let entry = Entry { term: self.term, index: last + 1, time, payload };
        l.uncommitted_bytes += entry.size();
        l.pending_broadcast = true;
        self.storage.append(alloc::vec![entry]);
        if conf {
            self.sync_membership();
        }
        if self.config.is_sole_voter(self.cfg.id) {
            self.maybe_commit();
        }
        Ok((last + 1, self.term))
    }

    /// Cluster time for a new entry: never below the last entry's time.
    fn cluster_time(&self) -> u64 {
        let log = self.storage.log();
        let last = log.entry(log.last_index()).map_or(0, |e| e.time);
        let own = self.role.leader().map_or(0, |l| l.time_base + l.time_elapsed);
        last.max(own)
    }

    /// A linearizable read at the leader (see [`crate::read`]).
    fn read(&mut self, token: ClientToken, query: Vec<u8>) {
        if let Err(why) = self.machine.sm.validate_query(&query) {
            return self.out.reply(token, Err(ClientError::BadRequest(why.into())));
        }
        if self.pending_reads() >= self.cfg.max_pending_reads {
            return self.out.reply(token, Err(ClientError::Busy));
        }
        if self.bug(|b| b.stale_read_local) {
            let output = self.machine.sm.query(&query);
            return self.out.reply(token, Ok(ClientReply::Read { output: output.into() }));
        }
        let early = self.bug(|b| b.read_index_before_commit);
        let at = self.read_at(early);
        let (term, applied) = (self.term, self.machine.index);
        let Some(l) = self.role.leader_mut() else { return };
        let start = match at {
            ReadAt::Lease(index) => {
                // Under the lease no other leader exists: the commit index is
                // the cluster's, and a read at it is linearizable without a round.
                self.out.event(Event::LeaseRead { term, index });
                if applied >= index && l.reads.len() == 0 {
                    let output = self.machine.sm.query(&query);
                    return self.out.reply(token, Ok(ClientReply::Read { output: output.into() }));
                }
                l.reads.push_confirmed(token, query, index);
                return self.release_reads();
            }
            ReadAt::Round(index) => l.reads.push(token, query, index),
        };
        self.confirm_reads(start);
    }

    /// Where a read that arrives now stands at this leader: on its lease
    /// (the commit index, no round needed), or waiting for a round to
    /// confirm leadership at an index — `None` until an entry of this term
    /// has committed (the commit index may lag the cluster's before then;
    /// `early`: the `read_index_before_commit` bug takes it anyway).
    fn read_at(&self, early: bool) -> ReadAt {
        let term_committed = self.storage.log().term(self.commit) == Some(self.term);
        let leased = self
            .role
            .leader()
            .and_then(|l| lease::lease_index(&l.lease, self.clock, self.transferring(), term_committed, self.commit));
        match leased {
            Some(index) => ReadAt::Lease(index),
            None => ReadAt::Round((term_committed || early).then_some(self.commit)),
        }
    }

    /// A read was queued for a round: start one if it is the first to wait
    /// (`start`), or — the only voter — confirm at once.
    fn confirm_reads(&mut self, start: bool) {
        let sole = self.config.is_sole_voter(self.cfg.id);
        if start && !sole {
            self.broadcast_append(true);
        }
        if sole {
            self.on_round_ack();
        }
    }

    /// A follower acknowledged a round: confirm what a quorum has confirmed,
    /// start the next round if reads wait for it, answer what can be answered.
    fn on_round_ack(&mut self) {
        let me = self.cfg.id;
        let sole = self.config.is_sole_voter(me);
        loop {
            let Some(l) = self.role.leader_mut() else { return };
            let confirmed = l.quorum_round(me, &self.config);
            if let Some(duration) = self.cfg.lease_duration() {
                l.lease.on_confirmed(confirmed, duration);
            }
            let next_started = l.reads.confirm(confirmed);
            if !next_started {
                break;
            }
            if !sole {
                self.broadcast_append(true);
                break;
            }
        }
        self.release_reads();
    }

    /// Answers what can be answered: the leader's confirmed reads (and
    /// followers' requests), and this node's follower reads whose index it
    /// has applied.
    fn release_reads(&mut self) {
        let applied = self.machine.index;
        if let Some(l) = self.role.leader_mut() {
            for (to, id, index) in l.reads.release(applied, &self.machine.sm, &mut self.out) {
                self.send(to, Body::ReadIndexResp { id, index });
            }
        }
        self.follower_reads.release(applied, &self.machine.sm, &mut self.out);
    }

    /// A follower's `ReadIndex` request at the leader: handled as a read of
    /// our own, answered with the index instead of a value.
    fn remote_read(&mut self, from: NodeId, id: u64) {
        if self.pending_reads() >= self.cfg.max_pending_reads {
            return self.send(from, Body::ReadIndexResp { id, index: None });
        }
        let at = self.read_at(false);
        let Some(l) = self.role.leader_mut() else { return };
        let start = match at {
            ReadAt::Lease(index) => return self.send(from, Body::ReadIndexResp { id, index: Some(index) }),
            ReadAt::Round(index) => l.reads.push_remote(from, id, index),
        };
        self.confirm_reads(start);
    }

    /// A read at a follower: queued for the next `ReadIndex` request.
    fn follower_read(&mut self, token: ClientToken, query: Vec<u8>) {
        if let Err(why) = self.machine.sm.validate_query(&query) {
            return self.out.reply(token, Err(ClientError::BadRequest(why.into())));
        }
        if self.follower_reads.len() >= self.cfg.max_pending_reads {
            return self.out.reply(token, Err(ClientError::Busy));
        }
        let join = self.bug(|b| b.follower_read_joins_inflight);
        self.follower_reads.push(token, query, join);
    }

    /// The leader this node follows changed (or it stopped following): reads
    /// still waiting for an index from the old one fail.
    fn leader_changed(&mut self) {
        let hint = self.leader;
        self.follower_reads.fail_unindexed(hint, &mut self.out);
    }

    /// A leader stepping down: its pending writes may or may not commit, its
    /// pending reads cannot be served.
    fn abandon_client_work(&mut self, l: Leader) {
        let hint = self.leader;
        for (_, token, _) in l.pending_writes {
            self.out.reply(token, Err(ClientError::UnknownOutcome { leader_hint: hint }));
        }
        for (to, id, index) in l.reads.fail(hint, &mut self.out) {
            self.send(to, Body::ReadIndexResp { id, index });
        }
    }

    // ------------------------------------------------------------------
    // Snapshots
    // ------------------------------------------------------------------

    /// Takes a snapshot if the policy says so (called after entries apply):
    /// at once, or — with `async_snapshots` — by handing the host a frozen
    /// copy of the state to build, unless one is being built already.
    fn maybe_snapshot(&mut self) {
        let due = snapshot::due(&self.cfg, self.machine.index, self.snapshot_index(), self.storage.log().bytes());
        if due && self.compact_pending.is_none() && self.building.is_none() {
            if self.cfg.async_snapshots {
                self.start_snapshot_job();
            } else {
                self.take_snapshot();
            }
        }
    }

    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(self.storage.log().snapshot_index(), |s| s.meta.index)
    }

    /// What a snapshot of the applied state now would record, if there is
    /// anything new to snapshot.
    fn snapshot_meta_now(&self) -> Option<SnapshotMeta> {
        let index = self.machine.index;
        let term = self.storage.log().term(index)?;
        if index == 0 || index <= self.snapshot_index() {
            return None;
        }
        // The configuration as of the snapshot's own index, not a newer
        // (possibly uncommitted) one beyond it.
        let membership = self.storage.configs().as_of(index).clone();
        Some(SnapshotMeta { index, term, membership: Box::new(membership), id: index })
    }

    /// Snapshots the applied state now, encoding it inside this call (also
    /// available to hosts and the demo; with `async_snapshots` too).
    pub fn take_snapshot(&mut self) {
        let Some(meta) = self.snapshot_meta_now() else { return };
        // Encoded from the live session table: no copy of it (and of every
        // reply cache) to encode and drop.
        let state = self.machine.sm.snapshot();
        let (index, term, membership, sessions) = (meta.index, meta.term, &*meta.membership, &self.machine.sessions);
        let data = snapshot::encode_parts(BodyRef { index, term, membership, sessions, state: &state });
        let snap = Arc::new(Snapshot { meta, data });
        self.out.snapshot(SnapshotOut { snapshot: snap.clone(), installed: false });
        self.adopt_snapshot(snap);
    }

    /// Freezes the applied state for the host to build off its event loop.
    fn start_snapshot_job(&mut self) {
        let Some(meta) = self.snapshot_meta_now() else { return };
        let job = SnapshotJob::new(meta.clone(), self.machine.sessions.clone(), self.machine.sm.freeze());
        self.building = Some(meta);
        self.out.snapshot_job(Arc::new(job));
    }

    /// The host stored, durably, the snapshot it built from
    /// [`Ready::snapshot_job`]: the engine keeps it (to send to followers),
    /// issues the `Snapshot` record naming it and, once that is durable,
    /// compacts the log up to it. Returns false, changing nothing, if it is
    /// not the snapshot being built or a newer one was taken or installed
    /// meanwhile. The host leaves such a file alone (a snapshot taken with
    /// [`Raft::take_snapshot`] at the same index has the same id): it goes
    /// with the older files once a newer `Snapshot` record is durable.
    pub fn snapshot_stored(&mut self, snap: Arc<Snapshot>) -> bool {
        if self.building.as_ref() != Some(&snap.meta) {
            return false;
        }
        self.building = None;
        if snap.meta.index <= self.snapshot_index() {
            return false;
        }
        self.adopt_snapshot(snap);
        true
    }

    /// The host could not build or store the snapshot of `index` it was
    /// handed: the policy will ask again after the next entry applies.
    pub fn snapshot_failed(&mut self, index: Index) {
        if self.building.as_ref().is_some_and(|m| m.index == index) {
            self.building = None;
        }
    }

    /// Whether a snapshot handed to the host to build has not been reported yet.
    pub fn snapshot_building(&self) -> Option<Index> {
        self.building.as_ref().map(|m| m.index)
    }

    /// Makes a snapshot of the applied state (stored, or about to be stored
    /// before its record, by the host) the latest: its record is issued, and
    /// the log is compacted once that is durable.
    fn adopt_snapshot(&mut self, snap: Arc<Snapshot>) {
        let (index, term) = (snap.meta.index, snap.meta.term);
        let seq = self.storage.write_snapshot(snap.meta.clone());
        self.snapshot = Some(snap);
        self.compact_pending = Some((seq, index, term));
        self.out.event(Event::SnapshotTaken { index });
    }

    /// After the Snapshot record is durable: drop the entries it covers.
    fn maybe_compact(&mut self) {
        if let Some((seq, index, term)) = self.compact_pending {
            if seq <= self.storage.durable_seq() {
                self.compact_pending = None;
                self.storage.compact_to(index, term);
            }
        }
    }

    /// Restores a snapshot's state into this node (restart or install).
    fn restore(&mut self, body: SnapshotBody) -> Result<(), SnapshotError> {
        self.machine.restore(body.index, &body.state, body.sessions).map_err(|_| SnapshotError::Restore)?;
        self.commit = self.commit.max(body.index);
        self.release_reads();
        Ok(())
    }

    /// Starts a transfer to `to`, whose next entry was compacted.
    fn start_snapshot_transfer(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.clone() else { return };
        let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(to)) else { return };
        pr.become_snapshot(snap);
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk at the transfer's offset unless one is in flight.
    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let chunk = self.cfg.snapshot_chunk_bytes;
        let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(to)) else { return };
        if let Some(body) = pr.transfer.as_mut().and_then(|t| t.next_chunk(chunk)) {
            self.send(to, body);
        }
    }

    /// A follower answered a chunk.
    fn handle_snapshot_resp(&mut self, from: NodeId, index: Index, snap_term: Term, offset: u64, done: bool) {
        let Some(pr) = self.role.leader_mut().and_then(|l| l.progress_mut(from)) else { return };
        pr.recent_active = true;
        let Some(t) = pr.transfer.as_mut() else { return };
        if t.snapshot.meta.index != index || t.snapshot.meta.term != snap_term {
            return; // about another transfer
        }
        if !done && t.in_flight && offset == t.offset {
            // A duplicate of the answer the chunk in flight responds to:
            // sending it again would double every later chunk. A lost chunk
            // is resent at the next heartbeat.
            return;
        }
        if done {
            // Installed and durable: the follower matches us up to `index`.
            pr.transfer = None;
            pr.match_index = pr.match_index.max(index);
            pr.become_replicate();
            self.maybe_commit();
            self.send_append(from, false);
        } else if offset == u64::MAX {
            // The follower already has everything the snapshot covers.
            pr.transfer = None;
            pr.become_probe();
            pr.next_index = pr.next_index.max(index + 1);
            self.send_append(from, false);
        } else {
            t.offset = offset.min(t.snapshot.data.len() as u64);
            t.in_flight = false;
            self.send_snapshot_chunk(from);
        }
    }

    /// A chunk from the leader of our term.
    fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        index: Index,
        snap_term: Term,
        offset: u64,
        data: &[u8],
        done: bool,
    ) {
        let resp = |offset, done| Body::InstallSnapshotResp { index, snap_term, offset, done };
        let RoleState::Follower(f) = &mut self.role else { return };
        if index <= self.commit {
            // Nothing to learn: we hold (at least) everything it covers.
            f.incoming = None;
            return self.send(from, resp(u64::MAX, false));
        }
        let max = self.cfg.max_snapshot_bytes;
        let buf = match Incoming::accept(&mut f.incoming, self.term, index, snap_term, offset, data, done, max) {
            Chunk::Want(offset) => return self.send(from, resp(offset, false)),
            Chunk::Complete(buf) => buf,
        };
        let body = match SnapshotBody::decode(&buf, max) {
            Ok(b) if b.index == index && b.term == snap_term => b,
            // Damaged in transit (or lying): start over.
            _ => return self.send(from, resp(0, false)),
        };
        let membership = body.membership.clone();
        if self.restore(body).is_err() {
            return self.send(from, resp(0, false));
        }
        if self.storage.log().term(index) == Some(snap_term) {
            // Our log holds the snapshot's entry: keep what follows it, and
            // with it the configurations it carries.
            self.storage.compact_to(index, snap_term);
        } else {
            self.storage.reset_to_snapshot(index, snap_term, membership.clone());
        }
        self.sync_membership();
        let meta = SnapshotMeta { index, term: snap_term, membership: Box::new(membership), id: index };
        let snap = Arc::new(Snapshot { meta: meta.clone(), data: buf });
        self.snapshot = Some(snap.clone());
        self.compact_pending = None;
        self.out.snapshot(SnapshotOut { snapshot: snap, installed: true });
        let seq = self.storage.write_snapshot(meta);
        self.out.event(Event::SnapshotInstalled { index });
        self.send_after(seq, from, resp(0, true));
    }

    // ------------------------------------------------------------------
    // Plumbing
    // ------------------------------------------------------------------

    fn transferring(&self) -> bool {
        self.role.leader().is_some_and(|l| l.transfer.is_some())
    }

    /// Takes up the configuration in force if it changed: the quorum, the
    /// leader's followers, an event for the host. (With the `conf_at_commit`
    /// bug, the newest *committed* configuration is used instead.)
    fn sync_membership(&mut self) {
        let at_commit = self.bug(|b| b.conf_at_commit);
        let seen = (self.storage.configs().version(), if at_commit { self.commit } else { 0 });
        if seen == self.membership_seen {
            return;
        }
        self.membership_seen = seen;
        let configs = self.storage.configs();
        let m = if at_commit { configs.as_of(self.commit) } else { configs.latest() };
        if *m != self.membership {
            self.membership = m.clone();
            self.config = self.membership.quorum();
            if let Some(l) = self.role.leader_mut() {
                // A new quorum: only rounds sent from now on renew the lease.
                let next = l.reads.round() + 1;
                l.lease.on_config_change(next);
            }
            self.out.event(Event::ConfigChanged { membership: self.membership.clone() });
        }
        let followers = self.link_ids();
        let last = self.storage.log().last_index();
        if let Some(l) = self.role.leader_mut() {
            l.track(&followers, last);
        }
    }

    /// After a leader's commit index moved: followers whose removal committed
    /// are let go; a leader the committed configuration removed steps down; a
    /// committed joint configuration is left.
    fn after_leader_commit(&mut self) {
        self.sync_membership();
        // Only a newly committed configuration changes whom to replicate to
        // (this runs on every commit: keep it free of work otherwise).
        let committed_at = self.storage.configs().index_as_of(self.commit);
        if committed_at != self.committed_config_seen {
            self.committed_config_seen = committed_at;
            let followers = self.link_ids();
            let last = self.storage.log().last_index();
            if let Some(l) = self.role.leader_mut() {
                l.track(&followers, last);
            }
        }
        let settled = self.storage.configs().latest_index() <= self.commit;
        if settled && !self.membership.is_voter(self.cfg.id) {
            let term = self.term;
            self.out.event(Event::RemovedSelf { term });
            self.become_follower(term, None);
            return;
        }
        if settled && self.membership.is_joint() {
            let _ = self.propose_payload(Payload::ConfChange(ConfChange::LeaveJoint), true);
        }
    }

    fn bug(&self, which: fn(&Bugs) -> bool) -> bool {
        cfg!(feature = "bugs") && which(&self.cfg.bugs)
    }

    fn write_hard_state(&mut self) -> Seq {
        let hs = self.hard_state();
        self.storage.write_hard_state(hs)
    }

    /// A message to `to` carrying our incarnation and the one our
    /// configuration binds `to` to (0 if it names none).
    fn message(&self, to: NodeId, term: Term, body: Body) -> Message {
        let to_inc = self.membership.member(to).map_or(0, |m| m.inc);
        Message { from: self.cfg.id, to, term, from_inc: self.cfg.inc, to_inc, body }
    }

    /// Sends a message in the current term now.
    fn send(&mut self, to: NodeId, body: Body) {
        let msg = self.message(to, self.term, body);
        self.out.send(msg);
    }

    /// Sends a message in the current term once records up to `seq` are durable.
    fn send_after(&mut self, seq: Seq, to: NodeId, body: Body) {
        let msg = self.message(to, self.term, body);
        self.out.send_after(seq, self.storage.durable_seq(), self.storage.truncations(), msg);
    }

    /// The invariants that hold between inputs (debug builds only).
    fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let log = self.storage.log();
        let me = self.cfg.id;
        self.storage.debug_check();
        debug_assert!(self.machine.index <= self.commit, "applied {} > commit {}", self.machine.index, self.commit);
        debug_assert!(self.commit <= log.last_index(), "commit {} > last {}", self.commit, log.last_index());
        debug_assert!(log.snapshot_index() <= self.machine.index, "compacted past what was applied");
        match &self.role {
            RoleState::Leader(l) => {
                debug_assert_eq!(self.leader, Some(me), "a leader knows itself as leader");
                debug_assert_eq!(self.voted_for, Some(me), "a leader voted for itself in its term");
                debug_assert!(l.progress.windows(2).all(|w| w[0].id < w[1].id), "progress sorted by id");
                debug_assert!(l.progress.iter().all(|p| p.id != me && p.match_index <= log.last_index()));
                debug_assert!(l.pending_writes.iter().all(|w| w.0 > self.machine.index), "a pending write was applied");
            }
            RoleState::Candidate(_) => {
                debug_assert_eq!(self.voted_for, Some(me), "a candidate voted for itself");
                debug_assert_eq!(self.leader, None, "a candidate knows no leader of its term");
            }
            RoleState::PreCandidate(_) => debug_assert_eq!(self.leader, None),
            RoleState::Follower(_) => debug_assert_ne!(self.leader, Some(me), "only a leader leads"),
        }
    }
}

impl<S: StateMachine> fmt::Debug for Raft<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raft")
            .field("id", &self.cfg.id)
            .field("term", &self.term)
            .field("role", &self.role())
            .field("leader", &self.leader)
            .field("commit", &self.commit)
            .field("applied", &self.machine.index)
            .field("last_index", &self.storage.log().last_index())
            .finish()
    }
}
