//! A deterministic simulator: a whole cluster of [`Raft`] nodes on a virtual
//! clock, a network that loses, duplicates, delays, reorders and partitions
//! messages, disks that take time to sync, and crashes that lose what was not
//! yet durable. One seeded PRNG drives every choice, so a seed replays a run
//! exactly; [`invariants`] checks Raft's safety properties after every event.
//!
//! ```
//! use raft_core::sim::{Sim, SimConfig};
//! let mut sim = Sim::new(SimConfig { nodes: 3, seed: 7, ..SimConfig::default() });
//! sim.run_for(2_000_000); // two simulated seconds
//! assert!(sim.leader().is_some());
//! assert!(sim.violations().is_empty());
//! ```

pub mod clients;
pub mod invariants;
pub mod liveness;
pub mod nemesis;
pub mod watchers;
pub mod workload;

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::checker::Operation;
use crate::client::{ClientReply, ClientRequest, ClientToken};
use crate::journal::{self, Record};
use crate::kv::KvStore;
use crate::membership::Member;
use crate::message::Message;
use crate::raft::{Bugs, Config, Event, ProposeError, Raft};
use crate::rng::Rng;
use crate::snapshot::SnapshotJob;
use crate::types::{HardState, Index, NodeId, Role, Seq, Term};
use clients::{ClientConfig, SimClient};
use invariants::Invariants;

/// Knobs of a simulated cluster. Times are in simulated microseconds.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes; their ids are `1..=nodes`.
    pub nodes: usize,
    /// Seed of the one PRNG behind every random choice.
    pub seed: u64,
    /// Length of a tick.
    pub tick_us: u64,
    /// One-way network latency range.
    pub latency_us: (u64, u64),
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message takes a long detour, overtaking or being
    /// overtaken by others (reordering). Other messages on a link arrive in order.
    pub long_delay: f64,
    /// Upper bound of a long detour.
    pub long_delay_us: u64,
    /// Time to make one batch of records durable.
    pub disk_us: (u64, u64),
    /// Bytes after which a journal segment is closed and a new one begun.
    pub segment_bytes: usize,
    /// Template for every node's engine config (id, voters and seed are filled in).
    pub raft: Config,
    /// Per-node snapshot thresholds (`snapshot_entries` of node `i + 1`),
    /// overriding the template: nodes that compact on different schedules are
    /// what lets a follower's snapshot run ahead of what its leader knows.
    pub snapshot_entries_by_node: Vec<u64>,
    /// Each node's clock runs at a rate drawn from `1 ± clock_drift_ppm`
    /// parts per million of real (simulated) time: its ticks come that much
    /// faster or slower, and the clock it passes to the engine
    /// ([`Raft::set_clock`]) reads that much ahead or behind. Lease reads
    /// must allow at least this much drift.
    pub clock_drift_ppm: u32,
    /// With `raft.async_snapshots`: how long a host takes to build and store
    /// a snapshot off its event loop, from the `Ready` that asked to the
    /// report (the node applies on meanwhile).
    pub snapshot_build_us: (u64, u64),
    /// With `raft.async_snapshots`: the probability that building or
    /// storing a snapshot fails (a full disk), reported with
    /// [`Raft::snapshot_failed`].
    pub snapshot_build_failure: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            seed: 1,
            tick_us: 10_000,
            latency_us: (500, 5_000),
            loss: 0.0,
            duplicate: 0.0,
            long_delay: 0.0,
            long_delay_us: 2_000_000,
            disk_us: (100, 2_000),
            segment_bytes: 256 << 10,
            raft: Config::new(1, alloc::vec![1]),
            snapshot_entries_by_node: Vec::new(),
            clock_drift_ppm: 0,
            snapshot_build_us: (500, 50_000),
            snapshot_build_failure: 0.05,
        }
    }
}

impl SimConfig {
    /// Sets the deliberate bugs every node runs with (needs the `bugs` feature).
    pub fn with_bugs(mut self, bugs: Bugs) -> Self {
        self.raft.bugs = bugs;
        self
    }
}

#[derive(Clone, Debug)]
enum Action {
    Tick { node: usize, inc: u64 },
    Deliver { id: u64 },
    DiskDone { node: usize, inc: u64, seq: Seq },
    Restart { node: usize },
    RestoreLink { from: NodeId, to: NodeId },
    ClientSend { node: NodeId, token: ClientToken, req: ClientRequest },
    ClientReply { token: ClientToken, reply: ClientReply },
    ClientWake { client: usize, attempt: u64 },
    ClientRetry { client: usize, attempt: u64 },
    SnapshotBuilt { node: usize, inc: u64, job: Arc<SnapshotJob> },
}

/// An action due at a time; ordered by (time, id) so equal times keep the
/// order they were scheduled in, whatever the action.
struct Scheduled {
    at: u64,
    id: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.id) == (o.at, o.id)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (self.at, self.id).cmp(&(o.at, o.id))
    }
}

/// A message on the wire.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// Encoded message (the simulator sends real wire bytes).
    pub bytes: Vec<u8>,
    /// Decoded copy, for display.
    pub msg: Message,
    /// Send time.
    pub sent_at: u64,
    /// Delivery time.
    pub deliver_at: u64,
    /// Held: it stays on the wire until released (or dropped) by hand.
    pub held: bool,
}

struct PendingWrite {
    last_seq: Seq,
    /// Frame boundaries (start, end) in the disk image, and the records.
    frames: Vec<(usize, usize)>,
    records: Vec<(Seq, Record)>,
    /// Checkpoint frames opening a new segment (no sequence number).
    checkpoint: bool,
    /// Whether the write asks for an fsync (see `Ready::must_sync`).
    sync: bool,
}

/// A simulated disk: journal segments and snapshot files. Closed segments and
/// the current segment's prefix up to `durable_len` survive crashes; what
/// follows is at the mercy of the crash. Snapshot files are durable when
/// written (a host fsyncs them before the record that names them).
#[derive(Default)]
pub struct Disk {
    /// Closed segments, oldest first (wholly durable).
    pub closed: Vec<Vec<u8>>,
    /// The current segment (durable prefix plus written-but-unsynced frames).
    pub bytes: Vec<u8>,
    /// Bytes of the current segment guaranteed to survive a crash.
    pub durable_len: usize,
    /// Snapshot files by id.
    pub snapshots: BTreeMap<u64, Vec<u8>>,
    /// A sync is in progress (writes arriving meanwhile join the next one:
    /// group commit, as the native host's disk task does).
    syncing: bool,
    pending: VecDeque<PendingWrite>,
    /// The newest HardState written (what each batch marker restates).
    last_hard: HardState,
}

