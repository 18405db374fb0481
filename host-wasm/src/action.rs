//! User actions. A run is its options plus the list of actions, each stamped
//! with the point of the run where it happened (events processed and simulated
//! time), so replaying them into a fresh simulator reproduces the run exactly.

use raft_core::kv::KvOp;
use raft_core::NodeId;
use serde::{Deserialize, Serialize};

/// A key-value request from the page's client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientOp {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
    /// Read a key (linearizable, through the leader).
    Get {
        /// The key.
        key: String,
    },
    /// Compare-and-swap (`expect: null` means "the key is absent").
    Cas {
        /// The key.
        key: String,
        /// The value required.
        expect: Option<String>,
        /// The new value.
        value: String,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
}

impl ClientOp {
    /// The state machine operation.
    pub fn kv(&self) -> KvOp {
        match self.clone() {
            ClientOp::Put { key, value } => KvOp::Put { key, value },
            ClientOp::Append { key, value } => KvOp::Append { key, value },
            ClientOp::Get { key } => KvOp::Get { key },
            ClientOp::Cas { key, expect, value } => KvOp::Cas { key, expect, value },
            ClientOp::Delete { key } => KvOp::Delete { key },
        }
    }
}

/// Something the user (or a scenario) did to the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Crash a node: volatile state and unsynced journal records are lost.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// Restart a crashed node from its journal.
    Restart {
        /// The node.
        node: NodeId,
    },
    /// Make a node's election timer run out now.
    Timeout {
        /// The node.
        node: NodeId,
    },
    /// Make a node snapshot its applied state now.
    Snapshot {
        /// The node.
        node: NodeId,
    },
    /// Cut the one-way link `from → to` (both ways if `both`).
    Cut {
        /// Sender side.
        from: NodeId,
        /// Receiver side.
        to: NodeId,
        /// Cut the reverse direction too.
        #[serde(default)]
        both: bool,
    },
    /// Restore the one-way link `from → to` (both ways if `both`).
    Restore {
        /// Sender side.
        from: NodeId,
        /// Receiver side.
        to: NodeId,
        /// Restore the reverse direction too.
        #[serde(default)]
        both: bool,
    },
    /// Cut a node off from everyone.
    Isolate {
        /// The node.
        node: NodeId,
    },
    /// Undo `Isolate` (links cut one by one stay cut).
    Rejoin {
        /// The node.
        node: NodeId,
    },
    /// Split the cluster: `side` talks only among itself, the rest likewise.
    Partition {
        /// One side of the split.
        side: Vec<NodeId>,
    },
    /// Restore every link.
    Heal,
    /// Set message loss, duplication and reordering probabilities.
    Network {
        /// Loss probability.
        loss: f64,
        /// Duplication probability.
        duplicate: f64,
        /// Long-detour (reordering) probability.
        #[serde(default)]
        long_delay: f64,
    },
    /// Set the one-way latency range.
    Latency {
        /// Low end, µs.
        lo: u64,
        /// High end, µs.
        hi: u64,
    },
    /// Drop a message in flight.
    Drop {
        /// Its id.
        id: u64,
    },
    /// Hold a message in flight until released.
    Hold {
        /// Its id.
        id: u64,
    },
    /// Release a held message.
    Release {
        /// Its id.
        id: u64,
    },
    /// A client request through the page's session (`node` 0: the current leader).
    Client {
        /// Where to send it (0: the leader, or node 1 if there is none).
        #[serde(default)]
        node: NodeId,
        /// The request.
        req: ClientOp,
    },
    /// Send write `seq` again with the same session and seq (a client retry).
    Retry {
        /// The write's seq.
        seq: u64,
        /// Where to send it (0: the leader).
        #[serde(default)]
        node: NodeId,
    },
    /// Start simulated clients (random operations on a few keys; recorded for the checker).
    StartClients {
        /// How many.
        count: usize,
        /// On how many keys (`k0`, `k1`, …).
        #[serde(default = "default_keys")]
        keys: usize,
    },
    /// Stop the simulated clients issuing new operations (for good).
    StopClients,
}

/// An action at a point of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Events the simulator had processed when the action happened.
    pub at: u64,
    /// Simulated time (µs) when it happened.
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub op: Op,
}

fn default_keys() -> usize {
    3
}
