//! Snapshots: what they hold, how they are encoded, when they are taken, and
//! InstallSnapshot — the transfer that brings a follower that fell behind the
//! leader's compacted log back in one go (docs/ARCHITECTURE.md §5).
//!
//! A snapshot holds the state machine's bytes, the whole session table (with
//! reply caches and the cluster clock) and the voter set, as of an applied
//! index. It is encoded as `b"RKVS"`, a version byte, a CRC-32C of the body, and
//! the postcard body; decoding verifies all three.
//!
//! **Taking one.** When the applied index is `snapshot_entries` past the last
//! snapshot, or the in-memory log holds `snapshot_log_bytes`, the engine
//! encodes a snapshot, hands its bytes to the host in [`crate::Ready::snapshot`]
//! and issues a `Snapshot` journal record. The host writes the bytes durably
//! *before* persisting that record. Once the record is durable the in-memory
//! log drops the entries it covers, from the left.
//!
//! **Sending one.** A follower whose next entry was compacted away is sent the
//! leader's latest snapshot in chunks of `snapshot_chunk_bytes`. The transfer is
//! keyed by (term, snapshot index, snapshot term); the follower accepts only the
//! chunk at the offset it expects and answers with the offset it wants next, so
//! lost, duplicated, reordered and stale chunks are harmless. The leader keeps
//! the snapshot it is sending (shared, immutable) until the transfer ends.
//!
//! **Installing one.** On the last chunk the follower verifies the checksum,
//! restores the state machine and sessions, keeps its log entries after the
//! snapshot if it already holds the snapshot's (index, term) and resets its log
//! otherwise, and acknowledges only once the `Snapshot` record is durable. A
//! snapshot at or below the follower's commit index changes nothing.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::journal::SnapshotMeta;
use crate::membership::Membership;
use crate::session::Sessions;
use crate::state_machine::FrozenState;
use crate::types::{Index, Term};
use crate::varint;

/// Magic number of an encoded snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RKVS";
/// Snapshot format version.
pub const SNAPSHOT_VERSION: u8 = 2;

/// The contents of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// Last log index covered.
    pub index: Index,
    /// Its term.
    pub term: Term,
    /// The configuration as of `index`.
    pub membership: Membership,
    /// The session table, reply caches and cluster clock.
    pub sessions: Sessions,
    /// The state machine's own bytes.
    pub state: Vec<u8>,
}

/// A snapshot could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Too short, bad magic or unknown version.
    BadHeader,
    /// The checksum does not match: the bytes are damaged.
    Checksum,
    /// The body does not decode.
    Malformed,
    /// Larger than the configured limit.
    TooLarge,
    /// The host has no data for the snapshot the journal names.
    Missing,
    /// The snapshot is not the one the journal names.
    Mismatch,
    /// The state machine refused the bytes.
    Restore,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SnapshotError::BadHeader => "bad snapshot header",
            SnapshotError::Checksum => "snapshot checksum mismatch",
            SnapshotError::Malformed => "snapshot body does not decode",
            SnapshotError::TooLarge => "snapshot larger than the limit",
            SnapshotError::Missing => "the journal names a snapshot whose data is missing",
            SnapshotError::Mismatch => "snapshot data does not match the journal's record",
            SnapshotError::Restore => "the state machine refused the snapshot",
        };
        f.write_str(s)
    }
}

use crate::codec::crc32c;

impl SnapshotBody {
    /// Encodes with magic, version and checksum.
    ///
    /// ```
    /// use raft_core::snapshot::SnapshotBody;
    /// use raft_core::session::Sessions;
    /// use raft_core::membership::Membership;
    /// let membership = Membership::bootstrap(&[1, 2, 3]);
    /// let b = SnapshotBody { index: 7, term: 2, membership, sessions: Sessions::default(), state: vec![1, 2] };
    /// let mut bytes = b.encode();
    /// assert_eq!(SnapshotBody::decode(&bytes, 1 << 20).unwrap(), b);
    /// let last = bytes.len() - 1;
    /// bytes[last] ^= 1;
    /// assert!(SnapshotBody::decode(&bytes, 1 << 20).is_err());
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(BodyRef {
            index: self.index,
            term: self.term,
            membership: &self.membership,
            sessions: &self.sessions,
            state: &self.state,
        })
    }

    /// Decodes and verifies; never panics.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<SnapshotBody, SnapshotError> {
        if bytes.len() > max_len {
            return Err(SnapshotError::TooLarge);
        }
        if bytes.len() < 9 || bytes[..4] != SNAPSHOT_MAGIC || bytes[4] != SNAPSHOT_VERSION {
            return Err(SnapshotError::BadHeader);
        }
        let crc = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        if crc32c(&bytes[9..]) != crc {
            return Err(SnapshotError::Checksum);
        }
        crate::codec::decode_body(&bytes[9..]).map_err(|_| SnapshotError::Malformed)
    }
}

