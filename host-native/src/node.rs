//! One node: the task that owns the Raft core, and its start-up.
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use raft_core::{ClientReply, ClientRequest, ClientToken, Event, KvStore, Message, NodeId, Raft, Seq};

use crate::config::Config;
use crate::journal::{check_identity, spawn_disk_thread, Batch, Journal, StartError};
use crate::metrics::Metrics;
use crate::peer::{run_sender, PeerAuth};
use crate::server;

/// Capacity of the node's input channel.
const INPUT_QUEUE: usize = 4096;
/// Inputs handled before the `Ready` is drained (more per batch, fewer fsyncs).
const INPUT_BATCH: usize = 256;

/// Where a client reply goes: the connection's channel, by token.
pub type ReplyRoute = mpsc::Sender<(ClientToken, ClientReply)>;

/// Something for the node task to do.
#[derive(Debug)]
pub enum Input {
    /// A message from an authenticated peer.
    Peer(Message),
    /// A client request; the reply goes to `reply` tagged with `token`.
    Client {
        /// Unique among the node's outstanding requests.
        token: ClientToken,
        /// The request.
        request: ClientRequest,
        /// The connection's reply channel.
        reply: ReplyRoute,
    },
    /// A request for the node's status.
    Status(oneshot::Sender<Status>),
}

/// One peer's replication progress, as the leader sees it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Peer id.
    pub id: NodeId,
    /// Highest index known replicated on it.
    pub match_index: u64,
    /// Next index the leader will send it.
    pub next_index: u64,
}

/// What `/status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node's id.
    pub id: NodeId,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader of the term, if known.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Highest index durable in this node's journal.
    pub durable_index: u64,
    /// Index covered by the latest snapshot (0: none yet).
    pub snapshot_index: u64,
    /// Leader only: each peer's match index.
    pub peers: Vec<PeerStatus>,
    /// Open client sessions.
    pub sessions: usize,
    /// Keys in the store.
    pub keys: usize,
    /// Leader only: reads waiting for a confirmation round.
    pub pending_reads: usize,
    /// Leader only: writes waiting to apply.
    pub pending_writes: usize,
}

struct NodeTask {
    raft: Raft<KvStore>,
    peers: HashMap<NodeId, mpsc::Sender<Message>>,
    disk: mpsc::Sender<Batch>,
    /// Records not yet handed to the journal thread (its queue was full).
    unwritten: Batch,
    routes: HashMap<ClientToken, ReplyRoute>,
    metrics: Arc<Metrics>,
}

impl NodeTask {
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
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Peer(m) => {
                if let Err(e) = self.raft.step(m) {
                    tracing::debug!(error = ?e, "core refused a peer message");
                }
            }
            Input::Client { token, request, reply } => {
                // (Counted by the connection that received it.)
                self.routes.insert(token, reply);
                self.raft.submit(token, request);
            }
            Input::Status(tx) => {
                let _ = tx.send(self.status());
            }
        }
    }

    /// Carries out everything the core asked for (raft-core's host contract).
    fn drain_ready(&mut self) {
        while self.raft.has_ready() {
            let ready = self.raft.take_ready();
            if let Some(out) = ready.snapshot {
                // Stored before the records that name it; only the newest
                // matters if several pile up while a sync runs.
                self.unwritten.snapshot = Some(out.snapshot);
            }
            self.unwritten.records.extend(ready.records);
            for m in ready.messages {
                match self.peers.get(&m.to) {
                    Some(tx) => match tx.try_send(m) {
                        Ok(()) => self.metrics.peer_messages_sent_total.inc(),
                        // Full or gone: Raft's retries cover a lost message.
                        Err(_) => self.metrics.peer_messages_dropped_total.inc(),
                    },
                    None => self.metrics.peer_messages_dropped_total.inc(),
                }
            }
            for (token, reply) in ready.replies {
                match self.routes.remove(&token) {
                    Some(tx) => {
                        if tx.try_send((token, reply)).is_err() {
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
        self.flush_to_disk();
    }

    /// Hands the records of this turn to the journal thread, which merges
    /// whatever queues up during a sync into its next write (group commit).
    fn flush_to_disk(&mut self) {
        if self.unwritten.records.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unwritten);
        match self.disk.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => self.unwritten = batch,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the journal thread is gone; stopping");
                std::process::exit(1);
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
        }
    }

    async fn run(mut self, mut inputs: mpsc::Receiver<Input>, mut durable: mpsc::Receiver<Seq>, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        // After a stall (a paused process, an overloaded machine) the missed
        // ticks are delivered: that much time did pass, and a leader that was
        // away that long must notice it lost its quorum.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.metrics.raft_ticks_total.inc();
                    self.raft.tick();
                }
                seq = durable.recv() => {
                    let Some(seq) = seq else { return };
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
        }
    }
}

/// The handle other tasks use to reach a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    /// The node's id.
    pub id: NodeId,
    /// The cluster configuration.
    pub config: Arc<Config>,
    /// Where inputs go.
    pub inputs: mpsc::Sender<Input>,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
    /// For the peer handshake.
    pub auth: Arc<PeerAuth>,
}