impl Disk {
    /// An empty disk: a journal segment header and nothing else.
    fn fresh() -> Self {
        let mut disk = Disk::default();
        journal::write_segment_header(&mut disk.bytes);
        disk.durable_len = disk.bytes.len();
        disk
    }

    /// Writes records and the batch marker that ends them (one group-commit
    /// write, as the native host does); returns the frames written.
    fn write_batch(&mut self, records: &[(Seq, Record)], last_seq: Seq) -> Vec<(usize, usize)> {
        let mut frames = Vec::with_capacity(records.len() + 1);
        for (seq, rec) in records {
            if let Record::HardState(h) = rec {
                self.last_hard = *h;
            }
            let start = self.bytes.len();
            journal::encode_record(*seq, rec, &mut self.bytes);
            frames.push((start, self.bytes.len()));
        }
        let start = self.bytes.len();
        let marker = Record::BatchEnd { last_seq, hard: self.last_hard };
        journal::encode_record(journal::CHECKPOINT_SEQ, &marker, &mut self.bytes);
        frames.push((start, self.bytes.len()));
        frames
    }
}

/// Most faults kept in [`Sim::fault_log`].
pub const FAULT_LOG_LIMIT: usize = 64;

/// The (start, end) of every whole frame of a segment image.
fn frame_bounds(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = journal::SEGMENT_HEADER_LEN;
    while pos + journal::FRAME_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        let end = pos + journal::FRAME_HEADER_LEN + len;
        if end > bytes.len() {
            break;
        }
        out.push((pos, end));
        pos = end;
    }
    out
}

/// The storage incarnation of node `id` after `gen` wipes: distinct per node
/// and per wipe, never 0 (0 means unbound).
pub fn incarnation(id: NodeId, gen: u64) -> u64 {
    (id << 16) | (gen + 1)
}

impl Disk {
    /// Bytes the journal occupies (all segments).
    pub fn journal_bytes(&self) -> usize {
        self.closed.iter().map(Vec::len).sum::<usize>() + self.bytes.len()
    }
}

/// One simulated node.
pub struct Node {
    /// The node id.
    pub id: NodeId,
    /// The engine, or `None` while crashed.
    pub raft: Option<Raft<KvStore>>,
    /// Its disk.
    pub disk: Disk,
    /// Incremented at every crash so events of a past life are ignored.
    inc: u64,
    /// How many times this node's disk was wiped: its storage incarnation
    /// is derived from it ([`incarnation`]).
    disk_gen: u64,
    /// Commands applied in this life since `applied_base`, index `i` at `i - 1 - applied_base`.
    applied: Vec<Vec<u8>>,
    applied_base: Index,
    /// The clock's rate: parts per million above (or below) real time.
    clock_ppm: i64,
    /// (real time, clock reading) when the rate last changed: the clock
    /// runs on from there at its rate.
    clock_base: (u64, u64),
    /// The node's event loop is stalled until then: ticks, messages, disk
    /// completions and client requests wait ([`Sim::pause`]).
    paused_until: u64,
}

/// Counters the scenario tests assert on.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages handed to the network.
    pub messages: u64,
    /// Encoded bytes handed to the network.
    pub bytes: u64,
    /// Append messages carrying entries.
    pub appends: u64,
    /// Rejected appends (each costs the leader a round trip of back-off).
    pub rejects: u64,
    /// Events processed.
    pub events: u64,
    /// Crashes.
    pub crashes: u64,
    /// Disks wiped by [`Sim::wipe`].
    pub wipes: u64,
    /// Durable records damaged by [`Sim::lose_durable`].
    pub tails_lost: u64,
    /// Recoveries that found lost records (and flagged the node).
    pub losses_found: u64,
    /// Event-loop stalls injected by [`Sim::pause`].
    pub pauses: u64,
    /// Reads answered under a leader's lease.
    pub lease_reads: u64,
    /// Syncs (fsyncs) the simulated disks performed.
    pub syncs: u64,
    /// Snapshots built and stored off the event loop (`async_snapshots`).
    pub snapshots_built: u64,
    /// Snapshot builds that failed (and were reported so).
    pub snapshot_builds_failed: u64,
    /// Messages handed to the network per directed link and kind
    /// (from, to, [`crate::message::Body::name`]), lost or not.
    pub per_link: BTreeMap<(NodeId, NodeId, &'static str), u64>,
}

/// A simulated cluster.
pub struct Sim {
    cfg: SimConfig,
    now: u64,
    rng: Rng,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_event: u64,
    inflight: BTreeMap<u64, InFlight>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Latest delivery time scheduled on each directed link (FIFO order).
    link_clock: BTreeMap<(NodeId, NodeId), u64>,
    /// Nodes cut off from everyone.
    isolated: BTreeSet<NodeId>,
    nodes: Vec<Node>,
    checker: Invariants,
    /// Counters.
    pub stats: Stats,
    /// Keep every applied command per node (for [`Sim::applied_at`]); turn off
    /// for very long runs.
    pub record_applied: bool,
    /// Record a line per append sent (debugging aid).
    pub trace: bool,
    /// Lines recorded while `trace` is on.
    pub trace_lines: Vec<String>,
    clients: Vec<SimClient>,
    /// Replies to requests made with [`Sim::submit`] by tokens that belong to
    /// no simulated client (tests use tokens with the high bits set).
    pub inbox: Vec<(ClientToken, ClientReply)>,
    client_cfg: ClientConfig,
    clients_stopped: bool,
    history: Vec<Operation>,
    /// Recent events for display: (time, node, event). Bounded.
    pub log: VecDeque<(u64, NodeId, Event)>,
    /// The newest faults (crashes, wipes, damaged records, restarts), for
    /// failure reports.
    pub fault_log: Vec<String>,
    /// Nodes stopped for good (restarts scheduled earlier do not happen).
    stopped: BTreeSet<NodeId>,

