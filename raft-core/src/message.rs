//! Peer-to-peer messages and their wire encoding.
//!
//! Every message carries the sender's term. The bodies follow the Raft paper's
//! RPCs with the extensions described in docs/ARCHITECTURE.md (PreVote, a confirmation
//! round id on heartbeats for ReadIndex, a conflict hint for fast back-off).
//! All fields are integers or bytes; the encoding is postcard behind a magic
//! number and a format version, and decoding is size-limited and never panics.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, Reader};
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

/// Postcard's variant index of [`Body::Append`] (variants are numbered by
/// position; the golden tests pin it).
const APPEND_TAG: u32 = 4;

/// Decodes what `codec::encode_with_header(magic, version, &(n, msgs))`
/// writes for a `u64` and a slice of messages — a host's frame of numbered
/// message batches — with the messages read by [`Message::decode`]'s
/// decoder. The result and the errors are those of
/// `codec::decode_with_header::<(u64, Vec<Message>)>`.
pub fn decode_numbered(
    magic: &[u8; 4],
    version: u8,
    bytes: &[u8],
    max_len: usize,
) -> Result<(u64, Vec<Message>), DecodeError> {
    let mut r = Reader::new(codec::body_after_header(magic, version, bytes, max_len)?);
    let n = r.u64()?;
    let count = r.usize()?;
    // A message takes at least 6 bytes (five varints and a tag).
    let mut msgs = Vec::with_capacity(count.min(r.rest().len() / 6));
    for _ in 0..count {
        msgs.push(Message::read(&mut r)?);
    }
    r.finish()?;
    Ok((n, msgs))
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
    /// magic or version, malformed postcard and trailing bytes. The entries
    /// of an `Append` are read by hand, by journal replay's decoder; the
    /// result, and the error, are what serde's decoder would give.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Message, DecodeError> {
        let mut r = Reader::new(codec::body_after_header(&MESSAGE_MAGIC, MESSAGE_VERSION, bytes, max_len)?);
        let m = Message::read(&mut r)?;
        r.finish()?;
        Ok(m)
    }

    /// Reads one message as serde's `Serialize` wrote it. An `Append` — the
    /// messages that carry entries, nearly all the bytes between peers — is
    /// read by hand, its entries by [`Entry::decode`] (journal replay's
    /// decoder); every other body by serde. Same bytes, same values, same
    /// errors as serde (the tests compare the two on every kind of message,
    /// cut and damaged).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
        let (from, to, term, from_inc, to_inc) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let body = if r.peek_u32() == Ok(APPEND_TAG) {
            r.u32()?;
            let (prev_index, prev_term) = (r.u64()?, r.u64()?);
            let n = r.usize()?;
            // The count comes from the input: reserve no more than the bytes
            // left could hold (an entry takes at least 4: three varints and a tag).
            let mut entries = Vec::with_capacity(n.min(r.rest().len() / 4));
            for _ in 0..n {
                entries.push(Entry::decode(r)?);
            }
            Body::Append { prev_index, prev_term, entries, commit: r.u64()?, round: r.u64()?, to_epoch: r.u64()? }
        } else {
            r.serde::<Body>()?
        };
        Ok(Message { from, to, term, from_inc, to_inc, body })
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Every body, an `Append` with every kind of payload and a heartbeat.
    fn every_kind_of_message() -> Vec<Message> {
        let entries = crate::entry::every_kind_of_entry();
        let append = |entries: Vec<Entry>| Body::Append {
            prev_index: 0,
            prev_term: 0,
            entries,
            commit: 1 << 20,
            round: 300,
            to_epoch: u64::MAX,
        };
        let bodies = [
            Body::PreVote { last_index: 1, last_term: 2 },
            Body::PreVoteResp { granted: true },
            Body::Vote { last_index: 200, last_term: 3, transfer: true },
            Body::VoteResp { granted: false },
            append(entries),
            append(Vec::new()),
            Body::AppendResp {
                index: 9,
                success: false,
                hint_index: 3,
                hint_term: 2,
                round: 1,
                epoch: 4,
                recovering: true,
            },
            Body::InstallSnapshot { index: 9, snap_term: 2, offset: 1 << 33, data: vec![1, 2, 3], done: true },
            Body::InstallSnapshotResp { index: 9, snap_term: 2, offset: u64::MAX, done: false },
            Body::TimeoutNow,
            Body::ReadIndex { id: 77 },
            Body::ReadIndexResp { id: 77, index: Some(12) },
            Body::ReadIndexResp { id: 78, index: None },
        ];
        bodies
            .into_iter()
            .map(|body| Message { from: 1, to: 300, term: 1 << 50, from_inc: 5, to_inc: 0, body })
            .collect()
    }

    const BATCH: ([u8; 4], u8) = (*b"TEST", 3);

    fn both_ways(bytes: &[u8]) -> (Result<Message, DecodeError>, Result<Message, DecodeError>) {
        (Message::decode(bytes, 1 << 20), codec::decode_with_header(&MESSAGE_MAGIC, MESSAGE_VERSION, bytes, 1 << 20))
    }

    type Batch = Result<(u64, Vec<Message>), DecodeError>;

    fn both_ways_numbered(bytes: &[u8]) -> (Batch, Batch) {
        (
            decode_numbered(&BATCH.0, BATCH.1, bytes, 1 << 20),
            codec::decode_with_header(&BATCH.0, BATCH.1, bytes, 1 << 20),
        )
    }

    /// The hand decoder and serde's agree on `bytes`, cut anywhere, with a
    /// byte more, and with any byte changed in a few ways (which must give
    /// an error or a value, never a panic).
    fn agree_on_damage<T: PartialEq + core::fmt::Debug>(bytes: &[u8], both: impl Fn(&[u8]) -> (T, T)) {
        for cut in 0..bytes.len() {
            let (hand, serde) = both(&bytes[..cut]);
            assert_eq!(hand, serde, "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        let (hand, serde) = both(&longer);
        assert_eq!(hand, serde, "a byte more");
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x02, 0x7f, 0x80, 0xff] {
                let mut bad = bytes.to_vec();
                bad[i] ^= flip;
                let (hand, serde) = both(&bad);
                assert_eq!(hand, serde, "byte {i} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn the_message_decoder_reads_and_refuses_what_serde_does() {
        for m in every_kind_of_message() {
            let bytes = m.encode();
            let (hand, serde) = both_ways(&bytes);
            assert_eq!(hand.as_ref(), Ok(&m));
            assert_eq!(hand, serde);
            assert_eq!(
                Message::decode(&bytes, bytes.len() - 1),
                Err(DecodeError::TooLarge { len: bytes.len(), max: bytes.len() - 1 })
            );
            agree_on_damage(&bytes, both_ways);
        }
    }

    #[test]
    fn numbered_batches_decode_as_serde_does() {
        let all = every_kind_of_message();
        for msgs in [&all[..], &all[4..5], &[]] {
            let bytes = codec::encode_with_header(&BATCH.0, BATCH.1, &(9u64, msgs));
            let (hand, serde) = both_ways_numbered(&bytes);
            assert_eq!(hand, Ok((9, msgs.to_vec())));
            assert_eq!(hand, serde);
            agree_on_damage(&bytes, both_ways_numbered);
        }
        // A count from the input larger than the bytes could hold: refused,
        // without reserving for it.
        let mut huge = codec::encode_with_header(&BATCH.0, BATCH.1, &(9u64, &[] as &[Message]));
        huge.pop();
        huge.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        let (hand, serde) = both_ways_numbered(&huge);
        assert_eq!((&hand, hand.is_err()), (&serde, true));
    }
}
