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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use raft_core::{ClientToken, Event, KvStore, Message, NodeId, Raft, Seq};

use crate::inbox::{Input, PeerStatus, ReplyRoute, Status};
use crate::journal::Batch;
use crate::metrics::Metrics;

/// Inputs handled before the `Ready` is drained (more per batch, fewer fsyncs).
const INPUT_BATCH: usize = 256;

/// The task that owns a node's Raft core. Built by start-up (`startup`), run
/// by [`NodeTask::run`].
pub struct NodeTask {
    raft: Raft<KvStore>,
    peers: HashMap<NodeId, mpsc::Sender<Message>>,
    disk: mpsc::Sender<Batch>,
    /// Records not yet handed to the journal thread (its queue was full).
    unwritten: Batch,
    /// Where each outstanding client request's reply goes.
    reply_routes: HashMap<ClientToken, ReplyRoute>,
    metrics: Arc<Metrics>,
}

impl NodeTask {
    /// A task for `raft` (recovered from its journal) that sends each peer's
    /// messages to `peers`, journal batches to `disk` and counts in `metrics`.
    pub fn new(
        raft: Raft<KvStore>,
        peers: HashMap<NodeId, mpsc::Sender<Message>>,
        disk: mpsc::Sender<Batch>,
        metrics: Arc<Metrics>,
    ) -> NodeTask {
        NodeTask { raft, peers, disk, unwritten: Batch::default(), reply_routes: HashMap::new(), metrics }
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
                self.reply_routes.insert(token, reply);
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
            Event::ConfigChanged { membership } => {
                tracing::info!(node = id, voters = ?membership.voter_ids(), joint = membership.is_joint(), "configuration changed")
            }
            Event::RemovedSelf { term } => {
                tracing::warn!(node = id, term, "removed from the configuration: stepped down")
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
