//! Snapshots: what they hold, how they are encoded, when they are taken, and
//! InstallSnapshot — the transfer that brings a follower that fell behind the
//! leader's compacted log back in one go (DESIGN.md §2a).
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

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::journal::{Record, SnapshotMeta};
use crate::log::Log;
use crate::message::Body;
use crate::progress::ProgressState;
use crate::raft::{Event, Raft};
use crate::session::Sessions;
use crate::state_machine::StateMachine;
use crate::types::{Index, NodeId, Term};

/// Magic number of an encoded snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RKVS";
/// Snapshot format version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// The contents of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// Last log index covered.
    pub index: Index,
    /// Its term.
    pub term: Term,
    /// The voters as of `index`.
    pub voters: Vec<NodeId>,
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
    /// let b = SnapshotBody { index: 7, term: 2, voters: vec![1, 2, 3], sessions: Sessions::default(), state: vec![1, 2] };
    /// let mut bytes = b.encode();
    /// assert_eq!(SnapshotBody::decode(&bytes, 1 << 20).unwrap(), b);
    /// let last = bytes.len() - 1;
    /// bytes[last] ^= 1;
    /// assert!(SnapshotBody::decode(&bytes, 1 << 20).is_err());
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.state.len() + 64);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&[0; 4]);
        out = match postcard::to_extend(self, out) {
            Ok(v) => v,
            Err(_) => unreachable!("postcard encoding into a Vec is infallible"),
        };
        let crc = crc32c(&out[9..]);
        out[5..9].copy_from_slice(&crc.to_le_bytes());
        out
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

/// A follower's snapshot transfer in progress.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    pub term: Term,
    pub index: Index,
    pub snap_term: Term,
    pub buf: Vec<u8>,
}

/// A leader's transfer to one follower.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub snapshot: Arc<Snapshot>,
    pub offset: u64,
    pub in_flight: bool,
}