/// [`SnapshotBody`] by reference, field for field: it encodes to the same
/// bytes without copying the parts into a body first.
pub(crate) struct BodyRef<'a> {
    /// Last log index covered.
    pub index: Index,
    /// Its term.
    pub term: Term,
    /// The configuration as of `index`.
    pub membership: &'a Membership,
    /// The session table.
    pub sessions: &'a Sessions,
    /// The state machine's own bytes.
    pub state: &'a [u8],
}

/// Magic, version, CRC-32C of the body, the postcard body. The body is
/// postcard's encoding of [`SnapshotBody`] (a struct is its fields one after
/// another), written in parts: the index, term and configuration through
/// serde, the session table by hand ([`Sessions::encode_into`]), and the
/// state as its length and its bytes in one copy, where serde would write a
/// `Vec<u8>` a byte at a time. A test checks the bytes are serde's.
pub(crate) fn encode_parts(body: BodyRef<'_>) -> Vec<u8> {
    // About 50 bytes a session with a reply or two: one allocation, usually.
    let mut out = Vec::with_capacity(body.state.len() + 64 * body.sessions.len() + 128);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_VERSION);
    out.extend_from_slice(&[0; 4]);
    out = match postcard::to_extend(&(body.index, body.term, body.membership), out) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard encoding into a Vec is infallible"),
    };
    body.sessions.encode_into(&mut out);
    varint::push_bytes(&mut out, body.state);
    let crc = crc32c(&out[9..]);
    out[5..9].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A snapshot for the host to build off its event loop
/// ([`Config::async_snapshots`](crate::Config::async_snapshots)): the applied
/// state frozen at `meta.index` ([`crate::StateMachine::freeze`]) with the
/// session table and configuration as of the same index. Encoding and
/// checksumming it — the expensive part of a snapshot — reads nothing the
/// engine owns, so it may run on another thread while the engine applies on.
///
/// The host calls [`SnapshotJob::build`], stores the bytes durably (like
/// [`crate::Ready::snapshot`]'s) and then reports them with
/// [`Raft::snapshot_stored`](crate::Raft::snapshot_stored) — or, if it could
/// not, [`Raft::snapshot_failed`](crate::Raft::snapshot_failed). Only then
/// does the engine issue the `Snapshot` record naming them.
pub struct SnapshotJob {
    /// What the snapshot's journal record will say (its `id` is the index).
    pub meta: SnapshotMeta,
    sessions: Sessions,
    state: Box<dyn FrozenState>,
}

impl SnapshotJob {
    pub(crate) fn new(meta: SnapshotMeta, sessions: Sessions, state: Box<dyn FrozenState>) -> Self {
        SnapshotJob { meta, sessions, state }
    }

    /// Encodes the snapshot: the bytes the engine would have encoded itself
    /// at `meta.index` ([`SnapshotBody::encode`] of the state then).
    pub fn build(&self) -> Snapshot {
        let state = self.state.encode();
        let data = encode_parts(BodyRef {
            index: self.meta.index,
            term: self.meta.term,
            membership: &self.meta.membership,
            sessions: &self.sessions,
            state: &state,
        });
        Snapshot { meta: self.meta.clone(), data }
    }
}

impl fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotJob").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// A snapshot's description and bytes, shared between the engine, transfers in
/// progress and the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// What the journal records about it.
    pub meta: SnapshotMeta,
    /// The encoded [`SnapshotBody`].
    pub data: Vec<u8>,
}

/// A snapshot the host must store durably before persisting the records of the
/// same [`crate::Ready`] (which include the `Snapshot` record naming it).
#[derive(Clone, Debug)]
pub struct SnapshotOut {
    /// The snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Whether it was received from the leader (else taken locally).
    pub installed: bool,
}

