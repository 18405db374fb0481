//! The Raft engine: one struct, stepped one input at a time, that hands its
//! outputs to the host in a [`Ready`].
//!
//! This file holds the struct, its configuration, the host contract and the
//! plumbing shared by every role. The protocol itself lives beside it:
//! [`election`](crate::election) (timeouts, PreVote, RequestVote, CheckQuorum)
//! and [`replication`](crate::replication) (AppendEntries, commit, apply).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::client::{ClientError, ClientReply, ClientRequest, ClientToken};
use crate::journal::{DurableState, Record};
use crate::log::Log;
use crate::message::{Body, Message};
use crate::progress::Progress;
use crate::read::PendingRead;
use crate::rng::Rng;
use crate::session::{SessionLimits, Sessions};
use crate::snapshot::{Incoming, RecoverError, Snapshot, SnapshotBody, SnapshotError, SnapshotOut};
use crate::state_machine::StateMachine;
use crate::types::{Bytes, Entry, HardState, Index, NodeId, Payload, Role, Seq, Term};

/// Deliberately broken behaviours, used only to show that the simulator's
/// checks are live. They take effect only when raft-core is built with the
/// `bugs` feature; in any other build they are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Commit an entry of an earlier term once a majority holds it (the bug of
    /// the Raft paper's Figure 8).
    pub commit_old_term: bool,
    /// Grant votes without the "candidate's log is at least as up to date" check.
    pub vote_without_log_check: bool,
    /// Send a vote before the HardState recording it is durable.
    pub vote_before_durable: bool,
    /// Answer reads from the leader's local state at once, without a
    /// confirmation round (the stale reads Jepsen found in etcd and Consul).
    pub stale_read_local: bool,
    /// Record a read's index before an entry of the leader's term has
    /// committed (so the index may miss writes the old leader committed).
    pub read_index_before_commit: bool,
    /// Turn off duplicate detection in sessions (retries apply twice).
    pub no_dedup: bool,
}

/// Static configuration of one node.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// Every voting member, this node included. Order does not matter.
    pub voters: Vec<NodeId>,
    /// Minimum election timeout `E` in ticks; the actual timeout is drawn from `[E, 2E)`.
    pub election_ticks: u32,
    /// Draw each election timeout from `[E, 2E)` (the default). Off, every
    /// timeout is exactly `E`: node-level tests use it to decide which node
    /// times out first without searching for a seed. Keep it on in a real
    /// cluster: equal timeouts make split votes repeat.
    pub election_jitter: bool,
    /// A leader sends heartbeats every this many ticks. Must be below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Ask before campaigning (PreVote), so a partitioned node does not inflate terms.
    pub pre_vote: bool,
    /// Leaders step down when they have not heard from a majority for an election
    /// timeout; followers that heard from a leader recently ignore vote requests.
    pub check_quorum: bool,
    /// Most entries in one AppendEntries.
    pub max_entries_per_msg: usize,
    /// Most entry bytes in one AppendEntries (a single larger entry still goes alone).
    pub max_bytes_per_msg: usize,
    /// Most AppendEntries in flight to one follower in Replicate state.
    pub max_inflight_msgs: usize,
    /// Most entry bytes in flight to one follower.
    pub max_inflight_bytes: usize,
    /// Most uncommitted entries a leader holds; proposals beyond get `Busy`.
    pub max_uncommitted_entries: usize,
    /// Most uncommitted bytes a leader holds; proposals beyond get `Busy`.
    pub max_uncommitted_bytes: usize,
    /// Most messages held back waiting for durability; past this the oldest are
    /// dropped (safe: every such message is an answer the sender will re-ask).
    pub max_held_messages: usize,
    /// Session timeout and limits. Must be equal on every node.
    pub sessions: SessionLimits,
    /// Most linearizable reads waiting at a leader; more get `Busy`.
    pub max_pending_reads: usize,
    /// Most client writes a leader tracks until applied; more get `Busy`.
    pub max_pending_writes: usize,
    /// Take a snapshot every this many applied entries (0: never by count).
    pub snapshot_entries: u64,
    /// Take a snapshot when the in-memory log holds this many bytes.
    pub snapshot_log_bytes: usize,
    /// Bytes per InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot accepted from a leader or a disk.
    pub max_snapshot_bytes: usize,
    /// Seed of the election-timeout PRNG. Give each node a different one.
    pub seed: u64,
    /// Deliberate bugs (honoured only with the `bugs` feature).
    pub bugs: Bugs,
}

