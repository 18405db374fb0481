//! The node task: the one task that owns the Raft core.
//!
//! The core is a plain struct; exactly one task touches it. Everything else —
//! the timer, peer links, client connections, the journal thread — talks to
//! that task over bounded channels:
//!
//! ```text
//!  peer links ─┐                     ┌─> per-peer sender tasks (bounded; drop when full)
//!  clients  ───┼─> inputs (bounded) ─┤
//!  /status  ───┘        node task  ──┼─> journal thread (merges what queued during a sync: group commit)
//!  timer ──────────────>    │        └─> client connections (replies by token)
//!  journal "durable up to seq" ──┘
//! ```
//!
//! After every input the task drains the core's `Ready` (raft-core's host
//! contract): records go to the journal, messages to the peers at once (the
//! core itself holds back votes and acknowledgements until their records are
//! durable), replies to the connections that asked. It never waits on I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use raft_core::raft::{ConfChangeRefused, TransferError};
use raft_core::{Change, ClientToken, ConfChange, Event, KvOp, KvStore, Membership, Message, NodeId, Raft, Seq};

use crate::control::Isolation;
use crate::disk::{Disk, InlineSync, Submitted};
use crate::inbox::{AddressBook, AdminAnswer, ConfigView, Input, PeerStatus, ReplyRoute, Status};
use crate::journal::Batch;
use crate::live::{JournalCounts, LiveFeed, LiveHub};
use crate::metrics::Metrics;
use crate::peer::handshake::PeerAuth;
use crate::peer::outgoing::{run_sender, LinkConfig};
use crate::protocol::{addr_key, AdminOp, Failure, LeaderHint, MemberInfo, MembersView};
use crate::snapshot_builder::{Built, SnapshotBuilder};
use crate::watches::WatchHub;

/// Inputs handled before the `Ready` is drained (more per batch, fewer fsyncs).
const INPUT_BATCH: usize = 256;

/// Inline journal writes (crate::disk) one turn may do before the rest of
/// its records go through the journal thread: each write can release work
/// that writes again (a commit, a vote), and a turn must end.
const MAX_INLINE_ROUNDS: usize = 4;

/// How long a member command waits for its change to commit (and a joint
/// change to be left), and a transfer for the new leader, in ticks of 10 ms
/// by default: long enough for a learner's snapshot, short enough for a CLI.
const ADMIN_WAIT_TICKS: u64 = 1_000;

/// How the node task starts the sending side of a peer link: what every
/// link shares.
pub struct Links {
    /// For the peer handshake.
    pub auth: Arc<PeerAuth>,
    /// Batch and frame sizes, TLS.
    pub link: LinkConfig,
    /// Messages queued per peer before new ones are dropped.
    pub queue: usize,
}

/// What the node task knows of its own storage identity.
pub struct Own {
    /// This directory's incarnation.
    pub inc: u64,
    /// The bootstrap configuration of the directory.
    pub bootstrap: Vec<crate::identity::BoundMember>,
    /// Config `auto_readmit`.
    pub auto_readmit: bool,
}