    /// The newest commit index seen anywhere (its deciding configuration is
    /// the checker's).
    decided_at: Index,
    /// Simulated watchers ([`watchers`]).
    watchers: Vec<watchers::SimWatcher>,
    /// What each watch received.
    watch_logs: Vec<crate::checker::watch::WatchLog>,
    /// The committed history's events, for judging the watches.
    watch_ref: watchers::Reference,
}

const LOG_LIMIT: usize = 2_000;

impl Sim {
    /// A new cluster of fresh nodes.
    pub fn new(cfg: SimConfig) -> Self {
        let ids: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let mut sim = Sim {
            now: 0,
            rng: Rng::new(cfg.seed),
            queue: BinaryHeap::new(),
            next_event: 0,
            inflight: BTreeMap::new(),
            cut: BTreeSet::new(),
            isolated: BTreeSet::new(),
            link_clock: BTreeMap::new(),
            nodes: Vec::new(),
            checker: Invariants::new(&ids),
            stats: Stats::default(),
            log: VecDeque::new(),
            fault_log: Vec::new(),
            clients: Vec::new(),
            inbox: Vec::new(),
            client_cfg: ClientConfig::default(),
            clients_stopped: false,
            history: Vec::new(),
            record_applied: true,
            trace: false,
            trace_lines: Vec::new(),
            decided_at: 0,
            stopped: BTreeSet::new(),
            watchers: Vec::new(),
            watch_logs: Vec::new(),
            watch_ref: watchers::Reference::default(),
            cfg,
        };
        for (k, &id) in ids.iter().enumerate() {
            let mut disk = Disk::default();
            journal::write_segment_header(&mut disk.bytes);
            disk.durable_len = disk.bytes.len();
            let raft = Raft::new(sim.node_config(id), KvStore::default()).ok();
            let clock_ppm = sim.draw_clock_rate();
            let (applied, applied_base, paused_until) = (Vec::new(), 0, 0);
            sim.nodes.push(Node {
                id,
                raft,
                disk,
                inc: 0,
                disk_gen: 0,
                applied,
                applied_base,
                clock_ppm,
                clock_base: (0, 0),
                paused_until,
            });
            sim.schedule_first_tick(k);
        }
        sim
    }

    fn node_config(&self, id: NodeId) -> Config {
        let mut c = self.cfg.raft.clone();
        c.id = id;
        // Bound at bootstrap: every node is given the same configuration, the
        // first incarnation of each first node's disk.
        c.voters = (1..=self.cfg.nodes as NodeId).map(|id| Member { id, inc: incarnation(id, 0) }).collect();
        c.inc = incarnation(id, self.nodes.get(id as usize - 1).map_or(0, |n| n.disk_gen));
        c.seed = self.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id;
        c.epoch = 1;
        if let Some(&n) = self.cfg.snapshot_entries_by_node.get(id as usize - 1) {
            c.snapshot_entries = n;
        }
        c
    }

    fn schedule(&mut self, at: u64, a: Action) {
        self.next_event += 1;
        self.queue.push(Reverse(Scheduled { at, id: self.next_event, action: a }));
    }

    fn draw_clock_rate(&mut self) -> i64 {
        let d = i64::from(self.cfg.clock_drift_ppm);
        if d == 0 {
            return 0;
        }
        self.rng.range(0, 2 * d as u64 + 1) as i64 - d
    }

    /// Node `k`'s clock now: real time scaled by its rate.
    pub fn local_clock(&self, k: usize) -> u64 {
        let rate = 1_000_000i128 + i128::from(self.nodes[k].clock_ppm);
        let (real, local) = self.nodes[k].clock_base;
        local + (i128::from(self.now.saturating_sub(real)) * rate / 1_000_000) as u64
    }

    /// Sets node `id`'s clock rate (parts per million above or below real
    /// time) from now on; its clock runs on from its current reading.
    pub fn set_clock_rate(&mut self, id: NodeId, ppm: i64) {
        let k = self.slot(id);
        let reading = self.local_clock(k);
        self.nodes[k].clock_base = (self.now, reading);
        self.nodes[k].clock_ppm = ppm.clamp(-900_000, 900_000);
    }

    /// Real time between two of node `k`'s ticks (a fast clock ticks sooner).
    fn tick_interval(&self, k: usize) -> u64 {
        let rate = 1_000_000i128 + i128::from(self.nodes[k].clock_ppm);
        ((i128::from(self.cfg.tick_us) * 1_000_000 / rate) as u64).max(1)
    }

    /// Passes node `k` its clock before an input, as a host does.
    fn sync_clock(&mut self, k: usize) {
        let now = self.local_clock(k);
        if let Some(r) = self.nodes[k].raft.as_mut() {
            r.set_clock(now);
        }
    }

    /// The slot an action is for, if it is for one node.
    fn action_slot(&self, a: &Action) -> Option<usize> {
        match a {
            Action::Tick { node, .. } | Action::DiskDone { node, .. } | Action::SnapshotBuilt { node, .. } => {
                Some(*node)
            }
            Action::ClientSend { node, .. } => Some(self.slot(*node)),
            Action::Deliver { id } => self.inflight.get(id).map(|f| self.slot(f.msg.to)),
            _ => None,
        }
    }

    fn schedule_first_tick(&mut self, k: usize) {
        let phase = self.rng.below(self.cfg.tick_us.max(1));
        let inc = self.nodes[k].inc;
        self.schedule(self.now + phase + 1, Action::Tick { node: k, inc });
    }

    fn slot(&self, id: NodeId) -> usize {
        (id as usize).saturating_sub(1).min(self.nodes.len().saturating_sub(1))
    }

    // ------------------------------------------------------------------
    // Running
    // ------------------------------------------------------------------

