//! The page's own client: one session, writes numbered by seq with an ack,
//! reads through ReadIndex. It follows no hints by itself: the user picks the
//! node (or "the leader"), and sees every answer, so a `not_leader`, an
//! `unknown_outcome` or a retry that the session answers from its cache are
//! all visible.

use std::collections::{BTreeMap, VecDeque};

use raft_core::{ClientToken, NodeId};
use serde::Serialize;

use crate::action::ClientOp;

/// Tokens of the page's requests have this bit set, so the simulator's own
/// clients (whose tokens hold their index in bits 40..) never claim them and
/// their replies land in `Sim::inbox`.
pub const HAND_TOKEN: ClientToken = 1 << 62;

/// What a request in flight is for.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Purpose {
    /// Opening the session.
    Register,
    /// A write with this seq.
    Write {
        /// Its seq.
        seq: u64,
    },
    /// A read.
    Read,
}

/// A request sent and not yet answered.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    /// Token (for matching the reply).
    #[serde(skip)]
    pub token: ClientToken,
    /// Node it was sent to.
    pub node: NodeId,
    /// What for.
    pub purpose: Purpose,
    /// The operation, in words.
    pub text: String,
    /// When it was sent (µs).
    pub sent: u64,
}

/// A write of the session (kept until it is settled, for retries and the ack).
#[derive(Clone, Debug, Serialize)]
pub struct Write {
    /// Its seq.
    pub seq: u64,
    /// The request.
    pub req: ClientOp,
    /// Settled: a result came back, or a reply proved it never entered a log.
    pub settled: bool,
}

/// An answered request, for display.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// Node that answered.
    pub node: NodeId,
    /// The operation, in words.
    pub text: String,
    /// The answer, in words.
    pub result: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Sent and answered (µs).
    pub sent: u64,
    /// When the answer arrived.
    pub at: u64,
}

/// The client's whole state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HandClient {
    /// The session, once opened.
    pub session: Option<u64>,
    /// Next seq to use.
    pub next_seq: u64,
    /// Writes waiting for the session to open: (node, request).
    pub waiting: Vec<(NodeId, ClientOp)>,
    /// Requests in flight.
    pub pending: Vec<Pending>,
    /// Writes not yet settled, by seq.
    pub writes: BTreeMap<u64, Write>,
    /// Recent answers, newest last.
    pub answers: VecDeque<Answer>,
    #[serde(skip)]
    pub(crate) next_token: u64,
}

impl HandClient {
    /// A client with no session yet.
    pub fn new() -> Self {
        HandClient { next_seq: 1, ..Default::default() }
    }

    /// A fresh token.
    pub fn token(&mut self) -> ClientToken {
        self.next_token += 1;
        HAND_TOKEN | self.next_token
    }

    /// The lowest seq still awaited (the session's ack).
    pub fn ack(&self) -> u64 {
        self.writes.values().find(|w| !w.settled).map_or(self.next_seq, |w| w.seq)
    }

    /// Whether a register request is in flight.
    pub fn registering(&self) -> bool {
        self.pending.iter().any(|p| matches!(p.purpose, Purpose::Register))
    }

    /// Records an answer (bounded list).
    pub fn answered(&mut self, a: Answer) {
        if self.answers.len() >= 40 {
            self.answers.pop_front();
        }
        self.answers.push_back(a);
    }

    /// Forgets settled writes below the ack.
    pub fn tidy(&mut self) {
        let ack = self.ack();
        self.writes.retain(|&s, w| s >= ack || !w.settled);
    }
}