/// One peer link the node keeps.
struct Link {
    url: String,
    tx: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// A member command waiting for its change to commit.
struct ChangeWait {
    index: u64,
    term: u64,
    started: u64,
    reply: oneshot::Sender<Result<AdminAnswer, Failure>>,
}

/// A leadership transfer waiting for the new leader.
struct TransferWait {
    target: NodeId,
    started: u64,
    reply: oneshot::Sender<Result<AdminAnswer, Failure>>,
}

/// The task that owns a node's Raft core. Built by start-up (`startup`), run
/// by [`NodeTask::run`].
pub struct NodeTask {
    raft: Raft<KvStore>,
    /// Peer links, following the appended configuration (`Raft::link_ids`).
    peers: HashMap<NodeId, Link>,
    links: Links,
    /// Node URLs: the TOML file's, then the replicated address map's.
    addrs: AddressBook,
    disk: Disk,
    /// Which roles write journal batches themselves when the thread is idle.
    inline: InlineSync,
    /// Records not yet handed to the journal thread (its queue was full).
    unwritten: Batch,
    /// Where each outstanding client request's reply goes.
    reply_routes: HashMap<ClientToken, ReplyRoute>,
    metrics: Arc<Metrics>,
    /// This directory's incarnation.
    inc: u64,
    /// The bootstrap configuration of the data directory: the binding of a
    /// member no change has rebound since.
    bootstrap: HashMap<NodeId, u64>,
    /// The incarnation each node last said it has (at `/join`): one that
    /// differs from the configuration's binding lost its data.
    seen_inc: HashMap<NodeId, u64>,
    /// Members already warned about (the warning is logged once).
    warned_lost: HashSet<NodeId>,
    /// Rebind a member that came back with a new incarnation by itself, once
    /// it caught up (config `auto_readmit`).
    auto_readmit: bool,
    changes: Vec<ChangeWait>,
    transfers: Vec<TransferWait>,
    ticks: u64,
    /// The monotonic clock the core's lease reads are measured on
    /// (microseconds since this instant).
    clock_zero: std::time::Instant,
    /// The open watches of every client connection.
    watches: WatchHub,
    /// A poll of the watches ran out of budget: poll again before waiting.
    watch_backlog: bool,
    /// Ticks between progress notifications (config `watch_progress_ms`).
    watch_progress_ticks: u64,
    /// The tick since which this node has known no leader.
    leaderless_since: Option<u64>,
    /// The store's revision at the last poll of the watches, and whether a
    /// watch opened since (a quiet store needs no poll).
    watch_polled: (u64, bool),
    /// What `/live` streams (built only while someone listens).
    live: LiveFeed,
    /// The supervisor's isolate switch (see [`crate::control`]).
    isolation: Arc<Isolation>,
    /// Builds snapshots off the event loop (crate::snapshot_builder).
    snapshots: Option<SnapshotBuilder>,
}

impl NodeTask {
    /// A task for `raft` (recovered from its journal) that links to its peers
    /// through `links` at the URLs of `addrs`, sends journal batches to `disk`
    /// and counts in `metrics`; `who`: its storage identity.
    pub fn new(
        raft: Raft<KvStore>,
        links: Links,
        addrs: AddressBook,
        disk: Disk,
        metrics: Arc<Metrics>,
        who: Own,
    ) -> NodeTask {
        let Own { inc, bootstrap, auto_readmit } = who;
        let metrics_for_watches = metrics.clone();
        let mut t = NodeTask {
            raft,
            peers: HashMap::new(),
            links,
            addrs,
            disk,
            inline: InlineSync::default(),
            unwritten: Batch::default(),
            reply_routes: HashMap::new(),
            metrics,
            inc,
            bootstrap: bootstrap.iter().map(|m| (m.id, m.inc)).collect(),
            seen_inc: HashMap::new(),
            warned_lost: HashSet::new(),
            auto_readmit,
            changes: Vec::new(),
            transfers: Vec::new(),
            ticks: 0,
            clock_zero: std::time::Instant::now(),
            watches: WatchHub::new(metrics_for_watches, Duration::from_millis(1_000)),
            watch_backlog: false,
            watch_progress_ticks: 1_000,
            leaderless_since: None,
            watch_polled: (0, false),
            live: LiveFeed::new(LiveHub::new(0)),
            isolation: Arc::new(Isolation::default()),
            snapshots: None,
        };
        t.sync_links();
        t
    }

    /// Builds the snapshots the core hands out (`async_snapshots`) with
    /// `builder`, off the event loop. Without one, a job is reported failed.
    pub fn with_snapshot_builder(mut self, builder: SnapshotBuilder) -> NodeTask {
        self.snapshots = Some(builder);
        self
    }

    /// A snapshot build ended: tell the core (which then issues the record
    /// naming the file, or asks again later).
    fn snapshot_built(&mut self, built: Built) {
        match built {
            Built::Stored(snap) => {
                let index = snap.meta.index;
                if !self.raft.snapshot_stored(snap) {
                    // A newer one was taken or installed meanwhile; its file
                    // goes with the older ones once a newer record is durable.
                    tracing::debug!(index, "a snapshot built off the loop was superseded");
                }
            }
            Built::Failed { index, error } => {
                tracing::error!(index, %error, "cannot store a snapshot; will try again");
                self.raft.snapshot_failed(index);
            }
        }
    }

    /// Sends progress notifications every `ticks` ticks (config
    /// `watch_progress_ms`; the default is 1,000 ticks), and cancels a
    /// watch as slow once it waited `slow_after` for room in its
    /// connection's queue (config `watch_slow_ms`; default 1 s).
    pub fn with_watch_limits(mut self, ticks: u64, slow_after: Duration) -> NodeTask {
        self.watch_progress_ticks = ticks.max(1);
        self.watches = WatchHub::new(self.metrics.clone(), slow_after);
        self
    }

    /// Which roles write journal batches on the event loop when the journal
    /// thread is idle (config `journal_inline`, see [`crate::disk`]).
    pub fn with_inline_sync(mut self, inline: InlineSync) -> NodeTask {
        self.inline = inline;
        self
    }