    /// Current simulated time in microseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Processes the next event. Returns false if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(Scheduled { at, action, .. })) = self.queue.pop() else { return false };
        self.now = self.now.max(at);
        self.stats.events += 1;
        if let Some(k) = self.action_slot(&action) {
            let until = self.nodes[k].paused_until;
            if until > self.now {
                // The node's loop is stalled: the input waits in its queue.
                self.schedule(until, action);
                return true;
            }
            self.sync_clock(k);
        }
        match action {
            Action::Tick { node, inc } => {
                if self.nodes[node].inc == inc {
                    if let Some(r) = self.nodes[node].raft.as_mut() {
                        r.tick();
                    }
                    self.drain(node);
                    let next = self.now + self.tick_interval(node);
                    self.schedule(next, Action::Tick { node, inc });
                }
            }
            Action::Deliver { id } => self.deliver(id),
            Action::DiskDone { node, inc, seq } => {
                if self.nodes[node].inc == inc {
                    self.disk_done(node, seq);
                }
            }
            Action::SnapshotBuilt { node, inc, job } => {
                if self.nodes[node].inc == inc {
                    self.snapshot_built(node, &job);
                }
            }
            Action::Restart { node } => {
                if !self.stopped.contains(&self.nodes[node].id) {
                    self.restart_slot(node)
                }
            }
            Action::RestoreLink { from, to } => self.restore_link(from, to),
            Action::ClientSend { node, token, req } => {
                let k = self.slot(node);
                if let Some(r) = self.nodes[k].raft.as_mut() {
                    r.submit(token, req);
                    self.drain(k);
                }
            }
            Action::ClientReply { token, reply } => {
                if ((token >> 40) as usize) < self.clients.len() {
                    self.client_reply(token, reply);
                } else if self.inbox.len() < 100_000 {
                    self.inbox.push((token, reply));
                }
            }
            Action::ClientWake { client, attempt } => self.client_wake(client, attempt),
            Action::ClientRetry { client, attempt } => self.client_retry(client, attempt),
        }
        true
    }

    /// Runs events until simulated time passes `now + us`.
    pub fn run_for(&mut self, us: u64) {
        let end = self.now + us;
        self.run_until_time(end);
    }

    /// Runs events scheduled at or before `end`.
    pub fn run_until_time(&mut self, end: u64) {
        while let Some(Reverse(Scheduled { at, .. })) = self.queue.peek() {
            if *at > end {
                break;
            }
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Runs until `pred` holds (checked after each event) or `max_us` passes.
    pub fn run_until(&mut self, max_us: u64, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + max_us;
        while !pred(self) {
            match self.queue.peek() {
                Some(Reverse(Scheduled { at, .. })) if *at <= end => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(end);
                    return pred(self);
                }
            }
        }
        true
    }

    // ------------------------------------------------------------------
    // Node I/O
    // ------------------------------------------------------------------

    fn drain(&mut self, k: usize) {
        let Some(raft) = self.nodes[k].raft.as_mut() else {
            return;
        };
        // The host contract: a host that drains only when `has_ready` says
        // so (as the native host does) must miss nothing.
        let promised = raft.has_ready();
        let ready = raft.take_ready();
        if !promised && !ready.is_empty() {
            let (now, id) = (self.now, raft.id());
            self.checker
                .violations
                .push(format!("t={now}us: node {id}: has_ready() was false but take_ready() had work"));
        }
        if raft.commit_index() > self.decided_at {
            // The newest commit anywhere was decided by this node's quorum
            // (the leader's configuration in force, joint or not): from now
            // on a quorum of it must hold the committed prefix durably.
            self.decided_at = raft.commit_index();
            if self.checker.config() != raft.quorum_config() {
                self.checker.set_config(raft.quorum_config().clone());
            }
        }
        if ready.is_empty() {
            return;
        }
        let id = self.nodes[k].id;
        let now = self.now;
        // 0. A snapshot file is written (and synced) before the records naming it.
        if let Some(out) = &ready.snapshot {
            let s = &out.snapshot;
            self.nodes[k].disk.snapshots.insert(s.meta.id, s.data.clone());
            if out.installed {
                self.checker.on_install(now, id, s.meta.index);
                self.nodes[k].applied.clear();
                self.nodes[k].applied_base = s.meta.index;
            }
        }
        // 0b. A snapshot to build off the loop: reported after a while.
        if let Some(job) = ready.snapshot_job {
            let lat = self.rng.range(self.cfg.snapshot_build_us.0, self.cfg.snapshot_build_us.1);
            let inc = self.nodes[k].inc;
            self.schedule(now + lat, Action::SnapshotBuilt { node: k, inc, job });
        }
        let snapshot_records: Vec<(Seq, Record)> =
            ready.records.iter().filter(|r| matches!(r.1, Record::Snapshot(_))).cloned().collect();
        // 1. Journal: write the frames now (page cache), durable after a delay.
        if !ready.records.is_empty() {
            self.checker.on_records(now, id, &ready.records);
            let last_seq = ready.records.last().map_or(0, |r| r.0);
            let disk = &mut self.nodes[k].disk;
            let frames = disk.write_batch(&ready.records, last_seq);
            let sync = ready.must_sync;
            disk.pending.push_back(PendingWrite { last_seq, frames, records: ready.records, checkpoint: false, sync });
            self.start_sync(k);
        }
        // 2. Applied entries, in order; watchers read their events.
        if !self.watchers.is_empty() {
            let indexes: Vec<Index> = ready.applied.iter().map(|a| a.index).collect();
            self.watch_reference(k, &indexes);
            self.poll_watchers();
        }
        for a in &ready.applied {
            self.checker.on_applied(now, id, a.index);
            if !self.record_applied {
                continue;
            }
            let cmd = self.nodes[k]
                .raft
                .as_ref()
                .and_then(|r| r.log().entry(a.index))
                .map(|e| match &e.payload {
                    crate::entry::Payload::Command(d) => d.to_vec(),
                    _ => Vec::new(),
                })
                .unwrap_or_default();
            self.nodes[k].applied.push(cmd);
        }
        self.checker.on_snapshot_records(now, id, &snapshot_records);
        // 3. Replies travel back to the clients.
        for (token, reply) in ready.replies {
            if self.rng.chance(self.cfg.loss) {
                continue;
            }
            let lat = self.rng.range(self.cfg.latency_us.0, self.cfg.latency_us.1);
            self.schedule(now + lat, Action::ClientReply { token, reply });
        }
        // 4. Events.
        for e in ready.events {
            match e {
                Event::BecameLeader { term } => self.checker.on_leader(now, id, term),
                Event::LeaseRead { term, .. } => {
                    self.stats.lease_reads += 1;
                    let r = self.nodes[k].raft.as_ref();
                    let lease = (r.map_or(0, |r| r.clock()), r.and_then(|r| r.lease_until()));
                    self.checker.on_lease_read(now, id, term, lease)
                }
                _ => {}
            }
            if self.log.len() >= LOG_LIMIT {
                self.log.pop_front();
            }
            self.log.push_back((now, id, e));
        }
        // 5. Messages.
        for m in ready.messages {
            self.send(m);
        }
    }

    fn send(&mut self, m: Message) {
        let bytes = m.encode();
        self.stats.messages += 1;
        *self.stats.per_link.entry((m.from, m.to, m.body.name())).or_insert(0) += 1;
        self.stats.bytes += bytes.len() as u64;
        if matches!(&m.body, crate::message::Body::Append { entries, .. } if !entries.is_empty()) {
            self.stats.appends += 1;
            if self.trace {
                if let crate::message::Body::Append { prev_index, entries, .. } = &m.body {
                    self.trace_lines.push(format!(
                        "t={} {}->{} prev={} n={}",
                        self.now,
                        m.from,
                        m.to,
                        prev_index,
                        entries.len()
                    ));
                }
            }
        }
        if matches!(&m.body, crate::message::Body::AppendResp { success: false, .. }) {
            self.stats.rejects += 1;
        }
        if !self.link_up(m.from, m.to) || self.rng.chance(self.cfg.loss) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let lat = self.rng.range(self.cfg.latency_us.0, self.cfg.latency_us.1);
            let mut at = self.now + lat;
            if self.rng.chance(self.cfg.long_delay) {
                // A detour: this copy may overtake or be overtaken by anything.
                at += self.rng.below(self.cfg.long_delay_us);
            } else {
                // Links are FIFO like the TCP connections the hosts use.
                let fifo = self.link_clock.entry((m.from, m.to)).or_insert(0);
                at = at.max(*fifo);
                *fifo = at;
            }
            self.next_event += 1;
            let id = self.next_event;
            self.inflight.insert(
                id,
                InFlight { bytes: bytes.clone(), msg: m.clone(), sent_at: self.now, deliver_at: at, held: false },
            );
            self.queue.push(Reverse(Scheduled { at, id, action: Action::Deliver { id } }));
        }
    }

    fn deliver(&mut self, id: u64) {
        if self.inflight.get(&id).is_some_and(|f| f.held) {
            return; // waits for release_message
        }
        let Some(f) = self.inflight.remove(&id) else {
            return; // dropped by hand
        };
        let m = match Message::decode(&f.bytes, 64 << 20) {
            Ok(m) => m,
            Err(e) => {
                let now = self.now;
                self.checker.violations.push(format!("t={now}us: message failed to decode: {e}"));
                return;
            }
        };
        if !self.link_up(m.from, m.to) {
            return; // the partition happened while it was in flight
        }
        let k = self.slot(m.to);
        if let Some(r) = self.nodes[k].raft.as_mut() {
            let _ = r.step(m);
            self.drain(k);
        }
    }

    fn disk_done(&mut self, k: usize, seq: Seq) {
        let id = self.nodes[k].id;
        self.nodes[k].disk.syncing = false;
        while let Some(w) = self.nodes[k].disk.pending.front() {
            if w.last_seq > seq {
                break;
            }
            let Some(w) = self.nodes[k].disk.pending.pop_front() else {
                break;
            };
            if let Some(&(_, end)) = w.frames.last() {
                self.nodes[k].disk.durable_len = end;
            }
            if w.checkpoint {
                // The new segment holds everything: older segments may go.
                self.nodes[k].disk.closed.clear();
            } else {
                self.checker.on_durable(id, &w.records);
            }
            for (_, r) in &w.records {
                if let Record::Snapshot(meta) = r {
                    // Older snapshot files are no longer named by anything durable.
                    let disk = &mut self.nodes[k].disk;
                    disk.snapshots = disk.snapshots.split_off(&meta.id);
                }
            }
        }
        if let Some(r) = self.nodes[k].raft.as_mut() {
            r.persisted(seq);
        }
        self.drain(k);
        self.maybe_rotate(k);
        self.start_sync(k);
    }

    /// Closes a large current segment once everything written is durable, and
    /// opens a new one with checkpoint frames holding the node's whole durable
    /// state; the old segments are deleted once those frames are durable.
    fn maybe_rotate(&mut self, k: usize) {
        let node = &mut self.nodes[k];
        let Some(raft) = node.raft.as_ref() else { return };
        if !node.disk.pending.is_empty() || node.disk.bytes.len() < self.cfg.segment_bytes {
            return;
        }
        let records: Vec<(Seq, Record)> = raft.checkpoint().into_iter().map(|r| (journal::CHECKPOINT_SEQ, r)).collect();
        let old = core::mem::take(&mut node.disk.bytes);
        node.disk.closed.push(old);
        journal::write_segment_header(&mut node.disk.bytes);
        node.disk.durable_len = node.disk.bytes.len();
        let last_seq = raft_durable_seq(node);
        let frames = node.disk.write_batch(&records, last_seq);
        let node = &mut self.nodes[k];
        node.disk.pending.push_back(PendingWrite { last_seq, frames, records, checkpoint: true, sync: true });
        self.start_sync(k);
    }

    /// Starts a sync of everything written so far, unless one is running or
    /// nothing written asks for one: records that only note a role change
    /// stay in the page cache until a write that needs an fsync takes them
    /// along (or a crash loses them, which is allowed).
    fn start_sync(&mut self, k: usize) {
        let disk = &self.nodes[k].disk;
        let Some(last) = disk.pending.back().map(|w| w.last_seq) else { return };
        if disk.syncing || !disk.pending.iter().any(|w| w.sync) {
            return;
        }
        let lat = self.rng.range(self.cfg.disk_us.0, self.cfg.disk_us.1);
        self.stats.syncs += 1;
        self.nodes[k].disk.syncing = true;
        let inc = self.nodes[k].inc;
        self.schedule(self.now + lat, Action::DiskDone { node: k, inc, seq: last });
    }

    /// A host's snapshot builder finished node `k`'s job: the file is
    /// written (and synced) before the engine hears of it, or the build
    /// failed. The state it holds is the one frozen when the job was issued,
    /// however far the node applied since.
    fn snapshot_built(&mut self, k: usize, job: &SnapshotJob) {
        if self.nodes[k].raft.is_none() {
            return;
        }
        if self.rng.chance(self.cfg.snapshot_build_failure) {
            self.stats.snapshot_builds_failed += 1;
            if let Some(r) = self.nodes[k].raft.as_mut() {
                r.snapshot_failed(job.meta.index);
            }
        } else {
            let snap = job.build();
            self.stats.snapshots_built += 1;
            self.nodes[k].disk.snapshots.insert(snap.meta.id, snap.data.clone());
            if let Some(r) = self.nodes[k].raft.as_mut() {
                r.snapshot_stored(Arc::new(snap));
            }
        }
        self.drain(k);
    }

    // ------------------------------------------------------------------
    // Faults
    // ------------------------------------------------------------------

    /// Stalls node `id`'s event loop for `us` (a GC pause, a blocked thread, a
    /// descheduled VM): everything addressed to it waits and is handled when
    /// it resumes, with its clock then. Its messages already sent still
    /// arrive; it sends nothing new.
    pub fn pause(&mut self, id: NodeId, us: u64) {
        let k = self.slot(id);
        if self.nodes[k].raft.is_none() {
            return;
        }
        self.note_fault(format!("pause {id} for {us}us"));
        self.stats.pauses += 1;
        let until = self.now + us;
        self.nodes[k].paused_until = self.nodes[k].paused_until.max(until);
    }

    /// Crashes a node: volatile state and held messages are lost, and so is a
    /// random suffix of the journal records not yet durable; the last record
    /// that survives may be torn.
    pub fn crash(&mut self, id: NodeId) {
        let k = self.slot(id);
        if self.nodes[k].raft.is_none() {
            return;
        }
        self.stats.crashes += 1;
        self.note_fault(format!("crash {id}"));
        let node = &mut self.nodes[k];
        node.raft = None;
        node.inc += 1;
        node.paused_until = 0;
        node.applied.clear();
        let mut keep = node.disk.durable_len;
        let frames: Vec<(usize, usize)> = node.disk.pending.iter().flat_map(|w| w.frames.iter().copied()).collect();
        node.disk.pending.clear();
        let mut torn = None;
        for (start, end) in frames {
            if !self.rng.chance(0.5) {
                if self.rng.chance(0.5) && end > start + journal::FRAME_HEADER_LEN + 1 {
                    torn = Some((start, end));
                }
                break;
            }
            keep = end;
        }
        let tail: Option<Vec<u8>> = torn.map(|(start, end)| {
            let frame = &self.nodes[k].disk.bytes[start..end];
            if self.rng.chance(0.5) {
                // A short write: the frame stops somewhere in the middle.
                let cut = self.rng.range(1, frame.len() as u64 - 1) as usize;
                frame[..cut].to_vec()
            } else {
                // A whole frame whose last sector holds garbage.
                let mut f = frame.to_vec();
                let at = self.rng.range(journal::FRAME_HEADER_LEN as u64, f.len() as u64 - 1) as usize;
                if let Some(b) = f.get_mut(at) {
                    *b ^= 0x5A;
                }
                f
            }
        });
        let disk = &mut self.nodes[k].disk;
        disk.bytes.truncate(keep);
        if let Some(t) = tail {
            disk.bytes.extend_from_slice(&t);
        }
        disk.syncing = false;
        let now = self.now;
        self.checker.on_crash(now, id);
    }

    fn restart_slot(&mut self, k: usize) {
        if self.nodes[k].raft.is_some() {
            return;
        }
        let id = self.nodes[k].id;
        let now = self.now;
        let disk = &self.nodes[k].disk;
        // Read into buffers of their own, as the native host reads its files:
        // the replayed payloads point into them, so every restarted node
        // runs on shared payloads (and the log's retention rule).
        let segs: Vec<Arc<Vec<u8>>> = disk.closed.iter().chain([&disk.bytes]).map(|b| Arc::new(b.clone())).collect();
        let recovered = journal::recover_segments_shared(&segs);
        match recovered {
            Ok((state, scan)) => {
                let disk = &mut self.nodes[k].disk;
                disk.bytes.truncate(scan.valid_len);
                disk.last_hard = state.hard;
                if scan.lost_at.is_some() {
                    // As the native host does: make the finding durable before
                    // anything else, so a crash cannot forget it (the damaged
                    // frames, the evidence, are gone now).
                    disk.write_batch(&[], state.last_seq);
                    self.stats.losses_found += 1;
                }
                disk.durable_len = disk.bytes.len();
                let note = format!(
                    "restart {id}: last={} term={} lost_data={} inc={}",
                    state.log.last_index(),
                    state.hard.term,
                    state.hard.lost_data,
                    incarnation(id, self.nodes[k].disk_gen)
                );
                self.note_fault(note);
                self.checker.on_restart(now, id, &state.log);
                let mut cfg = self.node_config(id);
                // A new start number: the leaders will probe it afresh.
                cfg.epoch = self.nodes[k].inc + 1;
                let snap = state.snapshot.as_ref().and_then(|m| self.nodes[k].disk.snapshots.get(&m.id)).cloned();
                let base = state.log.snapshot_index();
                match Raft::recover(cfg, state, snap.as_deref(), KvStore::default()) {
                    Ok(r) => {
                        self.nodes[k].raft = Some(r);
                        self.sync_clock(k);
                    }
                    Err(e) => {
                        self.checker.violations.push(format!("t={now}us: node {id} cannot restart: {e}"));
                        return;
                    }
                }
                self.nodes[k].applied.clear();
                self.nodes[k].applied_base = base;
                self.schedule_first_tick(k);
            }
            Err((seg, e)) => {
                self.checker
                    .violations
                    .push(format!("t={now}us: node {id} cannot recover its journal (segment {seg}): {e}"));
            }
        }
    }

    /// Remembers a fault (crash, wipe, damage, restart) for a failure report:
    /// the newest [`FAULT_LOG_LIMIT`] are kept.
    fn note_fault(&mut self, what: String) {
        if self.fault_log.len() >= FAULT_LOG_LIMIT {
            self.fault_log.remove(0);
        }
        self.fault_log.push(format!("t={}us {what}", self.now));
    }

    /// Crashes a node and replaces its disk by an empty one: a new storage
    /// incarnation, as after a disk failure or an operator deleting the data
    /// directory. It restarts (when asked) with nothing, not bound to any
    /// configuration: it must not vote as its old self.
    pub fn wipe(&mut self, id: NodeId) {
        self.crash(id);
        let k = self.slot(id);
        let node = &mut self.nodes[k];
        node.disk = Disk::fresh();
        node.disk_gen += 1;
        self.stats.wipes += 1;
        self.note_fault(format!("wipe {id}"));
        let now = self.now;
        self.checker.on_damage(now, id);
    }

    /// Crashes a node and damages one durable record among the last `within`
    /// frames of its current segment (a flipped byte: bit rot, a lying disk),
    /// so that recovery finds a batch whose marker survived but whose records
    /// did not. Returns whether a record was damaged.
    pub fn lose_durable(&mut self, id: NodeId, within: usize) -> bool {
        self.crash(id);
        let k = self.slot(id);
        let disk = &self.nodes[k].disk;
        let durable = &disk.bytes[..disk.durable_len.min(disk.bytes.len())];
        let frames = frame_bounds(durable);
        // Records after the newest Snapshot record and the segment's
        // checkpoint: a lost Snapshot record would leave the journal naming
        // an older snapshot file the host has already deleted, which
        // recovery does not repair yet (the node refuses to start, naming
        // the file).
        let records = journal::scan(durable).map(|s| s.records).unwrap_or_default();
        let floor = records
            .iter()
            .rposition(|(seq, r)| {
                matches!(r, Record::Snapshot(_)) || (*seq == 0 && !matches!(r, Record::BatchEnd { .. }))
            })
            .map_or(0, |p| p + 1);
        // Only a frame some later batch marker follows can be told from a
        // torn write: skip the final batch's own marker.
        let candidates = frames.len().saturating_sub(1);
        if candidates <= floor {
            return false;
        }
        let first = candidates.saturating_sub(within.max(1)).max(floor);
        let pick = first + self.rng.below((candidates - first) as u64) as usize;
        let (start, end) = frames[pick];
        let at = self.rng.range(start as u64 + journal::FRAME_HEADER_LEN as u64, end as u64) as usize;
        if let Some(b) = self.nodes[k].disk.bytes.get_mut(at) {
            *b ^= 0x10;
        }
        self.stats.tails_lost += 1;
        self.note_fault(format!("damage {id}: frame {pick} of {}", frames.len()));
        let now = self.now;
        self.checker.on_damage(now, id);
        true
    }

    /// Whether `id`'s disk was damaged by a fault since it last caught up
    /// (the checker's view).
    pub fn is_damaged(&self, id: NodeId) -> bool {
        self.checker.is_damaged(id)
    }

    /// Voters of the leader's configuration (or, with no leader, of any live
    /// node's) that the configuration binds to another incarnation than the
    /// one their disk now has: wiped and not yet readmitted, so they cannot
    /// vote.
    pub fn unbound_voters(&self) -> Vec<NodeId> {
        // Any live node's view counts: a configuration that still binds an
        // old incarnation anywhere may be the one an election uses.
        let mut out: Vec<NodeId> = Vec::new();
        for n in &self.nodes {
            let Some(r) = n.raft.as_ref() else { continue };
            let m = r.membership();
            for id in m.voter_ids() {
                let k = self.slot(id);
                let stale = [&m.voters, &m.outgoing]
                    .into_iter()
                    .flatten()
                    .any(|x| x.id == id && x.inc != incarnation(id, self.nodes[k].disk_gen));
                if stale && !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Nodes whose disk was wiped and that the configuration still binds to
    /// an older incarnation (or to none): an operator's `member replace`.
    /// Proposes, at the leader, one joint change rebinding one of them to the
    /// incarnation the leader hears from; returns whether it was accepted.
    pub fn readmit_wiped(&mut self) -> bool {
        let Some(l) = self.leader() else { return false };
        let Some(m) = self.raft(l).map(|r| r.membership().clone()) else { return false };
        for id in m.voter_ids() {
            let k = self.slot(id);
            let want = incarnation(id, self.nodes[k].disk_gen);
            if m.member(id).is_some_and(|x| x.inc != want) && self.nodes[k].raft.is_some() {
                use crate::membership::{Change, ConfChange};
                let cc = ConfChange::Begin { joint: true, changes: alloc::vec![Change::AddVoter { id, inc: 0 }] };
                if self.propose_conf_change(l, cc, false).is_ok() {
                    return true;
                }
            }
        }
        false
    }

    /// Crashes a node and keeps it down: restarts scheduled earlier (by a
    /// fault) do not happen, only an explicit [`Sim::restart`] brings it back
    /// (an operator stopping a node it removed from the cluster).
    pub fn stop(&mut self, id: NodeId) {
        self.crash(id);
        self.stopped.insert(id);
    }

    /// Restarts a crashed node from its journal.
    pub fn restart(&mut self, id: NodeId) {
        self.stopped.remove(&id);
        let k = self.slot(id);
        self.restart_slot(k);
    }

    /// Restarts a crashed node after `us` microseconds.
    pub fn restart_after(&mut self, id: NodeId, us: u64) {
        let k = self.slot(id);
        self.schedule(self.now + us, Action::Restart { node: k });
    }

    /// Cuts every link to and from `id` (the lab's `disconnect`).
    pub fn disconnect(&mut self, id: NodeId) {
        self.isolated.insert(id);
    }

    /// Undoes [`Sim::disconnect`]; links cut one by one stay cut.
    pub fn connect(&mut self, id: NodeId) {
        self.isolated.remove(&id);
    }

    /// Whether `id` is disconnected.
    pub fn is_disconnected(&self, id: NodeId) -> bool {
        self.isolated.contains(&id)
    }

    /// Cuts the one-way link `from → to`.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Restores the one-way link `from → to`.
    pub fn restore_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.remove(&(from, to));
    }

    /// Cuts the one-way link `from → to` for `us` microseconds (unless healed sooner).
    pub fn cut_link_for(&mut self, from: NodeId, to: NodeId, us: u64) {
        self.cut_link(from, to);
        self.schedule(self.now + us, Action::RestoreLink { from, to });
    }

    /// Splits the cluster: nodes in `side` can talk only among themselves.
    pub fn partition(&mut self, side: &[NodeId]) {
        self.heal();
        let ids = self.ids();
        for &a in &ids {
            for &b in &ids {
                if a != b && side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Restores every link and reconnects every node.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.isolated.clear();
    }

    /// Whether the directed link is up.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to)) && !self.isolated.contains(&from) && !self.isolated.contains(&to)
    }

    /// Sets message loss, duplication and long-delay probabilities.
    pub fn set_network(&mut self, loss: f64, duplicate: f64, long_delay: f64) {
        self.cfg.loss = loss;
        self.cfg.duplicate = duplicate;
        self.cfg.long_delay = long_delay;
    }

    /// Sets the latency range.
    pub fn set_latency(&mut self, lo: u64, hi: u64) {
        self.cfg.latency_us = (lo, hi.max(lo));
    }

    /// Drops a message in flight.
    pub fn drop_message(&mut self, id: u64) -> bool {
        self.inflight.remove(&id).is_some()
    }

    /// Holds a message in flight: it is not delivered until released.
    pub fn hold_message(&mut self, id: u64) -> bool {
        match self.inflight.get_mut(&id) {
            Some(f) => {
                f.held = true;
                true
            }
            None => false,
        }
    }

    /// Releases a held message: it is delivered now (or at its original time
    /// if that is still ahead).
    pub fn release_message(&mut self, id: u64) -> bool {
        let now = self.now;
        let Some(f) = self.inflight.get_mut(&id) else { return false };
        if !f.held {
            return false;
        }
        f.held = false;
        let at = f.deliver_at.max(now);
        self.queue.push(Reverse(Scheduled { at, id, action: Action::Deliver { id } }));
        true
    }

    /// Makes a node take a snapshot of its applied state now.
    pub fn take_snapshot(&mut self, id: NodeId) {
        let k = self.slot(id);
        self.sync_clock(k);
        if let Some(r) = self.nodes[k].raft.as_mut() {
            r.take_snapshot();
        }
        self.drain(k);
    }

    /// Makes a node time out now.
    pub fn force_timeout(&mut self, id: NodeId) {
        let k = self.slot(id);
        self.sync_clock(k);
        if let Some(r) = self.nodes[k].raft.as_mut() {
            r.force_timeout();
        }
        self.drain(k);
    }

    // ------------------------------------------------------------------
    // Clients
    // ------------------------------------------------------------------

    /// Submits a client request at `id`; its reply is routed to `token`'s client.
    pub fn submit(&mut self, id: NodeId, token: ClientToken, req: ClientRequest) {
        let k = self.slot(id);
        self.sync_clock(k);
        if let Some(r) = self.nodes[k].raft.as_mut() {
            r.submit(token, req);
        }
        self.drain(k);
    }

    /// Proposes a command at `id`.
    pub fn propose(&mut self, id: NodeId, cmd: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        let k = self.slot(id);
        self.sync_clock(k);
        let r = match self.nodes[k].raft.as_mut() {
            Some(r) => r.propose(cmd),
            None => Err(ProposeError::NotLeader { leader_hint: None }),
        };
        self.drain(k);
        r
    }

    // ------------------------------------------------------------------
    // Observation
    // ------------------------------------------------------------------

    /// The simulator's configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[self.slot(id)]
    }

    /// The engine of a live node.
    pub fn raft(&self, id: NodeId) -> Option<&Raft<KvStore>> {
        self.nodes[self.slot(id)].raft.as_ref()
    }

    /// Whether a node is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.raft(id).is_some()
    }

    /// The live node that leads the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(|r| r.id())
    }

    /// Messages in flight, by id.
    pub fn in_flight(&self) -> &BTreeMap<u64, InFlight> {
        &self.inflight
    }

    /// Command applied at `index` by `id` in its current life, if any.
    pub fn applied_at(&self, id: NodeId, index: Index) -> Option<&[u8]> {
        let n = &self.nodes[self.slot(id)];
        let base = n.applied_base;
        if index <= base {
            return None;
        }
        n.applied.get((index - base - 1) as usize).map(|v| v.as_slice())
    }

    /// Safety violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.checker.violations
    }

    /// Highest index known committed anywhere.
    pub fn committed_index(&self) -> Index {
        self.checker.committed_index()
    }

    /// Final check at the end of a run (a majority holds the committed prefix).
    pub fn final_check(&mut self) {
        let now = self.now;
        self.checker.check_durable_majority(now);
    }

    // ------------------------------------------------------------------
    // Membership
    // ------------------------------------------------------------------

    /// Starts a new node with an empty disk (the next free id), not yet a
    /// member: it must be added by a configuration change. Returns its id.
    pub fn add_node(&mut self) -> NodeId {
        let id = self.nodes.len() as NodeId + 1;
        let disk = Disk::fresh();
        let raft = Raft::new(self.node_config(id), KvStore::default()).ok();
        let clock_ppm = self.draw_clock_rate();
        let (applied, applied_base, paused_until) = (Vec::new(), 0, 0);
        let clock_base = (self.now, self.now);
        self.nodes.push(Node {
            id,
            raft,
            disk,
            inc: 0,
            disk_gen: 0,
            applied,
            applied_base,
            clock_ppm,
            clock_base,
            paused_until,
        });
        self.checker.add_node(id);
        let k = self.nodes.len() - 1;
        self.schedule_first_tick(k);
        id
    }

    /// Proposes a membership change at `id`.
    pub fn propose_conf_change(
        &mut self,
        id: NodeId,
        cc: crate::membership::ConfChange,
        force: bool,
    ) -> Result<(Index, Term), crate::raft::ConfChangeRefused> {
        let k = self.slot(id);
        self.sync_clock(k);
        let r = match self.nodes[k].raft.as_mut() {
            Some(r) => r.propose_conf_change(cc, force),
            None => Err(crate::raft::ConfChangeRefused::NotLeader { leader_hint: None }),
        };
        self.drain(k);
        r
    }

    /// Asks the leader `id` to hand leadership to `target` (or the most up to date voter).
    pub fn transfer_leadership(
        &mut self,
        id: NodeId,
        target: Option<NodeId>,
    ) -> Result<NodeId, crate::raft::TransferError> {
        let k = self.slot(id);
        self.sync_clock(k);
        let r = match self.nodes[k].raft.as_mut() {
            Some(r) => r.transfer_leadership(target),
            None => Err(crate::raft::TransferError::NotLeader { leader_hint: None }),
        };
        self.drain(k);
        r
    }
}

fn raft_durable_seq(node: &Node) -> Seq {
    node.raft.as_ref().map_or(0, |r| r.durable_seq())
}
