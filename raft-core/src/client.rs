//! What clients ask of the cluster and what they get back.
//!
//! Writes go through the log and are applied exactly once per (session, seq)
//! (see [`crate::session`]); reads never enter the log and are answered by the
//! leader once a confirmation round proves it still leads (ReadIndex, see
//! [`crate::read`]). Every request carries a host-chosen [`ClientToken`] that
//! comes back with its reply in [`crate::Ready::replies`], so a host can route
//! replies to connections however it likes.
//!
//! There are two moments a reply can come:
//! * **Before queueing** — `NotLeader` or `Busy` (or `BadRequest`): the request
//!   never entered the log; trying elsewhere or later is always safe.
//! * **After apply** — the result, emitted as the entry is applied and before
//!   the next one; or, if the leader steps down first, `UnknownOutcome` (the
//!   write may still commit: retry with the same session and seq to learn its
//!   real result).

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::types::{Bytes, NodeId};

/// A host's handle for routing a reply back to whoever asked.
pub type ClientToken = u64;

/// The hash of a session's secret. The host draws the secret from a source
/// outsiders cannot predict, gives it to the client that registered, and puts
/// only its hash in the log: the `Register` entry carries the hash of the
/// session's secret, every `Write` and `KeepAlive` the hash of the secret the
/// client presented, and the session table compares them at apply, so every
/// replica decides alike and a session id alone (a log index: guessable)
/// lets nobody write on another's session.
pub type SecretHash = [u8; 32];

/// Who opened a session, as the host names its principals (e.g. a hash of
/// the client's token name). Sessions are counted per owner against
/// [`crate::session::SessionLimits::max_per_owner`].
pub type Owner = u64;

/// A client request.
///
/// **Encoding.** postcard numbers the variants by position — `Register` 0,
/// `Write` 1, `KeepAlive` 2, `Read` 3 — and hosts may put these bytes on
/// their wire: new variants go at the end and none is ever reordered
/// (`tests/golden.rs` pins the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Open a session. The session id is the index of the log entry.
    Register {
        /// Whose session it is (counted against the owner's quota).
        owner: Owner,
        /// Hash of the session's secret.
        secret_hash: SecretHash,
    },
    /// A write on a session. `seq` numbers the session's writes from 1; `ack`
    /// is the lowest seq the client still awaits a reply for (`ack <= seq`).
    Write {
        /// The session.
        session: u64,
        /// Hash of the secret the client presented for it.
        secret_hash: SecretHash,
        /// This write's number within the session.
        seq: u64,
        /// Lowest seq whose reply the client still awaits.
        ack: u64,
        /// The state machine command. A [`Bytes`] so that the leader puts it
        /// into its log entry as it is (a host that decodes a request straight
        /// into one hands it over without a copy); on the wire it is the same
        /// byte string a `Vec<u8>` was.
        command: Bytes,
    },
    /// Keeps an idle session alive (a replicated command; it costs a log write).
    KeepAlive {
        /// The session.
        session: u64,
        /// Hash of the secret the client presented for it.
        secret_hash: SecretHash,
        /// Lowest seq whose reply the client still awaits.
        ack: u64,
    },
    /// A linearizable read.
    Read {
        /// The state machine query.
        query: Vec<u8>,
    },
}

/// A reply.
///
/// **Encoding.** postcard numbers the variants by position — `Registered` 0,
/// `Written` 1, `KeptAlive` 2, `Read` 3, `Rejected` 4 — and hosts may put
/// these bytes on their wire: new variants go at the end and none is ever
/// reordered (`tests/golden.rs` pins the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// A session was opened.
    Registered {
        /// Its id.
        session: u64,
    },
    /// A write was applied (now or earlier: a retry gets the cached result).
    Written {
        /// The state machine's output.
        output: Bytes,
    },
    /// The keep-alive was applied.
    KeptAlive,
    /// A read's result.
    Read {
        /// The state machine's output.
        output: Bytes,
    },
    /// The request failed.
    Rejected(ClientError),
}

/// Why a request failed.
///
/// **Encoding.** postcard numbers the variants by position — `NotLeader` 0,
/// `Busy` 1, `SessionExpired` 2, `StaleSeq` 3, `BadRequest` 4,
/// `UnknownOutcome` 5 — and hosts may put these bytes on their wire: new
/// variants go at the end and none is ever reordered (`tests/golden.rs` pins
/// the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// This node is not the leader; the request was not accepted.
    NotLeader {
        /// The leader of this node's term, if known.
        leader_hint: Option<NodeId>,
    },
    /// A limit is full (queue, uncommitted log, sessions, outstanding writes);
    /// the request had no effect. Try again later.
    Busy,
    /// The session does not exist (expired or never registered). Whether an
    /// earlier attempt of this write applied is unknown.
    SessionExpired,
    /// `seq` is below the session's ack: the client already gave up on it.
    StaleSeq,
    /// The request is malformed.
    BadRequest(String),
    /// The leader stepped down before the write's outcome was known. It may
    /// have applied or may still apply: retry with the same session and seq.
    UnknownOutcome {
        /// The new leader, if known.
        leader_hint: Option<NodeId>,
    },
}

impl ClientError {
    /// The protocol's name for the error (the README's client protocol).
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::NotLeader { .. } => "not_leader",
            ClientError::Busy => "busy",
            ClientError::SessionExpired => "session_expired",
            ClientError::StaleSeq => "stale_seq",
            ClientError::BadRequest(_) => "bad_request",
            ClientError::UnknownOutcome { .. } => "unknown_outcome",
        }
    }
}