    /// Streams the live view into `hub` (see [`crate::live`]) and drops
    /// peer messages while `isolation` is on (see [`crate::control`]).
    pub fn with_live(mut self, hub: Arc<LiveHub>, isolation: Arc<Isolation>) -> NodeTask {
        self.live = LiveFeed::new(hub);
        self.isolation = isolation;
        self
    }

    /// Hands the watches what the store applied since the last poll (a
    /// bounded amount: see [`crate::watches`]).
    fn poll_watches(&mut self) {
        let sm = self.raft.state_machine();
        let (revision, opened) = self.watch_polled;
        if self.watches.is_empty() || (revision == sm.revision() && !opened && !self.watch_backlog) {
            self.watch_backlog = false;
            return;
        }
        let left = self.watches.poll(sm.events(), sm.revision());
        // A watch waiting for room is retried at the next turn of the loop
        // (an input or the next tick), not in a busy loop.
        self.watch_polled = (sm.revision(), left.blocked);
        self.watch_backlog = left.more;
    }

    /// Once per tick: progress notifications when their interval is up, and
    /// the `no_leader` cancellation after an election timeout without one.
    fn tick_watches(&mut self) {
        if self.raft.leader().is_some() {
            self.leaderless_since = None;
        } else {
            let since = *self.leaderless_since.get_or_insert(self.ticks);
            if self.ticks - since >= u64::from(self.raft.config().election_ticks) {
                self.watches.no_leader();
            }
        }
        if self.ticks % self.watch_progress_ticks == 0 {
            // Deliver first, so the confirmed revision is as high as it can be.
            self.poll_watches();
            self.watches.progress(self.raft.state_machine().revision());
        }
    }

    /// The URL of node `id`: the replicated address map first (it follows
    /// `member add`), then what the TOML file or a request said.
    fn url_of(&self, id: NodeId) -> Option<String> {
        match self.raft.state_machine().get(&addr_key(id)) {
            Some(u) => Some(u.to_string()),
            None => self.addrs.get(id),
        }
    }

    /// Keeps one link to every node of `Raft::link_ids` (the appended
    /// configuration, and a removed node until its removal commits): new
    /// members get a link before their change commits, links of nodes no
    /// longer named are closed, a node whose URL changed is redialled.
    fn sync_links(&mut self) {
        let want = self.raft.link_ids();
        for &id in &want {
            let Some(url) = self.url_of(id) else { continue };
            self.addrs.set(id, &url);
            if self.peers.get(&id).is_some_and(|l| l.url == url) {
                continue;
            }
            if let Some(old) = self.peers.remove(&id) {
                old.task.abort();
            }
            let (tx, rx) = mpsc::channel(self.links.queue);
            let task = tokio::spawn(run_sender(
                id,
                url.clone(),
                self.links.auth.clone(),
                rx,
                self.links.link.clone(),
                self.metrics.clone(),
            ));
            tracing::info!(peer = id, %url, "linking to peer");
            self.peers.insert(id, Link { url, tx, task });
        }
        let gone: Vec<NodeId> = self.peers.keys().copied().filter(|id| !want.contains(id)).collect();
        for id in gone {
            if let Some(l) = self.peers.remove(&id) {
                tracing::info!(peer = id, "closing the link to a node no longer in the configuration");
                l.task.abort();
            }
        }
    }

    fn hint(&self) -> Option<LeaderHint> {
        let id = self.raft.leader()?;
        Some(LeaderHint { id, addr: self.url_of(id)? })
    }

    fn not_leader(&self) -> Failure {
        Failure::not_leader(self.hint())
    }