impl<S: StateMachine> Raft<S> {
    /// Takes a snapshot if the policy says so (called after entries apply).
    pub(crate) fn maybe_snapshot(&mut self) {
        let since = self.applied.saturating_sub(self.snapshot_index());
        let by_entries = self.cfg.snapshot_entries > 0 && since >= self.cfg.snapshot_entries;
        let by_bytes = self.log.bytes() >= self.cfg.snapshot_log_bytes && since > 0;
        if (by_entries || by_bytes) && self.compact_pending.is_none() {
            self.take_snapshot();
        }
    }

    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(self.log.snapshot_index(), |s| s.meta.index)
    }

    /// Snapshots the applied state now (also available to hosts and the demo).
    pub fn take_snapshot(&mut self) {
        let index = self.applied;
        let Some(term) = self.log.term(index) else { return };
        if index == 0 || index <= self.snapshot_index() {
            return;
        }
        let body = SnapshotBody {
            index,
            term,
            voters: self.voters.clone(),
            sessions: self.sessions.clone(),
            state: self.sm.snapshot(),
        };
        let meta = SnapshotMeta { index, term, voters: self.voters.clone(), id: index };
        let snap = Arc::new(Snapshot { meta: meta.clone(), data: body.encode() });
        self.snapshot = Some(snap.clone());
        self.ready.snapshot = Some(SnapshotOut { snapshot: snap, installed: false });
        let seq = self.write(Record::Snapshot(meta));
        self.compact_pending = Some((seq, index, term));
        self.event(Event::SnapshotTaken { index });
    }

    /// After the Snapshot record is durable: drop the entries it covers.
    pub(crate) fn maybe_compact(&mut self) {
        if let Some((seq, index, term)) = self.compact_pending {
            if seq <= self.durable_seq {
                self.compact_pending = None;
                self.log.compact_to(index, term);
            }
        }
    }

    /// Restores a snapshot's state into this node (restart or install).
    pub(crate) fn restore_snapshot(&mut self, body: SnapshotBody) -> Result<(), SnapshotError> {
        self.sm.restore(&body.state).map_err(|_| SnapshotError::Restore)?;
        let no_dedup = self.sessions.no_dedup;
        let limits = self.cfg.sessions;
        self.sessions = body.sessions;
        self.sessions.set_limits(limits);
        self.sessions.no_dedup = no_dedup;
        self.commit = self.commit.max(body.index);
        self.applied = body.index;
        Ok(())
    }

    // ------------------------------------------------------------------
    // Leader side
    // ------------------------------------------------------------------

    /// Starts a transfer to `progress[i]`, whose next entry was compacted.
    pub(crate) fn start_snapshot_transfer(&mut self, i: usize) {
        let Some(snap) = self.snapshot.clone() else { return };
        let pr = &mut self.progress[i];
        pr.state = ProgressState::Snapshot;
        pr.inflight.clear();
        pr.inflight_bytes = 0;
        pr.transfer = Some(Outgoing { snapshot: snap, offset: 0, in_flight: false });
        self.send_snapshot_chunk(i);
    }

    /// Sends the chunk at the transfer's offset unless one is in flight.
    pub(crate) fn send_snapshot_chunk(&mut self, i: usize) {
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        let pr = &mut self.progress[i];
        let to = pr.id;
        let Some(t) = pr.transfer.as_mut() else { return };
        if t.in_flight {
            return;
        }
        let len = t.snapshot.data.len() as u64;
        let start = t.offset.min(len);
        let end = (start + chunk).min(len);
        let data = t.snapshot.data[start as usize..end as usize].to_vec();
        let (index, snap_term) = (t.snapshot.meta.index, t.snapshot.meta.term);
        t.in_flight = true;
        self.send(to, Body::InstallSnapshot { index, snap_term, offset: start, data, done: end == len });
    }

    /// A follower answered a chunk.
    pub(crate) fn handle_snapshot_resp(
        &mut self,
        from: NodeId,
        index: Index,
        snap_term: Term,
        offset: u64,
        done: bool,
    ) {
        let Some(i) = self.progress.iter().position(|p| p.id == from) else { return };
        self.progress[i].recent_active = true;
        let pr = &mut self.progress[i];
        let Some(t) = pr.transfer.as_mut() else { return };
        if t.snapshot.meta.index != index || t.snapshot.meta.term != snap_term {
            return; // about another transfer
        }
        if done {
            // Installed and durable: the follower matches us up to `index`.
            pr.transfer = None;
            pr.match_index = pr.match_index.max(index);
            pr.become_replicate();
            self.maybe_commit();
            self.send_append(i, false);
        } else if offset == u64::MAX {
            // The follower already has everything the snapshot covers.
            pr.transfer = None;
            pr.become_probe();
            pr.next_index = pr.next_index.max(index + 1);
            self.send_append(i, false);
        } else {
            t.offset = offset.min(t.snapshot.data.len() as u64);
            t.in_flight = false;
            self.send_snapshot_chunk(i);
        }
    }

    // ------------------------------------------------------------------
    // Follower side
    // ------------------------------------------------------------------

    /// A chunk from the leader of our term.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        index: Index,
        snap_term: Term,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let resp = |offset, done| Body::InstallSnapshotResp { index, snap_term, offset, done };
        if index <= self.commit {
            // Nothing to learn: we hold (at least) everything it covers.
            self.incoming = None;
            return self.send(from, resp(u64::MAX, false));
        }
        let term = self.term;
        let same = self.incoming.as_ref().is_some_and(|t| (t.term, t.index, t.snap_term) == (term, index, snap_term));
        if !same {
            if offset != 0 {
                return self.send(from, resp(0, false));
            }
            self.incoming = Some(Incoming { term, index, snap_term, buf: Vec::new() });
        }
        let max = self.cfg.max_snapshot_bytes;
        let Some(inc) = self.incoming.as_mut() else { return };
        if offset != inc.buf.len() as u64 {
            let want = inc.buf.len() as u64;
            return self.send(from, resp(want, false));
        }
        if inc.buf.len() + data.len() > max {
            self.incoming = None;
            return self.send(from, resp(0, false));
        }
        inc.buf.extend_from_slice(&data);
        if !done {
            let want = inc.buf.len() as u64;
            return self.send(from, resp(want, false));
        }
        let Some(inc) = self.incoming.take() else { return };
        let body = match SnapshotBody::decode(&inc.buf, max) {
            Ok(b) if b.index == index && b.term == snap_term => b,
            // Damaged in transit (or lying): start over.
            _ => return self.send(from, resp(0, false)),
        };
        let voters = body.voters.clone();
        if self.restore_snapshot(body).is_err() {
            return self.send(from, resp(0, false));
        }
        if self.log.term(index) == Some(snap_term) {
            self.log.compact_to(index, snap_term);
        } else {
            self.log = Log::with_snapshot(index, snap_term);
            self.truncations += 1;
            self.durable_index = self.durable_index.min(index);
            for u in self.unsynced.iter_mut() {
                u.1 = u.1.min(index);
            }
        }
        let meta = SnapshotMeta { index, term: snap_term, voters, id: index };
        let snap = Arc::new(Snapshot { meta: meta.clone(), data: inc.buf });
        self.snapshot = Some(snap.clone());
        self.compact_pending = None;
        self.ready.snapshot = Some(SnapshotOut { snapshot: snap, installed: true });
        let seq = self.write(Record::Snapshot(meta));
        self.event(Event::SnapshotInstalled { index });
        self.send_after(seq, from, resp(0, true));
    }

    /// The records a host writes at the start of a new journal segment so that
    /// the segment, with the snapshot it names, holds the node's whole durable
    /// state: the HardState, the latest Snapshot record, and every log entry
    /// after it (journal checkpoint frames, sequence number 0). Call it only
    /// when every record issued so far has been written.
    pub fn checkpoint(&self) -> Vec<Record> {
        let last_seq = self.next_seq - 1;
        let mut out = alloc::vec![Record::Checkpoint { last_seq }, Record::HardState(self.hard_state())];
        if let Some(s) = &self.snapshot {
            out.push(Record::Snapshot(s.meta.clone()));
        }
        let from = self.log.first_index().max(self.snapshot.as_ref().map_or(0, |s| s.meta.index + 1));
        let entries = self.log.slice(from, self.log.last_index(), usize::MAX, usize::MAX);
        if !entries.is_empty() {
            out.push(Record::Append { first_index: from, entries });
        }
        out
    }

    /// The latest snapshot (taken or installed), if any.
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.snapshot.as_ref()
    }
}

/// Why a node could not be rebuilt from its journal and snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverError {
    /// The configuration is invalid.
    Config(crate::raft::ConfigError),
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