impl Config {
    /// A configuration with the defaults used by the hosts: ticks of 10 ms in
    /// mind, heartbeats every 10 ticks, election timeout 30–60 ticks.
    ///
    /// ```
    /// let cfg = raft_core::Config::new(1, vec![1, 2, 3]);
    /// assert!(cfg.validate().is_ok());
    /// ```
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Config {
            id,
            voters,
            election_ticks: 30,
            election_jitter: true,
            heartbeat_ticks: 10,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_msg: 1024,
            max_bytes_per_msg: 1 << 20,
            max_inflight_msgs: 64,
            max_inflight_bytes: 8 << 20,
            max_uncommitted_entries: 65_536,
            max_uncommitted_bytes: 64 << 20,
            max_held_messages: 4096,
            sessions: SessionLimits::default(),
            max_pending_reads: 65_536,
            max_pending_writes: 65_536,
            snapshot_entries: 10_000,
            snapshot_log_bytes: 64 << 20,
            snapshot_chunk_bytes: 256 << 10,
            max_snapshot_bytes: 1 << 30,
            seed: id,
            bugs: Bugs::default(),
        }
    }

    /// Checks the configuration for values the engine cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError("node id 0 is reserved"));
        }
        if !self.voters.contains(&self.id) {
            return Err(ConfigError("this node is not among the voters"));
        }
        let mut v = self.voters.clone();
        v.sort_unstable();
        v.dedup();
        if v.len() != self.voters.len() {
            return Err(ConfigError("duplicate voter id"));
        }
        if v.contains(&0) {
            return Err(ConfigError("node id 0 is reserved"));
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError("need 0 < heartbeat_ticks < election_ticks"));
        }
        if self.max_entries_per_msg == 0
            || self.max_bytes_per_msg == 0
            || self.max_inflight_msgs == 0
            || self.max_inflight_bytes == 0
            || self.max_uncommitted_entries == 0
            || self.max_uncommitted_bytes == 0
            || self.max_held_messages == 0
            || self.max_pending_reads == 0
            || self.max_pending_writes == 0
            || self.sessions.max_sessions == 0
            || self.sessions.max_outstanding == 0
            || self.sessions.timeout_ticks == 0
            || self.snapshot_log_bytes == 0
            || self.snapshot_chunk_bytes == 0
            || self.max_snapshot_bytes == 0
        {
            return Err(ConfigError("limits must be positive"));
        }
        Ok(())
    }
}

/// A configuration the engine refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid raft config: {}", self.0)
    }
}

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
    /// The sender is not a member of this cluster.
    UnknownSender,
}

/// A committed entry the engine applied. `output` is the state machine's
/// output for a raw [`Raft::propose`]d command (client requests get theirs in
/// [`Ready::replies`]), and empty otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Log index of the entry.
    pub index: Index,
    /// Its term (with the index, identifies the proposal the host made).
    pub term: Term,
    /// What the state machine returned (empty for no-ops).
    pub output: Bytes,
}