    /// Members whose node came back with another incarnation than the one
    /// the configuration binds them to.
    fn lost_members(&self) -> Vec<NodeId> {
        // What the node said at `/join`, and (at a leader) what its messages
        // carry; a follower still recovering lost records counts too.
        let heard = self.raft.progress().iter().filter(|p| p.inc != 0).map(|p| (p.id, p.inc));
        let mut v: Vec<NodeId> = self
            .seen_inc
            .iter()
            .map(|(id, inc)| (*id, *inc))
            .chain(heard)
            .filter(|(id, inc)| self.bound_inc(*id).is_some_and(|b| b != 0 && b != *inc))
            .map(|(id, _)| id)
            .chain(self.raft.progress().iter().filter(|p| p.recovering).map(|p| p.id))
            .collect();
        v.dedup();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The incarnation the configuration in force binds `id` to: its entry's,
    /// or for a member unchanged since bootstrap (whose entry may say 0),
    /// the bootstrap configuration's. `None`: not a member.
    fn bound_inc(&self, id: NodeId) -> Option<u64> {
        let b = self.raft.membership().member(id)?;
        Some(if b.inc != 0 { b.inc } else { self.bootstrap.get(&id).copied().unwrap_or(0) })
    }

    fn members_view(&self) -> MembersView {
        let r = &self.raft;
        let m = r.membership();
        let last = r.log().last_index();
        let lost = self.lost_members();
        let members = m
            .member_ids()
            .into_iter()
            .map(|id| {
                let inc = self.bound_inc(id).unwrap_or(0);
                let (match_index, reachable) = if id == r.id() {
                    (r.durable_index(), true)
                } else {
                    match r.progress().iter().find(|p| p.id == id) {
                        Some(p) => (p.match_index, p.recent_active),
                        None => (0, false),
                    }
                };
                MemberInfo {
                    id,
                    url: self.url_of(id).unwrap_or_default(),
                    voter: m.is_voter(id),
                    incarnation: inc,
                    match_index,
                    lag: if r.is_leader() { last.saturating_sub(match_index) } else { 0 },
                    reachable,
                    lost_data: lost.contains(&id) || (id == r.id() && self.own_lost_data()),
                }
            })
            .collect();
        MembersView {
            node: r.id(),
            leader: r.leader().unwrap_or(0),
            term: r.term(),
            commit_index: r.commit_index(),
            voters: m.voters.iter().map(|b| b.id).collect(),
            outgoing: m.outgoing.iter().map(|b| b.id).collect(),
            learners: m.learners.iter().chain(&m.learners_next).map(|b| b.id).collect(),
            joint: m.is_joint(),
            members,
        }
    }

    /// Whether this node knows its own data was lost (its journal cut or its
    /// directory wiped: it is bound to another incarnation than its own).
    fn own_lost_data(&self) -> bool {
        self.raft.lost_data() || self.bound_inc(self.raft.id()).is_some_and(|b| b != 0 && b != self.inc)
    }

    fn status(&self) -> Status {
        let r = &self.raft;
        Status {
            id: r.id(),
            role: r.role().name().to_string(),
            term: r.term(),
            leader: r.leader(),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            last_index: r.log().last_index(),
            durable_index: r.durable_index(),
            snapshot_index: r.log().snapshot_index(),
            peers: r
                .progress()
                .iter()
                .map(|p| PeerStatus { id: p.id, match_index: p.match_index, next_index: p.next_index })
                .collect(),
            sessions: r.sessions().len(),
            keys: r.state_machine().len(),
            pending_reads: r.pending_reads(),
            pending_writes: r.pending_writes(),
            configuration: config_view(r.membership()),
            committed_configuration: config_view(r.committed_membership()),
            incarnation: self.inc,
            epoch: r.config().epoch,
            lost_data: self.own_lost_data(),
            members_lost_data: self.lost_members(),
        }
    }

    /// Proposes a configuration change; its answer waits for the commit.
    fn change(&mut self, cc: ConfChange, force: bool, reply: oneshot::Sender<Result<AdminAnswer, Failure>>) {
        match self.raft.propose_conf_change(cc, force) {
            Ok((index, term)) => self.changes.push(ChangeWait { index, term, started: self.ticks, reply }),
            Err(e) => {
                let _ = reply.send(Err(self.refusal(e)));
            }
        }
    }

    fn refusal(&self, e: ConfChangeRefused) -> Failure {
        match e {
            ConfChangeRefused::NotLeader { .. } => self.not_leader(),
            ConfChangeRefused::LearnerBehind { id, lag } => Failure::refused(format!(
                "node {id} is a learner {lag} entries behind the leader (the bound is {}): wait for it to catch up, \
                 or force",
                self.raft.config().max_promotion_lag
            )),
            other => Failure::refused(other.to_string()),
        }
    }

    /// Records that node `id` is reached at `url`, in the replicated address
    /// map (an ordinary command: applying it twice does no harm).
    fn propose_address(&mut self, id: NodeId, url: &str) -> Result<(), Failure> {
        self.addrs.set(id, url);
        if self.raft.state_machine().get(&addr_key(id)) == Some(url) {
            return Ok(());
        }
        let put = KvOp::Put { key: addr_key(id), value: url.to_string() };
        self.raft.propose(put.encode()).map(|_| ()).map_err(|e| match e {
            raft_core::ProposeError::NotLeader { .. } => self.not_leader(),
            raft_core::ProposeError::Busy => Failure::refused("the leader is busy; try again"),
        })
    }

    /// Refuses removing `id` when the voters left would not have a reachable
    /// majority: the cluster would stop.
    fn check_quorum_after_removal(&self, id: NodeId) -> Result<(), Failure> {
        let m = self.raft.membership();
        if !m.is_voter(id) {
            return Ok(());
        }
        let left: Vec<NodeId> = m.voter_ids().into_iter().filter(|&v| v != id).collect();
        let me = self.raft.id();
        let reachable = left
            .iter()
            .filter(|&&v| v == me || self.raft.progress().iter().any(|p| p.id == v && p.recent_active))
            .count();
        if left.is_empty() || reachable <= left.len() / 2 {
            return Err(Failure::refused(format!(
                "removing node {id} would lose the quorum: {reachable} of the {} voters left are reachable",
                left.len()
            )));
        }
        Ok(())
    }

    fn admin(&mut self, op: AdminOp, reply: oneshot::Sender<Result<AdminAnswer, Failure>>) {
        if !matches!(op, AdminOp::MemberList) && !self.raft.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let m = self.raft.membership().clone();
        let refuse = |reply: oneshot::Sender<_>, msg: String| {
            let _ = reply.send(Err(Failure::refused(msg)));
        };
        match op {
            AdminOp::MemberList => {
                let _ = reply.send(Ok(AdminAnswer::Members(self.members_view())));
            }
            AdminOp::MemberAdd { id, url, .. } => {
                if m.contains(id) {
                    return refuse(reply, format!("node {id} is already a member"));
                }
                if let Err(f) = self.propose_address(id, &url) {
                    let _ = reply.send(Err(f));
                    return;
                }
                let inc = self.seen_inc.get(&id).copied().unwrap_or(0);
                self.change(
                    ConfChange::Begin { joint: false, changes: vec![Change::AddLearner { id, inc }] },
                    false,
                    reply,
                );
            }
            AdminOp::MemberPromote { id, force } => {
                if !m.is_learner(id) {
                    return refuse(reply, format!("node {id} is not a learner"));
                }
                let inc = self.binding(&m, id);
                self.change(
                    ConfChange::Begin { joint: false, changes: vec![Change::AddVoter { id, inc }] },
                    force,
                    reply,
                );
            }
            AdminOp::MemberRemove { id } => {
                if let Err(f) = self.check_quorum_after_removal(id) {
                    let _ = reply.send(Err(f));
                    return;
                }
                self.change(ConfChange::Begin { joint: false, changes: vec![Change::Remove { id }] }, false, reply);
            }
            AdminOp::MemberReplace { old, new } => {
                if !m.is_voter(old) {
                    return refuse(reply, format!("node {old} is not a voter"));
                }
                let changes = if old == new {
                    let heard = self.raft.progress().iter().find(|p| p.id == new && p.inc != 0).map(|p| p.inc);
                    match heard.or_else(|| self.seen_inc.get(&new).copied()) {
                        Some(inc) if Some(inc) != self.bound_inc(new) => {
                            vec![Change::Remove { id: old }, Change::AddVoter { id: new, inc }]
                        }
                        _ => {
                            return refuse(
                                reply,
                                format!("node {new} has not come back with a new incarnation: nothing to rebind"),
                            )
                        }
                    }
                } else {
                    if !m.is_learner(new) {
                        return refuse(
                            reply,
                            format!("node {new} must first join as a learner (member add --learner)"),
                        );
                    }
                    vec![Change::AddVoter { id: new, inc: self.binding(&m, new) }, Change::Remove { id: old }]
                };
                self.change(ConfChange::Begin { joint: true, changes }, false, reply);
            }
            AdminOp::TransferLeader { id } => match self.raft.transfer_leadership(id) {
                Ok(target) => self.transfers.push(TransferWait { target, started: self.ticks, reply }),
                Err(TransferError::NotLeader { .. }) => {
                    let _ = reply.send(Err(self.not_leader()));
                }
                Err(e) => refuse(reply, e.to_string()),
            },
            AdminOp::SnapshotSave => {
                // A snapshot of the applied state: everything applied is
                // committed, so it is a consistent cut at a committed index.
                self.raft.take_snapshot();
                match self.raft.snapshot() {
                    Some(s) if s.meta.index == self.raft.applied_index() => {
                        let _ = reply.send(Ok(AdminAnswer::Snapshot(s.clone())));
                    }
                    _ => refuse(reply, "nothing applied yet to snapshot".into()),
                }
            }
        }
    }

    /// The incarnation a promotion binds `id` to: the one the leader saw it
    /// catch up as (its messages carry it), else the one it joined with,
    /// else its learner entry's.
    fn binding(&self, m: &Membership, id: NodeId) -> u64 {
        match self.raft.progress().iter().find(|p| p.id == id && p.inc != 0) {
            Some(p) => p.inc,
            None => self.seen_inc.get(&id).copied().unwrap_or_else(|| m.member(id).map_or(0, |b| b.inc)),
        }
    }

    /// A node at `/join`: a newcomer enters as a learner; a member that
    /// came back with a new incarnation is noted (and, with `auto_readmit`,
    /// rebound once it caught up); a learner the operator added before it
    /// started gets bound to its incarnation.
    fn join(&mut self, id: NodeId, url: String, inc: u64, reply: oneshot::Sender<Result<MembersView, Failure>>) {
        if !self.raft.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        self.seen_inc.insert(id, inc);
        if let Err(f) = self.propose_address(id, &url) {
            let _ = reply.send(Err(f));
            return;
        }
        let m = self.raft.membership().clone();
        let cc = match self.bound_inc(id) {
            None => Some(ConfChange::Begin { joint: false, changes: vec![Change::AddLearner { id, inc }] }),
            Some(b) if b == inc => None,
            Some(_) if m.is_voter(id) => {
                self.warn_lost(id);
                None
            }
            // A learner bound to nothing (added by `member add --learner`)
            // or to an older incarnation: bind it to this one.
            Some(_) => Some(ConfChange::Begin {
                joint: false,
                changes: vec![Change::Remove { id }, Change::AddLearner { id, inc }],
            }),
        };
        if let Some(cc) = cc {
            if let Err(e) = self.raft.propose_conf_change(cc, false) {
                let _ = reply.send(Err(self.refusal(e)));
                return;
            }
            tracing::info!(node = id, %url, inc, "admitted a joining node as a learner");
        }
        let _ = reply.send(Ok(self.members_view()));
    }

    /// Logs, once per member, that it came back with a new incarnation.
    fn warn_lost(&mut self, id: NodeId) {
        if self.warned_lost.insert(id) {
            tracing::warn!(
                node = id,
                "node {id} came back with a new incarnation (its data directory was wiped or lost): it does not \
                 vote until `raftkv member replace {id} {id}` rebinds it{}",
                if self.auto_readmit { " (auto_readmit: done once it has caught up)" } else { "" }
            );
        }
    }

    /// Answers member commands whose change committed (and, if joint, was
    /// left), transfers that happened, and those that gave up; rebinds lost
    /// members with `auto_readmit`.
    fn settle_admin(&mut self) {
        let (commit, term, ticks) = (self.raft.commit_index(), self.raft.term(), self.ticks);
        let settled = !self.raft.committed_membership().is_joint();
        let mut i = 0;
        while i < self.changes.len() {
            let w = &self.changes[i];
            let outcome = if commit >= w.index && settled && self.raft.log().term(w.index).is_none_or(|t| t == w.term) {
                Some(Ok(AdminAnswer::Members(self.members_view())))
            } else if term != w.term || !self.raft.is_leader() {
                Some(Err(Failure::refused(
                    "leadership changed before the change committed: see `raftkv member list` for whether it took \
                     effect",
                )))
            } else if ticks - w.started > ADMIN_WAIT_TICKS {
                Some(Err(Failure::refused("the change did not commit in time: see `raftkv member list`")))
            } else {
                None
            };
            match outcome {
                Some(o) => {
                    let w = self.changes.swap_remove(i);
                    let _ = w.reply.send(o);
                }
                None => i += 1,
            }
        }
        let mut i = 0;
        while i < self.transfers.len() {
            let w = &self.transfers[i];
            let outcome = if self.raft.leader() == Some(w.target) && !self.raft.is_leader() {
                Some(Ok(AdminAnswer::Transferred(w.target)))
            } else if self.raft.is_leader() && self.raft.transfer_target().is_none() {
                Some(Err(Failure::refused(format!(
                    "node {} did not take over within an election timeout; this node still leads",
                    w.target
                ))))
            } else if ticks - w.started > ADMIN_WAIT_TICKS {
                Some(Err(Failure::refused("the transfer did not finish in time")))
            } else {
                None
            };
            match outcome {
                Some(o) => {
                    let w = self.transfers.swap_remove(i);
                    let _ = w.reply.send(o);
                }
                None => i += 1,
            }
        }
        if self.raft.is_leader() {
            for id in self.lost_members() {
                self.warn_lost(id);
            }
            if self.auto_readmit {
                self.readmit();
            }
        }
    }

    /// `auto_readmit`: rebinds one lost member that has caught up.
    fn readmit(&mut self) {
        let last = self.raft.log().last_index();
        let lag_bound = self.raft.config().max_promotion_lag;
        let Some(id) = self.lost_members().into_iter().find(|id| {
            self.raft.progress().iter().any(|p| p.id == *id && last.saturating_sub(p.match_index) <= lag_bound)
        }) else {
            return;
        };
        let heard = self.raft.progress().iter().find(|p| p.id == id && p.inc != 0).map(|p| p.inc);
        let Some(inc) = heard.or_else(|| self.seen_inc.get(&id).copied()) else { return };
        if !self.raft.membership().is_voter(id) {
            return;
        }
        let cc = ConfChange::Begin { joint: true, changes: vec![Change::Remove { id }, Change::AddVoter { id, inc }] };
        if self.raft.propose_conf_change(cc, false).is_ok() {
            tracing::info!(node = id, inc, "auto_readmit: rebinding a member to its new incarnation");
        }
    }

    /// Passes the core the monotonic clock before an input: a lease read is
    /// checked against the time it is handled, never a time read before the
    /// loop stalled (DESIGN: ticks are not time).
    fn sync_clock(&mut self) {
        let us = u64::try_from(self.clock_zero.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.raft.set_clock(us);
    }

    fn handle(&mut self, input: Input) {
        self.sync_clock();
        match input {
            Input::Peer(m) => {
                if self.isolation.is_on() {
                    self.metrics.peer_messages_isolated_total.inc();
                    return;
                }
                self.live.received(&m.body);
                if let Err(e) = self.raft.step(m) {
                    tracing::debug!(error = ?e, "core refused a peer message");
                }
            }
            Input::Client { token, request, reply } => {
                // (Counted by the connection that received it.)
                self.reply_routes.insert(token, reply);
                self.raft.submit(token, request);
            }
            Input::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Input::Admin { op, reply } => self.admin(op, reply),
            Input::Join { id, url, inc, reply } => self.join(id, url, inc, reply),
            Input::Watch { conn, watch_id, spec, sink } => {
                let applied = self.raft.state_machine().revision();
                self.watches.add(conn, watch_id, spec, sink, applied);
                self.watch_polled.1 = true;
            }
            Input::CancelWatch { conn, watch_id } => self.watches.cancel(conn, watch_id),
        }
    }

    /// Carries out everything the core asked for (raft-core's host contract).
    /// A batch written inline (crate::disk) is durable at once: the core is
    /// told, and what that releases (acknowledgements, votes, commits) is
    /// drained in the same turn.
    fn drain_ready(&mut self) {
        for _ in 0..MAX_INLINE_ROUNDS {
            self.drain_ready_once();
            match self.flush_to_disk(true) {
                Some(seq) => {
                    self.sync_clock();
                    self.raft.persisted(seq);
                }
                None => return,
            }
        }
        // Still producing records: the rest goes through the thread.
        self.drain_ready_once();
        self.flush_to_disk(false);
    }

    fn drain_ready_once(&mut self) {
        while self.raft.has_ready() {
            let ready = self.raft.take_ready();
            if let Some(out) = ready.snapshot {
                // Stored before the records that name it; only the newest
                // matters if several pile up while a sync runs.
                self.unwritten.snapshot = Some(out.snapshot);
            }
            if let Some(job) = ready.snapshot_job {
                match &self.snapshots {
                    Some(b) => b.start(job),
                    None => {
                        tracing::error!("no snapshot builder: cannot take a snapshot");
                        self.raft.snapshot_failed(job.meta.index);
                    }
                }
            }
            self.unwritten.records.extend(ready.records);
            let isolated = self.isolation.is_on();
            for m in ready.messages {
                if isolated {
                    self.metrics.peer_messages_isolated_total.inc();
                    continue;
                }
                let kind = crate::live::kind_index(&m.body);
                match self.peers.get(&m.to) {
                    Some(link) => match link.tx.try_send(m) {
                        Ok(()) => {
                            self.metrics.peer_messages_sent_total.inc();
                            self.live.counts.sent[kind] += 1;
                        }
                        // Full or gone: Raft's retries cover a lost message.
                        Err(_) => self.metrics.peer_messages_dropped_total.inc(),
                    },
                    None => self.metrics.peer_messages_dropped_total.inc(),
                }
            }
            for (token, reply) in ready.replies {
                match self.reply_routes.remove(&token) {
                    Some(route) => {
                        if !route.try_send(token, reply) {
                            self.metrics.client_replies_dropped_total.inc();
                        }
                    }
                    None => self.metrics.client_replies_dropped_total.inc(),
                }
            }
            self.metrics.raft_entries_applied_total.add(ready.applied.len() as u64);
            for e in ready.events {
                self.log_event(e);
            }
        }
    }

    /// Hands the records of this turn to the journal (crate::disk): written
    /// here if `may_inline`, the role allows it and the journal thread is
    /// idle (returns the last record, now durable), else queued for the
    /// thread, which merges whatever queues up during a sync into its next
    /// write (group commit).
    fn flush_to_disk(&mut self, may_inline: bool) -> Option<Seq> {
        if self.unwritten.records.is_empty() {
            return None;
        }
        let inline = may_inline && self.inline.allows(self.raft.is_leader());
        let batch = std::mem::take(&mut self.unwritten);
        match self.disk.submit(batch, inline) {
            Submitted::Durable(seq) => Some(seq),
            Submitted::Queued => None,
            Submitted::Full(batch) => {
                self.unwritten = batch;
                None
            }
        }
    }

    fn log_event(&self, e: Event) {
        let id = self.raft.id();
        match e {
            Event::BecameLeader { term } => {
                self.metrics.raft_leader_terms_total.inc();
                tracing::info!(node = id, term, "became leader");
            }
            Event::BecameCandidate { term } => {
                self.metrics.raft_elections_total.inc();
                tracing::info!(node = id, term, "started an election");
            }
            Event::BecamePreCandidate { term } => tracing::debug!(node = id, term, "started a pre-vote"),
            Event::BecameFollower { term, leader } => tracing::info!(node = id, term, ?leader, "follower"),
            Event::LostQuorum { term } => {
                tracing::warn!(node = id, term, "stepped down: no majority heard within an election timeout")
            }
            Event::Committed { index } => tracing::trace!(node = id, index, "committed"),
            Event::Truncated { from_index } => tracing::info!(node = id, from_index, "dropped a conflicting suffix"),
            Event::SnapshotTaken { index } => {
                self.metrics.raft_snapshots_total.inc();
                tracing::info!(node = id, index, "took a snapshot")
            }
            Event::SnapshotInstalled { index } => {
                self.metrics.raft_snapshots_installed_total.inc();
                tracing::info!(node = id, index, "installed the leader's snapshot")
            }
            Event::ConfigChanged { membership } => {
                tracing::info!(node = id, voters = ?membership.voter_ids(), joint = membership.is_joint(), "configuration changed")
            }
            Event::RemovedSelf { term } => {
                tracing::warn!(node = id, term, "removed from the configuration: stepped down")
            }
            Event::FollowerRestarted { id: follower, new_incarnation } => {
                self.metrics.raft_follower_restarts_total.inc();
                if new_incarnation {
                    tracing::warn!(
                        node = id,
                        follower,
                        "follower answered with a new incarnation (its data directory was replaced): probing it afresh"
                    )
                } else {
                    tracing::info!(node = id, follower, "follower restarted: probing it afresh")
                }
            }
            Event::RecoveredLostData { index } => {
                tracing::warn!(node = id, index, "caught up with the leader after losing journal records: voting again")
            }
            Event::LeaseRead { term, index } => {
                self.metrics.raft_lease_reads_total.inc();
                tracing::trace!(node = id, term, index, "read answered on the lease")
            }
        }
    }

    /// Runs until the inbox or the journal thread closes: ticks every `tick`,
    /// handles `inputs`, and tells the core what `durable` reports synced.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>, mut durable: mpsc::Receiver<Seq>, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        // After a stall (a paused process, an overloaded machine) the missed
        // ticks are delivered: that much time did pass, and a leader that was
        // away that long must notice it lost its quorum.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.sync_clock();
                    self.metrics.raft_ticks_total.inc();
                    self.raft.tick();
                    self.ticks += 1;
                    self.sync_links();
                    self.tick_watches();
                    let journal = JournalCounts::of(&self.metrics);
                    let wall_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    self.live.tick(&self.raft, self.isolation.is_on(), journal, std::time::Instant::now(), wall_ms);
                }
                // A poll of the watches left frames for later: take the next
                // share now, between inputs, rather than at the next tick.
                _ = std::future::ready(()), if self.watch_backlog => {}
                built = async {
                    match self.snapshots.as_mut() {
                        Some(b) => b.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some(built) = built else { return };
                    self.snapshot_built(built);
                }
                seq = durable.recv() => {
                    let Some(seq) = seq else { return };
                    self.sync_clock();
                    self.raft.persisted(seq);
                }
                input = inputs.recv() => {
                    let Some(input) = input else { return };
                    self.handle(input);
                    // Take what else is already queued before draining the
                    // Ready: one journal batch and fewer frames for all of it.
                    for _ in 0..INPUT_BATCH {
                        match inputs.try_recv() {
                            Ok(i) => self.handle(i),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.drain_ready();
            self.sync_clock();
            self.settle_admin();
            self.drain_ready();
            self.poll_watches();
        }
    }
}

fn config_view(m: &Membership) -> ConfigView {
    ConfigView {
        voters: m.voters.iter().map(|b| b.id).collect(),
        outgoing: m.outgoing.iter().map(|b| b.id).collect(),
        learners: m.learners.iter().chain(&m.learners_next).map(|b| b.id).collect(),
        joint: m.is_joint(),
    }
}
