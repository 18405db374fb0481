//! Tests: openraft's own storage conformance suite run on this project's log
//! store and state machine, and a short closed loop on the whole cluster.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::kv_machine::KvMachine;
use crate::log_store::LogStore;
use crate::types::Config;

/// Builds a fresh, empty store pair for each of the suite's cases.
struct Fresh;

impl StoreBuilder<Config, LogStore, KvMachine> for Fresh {
    async fn build(&self) -> Result<((), LogStore, KvMachine), StorageError<u64>> {
        Ok(((), LogStore::default(), KvMachine::default()))
    }
}

#[test]
fn the_stores_pass_openraft_s_storage_suite() {
    if let Err(e) = Suite::test_all(Fresh) {
        panic!("openraft's storage suite failed: {e}");
    }
}

/// Starts the 3-node cluster on a 2-thread runtime, runs `body` on it, then
/// shuts every node down.
fn on_cluster(body: impl AsyncFnOnce(&crate::Cluster)) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let cluster = crate::start_cluster().await.expect("cluster starts");
        body(&cluster).await;
        for raft in cluster.rafts.values() {
            raft.shutdown().await.expect("shutdown");
        }
    });
}

#[test]
fn a_short_closed_loop_replicates_every_put_to_all_three_nodes() {
    on_cluster(async |cluster| {
        let leader = &cluster.rafts[&crate::NODES[0]];
        // More writes than the snapshot policy's 5,000, so snapshots are built
        // and the log is purged while clients write.
        let writes = 12_000;
        let outcome = crate::closed_loop(leader, 16, writes).await.expect("every write succeeds");
        assert_eq!(outcome.per_client.iter().sum::<u64>(), writes);
        crate::check_replicas(cluster, &outcome.per_client).await.expect("replicas agree");
        let snapshot = leader.metrics().borrow().snapshot;
        assert!(snapshot.is_some_and(|s| s.index >= 5_000), "no snapshot was built: {snapshot:?}");
        let (applied, kv) = cluster.machines[&crate::NODES[0]].contents();
        // 12,000 puts after the initial blank and membership entries.
        assert!(applied.is_some_and(|a| a.index >= writes), "applied up to {applied:?}");
        assert_eq!(kv.len(), outcome.per_client.iter().filter(|&&n| n > 0).count());
        assert!(kv.values().all(|v| v == &"v".repeat(crate::VALUE_BYTES)));
    });
}

#[test]
fn more_clients_than_writes_leaves_the_keys_of_the_clients_that_wrote() {
    on_cluster(async |cluster| {
        let leader = &cluster.rafts[&crate::NODES[0]];
        let outcome = crate::closed_loop(leader, 50, 20).await.expect("every write succeeds");
        assert_eq!(outcome.per_client.iter().sum::<u64>(), 20);
        let writers = outcome.per_client.iter().filter(|&&n| n > 0).count();
        assert!((1..=20).contains(&writers), "{writers} clients wrote");
        crate::check_replicas(cluster, &outcome.per_client).await.expect("replicas agree");
        assert_eq!(cluster.machines[&crate::NODES[0]].contents().1.len(), writers);
    });
}