/// Notable things that happened, in plain terms, for logs and the web demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Became (or stayed, in a new term) a follower.
    BecameFollower {
        /// The term.
        term: Term,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Started a pre-vote for `term + 1`.
    BecamePreCandidate {
        /// Current term (unchanged).
        term: Term,
    },
    /// Started an election.
    BecameCandidate {
        /// The new term.
        term: Term,
    },
    /// Won an election.
    BecameLeader {
        /// The term.
        term: Term,
    },
    /// A leader stepped down because a majority was silent for an election timeout.
    LostQuorum {
        /// The term.
        term: Term,
    },
    /// A snapshot was taken locally.
    SnapshotTaken {
        /// Index it covers.
        index: Index,
    },
    /// A snapshot from the leader was installed.
    SnapshotInstalled {
        /// Index it covers.
        index: Index,
    },
    /// The commit index moved.
    Committed {
        /// New commit index.
        index: Index,
    },
    /// A conflicting suffix was dropped.
    Truncated {
        /// First dropped index.
        from_index: Index,
    },
}

/// Everything the host must carry out after an input: the host contract.
///
/// After every call into the engine (`tick`, `step`, `propose`, `submit`,
/// `persisted`), take the `Ready` with [`Raft::take_ready`] and:
///
/// 0. **Store `snapshot`**, if present, durably (write to a temporary name,
///    fsync, rename, fsync the directory) *before* persisting the records: one
///    of them is the `Snapshot` record that names it. After restart, hand its
///    bytes to [`Raft::recover`]. Older snapshots may be deleted once a newer
///    `Snapshot` record is durable.
/// 1. **Persist `records`** in order, appending them to the journal. They may be
///    written in one batch with one fsync (group commit). When records up to
///    sequence number `s` are durable, call [`Raft::persisted`]`(s)`.
/// 2. **Send `messages`** now. Every message here may leave at once: the engine
///    holds back anything whose truth depends on records not yet durable (a
///    vote; an AppendEntries acknowledgement) and releases it in the `Ready` that
///    follows the `persisted` call covering it, dropping it instead if the
///    node's term changed or the acknowledged entries were truncated meanwhile.
///    A leader's own AppendEntries go out before its write is durable
///    (dissertation §10.2.1); it counts itself toward a commit majority only for
///    entries it has persisted, and a candidate counts its own vote only once
///    the HardState naming it is durable.
/// 3. **Deliver `replies`** to the clients named by their tokens. Write results
///    appear as each entry is applied (right after the commit index moved past
///    it), in order; reads once their confirmation round and apply allow.
///    `applied` lists every entry applied, for hosts that track progress.
///
/// Losing records that were never reported durable is fine (that is a crash);
/// reporting a record durable that is not breaks Raft's safety. A host that
/// splits its journal into segments begins each new one with
/// [`Raft::checkpoint`]'s records, written when every issued record has been
/// written; older segments may be deleted once those are durable.
///
/// # A driving loop
///
/// ```
/// use raft_core::{Config, Raft, DigestMachine};
/// // A one-node cluster whose "disk" is instantaneous.
/// let mut node = Raft::new(Config::new(1, vec![1]), DigestMachine::default()).unwrap();
/// let mut journal = Vec::new();
/// for _ in 0..100 {
///     node.tick();
///     loop {
///         let ready = node.take_ready();
///         if ready.is_empty() { break; }
///         let last = ready.records.last().map(|(seq, _)| *seq);
///         journal.extend(ready.records);      // write + fsync in a real host
///         // send ready.messages to peers; reply to clients from ready.applied
///         if let Some(seq) = last { node.persisted(seq); }
///     }
/// }
/// assert!(node.is_leader());
/// let (index, _term) = node.propose(b"hello".to_vec()).unwrap();
/// let ready = node.take_ready();
/// node.persisted(ready.records.last().unwrap().0);
/// assert_eq!(node.take_ready().applied.last().unwrap().index, index);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// Journal records to make durable, in order, with their sequence numbers.
    pub records: Vec<(Seq, Record)>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Committed entries applied to the state machine, in index order.
    pub applied: Vec<Applied>,
    /// Replies to client requests, by the token given with the request.
    pub replies: Vec<(ClientToken, ClientReply)>,
    /// A snapshot to store durably *before* persisting `records` (they include
    /// the `Snapshot` record naming it): taken locally or installed from the leader.
    pub snapshot: Option<SnapshotOut>,
    /// Things that happened, for logs and visualisation.
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.messages.is_empty()
            && self.applied.is_empty()
            && self.replies.is_empty()
            && self.events.is_empty()
            && self.snapshot.is_none()
    }
}

