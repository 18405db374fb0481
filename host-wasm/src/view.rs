//! The observable state of the whole cluster, built once per frame for the
//! page: roles, terms, votes, timers, logs, commit/match/next indexes, key-value
//! contents, sessions, messages in flight and each node's journal.

use raft_core::message::Body;
use raft_core::progress::ProgressState;
use raft_core::sim::InFlight;
use raft_core::{Index, NodeId, Term};
use serde::{Deserialize, Serialize};

use crate::client::HandClient;
use crate::committed::CommittedTerms;
use crate::driver::Driver;
use crate::journal_view::{entry_view, journal_records, DiskState, EntryView, RecordView};
use crate::membership::ConfView;

/// How much of each node's log and journal a frame carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewOptions {
    /// Most recent log entries per node.
    pub log_tail: usize,
    /// Most recent journal records per node.
    pub journal_tail: usize,
    /// Most keys per node.
    pub max_keys: usize,
    /// Most messages in flight.
    pub max_messages: usize,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions { log_tail: 40, journal_tail: 12, max_keys: 64, max_messages: 400 }
    }
}

fn flagged(mut v: EntryView, committed: &CommittedTerms) -> EntryView {
    v.x = committed.conflicts(v.i, v.t);
    v
}

/// Journal summary of one node.
#[derive(Clone, Debug, Serialize)]
pub struct JournalView {
    /// Records in all segments.
    pub records: usize,
    /// Bytes in all segments.
    pub bytes: usize,
    /// Segments (closed ones plus the current one).
    pub segments: usize,
    /// Bytes of the current segment not yet synced.
    pub unsynced_bytes: usize,
    /// Snapshot files on disk, by id (= index).
    pub snapshots: Vec<u64>,
    /// The latest records.
    pub tail: Vec<RecordView>,
    /// A damaged journal.
    pub error: Option<String>,
}

/// The leader's view of one follower.
#[derive(Clone, Debug, Serialize)]
pub struct ProgressView {
    /// The follower.
    pub id: NodeId,
    /// Highest index known replicated there.
    #[serde(rename = "match")]
    pub match_index: Index,
    /// Next index to send.
    pub next: Index,
    /// probe, replicate or snapshot.
    pub state: &'static str,
    /// Appends in flight.
    pub inflight: usize,
}

/// One session of the replicated session table.
#[derive(Clone, Debug, Serialize)]
pub struct SessionView {
    /// Session id (index of its register entry).
    pub id: u64,
    /// Lowest seq the client still awaits.
    pub ack: u64,
    /// Cluster time of its last activity (ticks).
    pub last_active: u64,
    /// Replies cached for retries.
    pub cached: usize,
}

/// One node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// Running (false: crashed).
    pub up: bool,
    /// follower, pre-candidate, candidate, leader, or down.
    pub role: &'static str,
    /// Current term (for a crashed node: the term on disk).
    pub term: Term,
    /// Leader it knows for its term.
    pub leader: Option<NodeId>,
    /// Vote in its term.
    pub voted_for: Option<NodeId>,
    /// Votes collected in its campaign: (from, granted).
    pub votes: Vec<(NodeId, bool)>,
    /// Election timer: ticks elapsed and the timeout.
    pub timer: (u32, u32),
    /// Commit index.
    pub commit: Index,
    /// Applied index.
    pub applied: Index,
    /// Durable index.
    pub durable: Index,
    /// First index held in memory.
    pub first: Index,
    /// Last log index.
    pub last: Index,
    /// Last snapshot index (entries up to it were compacted).
    pub snapshot: Index,
    /// Latest entries.
    pub log: Vec<EntryView>,
    /// Leader only: each follower's progress.
    pub progress: Vec<ProgressView>,
    /// Key-value contents (first `max_keys` keys).
    pub kv: Vec<(String, String)>,
    /// Number of keys.
    pub keys: usize,
    /// Open sessions (first 16).
    pub sessions: Vec<SessionView>,
    /// Number of sessions.
    pub session_count: usize,
    /// Leader: reads waiting, writes waiting.
    pub pending: (usize, usize),
    /// Messages waiting for durability.
    pub held: usize,
    /// Cut off from everyone.
    pub isolated: bool,
    /// The journal.
    pub journal: JournalView,
    /// For a crashed node: what its disk holds.
    pub disk: Option<DiskState>,
    /// What it is in the cluster's configuration ([`StateView::config`]):
    /// voter, incoming, outgoing, learner or none (see [`ConfView::role_of`]).
    pub member: &'static str,
    /// The configuration names an older disk of it (wiped and not yet
    /// readmitted): it may not vote or campaign.
    pub unbound: bool,
    /// The storage incarnation of its disk (0 while down).
    pub inc: u64,
    /// Entries it lacks, in the leader's view (members other than the leader).
    pub lag: Option<Index>,
    /// The configuration this node uses (while up).
    pub conf: Option<ConfView>,
}