impl NodeHandle {
    /// Asks the node task for its status.
    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.inputs.send(Input::Status(tx)).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx).await.ok()?.ok()
    }
}

/// Starts node `id` of `config` and serves until the process ends. Refuses to
/// start (with a message naming the problem) on a data directory of another
/// node, a corrupt journal, or an address in use.
pub async fn run(config: Config, id: NodeId, data_dir: Option<PathBuf>) -> Result<(), StartError> {
    let me = config
        .node(id)
        .cloned()
        .ok_or_else(|| StartError(format!("node {id} is not in the configuration (ids: {:?})", config.ids())))?;
    let dir = data_dir.unwrap_or_else(|| config.node_dir(id));
    check_identity(&dir, &config.cluster_id, id)?;
    let metrics = Arc::new(Metrics::default());
    let (journal, state, snapshot) = Journal::open(&dir, config.limits.segment_bytes, metrics.clone())?;
    tracing::info!(
        node = id,
        dir = %dir.display(),
        term = state.hard.term,
        last_index = state.log.last_index(),
        last_seq = state.last_seq,
        "journal replayed"
    );
    let listener = tokio::net::TcpListener::bind(me.listen).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse { " (is another node running there?)" } else { "" };
        StartError(format!("cannot listen on {}: {e}{hint}", me.listen))
    })?;
    if config.uses_dev_secret() {
        tracing::warn!("using the built-in development secret: fine on one machine, change it for anything else");
    }

    let mut raft_cfg = raft_core::Config::new(id, config.ids());
    let mut seed = [0u8; 8];
    // A fresh seed per start keeps restarted nodes from timing out in lockstep.
    let _ = getrandom::fill(&mut seed);
    raft_cfg.seed = u64::from_le_bytes(seed) ^ id;
    raft_cfg.sessions.timeout_ticks = config.session_timeout_ticks();
    raft_cfg.snapshot_entries = config.limits.snapshot_entries;
    // Keys come from clients: a random seed keeps them from aiming at one bucket.
    let kv = KvStore::with_hash_seed(u64::from_le_bytes(seed).rotate_left(17));
    let raft = Raft::recover(raft_cfg, state, snapshot.as_deref(), kv).map_err(|e| StartError(e.to_string()))?;

    let (durable_tx, durable_rx) = mpsc::channel(64);
    let disk = spawn_disk_thread(journal, durable_tx)
        .map_err(|e| StartError(format!("cannot start the journal thread: {e}")))?;

    let config = Arc::new(config);
    let auth = Arc::new(PeerAuth::new(&config, id));
    let mut peers = HashMap::new();
    for peer in config.nodes.iter().filter(|n| n.id != id) {
        let (tx, rx) = mpsc::channel(config.limits.peer_queue);
        peers.insert(peer.id, tx);
        tokio::spawn(run_sender(
            peer.id,
            peer.url(),
            auth.clone(),
            rx,
            config.limits.peer_batch_bytes,
            config.limits.max_transport_frame,
            metrics.clone(),
        ));
    }

    let (inputs_tx, inputs_rx) = mpsc::channel(INPUT_QUEUE);
    let handle =
        NodeHandle { id, config: config.clone(), inputs: inputs_tx, metrics: metrics.clone(), auth: auth.clone() };
    let task =
        NodeTask { raft, peers, disk, unwritten: Batch::default(), routes: HashMap::new(), metrics: metrics.clone() };
    let node = tokio::spawn(task.run(inputs_rx, durable_rx, Duration::from_millis(config.tick_ms)));
    tracing::info!(node = id, listen = %me.listen, url = %me.url(), "serving /raft, /client, /status, /metrics");
    let server = tokio::spawn(server::serve(listener, handle));
    tokio::select! {
        r = node => Err(StartError(format!("node task ended: {r:?}"))),
        r = server => Err(StartError(format!("server ended: {r:?}"))),
    }
}
