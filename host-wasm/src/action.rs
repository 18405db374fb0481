//! User actions. A run is its options plus the list of actions, each stamped
//! with the point of the run where it happened (events processed and simulated
//! time), so replaying them into a fresh simulator reproduces the run exactly.

use raft_core::kv::KvOp;
use raft_core::NodeId;
use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A key-value request from the page's client: raft-core's [`KvOp`], which
/// the page writes `{"kind":"put","key":"k","value":"v"}`.
///
/// raft-core's serde form names the variant outside its fields
/// (`{"put":{"key":"k","value":"v"}}`: postcard cannot carry a tag inside);
/// this wrapper only moves the name inside, under `kind`, so the names and
/// fields are [`KvOp`]'s own. Unknown fields are ignored, and a missing
/// `expect` is `null` (the key must be absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp(pub KvOp);

impl Serialize for ClientOp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every KvOp variant has fields, so its serde form is one
        // `name: {fields}` entry.
        let Ok(Value::Object(outer)) = serde_json::to_value(&self.0) else {
            return Err(S::Error::custom("a KvOp is a JSON object of one entry"));
        };
        let Some((kind, Value::Object(fields))) = outer.into_iter().next() else {
            return Err(S::Error::custom("a KvOp's entry holds its fields"));
        };
        let mut map = s.serialize_map(Some(fields.len() + 1))?;
        map.serialize_entry("kind", &kind)?;
        for (k, v) in &fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ClientOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(d)?;
        let kind = match fields.remove("kind") {
            Some(Value::String(k)) => k,
            Some(_) => return Err(D::Error::custom("\"kind\" must be a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let outer = Value::Object(Map::from_iter([(kind, Value::Object(fields))]));
        KvOp::deserialize(outer).map(ClientOp).map_err(D::Error::custom)
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
    /// Start a new node (the next free id, with an empty disk) and propose it
    /// to the leader as a learner: it receives the log but does not vote. With
    /// `voter`, the driver proposes its promotion as soon as it has caught up
    /// (how a node joins as a voter: a voter that had to catch up first would
    /// weaken the quorum meanwhile).
    AddNode {
        /// Promote it once it has caught up.
        #[serde(default)]
        voter: bool,
    },
    /// Propose an existing node that is not a member (a removed one) as a learner.
    AddLearner {
        /// The node.
        node: NodeId,
    },
    /// Make a learner a voter (a direct change of one voter). For a voter whose
    /// disk was wiped, rebind it to its new disk instead (a joint change:
    /// the old half still names the lost disk, whose vote never comes).
    Promote {
        /// The node.
        node: NodeId,
    },
    /// Remove a node from the configuration (a direct change of one voter).
    Remove {
        /// The node.
        node: NodeId,
    },
    /// One joint change (dissertation §4.3): make `add` voters (learners
    /// that caught up) and remove `remove`, through a joint configuration in
    /// which every decision needs a majority of the old voters and one of
    /// the new; the leader leaves it once the change commits.
    Joint {
        /// Learners to make voters.
        #[serde(default)]
        add: Vec<NodeId>,
        /// Members to remove.
        #[serde(default)]
        remove: Vec<NodeId>,
    },
    /// Ask the leader to hand leadership to `node`.
    Transfer {
        /// The voter to lead next.
        node: NodeId,
    },
    /// Replace a node's disk by an empty one and restart it: a new storage
    /// incarnation, which the configuration does not name, so it cannot vote
    /// until it is readmitted ([`Op::Promote`]).
    Wipe {
        /// The node.
        node: NodeId,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ops_are_kv_ops_with_the_kind_inside() {
        let cases = [
            (r#"{"kind":"put","key":"k","value":"v"}"#, KvOp::Put { key: "k".into(), value: "v".into() }),
            (r#"{"kind":"append","key":"k","value":"w"}"#, KvOp::Append { key: "k".into(), value: "w".into() }),
            (r#"{"kind":"get","key":"k"}"#, KvOp::Get { key: "k".into() }),
            (r#"{"kind":"delete","key":"k"}"#, KvOp::Delete { key: "k".into() }),
            (
                r#"{"kind":"cas","expect":null,"key":"k","value":"x"}"#,
                KvOp::Cas { key: "k".into(), expect: None, value: "x".into() },
            ),
        ];
        for (json, op) in cases {
            let parsed: ClientOp = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, ClientOp(op.clone()));
            let back = serde_json::to_value(&parsed).unwrap();
            assert_eq!(back, serde_json::from_str::<Value>(json).unwrap());
            assert_eq!(back["kind"], op.name());
        }
        assert!(serde_json::to_string(&ClientOp(KvOp::Get { key: "k".into() })).unwrap().starts_with(r#"{"kind":"#));
        // As before: a missing expect means "absent", unknown fields are ignored.
        let cas: ClientOp = serde_json::from_str(r#"{"kind":"cas","key":"k","value":"x","note":1}"#).unwrap();
        assert_eq!(cas, ClientOp(KvOp::Cas { key: "k".into(), expect: None, value: "x".into() }));
        for bad in [r#"{"key":"k"}"#, r#"{"kind":5,"key":"k"}"#, r#"{"kind":"launch"}"#, r#"{"kind":"put","key":"k"}"#]
        {
            assert!(serde_json::from_str::<ClientOp>(bad).is_err(), "{bad}");
        }
    }
}