/// One message in flight.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MsgView {
    /// Id (for drop/hold/release).
    pub id: u64,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Kind (PreVote, Vote, Heartbeat, Append, AppendResp, InstallSnapshot, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sender's term.
    pub term: Term,
    /// Sent at (µs).
    pub sent: u64,
    /// Due at (µs).
    pub due: u64,
    /// Held on the wire.
    pub held: bool,
    /// Encoded size.
    pub bytes: usize,
    /// The body's fields.
    pub fields: Vec<(&'static str, String)>,
    /// Entries carried (first 8).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryView>,
}

fn msg_view(id: u64, f: &InFlight) -> MsgView {
    let m = &f.msg;
    let mut v = MsgView {
        id,
        from: m.from,
        to: m.to,
        kind: m.body.name(),
        term: m.term,
        sent: f.sent_at,
        due: f.deliver_at,
        held: f.held,
        bytes: f.bytes.len(),
        ..MsgView::default()
    };
    let s = |x: u64| x.to_string();
    v.fields = match &m.body {
        Body::PreVote { last_index, last_term } | Body::Vote { last_index, last_term, .. } => {
            vec![("last_index", s(*last_index)), ("last_term", s(*last_term))]
        }
        Body::PreVoteResp { granted } | Body::VoteResp { granted } => vec![("granted", granted.to_string())],
        Body::Append { prev_index, prev_term, entries, commit, round, .. } => {
            v.entries = entries.iter().take(8).map(entry_view).collect();
            vec![
                ("prev_index", s(*prev_index)),
                ("prev_term", s(*prev_term)),
                ("entries", s(entries.len() as u64)),
                ("commit", s(*commit)),
                ("round", s(*round)),
            ]
        }
        Body::AppendResp { index, success, hint_index, hint_term, round, .. } => vec![
            ("success", success.to_string()),
            ("index", s(*index)),
            ("hint_index", s(*hint_index)),
            ("hint_term", s(*hint_term)),
            ("round", s(*round)),
        ],
        Body::InstallSnapshot { index, snap_term, offset, data, done } => vec![
            ("index", s(*index)),
            ("snap_term", s(*snap_term)),
            ("offset", s(*offset)),
            ("chunk_bytes", s(data.len() as u64)),
            ("done", done.to_string()),
        ],
        Body::InstallSnapshotResp { index, snap_term, offset, done } => vec![
            ("index", s(*index)),
            ("snap_term", s(*snap_term)),
            ("offset", if *offset == u64::MAX { "has it all".into() } else { s(*offset) }),
            ("done", done.to_string()),
        ],
        Body::TimeoutNow => Vec::new(),
        Body::ReadIndex { id } => vec![("id", s(*id))],
        Body::ReadIndexResp { id, index } => {
            vec![("id", s(*id)), ("index", index.map_or_else(|| "refused".into(), s))]
        }
    };
    v
}

/// Network settings.
#[derive(Clone, Debug, Serialize)]
pub struct NetView {
    /// Loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Reordering probability.
    pub long_delay: f64,
    /// Latency range, µs.
    pub latency: (u64, u64),
}

/// Counters.
#[derive(Clone, Debug, Serialize)]
pub struct StatsView {
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Crashes.
    pub crashes: u64,
    /// Operations the simulated clients recorded.
    pub ops: usize,
    /// Of which completed with a result.
    pub ops_ok: usize,
}

/// Everything the page draws in a frame.
#[derive(Clone, Debug, Serialize)]
pub struct StateView<'a> {
    /// Simulated time, µs.
    pub now: u64,
    /// The seed.
    pub seed: u64,
    /// Tick length, µs.
    pub tick_us: u64,
    /// The leader of the highest term among live nodes.
    pub leader: Option<NodeId>,
    /// Highest index known committed anywhere.
    pub committed: Index,
    /// Nodes, by id.
    pub nodes: Vec<NodeView>,
    /// Directed links that are down: (from, to).
    pub down: Vec<(NodeId, NodeId)>,
    /// Messages in flight (oldest first, at most `max_messages`).
    pub messages: Vec<MsgView>,
    /// All messages in flight.
    pub messages_total: usize,
    /// Network settings.
    pub network: NetView,
    /// The page's client.
    pub client: &'a HandClient,
    /// Safety violations found so far.
    pub violations: &'a [String],
    /// Id of the newest feed line.
    pub feed_last: u64,
    /// Actions in the trace, and those applied so far.
    pub actions: (usize, usize),
    /// Simulated time of the trace's last action.
    pub trace_end: u64,
    /// Simulated clients are running.
    pub load: bool,
    /// Counters.
    pub stats: StatsView,
    /// Built with the `bugs` feature.
    pub bugs_build: bool,
    /// Simulated time of the first safety violation.
    pub first_violation: Option<u64>,
    /// The cluster's configuration: the leader's, or with none the newest live node's.
    pub config: Option<ConfView>,
}

