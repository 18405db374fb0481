//! The type configuration every other module is written against.

use std::fmt;

/// One client command: put `value` under `key` (raftkv's closed-loop bench
/// does the same: 16 bytes to the client's own key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The client's key, `k{client}`.
    pub key: String,
    /// The value written.
    pub value: String,
}

impl fmt::Display for Put {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put {} ({} bytes)", self.key, self.value.len())
    }
}

/// A snapshot's payload: the whole key-value map at its last applied entry.
/// With openraft's `generic-snapshot-data` feature it is handed to the target
/// node as a value, so it needs no encoding.
#[derive(Debug, Clone, Default)]
pub struct KvSnapshot {
    /// Every key and its value.
    pub data: std::collections::BTreeMap<String, String>,
}

openraft::declare_raft_types!(
    /// Node ids are `u64`, nodes carry no address (the network is in-process),
    /// entries carry [`Put`]s and a write's response is nothing (the reply is the
    /// acknowledgement, as in raftkv's bench).
    pub Config:
        D = Put,
        R = (),
        NodeId = u64,
        Node = openraft::EmptyNode,
        Entry = openraft::Entry<Config>,
        SnapshotData = KvSnapshot,
        Responder = openraft::impls::OneshotResponder<Config>,
        AsyncRuntime = openraft::TokioRuntime,
);