/// A message waiting for its records to become durable.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    /// Release once records up to here are durable.
    pub seq: Seq,
    /// Drop if the node's term changed since.
    pub term: Term,
    /// Drop if any truncation happened since (acknowledgements only).
    pub truncations: u64,
    pub msg: Message,
}

/// One Raft node: the consensus engine and the state machine it drives.
///
/// Create it with [`Raft::new`] (a new node) or [`Raft::restart`] (from the
/// state replayed out of its journal), feed it inputs, and drain its [`Ready`].
pub struct Raft<S: StateMachine> {
    pub(crate) cfg: Config,
    /// Sorted voter ids, this node included.
    pub(crate) voters: Vec<NodeId>,
    pub(crate) term: Term,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) role: Role,
    /// The leader of the current term, once known.
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: Log,
    pub(crate) commit: Index,
    pub(crate) applied: Index,
    pub(crate) sm: S,
    /// The replicated session table (part of the applied state, like `sm`).
    pub(crate) sessions: Sessions,
    /// Leader: client writes waiting for their entry to apply, by index.
    pub(crate) pending_writes: VecDeque<(Index, ClientToken, Term)>,
    /// Leader: linearizable reads in arrival order.
    pub(crate) reads: VecDeque<PendingRead>,
    /// Leader: a confirmation round is in flight.
    pub(crate) round_in_flight: bool,
    /// Leader: reads are waiting for the round after the one in flight.
    pub(crate) next_round_wanted: bool,
    pub(crate) rng: Rng,
    /// Ticks since the last reset of the election timer (for a leader: since
    /// the last CheckQuorum).
    pub(crate) election_elapsed: u32,
    pub(crate) randomized_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Votes received in the current (pre-)campaign: (voter, granted).
    pub(crate) votes: Vec<(NodeId, bool)>,
    /// A candidate's own vote counts only once this HardState record is durable.
    pub(crate) self_vote_seq: Option<Seq>,
    /// Leader only: one entry per peer, sorted by id.
    pub(crate) progress: Vec<Progress>,
    /// Leader only: the current confirmation round (increases within a term).
    pub(crate) round: u64,
    /// Cluster time (ticks) of the last entry when this node became leader, and
    /// ticks elapsed since.
    pub(crate) time_base: u64,
    pub(crate) time_elapsed: u64,
    // --- durability bookkeeping ---
    pub(crate) next_seq: Seq,
    pub(crate) durable_seq: Seq,
    /// Entries `..= durable_index` of the current log are durable.
    pub(crate) durable_index: Index,
    /// Append records not yet durable: (seq, last index written).
    pub(crate) unsynced: VecDeque<(Seq, Index)>,
    pub(crate) truncations: u64,
    pub(crate) held: VecDeque<Held>,
    /// Leader: followers that need an AppendEntries at the next flush.
    pub(crate) pending_broadcast: bool,
    /// The latest snapshot, taken or installed (kept to send to followers).
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    /// A Snapshot record not yet durable: (seq, index, term); compact after.
    pub(crate) compact_pending: Option<(Seq, Index, Term)>,
    /// Follower: a snapshot transfer in progress.
    pub(crate) incoming: Option<Incoming>,
    /// Leader: bytes of entries above the commit index (for the Busy limit).
    pub(crate) uncommitted_bytes: usize,
    pub(crate) ready: Ready,
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
        let meta = durable.snapshot.clone();
        let mut node = Self::fresh(cfg, durable, sm).map_err(RecoverError::Config)?;
        if let Some(meta) = meta {
            let data = snapshot.ok_or(RecoverError::Snapshot(SnapshotError::Missing))?;
            let body = SnapshotBody::decode(data, node.cfg.max_snapshot_bytes).map_err(RecoverError::Snapshot)?;
            if body.index != meta.index || body.term != meta.term {
                return Err(RecoverError::Snapshot(SnapshotError::Mismatch));
            }
            node.restore_snapshot(body).map_err(RecoverError::Snapshot)?;
            node.snapshot = Some(Arc::new(Snapshot { meta, data: data.to_vec() }));
        }
        Ok(node)
    }

    fn fresh(cfg: Config, durable: DurableState, sm: S) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut voters = cfg.voters.clone();
        voters.sort_unstable();
        // The state machine starts at the snapshot (restored by `recover`) and
        // replays the log as the commit index is learnt again.
        let snap_index = durable.log.snapshot_index();
        let mut rng = Rng::new(cfg.seed ^ cfg.id.rotate_left(32));
        let randomized_timeout = crate::election::draw_timeout(&cfg, &mut rng);
        let last_index = durable.log.last_index();
        Ok(Raft {
            voters,
            term: durable.hard.term,
            voted_for: durable.hard.voted_for,
            role: Role::Follower,
            leader: None,
            commit: snap_index,
            applied: snap_index,
            sm,
            sessions: {
                let mut t = Sessions::new(cfg.sessions);
                t.no_dedup = cfg!(feature = "bugs") && cfg.bugs.no_dedup;
                t
            },
            pending_writes: VecDeque::new(),
            reads: VecDeque::new(),
            round_in_flight: false,
            next_round_wanted: false,
            rng,
            election_elapsed: 0,
            randomized_timeout,
            heartbeat_elapsed: 0,
            votes: Vec::new(),
            self_vote_seq: None,
            progress: Vec::new(),
            round: 0,
            time_base: 0,
            time_elapsed: 0,
            next_seq: durable.last_seq + 1,
            durable_seq: durable.last_seq,
            durable_index: last_index,
            unsynced: VecDeque::new(),
            truncations: 0,
            held: VecDeque::new(),
            pending_broadcast: false,
            uncommitted_bytes: 0,
            snapshot: None,
            compact_pending: None,
            incoming: None,
            ready: Ready::default(),
            log: durable.log,
            cfg,
        })
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.cfg.id {
            return Err(StepError::WrongRecipient);
        }
        if m.from == self.cfg.id || self.voters.binary_search(&m.from).is_err() {
            return Err(StepError::UnknownSender);
        }
        self.step_checked(m);
        Ok(())
    }

    /// Proposes a command. On success returns the (index, term) it was appended
    /// at; the result arrives in [`Ready::applied`] once it commits. A refusal
    /// guarantees the command never entered the log.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        self.propose_payload(Payload::Command(data.into()))
    }

    /// A client request. The reply arrives in [`Ready::replies`] under `token`:
    /// at once if it is refused before queueing, otherwise once its entry is
    /// applied (writes) or its confirmation round completes (reads).
    pub fn submit(&mut self, token: ClientToken, request: ClientRequest) {
        if self.role != Role::Leader {
            let hint = self.leader;
            return self.reply(token, Err(ClientError::NotLeader { leader_hint: hint }));
        }
        let payload = match request {
            ClientRequest::Read { query } => return self.read(token, query),
            ClientRequest::Register => Payload::Register,
            ClientRequest::Write { session, seq, ack, command } => {
                if let Err(e) = self.sessions.precheck(session, seq, ack) {
                    return self.reply(token, Err(e));
                }
                if let Err(why) = self.sm.validate_command(&command) {
                    return self.reply(token, Err(ClientError::BadRequest(why.into())));
                }
                Payload::Write { session, seq, ack, command: command.into() }
            }
            ClientRequest::KeepAlive { session, ack } => {
                if ack == 0 {
                    return self.reply(token, Err(ClientError::BadRequest("ack starts at 1".into())));
                }
                Payload::KeepAlive { session, ack }
            }
        };
        if self.pending_writes.len() >= self.cfg.max_pending_writes {
            return self.reply(token, Err(ClientError::Busy));
        }
        match self.propose_payload(payload) {
            Ok((index, term)) => {
                // A one-node cluster may already have applied it.
                if index > self.applied {
                    // Indexes only grow within a leadership: the deque stays sorted.
                    self.pending_writes.push_back((index, token, term));
                }
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                self.reply(token, Err(ClientError::NotLeader { leader_hint }))
            }
            Err(ProposeError::Busy) => self.reply(token, Err(ClientError::Busy)),
        }
    }

    pub(crate) fn reply(&mut self, token: ClientToken, r: Result<ClientReply, ClientError>) {
        let reply = r.unwrap_or_else(ClientReply::Rejected);
        self.ready.replies.push((token, reply));
    }

    /// The host reports that journal records up to `seq` are durable.
    pub fn persisted(&mut self, seq: Seq) {
        if seq <= self.durable_seq {
            return;
        }
        debug_assert!(seq < self.next_seq, "persisted({seq}) but only {} records were issued", self.next_seq - 1);
        let seq = seq.min(self.next_seq - 1);
        self.durable_seq = seq;
        while let Some(&(s, idx)) = self.unsynced.front() {
            if s > seq {
                break;
            }
            self.unsynced.pop_front();
            self.durable_index = self.durable_index.max(idx);
        }
        self.release_held();
        self.maybe_compact();
        if self.role == Role::Candidate && self.self_vote_seq.is_some_and(|s| s <= seq) {
            self.self_vote_seq = None;
            self.record_vote(self.cfg.id, true);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Makes this node time out and start an election now (for tests and the demo).
    pub fn force_timeout(&mut self) {
        if self.role != Role::Leader {
            self.campaign(self.cfg.pre_vote);
        }
    }

    /// Takes everything the host must do now (see [`Ready`] for the contract).
    pub fn take_ready(&mut self) -> Ready {
        if self.role == Role::Leader && self.pending_broadcast {
            self.pending_broadcast = false;
            self.broadcast_append(false);
        }
        core::mem::take(&mut self.ready)
    }

    /// Whether [`Raft::take_ready`] would return anything.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || (self.role == Role::Leader && self.pending_broadcast)
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
        self.role
    }
    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
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
        self.applied
    }
    /// Highest index whose entry is durable in this node's journal.
    pub fn durable_index(&self) -> Index {
        self.durable_index
    }
    /// Highest record sequence number reported durable.
    pub fn durable_seq(&self) -> Seq {
        self.durable_seq
    }
    /// The in-memory log.
    pub fn log(&self) -> &Log {
        &self.log
    }
    /// The state machine.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }
    /// The session table.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
    /// Leader: reads waiting for confirmation or apply.
    pub fn pending_reads(&self) -> usize {
        self.reads.len()
    }
    /// Leader: client writes waiting to apply.
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.len()
    }
    /// Leader: the current confirmation round.
    pub fn round(&self) -> u64 {
        self.round
    }
    /// Voters, sorted.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }
    /// Leader only: replication progress of each peer.
    pub fn progress(&self) -> &[Progress] {
        &self.progress
    }
    /// Ticks since the election timer was reset, and the timeout it counts toward.
    pub fn election_timer(&self) -> (u32, u32) {
        (self.election_elapsed, self.randomized_timeout)
    }
    /// Votes collected in the current campaign.
    pub fn votes(&self) -> &[(NodeId, bool)] {
        &self.votes
    }
    /// Messages waiting for durability.
    pub fn held_messages(&self) -> usize {
        self.held.len()
    }
    /// The current HardState.
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, voted_for: self.voted_for, role: self.role }
    }

    // ------------------------------------------------------------------
    // Shared plumbing
    // ------------------------------------------------------------------

    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub(crate) fn bug(&self, which: fn(&Bugs) -> bool) -> bool {
        cfg!(feature = "bugs") && which(&self.cfg.bugs)
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.cfg.id;
        self.voters.iter().copied().filter(move |&v| v != me)
    }

    /// Issues a journal record and returns its sequence number.
    pub(crate) fn write(&mut self, record: Record) -> Seq {
        // Consecutive appends in one Ready share a record: one frame, one seq.
        let record = match record {
            Record::Append { first_index, entries: new } => {
                if let Some((seq, Record::Append { entries, .. })) = self.ready.records.last_mut() {
                    if entries.last().map(|e| e.index + 1) == Some(first_index) {
                        entries.extend(new); // moved, not copied
                        let seq = *seq;
                        if let Some(last) = self.unsynced.back_mut() {
                            if last.0 == seq {
                                last.1 = self.log.last_index();
                            }
                        }
                        return seq;
                    }
                }
                Record::Append { first_index, entries: new }
            }
            other => other,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Record::Append { entries, .. } = &record {
            if let Some(e) = entries.last() {
                self.unsynced.push_back((seq, e.index));
            }
        }
        self.ready.records.push((seq, record));
        seq
    }

    pub(crate) fn write_hard_state(&mut self) -> Seq {
        let hs = self.hard_state();
        self.write(Record::HardState(hs))
    }

    /// Sends a message now.
    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        let m = Message { from: self.cfg.id, to, term: self.term, body };
        self.ready.messages.push(m);
    }

    /// Sends a message once records up to `seq` are durable.
    pub(crate) fn send_after(&mut self, seq: Seq, to: NodeId, body: Body) {
        let msg = Message { from: self.cfg.id, to, term: self.term, body };
        if seq <= self.durable_seq {
            self.ready.messages.push(msg);
            return;
        }
        if self.held.len() >= self.cfg.max_held_messages {
            self.held.pop_front();
        }
        self.held.push_back(Held { seq, term: self.term, truncations: self.truncations, msg });
    }

    fn release_held(&mut self) {
        while let Some(h) = self.held.front() {
            if h.seq > self.durable_seq {
                break;
            }
            let Some(h) = self.held.pop_front() else {
                break;
            };
            let stale_ack = matches!(h.msg.body, Body::AppendResp { .. }) && h.truncations != self.truncations;
            if h.term == self.term && !stale_ack {
                self.ready.messages.push(h.msg);
            }
        }
    }

    pub(crate) fn event(&mut self, e: Event) {
        self.ready.events.push(e);
    }

    /// Appends entries to the in-memory log and issues their journal record.
    pub(crate) fn append_entries(&mut self, entries: Vec<Entry>) -> Seq {
        let Some(first) = entries.first().map(|e| e.index) else {
            return self.next_seq - 1;
        };
        for e in &entries {
            self.log.append(e.clone());
        }
        self.write(Record::Append { first_index: first, entries })
    }

    /// Drops the log suffix from `from` and records it.
    pub(crate) fn truncate_log(&mut self, from: Index) {
        // Truncating a committed entry is a safety violation. With the `bugs`
        // feature the simulator must be the one to notice, so it may happen.
        if !cfg!(feature = "bugs") {
            assert!(from > self.commit, "a committed entry ({from} <= commit {}) must never be truncated", self.commit);
        }
        self.log.truncate_from(from);
        self.truncations += 1;
        self.durable_index = self.durable_index.min(from - 1);
        for u in self.unsynced.iter_mut() {
            u.1 = u.1.min(from - 1);
        }
        self.write(Record::Truncate { from_index: from });
        self.event(Event::Truncated { from_index: from });
    }

    /// Cluster time for a new entry: never below the last entry's time.
    pub(crate) fn cluster_time(&self) -> u64 {
        let last = self.log.entry(self.log.last_index()).map_or(0, |e| e.time);
        last.max(self.time_base + self.time_elapsed)
    }

    pub(crate) fn propose_payload(&mut self, payload: Payload) -> Result<(Index, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        // Entries not yet both committed and durable here: bounds memory even
        // when followers commit faster than this leader's own disk syncs.
        let uncommitted = (self.log.last_index() - self.commit.min(self.durable_index)) as usize;
        if uncommitted >= self.cfg.max_uncommitted_entries || self.uncommitted_bytes >= self.cfg.max_uncommitted_bytes {
            return Err(ProposeError::Busy);
        }
        let index = self.log.last_index() + 1;
        let entry = Entry { term: self.term, index, time: self.cluster_time(), payload };
        self.uncommitted_bytes += entry.size();
        self.append_entries(alloc::vec![entry]);
        self.pending_broadcast = true;
        if self.voters.len() == 1 {
            self.maybe_commit();
        }
        Ok((index, self.term))
    }

    /// Applies every committed entry not yet applied, in order, right away,
    /// replying to each client as its entry is applied.
    pub(crate) fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let Some(entry) = self.log.entry(index) else {
                // Committed entries are held until applied; a gap is a bug.
                debug_assert!(false, "committed entry {index} missing from the log");
                return;
            };
            let (term, time) = (entry.term, entry.time);
            // Cluster time first, then expiry, then the command (DESIGN.md §4).
            self.sessions.advance(time);
            // `self.log`, `self.sm` and `self.sessions` are disjoint fields: no copies.
            let sm = &mut self.sm;
            let mut output = Bytes::default();
            let reply = match &entry.payload {
                Payload::Noop | Payload::ConfChange(_) => None,
                Payload::Command(data) => {
                    output = sm.apply(index, time, data);
                    None
                }
                Payload::Register => {
                    Some(self.sessions.register(index).map(|session| ClientReply::Registered { session }))
                }
                Payload::Write { session, seq, ack, command } => Some(
                    self.sessions
                        .write(*session, *seq, *ack, || sm.apply(index, time, command))
                        .map(|output| ClientReply::Written { output }),
                ),
                Payload::KeepAlive { session, ack } => {
                    Some(self.sessions.keep_alive(*session, *ack).map(|_| ClientReply::KeptAlive))
                }
            };
            self.applied = index;
            while self.pending_writes.front().is_some_and(|w| w.0 < index) {
                // Cannot happen (applies are in order); never strand a client.
                if let Some((_, token, _)) = self.pending_writes.pop_front() {
                    self.reply(token, Err(ClientError::UnknownOutcome { leader_hint: self.leader }));
                }
            }
            let pending = match self.pending_writes.front() {
                Some(&(i, token, t)) if i == index => {
                    self.pending_writes.pop_front();
                    Some((token, t))
                }
                _ => None,
            };
            if let Some((token, t)) = pending {
                match reply {
                    Some(r) if t == term => self.reply(token, r),
                    // Another leader's entry took this index: ours was lost.
                    _ => self.reply(token, Err(ClientError::UnknownOutcome { leader_hint: self.leader })),
                }
            }
            self.ready.applied.push(Applied { index, term, output });
        }
        if self.role == Role::Leader {
            self.release_reads();
        }
        self.maybe_snapshot();
    }

    /// A leader stepping down: its pending writes may or may not commit, its
    /// pending reads cannot be served.
    pub(crate) fn abandon_client_work(&mut self) {
        let hint = self.leader;
        let writes = core::mem::take(&mut self.pending_writes);
        for (_, token, _) in writes {
            self.reply(token, Err(ClientError::UnknownOutcome { leader_hint: hint }));
        }
        self.fail_reads(hint);
        self.round_in_flight = false;
        self.next_round_wanted = false;
    }
}

impl<S: StateMachine> fmt::Debug for Raft<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raft")
            .field("id", &self.cfg.id)
            .field("term", &self.term)
            .field("role", &self.role)
            .field("leader", &self.leader)
            .field("commit", &self.commit)
            .field("applied", &self.applied)
            .field("last_index", &self.log.last_index())
            .finish()
    }
}
