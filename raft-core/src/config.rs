//! Static configuration of one node, checked before the engine starts, and
//! the switches for deliberate bugs that prove the simulator's checks live.
//!
//! Every field of [`Config`] is a limit or a timing: the engine holds nothing
//! whose size an outsider can grow without one of these bounding it.

use alloc::vec::Vec;
use core::fmt;

use crate::lease::LeaseTiming;
use crate::membership::Member;
use crate::session::SessionLimits;
use crate::types::NodeId;

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
    /// A follower says nothing to an AppendEntries whose `prev_index`, after
    /// skipping what it has committed, still lies inside its compacted log
    /// (the liveness bug an independent conformance suite found: the leader
    /// re-sends the same probe forever and the follower never catches up).
    pub silent_compacted_append: bool,
    /// Accept a membership change before the leader has committed an entry
    /// of its own term (the single-server change bug found on raft-dev in
    /// 2015: two leaders, or a committed entry lost).
    pub conf_change_before_term_commit: bool,
    /// Put a configuration in force when its entry commits instead of when
    /// it is appended.
    pub conf_at_commit: bool,
    /// Vote and count votes without looking at incarnations: a node whose
    /// disk was wiped votes (and is counted) as if it were its old self.
    pub ignore_incarnation: bool,
    /// A node that found lost records at recovery votes, campaigns and is
    /// counted as if it had lost nothing.
    pub ignore_lost_data: bool,
    /// The leader appends no time entry when its clock passes the earliest
    /// lease deadline, so cluster time stands still in an idle cluster and
    /// a dead holder's lease never ends (DESIGN §12).
    pub lease_no_time_entry: bool,
    /// Lease reads run for `(E - 1)` ticks from the round's send time with
    /// no drift margin, so a leader whose clock runs slow (or whose voters'
    /// clocks run fast) answers reads after another leader may exist.
    pub lease_without_margin: bool,
    /// A follower's read joins the `ReadIndex` request it already sent, so
    /// the leader may fix its index before the read arrived.
    pub follower_read_joins_inflight: bool,
    /// Watchers resume after a reconnect from the last complete revision + 2
    /// instead of + 1, losing the events of one revision (DESIGN §12).
    pub watch_resume_skips: bool,
}

