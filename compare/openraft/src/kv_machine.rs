//! The replicated key-value map: each node applies every committed put to its
//! own `BTreeMap<String, String>`, and snapshots the whole map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership};

use crate::types::{Config, KvSnapshot};

type Membership = StoredMembership<u64, openraft::EmptyNode>;
type Meta = SnapshotMeta<u64, openraft::EmptyNode>;

/// The state a node has applied.
#[derive(Default)]
struct Applied {
    last: Option<LogId<u64>>,
    membership: Membership,
    kv: BTreeMap<String, String>,
}

/// What one node's state machine holds.
#[derive(Default)]
struct MachineInner {
    applied: Applied,
    current: Option<(Meta, KvSnapshot)>,
    snapshots_built: u64,
}

/// One node's state machine. Clones share it: the snapshot builder openraft
/// runs in a task of its own is a clone.
#[derive(Clone, Default)]
pub struct KvMachine {
    inner: Arc<Mutex<MachineInner>>,
}

impl KvMachine {
    /// See [`crate::log_store::LogStore`]: never held across an await.
    fn lock(&self) -> MutexGuard<'_, MachineInner> {
        self.inner.lock().expect("state machine lock poisoned by a panic")
    }

    /// The map as applied so far (for the end-of-run check that every replica
    /// holds the same data).
    pub fn contents(&self) -> (Option<LogId<u64>>, BTreeMap<String, String>) {
        let inner = self.lock();
        (inner.applied.last, inner.applied.kv.clone())
    }
}

impl RaftSnapshotBuilder<Config> for KvMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Config>, StorageError<u64>> {
        let mut inner = self.lock();
        inner.snapshots_built += 1;
        let last = inner.applied.last;
        let snapshot_id = match last {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, inner.snapshots_built),
            None => format!("none-{}", inner.snapshots_built),
        };
        let meta = Meta { last_log_id: last, last_membership: inner.applied.membership.clone(), snapshot_id };
        let data = KvSnapshot { data: inner.applied.kv.clone() };
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }
}

impl RaftStateMachine<Config> for KvMachine {
    type SnapshotBuilder = KvMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        let inner = self.lock();
        Ok((inner.applied.last, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<Config>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut inner = self.lock();
        let mut replies = Vec::new();
        for entry in entries {
            inner.applied.last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(put) => {
                    inner.applied.kv.insert(put.key, put.value);
                }
                EntryPayload::Membership(m) => {
                    inner.applied.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            // openraft wants one response per entry, whatever its kind.
            replies.push(());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<KvSnapshot>, StorageError<u64>> {
        Ok(Box::default())
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<KvSnapshot>) -> Result<(), StorageError<u64>> {
        let mut inner = self.lock();
        inner.applied =
            Applied { last: meta.last_log_id, membership: meta.last_membership.clone(), kv: snapshot.data.clone() };
        inner.current = Some((meta.clone(), *snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Config>>, StorageError<u64>> {
        Ok(self
            .lock()
            .current
            .as_ref()
            .map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: Box::new(data.clone()) }))
    }
}
