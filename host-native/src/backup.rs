//! Backups: reading a snapshot file that `raftkv snapshot save` wrote, and
//! turning one into the data directory of the first node of a new cluster.
//!
//! A saved file is exactly the leader's snapshot (`RKVS`: magic, version,
//! CRC-32C, the postcard body — see `raft_core::snapshot`), so it is checked
//! by the same decoder a node uses. Restoring keeps the state machine and
//! the snapshot's index and term, so the new cluster's log starts at index +
//! 1 and revisions never go backwards; it drops the session table (old
//! session ids would collide with the new cluster's) and the old address
//! map, binds a configuration of the one restored node with a fresh
//! incarnation, and draws a new cluster UUID so nodes of the old cluster
//! cannot link to the new one by mistake. The other nodes `--join` it.

use std::path::Path;
use std::sync::Arc;

use raft_core::journal::{Record, SnapshotMeta};
use raft_core::session::Sessions;
use raft_core::snapshot::{Snapshot, SnapshotBody};
use raft_core::{HardState, KvOp, KvStore, Member, Membership, NodeId, StateMachine};

use crate::identity::{self, Identity};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::protocol::{addr_key_id, RESERVED_PREFIX};

/// What `raftkv snapshot inspect` shows.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Last index covered.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The configuration as of `index`.
    pub membership: Membership,
    /// Client keys.
    pub keys: usize,
    /// Node URLs of the replicated address map.
    pub addresses: Vec<(NodeId, String)>,
    /// Open client sessions.
    pub sessions: usize,
    /// The file's size in bytes.
    pub size: usize,
}

/// Decodes and checks a snapshot file (at most `max` bytes).
pub fn decode(bytes: &[u8], max: usize) -> Result<(SnapshotBody, KvStore), String> {
    let body = SnapshotBody::decode(bytes, max).map_err(|e| format!("not a usable snapshot: {e}"))?;
    let mut kv = KvStore::default();
    kv.restore(&body.state).map_err(|e| format!("the snapshot's key-value state does not decode: {e:?}"))?;
    Ok((body, kv))
}

/// What a snapshot file holds.
pub fn inspect(bytes: &[u8], max: usize) -> Result<Summary, String> {
    let (body, kv) = decode(bytes, max)?;
    let mut addresses = Vec::new();
    let mut keys = 0;
    for (k, v) in kv.iter() {
        match addr_key_id(k) {
            Some(id) => addresses.push((id, v.to_string())),
            None if k.starts_with(RESERVED_PREFIX) => {}
            None => keys += 1,
        }
    }
    addresses.sort();
    Ok(Summary {
        index: body.index,
        term: body.term,
        membership: body.membership,
        keys,
        addresses,
        sessions: body.sessions.len(),
        size: bytes.len(),
    })
}

/// Writes into the empty directory `dir` node `id` of a new cluster named
/// `name`, holding the snapshot `bytes`: its identity (a new UUID, a fresh
/// incarnation, itself as the only voter), the snapshot, and a journal whose
/// log starts after it.
pub fn restore(
    bytes: &[u8],
    max: usize,
    dir: &Path,
    name: &str,
    id: NodeId,
    segment_bytes: u64,
) -> Result<Identity, String> {
    if dir.join(identity::IDENTITY_FILE).exists() || identity::has_data(dir) {
        return Err(format!("{} is not empty: restore into a new directory", dir.display()));
    }
    let (body, mut kv) = decode(bytes, max)?;
    // The old cluster's URLs mean nothing to the new one.
    let reserved: Vec<String> =
        kv.iter().filter(|(k, _)| k.starts_with(RESERVED_PREFIX)).map(|(k, _)| k.to_string()).collect();
    for key in reserved {
        // At the store's own revision and clock: nothing moves backwards.
        let (rev, clock) = (kv.revision(), kv.clock());
        kv.apply(rev, clock, &KvOp::Delete { key }.encode());
    }
    let ident = identity::single(name, id).map_err(|e| e.0)?;
    let mut membership = Membership::default();
    membership.voters.push(Member { id, inc: ident.incarnation });
    let body = SnapshotBody {
        index: body.index,
        term: body.term,
        membership: membership.clone(),
        sessions: Sessions::default(),
        state: kv.snapshot(),
    };
    let meta = SnapshotMeta { index: body.index, term: body.term, membership: Box::new(membership), id: body.index };
    let snap = Snapshot { meta: meta.clone(), data: body.encode() };
    ident.create(dir).map_err(|e| e.0)?;
    let (mut journal, _, _) = Journal::open(dir, segment_bytes, Arc::new(Metrics::default())).map_err(|e| e.0)?;
    journal.store_snapshot(&snap).map_err(|e| format!("cannot store the snapshot: {e}"))?;
    let hard = HardState { term: body.term, ..HardState::default() };
    journal
        .append(&[(1, Record::HardState(hard)), (2, Record::Snapshot(meta))])
        .map_err(|e| format!("cannot write the journal: {e}"))?;
    Ok(ident)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Raft;

    #[test]
    fn a_restored_directory_recovers_the_data_as_a_new_cluster() {
        let mut kv = KvStore::default();
        kv.apply(1, 0, &KvOp::Put { key: "k".into(), value: "v".into() }.encode());
        kv.apply(2, 0, &KvOp::Put { key: crate::protocol::addr_key(2), value: "ws://old:1".into() }.encode());
        let body = SnapshotBody {
            index: 40,
            term: 3,
            membership: Membership::bootstrap(&[1, 2, 3]),
            sessions: Sessions::default(),
            state: kv.snapshot(),
        };
        let bytes = body.encode();
        let s = inspect(&bytes, 1 << 20).unwrap();
        assert_eq!((s.index, s.term, s.keys, s.addresses.len()), (40, 3, 1, 1));
        let mut broken = bytes.clone();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        assert!(inspect(&broken, 1 << 20).is_err());

        let dir = std::env::temp_dir().join(format!("raftkv-restore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ident = restore(&bytes, 1 << 20, &dir, "c", 7, 1 << 20).unwrap();
        assert!(restore(&bytes, 1 << 20, &dir, "c", 7, 1 << 20).unwrap_err().contains("not empty"));
        let (_, state, snap) = Journal::open(&dir, 1 << 20, Arc::new(Metrics::default())).unwrap();
        let cfg = crate::startup::core_config(&crate::Config::default_local(), &ident, 1);
        let node = Raft::recover(cfg, state, snap.as_deref(), KvStore::default()).unwrap();
        assert_eq!(node.log().last_index(), 40, "the log goes on after the snapshot");
        assert_eq!(node.state_machine().get("k"), Some("v"));
        assert_eq!(node.state_machine().get(&crate::protocol::addr_key(2)), None);
        assert_eq!(node.sessions().len(), 0);
        assert_eq!(node.membership().voter_ids(), vec![7]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
