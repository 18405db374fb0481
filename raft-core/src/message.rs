//! Peer-to-peer messages and their wire encoding.
//!
//! Every message carries the sender's term. The bodies follow the Raft paper's
//! RPCs with the extensions described in docs/ARCHITECTURE.md (PreVote, a confirmation
//! round id on heartbeats for ReadIndex, a conflict hint for fast back-off).
//! All fields are integers or bytes; the encoding is postcard behind a magic
//! number and a format version, and decoding is size-limited and never panics.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::entry::Entry;
use crate::types::{Index, NodeId, Term};

/// A message between two nodes of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term (for a PreVote request: the term it would campaign in).
    pub term: Term,
    /// The incarnation of the sender's storage (reserved for storage
    /// identity; 0 until a host binds incarnations).
    pub from_inc: u64,
    /// The incarnation of the receiver's storage the sender believes in
    /// (reserved, as `from_inc`).
    pub to_inc: u64,
    /// What the message says.
    pub body: Body,
}

impl Message {
    /// A message with no incarnations named.
    ///
    /// ```
    /// use raft_core::message::{Body, Message};
    /// let m = Message::new(1, 2, 3, Body::TimeoutNow);
    /// assert_eq!((m.from, m.to, m.term, m.from_inc), (1, 2, 3, 0));
    /// ```
    pub fn new(from: NodeId, to: NodeId, term: Term, body: Body) -> Self {
        Message { from, to, term, from_inc: 0, to_inc: 0, body }
    }
}

/// The kinds of peer message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// "Could I win an election in `term`?" Changes nobody's term or vote.
    PreVote {
        /// Index of the sender's last log entry.
        last_index: Index,
        /// Term of that entry.
        last_term: Term,
    },
    /// Answer to `PreVote`; `term` is the asked term when granted, else the responder's.
    PreVoteResp {
        /// Whether the responder would vote.
        granted: bool,
    },
    /// RequestVote (Raft Figure 2).
    Vote {
        /// Index of the candidate's last log entry.
        last_index: Index,
        /// Term of that entry.
        last_term: Term,
        /// Set only by a leadership transfer: bypasses leader stickiness.
        transfer: bool,
    },
    /// Answer to `Vote`. Sent only after the HardState recording the vote is durable.
    VoteResp {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries; with no entries it is a heartbeat.
    Append {
        /// Index of the entry just before `entries`.
        prev_index: Index,
        /// Term of that entry.
        prev_term: Term,
        /// Entries to store, in index order, starting at `prev_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
        /// The leader's confirmation round (ReadIndex); acknowledged in the response.
        round: u64,
        /// The receiver's epoch as the leader last heard it (0: not yet): a
        /// follower that lost data trusts `commit` only from a message sent
        /// after the leader heard from its current life.
        to_epoch: u64,
    },
    /// Answer to `Append`. A success is sent only after the entries it covers are durable.
    AppendResp {
        /// On success: the last index this message proved to match. On reject:
        /// the `prev_index` that was rejected.
        index: Index,
        /// Whether the consistency check passed.
        success: bool,
        /// On reject: the largest index the follower holds whose term is at most
        /// the leader's `prev_term`, so the leader can skip whole terms.
        hint_index: Index,
        /// The term at `hint_index`.
        hint_term: Term,
        /// Echo of the request's round.
        round: u64,
        /// The responder's epoch: changes at every start, so a leader can tell
        /// a restarted follower (whose unsynced tail may be gone) from an old
        /// duplicate (reserved; 0 until hosts number their starts).
        epoch: u64,
        /// The responder lost durable records at its last recovery and has
        /// not yet matched a leader up to that leader's commit: the leader
        /// uses the answer to replicate but does not count it toward commit
        /// or a read round.
        recovering: bool,
    },
    /// One chunk of a snapshot transfer (docs/ARCHITECTURE.md §5), keyed by the message's
    /// term, `index` and `snap_term`.
    InstallSnapshot {
        /// Snapshot's last included index.
        index: Index,
        /// Snapshot's last included term.
        snap_term: Term,
        /// Byte offset of this chunk.
        offset: u64,
        /// Chunk bytes.
        data: Vec<u8>,
        /// Whether this is the final chunk.
        done: bool,
    },
    /// Answer to `InstallSnapshot`.
    InstallSnapshotResp {
        /// Snapshot's last included index.
        index: Index,
        /// Snapshot's last included term.
        snap_term: Term,
        /// The offset the follower expects next; `u64::MAX` if it already holds
        /// everything the snapshot covers.
        offset: u64,
        /// The snapshot is installed and durable.
        done: bool,
    },
    /// Leadership transfer: the leader tells the target to campaign at once
    /// (skipping PreVote, and with the transfer flag that passes the voters'
    /// stickiness). Sent only once the target's log matches the leader's.
    TimeoutNow,
    /// A follower asks the leader for a read index for the reads it batched
    /// under `id` ([`crate::follower_read`]).
    ReadIndex {
        /// The follower's request id (unique per follower life).
        id: u64,
    },
    /// The leader's answer to `ReadIndex`: its commit index as of the
    /// request's arrival, confirmed by a round started after it; `None`:
    /// refused (not the leader, or stepped down before confirming).
    ReadIndexResp {
        /// The request's id.
        id: u64,
        /// The index the follower must apply before answering.
        index: Option<Index>,
    },
}

impl Body {
    /// A short name for logs, metrics and the web demo.
    pub fn name(&self) -> &'static str {
        match self {
            Body::PreVote { .. } => "PreVote",
            Body::PreVoteResp { .. } => "PreVoteResp",
            Body::Vote { .. } => "Vote",
            Body::VoteResp { .. } => "VoteResp",
            Body::Append { entries, .. } if entries.is_empty() => "Heartbeat",
            Body::Append { .. } => "Append",
            Body::AppendResp { .. } => "AppendResp",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::InstallSnapshotResp { .. } => "InstallSnapshotResp",
            Body::TimeoutNow => "TimeoutNow",
            Body::ReadIndex { .. } => "ReadIndex",
            Body::ReadIndexResp { .. } => "ReadIndexResp",
        }
    }
}

/// Magic number at the start of every encoded peer message ("RKVM").
pub const MESSAGE_MAGIC: [u8; 4] = *b"RKVM";
/// Version of the peer message format.
pub const MESSAGE_VERSION: u8 = 2;

impl Message {
    /// Encodes the message as magic, version, postcard.
    ///
    /// ```
    /// use raft_core::message::{Body, Message};
    /// let m = Message::new(1, 2, 3, Body::VoteResp { granted: true });
    /// let bytes = m.encode();
    /// assert_eq!(Message::decode(&bytes, 1024).unwrap(), m);
    /// assert!(Message::decode(&bytes[..bytes.len() - 1], 1024).is_err());
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_with_header(&MESSAGE_MAGIC, MESSAGE_VERSION, self)
    }

    /// Decodes a message, refusing inputs longer than `max_len` bytes, a wrong
    /// magic or version, malformed postcard and trailing bytes.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Message, DecodeError> {
        codec::decode_with_header(&MESSAGE_MAGIC, MESSAGE_VERSION, bytes, max_len)
    }

    /// Approximate size for byte accounting without encoding.
    pub fn size(&self) -> usize {
        32 + match &self.body {
            Body::Append { entries, .. } => entries.iter().map(Entry::size).sum(),
            Body::InstallSnapshot { data, .. } => data.len(),
            _ => 0,
        }
    }
}