/// A follower's snapshot transfer in progress, keyed by (term, index, snapshot term).
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    term: Term,
    index: Index,
    snap_term: Term,
    buf: Vec<u8>,
}

/// What a follower makes of one InstallSnapshot chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Answer with the offset wanted next (0: start over).
    Want(u64),
    /// The last chunk arrived: the whole snapshot, to verify and install.
    Complete(Vec<u8>),
}

impl Incoming {
    /// Takes the chunk at `offset` of the transfer `(term, index, snap_term)`
    /// into `slot`. Only the chunk at the expected offset is accepted, so lost,
    /// duplicated, reordered and stale chunks are harmless; a transfer larger
    /// than `max` bytes is dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        slot: &mut Option<Incoming>,
        term: Term,
        index: Index,
        snap_term: Term,
        offset: u64,
        data: &[u8],
        done: bool,
        max: usize,
    ) -> Chunk {
        let same = slot.as_ref().is_some_and(|t| (t.term, t.index, t.snap_term) == (term, index, snap_term));
        if !same {
            if offset != 0 {
                return Chunk::Want(0);
            }
            *slot = Some(Incoming { term, index, snap_term, buf: Vec::new() });
        }
        let Some(inc) = slot.as_mut() else { return Chunk::Want(0) };
        if offset != inc.buf.len() as u64 {
            return Chunk::Want(inc.buf.len() as u64);
        }
        if inc.buf.len() + data.len() > max {
            *slot = None;
            return Chunk::Want(0);
        }
        inc.buf.extend_from_slice(data);
        if !done {
            return Chunk::Want(inc.buf.len() as u64);
        }
        match slot.take() {
            Some(inc) => Chunk::Complete(inc.buf),
            None => Chunk::Want(0),
        }
    }
}

/// Whether a node that applied up to `applied`, with its latest snapshot at
/// `snapshot_index` and `log_bytes` of log in memory, should snapshot now.
pub(crate) fn due(cfg: &Config, applied: Index, snapshot_index: Index, log_bytes: usize) -> bool {
    let since = applied.saturating_sub(snapshot_index);
    let by_entries = cfg.snapshot_entries > 0 && since >= cfg.snapshot_entries;
    let by_bytes = log_bytes >= cfg.snapshot_log_bytes && since > 0;
    by_entries || by_bytes
}

/// Why a node could not be rebuilt from its journal and snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The snapshot is missing, damaged or not the one the journal names.
    Snapshot(SnapshotError),
}

impl fmt::Display for RecoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoverError::Config(e) => write!(f, "{e}"),
            RecoverError::Snapshot(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Member;
    use crate::session::SessionLimits;
    use crate::types::Bytes;
    use alloc::vec;

    #[test]
    fn the_body_written_in_parts_is_serdes() {
        let mut sessions = Sessions::new(SessionLimits { max_per_owner: 3, ..SessionLimits::default() });
        sessions.advance(12_345);
        for i in 1..=40u64 {
            let id = i * 1_000_003;
            sessions.register(id, i % 20, [i as u8; 32]).unwrap();
            if i % 3 == 0 {
                let out = Bytes::from(vec![i as u8; (i * 11) as usize]);
                sessions.write(id, &[i as u8; 32], 1, 1, || out).unwrap();
            }
        }
        let mut membership = Membership::bootstrap(&[1, 2, 3]);
        membership.learners.push(Member { id: 9, inc: 77 });
        for state in [vec![], vec![5u8; 3], (0..=255u8).cycle().take(70_000).collect()] {
            let body =
                BodyRef { index: 1 << 33, term: 300, membership: &membership, sessions: &sessions, state: &state };
            let bytes = encode_parts(body);
            let whole = SnapshotBody {
                index: 1 << 33,
                term: 300,
                membership: membership.clone(),
                sessions: sessions.clone(),
                state: state.clone(),
            };
            let serde = postcard::to_allocvec(&whole).unwrap();
            assert_eq!(&bytes[9..], &serde[..], "the parts are serde's body");
            assert_eq!(whole.encode(), bytes);
            assert_eq!(SnapshotBody::decode(&bytes, 1 << 20).unwrap(), whole);
        }
    }
}