impl Driver {
    /// The whole observable state.
    pub fn state(&mut self, vo: &ViewOptions) -> StateView<'_> {
        let ids = self.sim.ids();
        let config = self.cluster_conf();
        let unbound = self.sim.unbound_voters();
        let leader_view =
            self.sim.leader().and_then(|l| self.sim.raft(l)).map(|r| (r.log().last_index(), r.progress()));
        let mut nodes = Vec::with_capacity(ids.len());
        for &id in &ids {
            let k = (id - 1) as usize;
            let disk = &self.sim.node(id).disk;
            let up = self.sim.is_up(id);
            let cache = &mut self.journals[k];
            cache.refresh(disk);
            let disk_view = cache.disk_state(disk, up, vo.log_tail);
            let tail = cache.tail(vo.journal_tail, disk);
            let journal = JournalView {
                records: cache.count(),
                bytes: disk.journal_bytes(),
                segments: disk.closed.len() + 1,
                unsynced_bytes: disk.bytes.len().saturating_sub(disk.durable_len),
                snapshots: disk.snapshots.keys().copied().collect(),
                tail,
                error: cache.error().map(str::to_string),
            };
            let isolated = self.sim.is_disconnected(id);
            let view = match self.sim.raft(id) {
                Some(r) => {
                    let log = r.log();
                    let last = log.last_index();
                    let lo = log.first_index().max(last.saturating_sub(vo.log_tail as u64) + 1);
                    let sm = r.state_machine();
                    let sessions = r.sessions();
                    NodeView {
                        id,
                        up: true,
                        role: r.role().name(),
                        term: r.term(),
                        leader: r.leader(),
                        voted_for: r.voted_for(),
                        votes: r.votes().to_vec(),
                        timer: r.election_timer(),
                        commit: r.commit_index(),
                        applied: r.applied_index(),
                        durable: r.durable_index(),
                        first: log.first_index(),
                        last,
                        snapshot: log.snapshot_index(),
                        log: (lo..=last)
                            .filter_map(|i| log.entry(i))
                            .map(|e| flagged(entry_view(e), &self.committed))
                            .collect(),
                        progress: r
                            .progress()
                            .iter()
                            .map(|p| ProgressView {
                                id: p.id,
                                match_index: p.match_index,
                                next: p.next_index,
                                state: match p.state {
                                    ProgressState::Probe => "probe",
                                    ProgressState::Replicate => "replicate",
                                    ProgressState::Snapshot => "snapshot",
                                },
                                inflight: p.inflight_count(),
                            })
                            .collect(),
                        kv: sm.iter().take(vo.max_keys).map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                        keys: sm.len(),
                        sessions: sessions
                            .iter()
                            .take(16)
                            .map(|s| SessionView {
                                id: s.id,
                                ack: s.ack,
                                last_active: s.last_active,
                                cached: s.replies.len(),
                            })
                            .collect(),
                        session_count: sessions.len(),
                        pending: (r.pending_reads(), r.pending_writes()),
                        held: r.held_messages(),
                        isolated,
                        journal,
                        disk: None,
                        member: "none",
                        unbound: false,
                        inc: r.config().inc,
                        lag: None,
                        conf: Some(ConfView::of(id, r.membership(), r.committed_membership())),
                    }
                }
                None => {
                    let d = disk_view.unwrap_or_default();
                    NodeView {
                        id,
                        up: false,
                        role: "down",
                        term: d.term,
                        leader: None,
                        voted_for: d.voted_for,
                        votes: Vec::new(),
                        timer: (0, 0),
                        commit: 0,
                        applied: 0,
                        durable: d.last_index,
                        first: d.snapshot_index + 1,
                        last: d.last_index,
                        snapshot: d.snapshot_index,
                        log: d.log.iter().cloned().map(|e| flagged(e, &self.committed)).collect(),
                        progress: Vec::new(),
                        kv: Vec::new(),
                        keys: 0,
                        sessions: Vec::new(),
                        session_count: 0,
                        pending: (0, 0),
                        held: 0,
                        isolated,
                        journal,
                        disk: Some(d),
                        member: "none",
                        unbound: false,
                        inc: 0,
                        lag: None,
                        conf: None,
                    }
                }
            };
            let mut view = view;
            view.member = config.as_ref().map_or("none", |c| c.role_of(id));
            view.unbound = unbound.contains(&id);
            view.lag = leader_view
                .and_then(|(last, ps)| ps.iter().find(|p| p.id == id).map(|p| last.saturating_sub(p.match_index)));
            nodes.push(view);
        }
        let mut down = Vec::new();
        for &a in &ids {
            for &b in &ids {
                if a != b && !self.sim.link_up(a, b) {
                    down.push((a, b));
                }
            }
        }
        let inflight = self.sim.in_flight();
        let messages = inflight.iter().take(vo.max_messages).map(|(&id, f)| msg_view(id, f)).collect();
        let cfg = self.sim.config();
        let history = self.sim.history();
        StateView {
            now: self.sim.now(),
            seed: self.opts.seed,
            tick_us: self.opts.tick_us,
            leader: self.sim.leader(),
            committed: self.sim.committed_index(),
            nodes,
            down,
            messages,
            messages_total: inflight.len(),
            network: NetView {
                loss: cfg.loss,
                duplicate: cfg.duplicate,
                long_delay: cfg.long_delay,
                latency: cfg.latency_us,
            },
            client: &self.client,
            violations: self.sim.violations(),
            feed_last: self.feed.back().map_or(0, |f| f.id),
            actions: (self.done.len() + self.future.len(), self.done.len()),
            trace_end: self.trace_end(),
            load: self.load,
            stats: StatsView {
                events: self.sim.stats.events,
                messages: self.sim.stats.messages,
                bytes: self.sim.stats.bytes,
                crashes: self.sim.stats.crashes,
                ops: history.len(),
                ops_ok: self.sim.completed_ops(),
            },
            bugs_build: cfg!(feature = "bugs"),
            first_violation: self.first_violation(),
            config,
        }
    }

    /// Each node's log entries with indexes in `lo..=hi` (a crashed node's
    /// from its disk), by node id, for the page's log table.
    pub fn log_window(&mut self, lo: Index, hi: Index) -> Vec<Vec<EntryView>> {
        let mut out = Vec::new();
        for id in self.sim.ids() {
            let k = (id - 1) as usize;
            let entries: Vec<EntryView> = match self.sim.raft(id) {
                Some(r) => {
                    let log = r.log();
                    (lo.max(log.first_index())..=hi.min(log.last_index()))
                        .filter_map(|i| log.entry(i))
                        .map(entry_view)
                        .collect()
                }
                None => self.journals[k].disk_entries(&self.sim.node(id).disk, lo, hi),
            };
            out.push(entries.into_iter().map(|e| flagged(e, &self.committed)).collect());
        }
        out
    }

    /// Every record of a node's journal.
    pub fn journal(&self, id: NodeId) -> Vec<RecordView> {
        if !self.valid(id) {
            return Vec::new();
        }
        journal_records(&self.sim.node(id).disk)
    }
}
