//! The knobs of a simulated cluster, as the page sends them (JSON).

use raft_core::sim::SimConfig;
use raft_core::{Bugs, Config};
use serde::{Deserialize, Serialize};

/// Cluster options. Every field has a default, so `{}` is a valid options object.
/// Times are simulated microseconds; ticks are `tick_us` long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Number of nodes (1 to 9; the page offers 3 to 9). Ids are `1..=nodes`.
    pub nodes: usize,
    /// Seed of the simulator's one PRNG: the same seed and actions replay the same run.
    pub seed: u64,
    /// Length of a tick.
    pub tick_us: u64,
    /// Minimum election timeout in ticks (the actual one is drawn from `[E, 2E)`).
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// One-way network latency range `[lo, hi]`.
    pub latency_us: [u64; 2],
    /// Time for a disk to make a batch of journal records durable `[lo, hi]`.
    pub disk_us: [u64; 2],
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message takes a long detour (reordering).
    pub long_delay: f64,
    /// Upper bound of such a detour.
    pub long_delay_us: u64,
    /// Ask before campaigning (PreVote).
    pub pre_vote: bool,
    /// Leaders step down without a majority; followers ignore votes while a leader is alive.
    pub check_quorum: bool,
    /// Most entries in one AppendEntries (1 makes replication go entry by
    /// entry, which the Figure 8 scenario needs to stop between two entries).
    pub max_entries_per_msg: usize,
    /// Most AppendEntries in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Take a snapshot every this many applied entries (0: only by hand).
    pub snapshot_entries: u64,
    /// Bytes per InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Session idle timeout in ticks.
    pub session_timeout_ticks: u64,
    /// A leader refuses to promote a learner lacking more than this many
    /// entries (raft-core's `Config::max_promotion_lag`; small here, so the
    /// page can show the refusal).
    pub max_promotion_lag: u64,
    /// Deliberate bugs; honoured only by a build with the `bugs` feature.
    pub bugs: BugOptions,
}

/// The core's deliberate bugs (see `raft_core::Bugs`), switchable from the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BugOptions {
    /// Answer reads from the leader's local state without confirming leadership.
    pub stale_read_local: bool,
    /// Commit an old-term entry by counting replicas (Figure 8).
    pub commit_old_term: bool,
    /// Grant votes without the up-to-date log check.
    pub vote_without_log_check: bool,
    /// Turn off duplicate detection in sessions.
    pub no_dedup: bool,
}

impl BugOptions {
    /// Whether any bug is switched on (the page then runs the `bugs` build).
    pub fn any(&self) -> bool {
        self.stale_read_local || self.commit_old_term || self.vote_without_log_check || self.no_dedup
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 5,
            seed: 1,
            tick_us: 10_000,
            election_ticks: 15,
            heartbeat_ticks: 5,
            latency_us: [10_000, 20_000],
            disk_us: [1_000, 4_000],
            loss: 0.0,
            duplicate: 0.0,
            long_delay: 0.0,
            long_delay_us: 500_000,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_msg: 1024,
            max_inflight_msgs: 64,
            snapshot_entries: 0,
            snapshot_chunk_bytes: 1024,
            session_timeout_ticks: 100_000,
            max_promotion_lag: 10,
            bugs: BugOptions::default(),
        }
    }
}

/// Why options were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError(pub String);

impl core::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Options {
    /// Parses options from JSON (missing fields take their defaults).
    pub fn from_json(json: &str) -> Result<Options, OptionsError> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let o: Options = serde_json::from_str(json).map_err(|e| OptionsError(format!("bad options: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    /// Checks the ranges the simulator can work with.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let bad = |m: &str| Err(OptionsError(m.to_string()));
        if !(1..=9).contains(&self.nodes) {
            return bad("a cluster has 1 to 9 nodes");
        }
        if self.tick_us == 0 {
            return bad("tick_us must be positive");
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return bad("need 0 < heartbeat_ticks < election_ticks");
        }
        if self.latency_us[0] > self.latency_us[1] || self.disk_us[0] > self.disk_us[1] {
            return bad("a range's low end is above its high end");
        }
        for p in [self.loss, self.duplicate, self.long_delay] {
            if !(0.0..=1.0).contains(&p) {
                return bad("probabilities are between 0 and 1");
            }
        }
        if self.max_entries_per_msg == 0 || self.max_inflight_msgs == 0 {
            return bad("max_entries_per_msg and max_inflight_msgs must be positive");
        }
        if self.snapshot_chunk_bytes == 0 || self.session_timeout_ticks == 0 {
            return bad("snapshot_chunk_bytes and session_timeout_ticks must be positive");
        }
        Ok(())
    }

    /// The simulator configuration these options describe.
    pub fn sim_config(&self) -> SimConfig {
        let mut raft = Config::new(1, vec![1]);
        raft.election_ticks = self.election_ticks;
        raft.heartbeat_ticks = self.heartbeat_ticks;
        raft.pre_vote = self.pre_vote;
        raft.check_quorum = self.check_quorum;
        raft.max_entries_per_msg = self.max_entries_per_msg;
        raft.max_inflight_msgs = self.max_inflight_msgs;
        raft.snapshot_entries = self.snapshot_entries;
        raft.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        raft.sessions.timeout_ticks = self.session_timeout_ticks;
        raft.max_promotion_lag = self.max_promotion_lag;
        raft.bugs = Bugs {
            stale_read_local: self.bugs.stale_read_local,
            commit_old_term: self.bugs.commit_old_term,
            vote_without_log_check: self.bugs.vote_without_log_check,
            no_dedup: self.bugs.no_dedup,
            ..Bugs::default()
        };
        SimConfig {
            nodes: self.nodes,
            seed: self.seed,
            tick_us: self.tick_us,
            latency_us: (self.latency_us[0], self.latency_us[1]),
            loss: self.loss,
            duplicate: self.duplicate,
            long_delay: self.long_delay,
            long_delay_us: self.long_delay_us,
            disk_us: (self.disk_us[0], self.disk_us[1]),
            raft,
            ..SimConfig::default()
        }
    }
}