/// Static configuration of one node.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// The voters the cluster was bootstrapped with: the configuration as of
    /// index 0, before any membership change in the log. Every node of a
    /// cluster is given the same list, including nodes that join later (and
    /// are not in it: they enter as learners through a change). Once the log
    /// or a snapshot carries a configuration, that is the one in force; a node
    /// given a different bootstrap list would misread the changes in its log.
    /// Order does not matter.
    ///
    /// Each voter names the incarnation of its data directory the cluster was
    /// bound to at bootstrap (0: unbound, as [`Config::new`] gives). A node
    /// votes and campaigns only while a configuration it holds names it with
    /// its own [`Config::inc`], so a node whose directory was wiped (a new
    /// incarnation) cannot vote as its old self.
    pub voters: Vec<Member>,
    /// The incarnation of this node's data directory: a random number drawn
    /// when the directory was created and never changed (0: unbound). Sent
    /// on every message as `from_inc`.
    pub inc: u64,
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
    /// Snapshots taken by policy (`snapshot_entries`, `snapshot_log_bytes`)
    /// are built by the host, off its event loop: the engine freezes the
    /// applied state and hands it over in [`crate::Ready::snapshot_job`], and
    /// issues the `Snapshot` record once the host reports the bytes stored
    /// ([`Raft::snapshot_stored`](crate::Raft::snapshot_stored)). Off (the
    /// default), the engine encodes the snapshot inside the step that applied
    /// its last entry and hands the bytes over in [`crate::Ready::snapshot`].
    /// [`Raft::take_snapshot`](crate::Raft::take_snapshot) always encodes at once.
    pub async_snapshots: bool,
    /// Bytes per InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot accepted from a leader or a disk.
    pub max_snapshot_bytes: usize,
    /// A learner (or new node) is made a voter only if it lags the leader's
    /// log by at most this many entries (unless the change is forced).
    pub max_promotion_lag: u64,
    /// Seed of the election-timeout PRNG. Give each node a different one.
    pub seed: u64,
    /// A number that grows with every start of this node (hosts keep a
    /// counter beside the journal; 0: not numbered). It rides on every
    /// AppendEntries answer, so a leader can tell a follower that restarted —
    /// and may have lost the unsynced or damaged tail of its journal — from
    /// an old duplicate, and probes it afresh instead of trusting the match
    /// index it had.
    pub epoch: u64,
    /// With CheckQuorum, a node that has just started ignores (pre-)vote
    /// requests for the minimum election timeout (DESIGN §10): the leader it
    /// followed before a quick restart may still count on its stickiness
    /// (and a lease read relies on it). A node that has never seen a term
    /// (a first start) is exempt: it followed no one. On by default;
    /// node-level scripts that drive elections tick by tick turn it off.
    pub sticky_after_start: bool,
    /// Lease reads ([`crate::lease`]): `None` (the default) confirms every
    /// read with a round (ReadIndex). With a timing, a leader answers reads
    /// from its own state while a quorum's acknowledgement of a recent round
    /// holds its lease; the host must then pass its monotonic clock with
    /// [`Raft::set_clock`](crate::Raft::set_clock) before every input. Needs
    /// `check_quorum` and `sticky_after_start` (the lease is the time voters
    /// stay sticky).
    pub lease_reads: Option<LeaseTiming>,
    /// Followers answer linearizable reads themselves, after asking the
    /// leader for a read index ([`crate::follower_read`]); off, a read at a
    /// follower is refused with `NotLeader`. On by default.
    pub follower_reads: bool,
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
            voters: voters.into_iter().map(|id| Member { id, inc: 0 }).collect(),
            inc: 0,
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
            async_snapshots: false,
            snapshot_chunk_bytes: 256 << 10,
            max_snapshot_bytes: 1 << 30,
            max_promotion_lag: 1_000,
            seed: id,
            epoch: 0,
            sticky_after_start: true,
            lease_reads: None,
            follower_reads: true,
            bugs: Bugs::default(),
        }
    }

    /// Checks the configuration for values the engine cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError("node id 0 is reserved"));
        }
        if self.voters.is_empty() {
            return Err(ConfigError("the bootstrap voters are empty"));
        }
        let mut v: Vec<NodeId> = self.voters.iter().map(|m| m.id).collect();
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
            || self.sessions.max_reply_bytes == 0
            || self.sessions.max_per_owner == 0
            || self.sessions.timeout_ticks == 0
            || self.snapshot_log_bytes == 0
            || self.snapshot_chunk_bytes == 0
            || self.max_snapshot_bytes == 0
        {
            return Err(ConfigError("limits must be positive"));
        }
        if let Some(t) = self.lease_reads {
            if !self.check_quorum || !self.sticky_after_start {
                return Err(ConfigError("lease reads need check_quorum and sticky_after_start"));
            }
            if !t.is_valid() || t.duration(self.election_ticks) == 0 {
                return Err(ConfigError("lease timing leaves no lease (tick 0, or drift of 50 % or more)"));
            }
        }
        Ok(())
    }

    /// How long a lease lasts from its round's send time, in clock units
    /// (`None` without lease reads). The `lease_without_margin` bug drops the
    /// drift margin.
    pub fn lease_duration(&self) -> Option<u64> {
        let t = self.lease_reads?;
        let t = if cfg!(feature = "bugs") && self.bugs.lease_without_margin {
            LeaseTiming { drift_ppm: 0, ..t }
        } else {
            t
        };
        Some(t.duration(self.election_ticks))
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
