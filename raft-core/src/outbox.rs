//! Everything an input produces for the host except journal records (those
//! belong to [`crate::storage`]): messages, client replies, applied entries,
//! events, a snapshot to store — and the messages held back until the records
//! they depend on are durable.
//!
//! A vote and an AppendEntries acknowledgement state facts about this node's
//! disk ("I voted for you in term t", "I hold your entries up to i"). They are
//! *held* here, tagged with the sequence number that must be durable first, the
//! term they were written in and the truncation count at the time, and
//! released by `Outbox::release` after `persisted` — or dropped if the term
//! moved on or a truncation since may have removed what an acknowledgement
//! names. Dropping is always safe: each held message answers a request the
//! sender repeats.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::client::{ClientError, ClientReply, ClientToken};
use crate::message::{Body, Message};
use crate::ready::{Applied, Event, Ready};
use crate::snapshot::{SnapshotJob, SnapshotOut};
use crate::types::{Seq, Term};

/// A message waiting for its records to become durable.
#[derive(Clone, Debug)]
struct Held {
    /// Release once records up to here are durable.
    seq: Seq,
    /// Drop if the node's term changed since.
    term: Term,
    /// Drop if any truncation happened since (acknowledgements only).
    truncations: u64,
    msg: Message,
}

/// The outputs of the current input, gathered for the next `Ready`.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ready: Ready,
    held: VecDeque<Held>,
    max_held: usize,
    /// How many applied entries and replies the last batch that had any
    /// held: the next batch's first push reserves that much at once.
    sizes: Sizes,
}

/// The lengths of the last non-empty `applied` and `replies` handed over.
/// A leader's batch of applied writes and their replies is about as long as
/// the one before; growing each fresh vector from nothing (4, 8, 16, ...)
/// cost a closed loop of 64 clients one reallocation per six writes
/// (`examples/closed_loop`, BENCHMARKS.md). The hint is at most one batch
/// long, so an idle node holds nothing extra: the vectors are handed over.
#[derive(Clone, Copy, Debug, Default)]
struct Sizes {
    applied: usize,
    replies: usize,
}

/// Pushes `item`, reserving `hint` places first if `v` has none yet.
#[inline]
fn push_sized<T>(v: &mut Vec<T>, hint: usize, item: T) {
    if v.capacity() == 0 {
        v.reserve(hint);
    }
    v.push(item);
}

impl Outbox {
    /// An empty outbox holding at most `max_held` messages back.
    pub fn new(max_held: usize) -> Self {
        Outbox { ready: Ready::default(), held: VecDeque::new(), max_held, sizes: Sizes::default() }
    }

    /// Sends a message now.
    pub fn send(&mut self, msg: Message) {
        self.ready.messages.push(msg);
    }

    /// Sends `msg` once records up to `seq` are durable (at once if they are).
    /// `truncations` is the storage's count now; the message is dropped if the
    /// term or (for an acknowledgement) the count has changed by then.
    pub fn send_after(&mut self, seq: Seq, durable_seq: Seq, truncations: u64, msg: Message) {
        if seq <= durable_seq {
            return self.send(msg);
        }
        if self.held.len() >= self.max_held {
            self.held.pop_front();
        }
        self.held.push_back(Held { seq, term: msg.term, truncations, msg });
    }

    /// Releases what `durable_seq` now covers: messages of the current term,
    /// and acknowledgements only if nothing was truncated since they were made.
    pub fn release(&mut self, durable_seq: Seq, term: Term, truncations: u64) {
        while self.held.front().is_some_and(|h| h.seq <= durable_seq) {
            let Some(h) = self.held.pop_front() else { break };
            let stale_ack = matches!(h.msg.body, Body::AppendResp { .. }) && h.truncations != truncations;
            if h.term == term && !stale_ack {
                self.ready.messages.push(h.msg);
            }
        }
    }

    /// Messages held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Answers a client.
    pub fn reply(&mut self, token: ClientToken, r: Result<ClientReply, ClientError>) {
        let reply = r.unwrap_or_else(ClientReply::Rejected);
        push_sized(&mut self.ready.replies, self.sizes.replies, (token, reply));
    }

    /// Notes an event.
    pub fn event(&mut self, e: Event) {
        self.ready.events.push(e);
    }

    /// Notes an applied entry.
    pub fn applied(&mut self, a: Applied) {
        push_sized(&mut self.ready.applied, self.sizes.applied, a);
    }

    /// Hands the host a snapshot to store before this batch's records.
    pub fn snapshot(&mut self, s: SnapshotOut) {
        self.ready.snapshot = Some(s);
    }

    /// Hands the host a snapshot to build off its event loop.
    pub fn snapshot_job(&mut self, job: alloc::sync::Arc<SnapshotJob>) {
        self.ready.snapshot_job = Some(job);
    }

    /// Whether anything is waiting for the host.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Takes what is waiting, with the journal records `Storage` issued.
    /// Built field by field: this runs after every input, most of the time
    /// with nothing in it, so it must not move a whole `Ready` around twice.
    pub fn take(&mut self, records: Vec<(Seq, crate::journal::Record)>, must_sync: bool) -> Ready {
        let r = &mut self.ready;
        if !r.applied.is_empty() {
            self.sizes.applied = r.applied.len();
        }
        if !r.replies.is_empty() {
            self.sizes.replies = r.replies.len();
        }
        Ready {
            records,
            messages: core::mem::take(&mut r.messages),
            applied: core::mem::take(&mut r.applied),
            replies: core::mem::take(&mut r.replies),
            snapshot: r.snapshot.take(),
            snapshot_job: r.snapshot_job.take(),
            events: core::mem::take(&mut r.events),
            must_sync,
        }
    }
}
