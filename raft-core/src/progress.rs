//! What a leader knows about each follower's log, and the flow control of its
//! replication pipeline.
//!
//! A follower is in one of three states (as in etcd's `tracker`):
//! * **Probe**: the leader does not know where the logs diverge. It sends one
//!   AppendEntries at a time and waits for the answer (or the next heartbeat).
//! * **Replicate**: the logs are known to match up to `match_index`. The leader
//!   streams entries optimistically, advancing `next_index` before acks arrive,
//!   bounded by a window of in-flight messages and bytes.
//! * **Snapshot**: the follower needs a snapshot (the entries it lacks were
//!   compacted); replication pauses until the transfer ends.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use crate::message::Body;
use crate::snapshot::Snapshot;
use crate::types::{Index, NodeId};

/// Replication state of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Finding the point where the logs match; one message at a time.
    Probe,
    /// Streaming entries with a bounded window.
    Replicate,
    /// Waiting for a snapshot transfer.
    Snapshot,
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The follower's id.
    pub id: NodeId,
    /// Highest index known to be replicated (durably) on the follower.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Flow-control state.
    pub state: ProgressState,
    /// In Probe: a probe is outstanding, wait for its answer or the next heartbeat.
    pub probe_sent: bool,
    /// Heard from since the last CheckQuorum interval.
    pub recent_active: bool,
    /// Highest confirmation round (ReadIndex) the follower acknowledged this term.
    pub acked_round: u64,
    /// In-flight appends: (last index carried, bytes). Bounded by the config.
    pub(crate) inflight: VecDeque<(Index, usize)>,
    pub(crate) inflight_bytes: usize,
    /// The oldest in-flight message (by last index) at the previous heartbeat:
    /// if it is still unacknowledged at the next one, the pipeline stalled (a
    /// message was lost) and the leader falls back to probing.
    pub(crate) oldest_at_heartbeat: Option<Index>,
    /// In Snapshot state: the transfer in progress.
    pub(crate) transfer: Option<Outgoing>,
    /// The follower's epoch (start number) last heard; 0 before any.
    pub epoch: u64,
    /// The incarnation of the follower's storage last heard (0 before any,
    /// or unbound). A promotion binds the learner to it.
    pub inc: u64,
    /// The follower said it lost durable records and has not yet caught up
    /// with a leader's commit: its match is used to replicate, never counted.
    pub recovering: bool,
    /// The follower answers from an incarnation the configuration does not
    /// bind it to (its directory was wiped and it was not readmitted): what
    /// it holds is replicated to it, never counted — its old self may have
    /// promised a newer term its new self never heard of.
    pub unbound: bool,
}

impl Progress {
    /// A fresh progress for a newly elected leader whose last index is `last`.
    pub fn new(id: NodeId, last: Index) -> Self {
        Progress {
            id,
            match_index: 0,
            next_index: last + 1,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            acked_round: 0,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            oldest_at_heartbeat: None,
            transfer: None,
            epoch: 0,
            inc: 0,
            recovering: false,
            unbound: false,
        }
    }

    /// The follower restarted (a new epoch): what it held may be gone, so
    /// forget its match and probe from the end of our log, as a new leader
    /// would.
    pub(crate) fn restarted(&mut self, inc: u64, epoch: u64, last: Index) {
        let round = self.acked_round;
        *self = Progress::new(self.id, last);
        self.inc = inc;
        self.epoch = epoch;
        self.recent_active = true;
        self.acked_round = round;
    }

    /// Number of append messages in flight.
    pub fn inflight_count(&self) -> usize {
        self.inflight.len()
    }

    /// Bytes of entries in flight.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight_bytes
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.transfer = None;
        self.probe_sent = false;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.transfer = None;
        self.probe_sent = false;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    /// A heartbeat round: a stalled pipeline (its oldest message unanswered
    /// since the previous heartbeat, so something was lost) falls back to
    /// probing; a probe or a snapshot chunk may be sent again.
    pub(crate) fn on_heartbeat(&mut self) {
        let oldest = self.inflight.front().map(|f| f.0);
        match self.state {
            ProgressState::Replicate => {
                if oldest.is_some() && oldest == self.oldest_at_heartbeat {
                    self.become_probe();
                }
            }
            ProgressState::Probe => self.probe_sent = false,
            ProgressState::Snapshot => {
                // Resend the chunk the follower is waiting for (it may be lost).
                if let Some(t) = self.transfer.as_mut() {
                    t.in_flight = false;
                }
            }
        }
        self.oldest_at_heartbeat = self.inflight.front().map(|f| f.0);
    }

    /// Starts sending `snapshot` (the entries this follower needs were compacted).
    pub(crate) fn become_snapshot(&mut self, snapshot: Arc<Snapshot>) {
        self.state = ProgressState::Snapshot;
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.transfer = Some(Outgoing { snapshot, offset: 0, in_flight: false });
    }

    /// Records an acknowledgement up to `index`. Returns whether it taught us
    /// anything new.
    pub(crate) fn ack(&mut self, index: Index) -> bool {
        self.probe_sent = false;
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > index {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        if index > self.match_index {
            self.match_index = index;
            if self.next_index <= index {
                self.next_index = index + 1;
            }
            true
        } else {
            false
        }
    }

    /// Whether the window has room for another message.
    pub(crate) fn window_open(&self, max_msgs: usize, max_bytes: usize) -> bool {
        self.inflight.len() < max_msgs && self.inflight_bytes < max_bytes
    }

    pub(crate) fn sent(&mut self, last: Index, bytes: usize) {
        match self.state {
            ProgressState::Replicate => {
                if last >= self.next_index {
                    self.inflight.push_back((last, bytes));
                    self.inflight_bytes += bytes;
                    self.next_index = last + 1;
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }
}

/// A leader's snapshot transfer to one follower (docs/ARCHITECTURE.md §5): one chunk in
/// flight at a time, at the offset the follower last asked for.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// The snapshot being sent (shared, kept until the transfer ends).
    pub snapshot: Arc<Snapshot>,
    /// The offset the follower expects next.
    pub offset: u64,
    /// A chunk is out and unanswered (a heartbeat clears it to resend).
    pub in_flight: bool,
}

impl Outgoing {
    /// The chunk at the offset the follower wants, unless one is in flight.
    pub fn next_chunk(&mut self, chunk_bytes: usize) -> Option<Body> {
        if self.in_flight {
            return None;
        }
        let data = &self.snapshot.data;
        let len = data.len() as u64;
        let start = self.offset.min(len);
        let end = (start + chunk_bytes as u64).min(len);
        self.in_flight = true;
        Some(Body::InstallSnapshot {
            index: self.snapshot.meta.index,
            snap_term: self.snapshot.meta.term,
            offset: start,
            data: data[start as usize..end as usize].to_vec(),
            done: end == len,
        })
    }
}
