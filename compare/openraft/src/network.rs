//! The network: an RPC is a direct call on the target node's `Raft` handle in
//! the same process (no encoding, no sockets), as in openraft's
//! benchmarks/minimal and raftkv's in-memory cluster.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use openraft::error::{Fatal, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{EmptyNode, OptionalSend, Raft, RaftNetwork, RaftNetworkFactory, Snapshot, Vote};

use crate::types::Config;

/// Every node's handle by id. Filled once, after all nodes are built and
/// before the cluster is initialised (uninitialised nodes send nothing), so
/// a lookup is a plain read with no lock.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<OnceLock<BTreeMap<u64, Raft<Config>>>>,
}

impl Router {
    /// Publishes the nodes; returns false if they were published already.
    pub fn publish(&self, nodes: BTreeMap<u64, Raft<Config>>) -> bool {
        self.nodes.set(nodes).is_ok()
    }

    /// Node `id`'s handle, if published.
    pub fn node(&self, id: u64) -> Option<&Raft<Config>> {
        self.nodes.get().and_then(|n| n.get(&id))
    }
}

/// The error of a call to a node not (yet) in the router.
fn unknown(target: u64) -> Unreachable {
    Unreachable::new(&std::io::Error::new(std::io::ErrorKind::NotFound, format!("node {target} not published")))
}

impl RaftNetworkFactory<Config> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &EmptyNode) -> Connection {
        Connection { router: self.clone(), target }
    }
}

/// One node's view of another: the calls it makes go straight to `target`.
pub struct Connection {
    router: Router,
    target: u64,
}

impl Connection {
    fn target(&self) -> Result<&Raft<Config>, Unreachable> {
        self.router.node(self.target).ok_or_else(|| unknown(self.target))
    }
}

impl RaftNetwork<Config> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Config>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, EmptyNode, RaftError<u64>>> {
        let raft = self.target()?;
        raft.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, EmptyNode, RaftError<u64>>> {
        let raft = self.target()?;
        raft.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<Config>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<Config, Fatal<u64>>> {
        // The snapshot is handed over whole, so there is no stream to cancel
        // part-way.
        let raft = self.target()?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}
