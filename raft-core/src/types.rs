//! The vocabulary every other module speaks: ids, terms, indexes and log entries.
//!
//! Every field is an integer or bytes, so the wire and journal encodings (postcard)
//! stay compact and language-neutral; nothing here is positional (node ids are
//! configured numbers, not offsets into an array).

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A node's configured identity. Ids are chosen by the operator; `0` is reserved
/// to mean "nobody" in places where an `Option` would not survive a format.
pub type NodeId = u64;

/// A Raft term: a logical epoch in which at most one leader exists.
pub type Term = u64;

/// A log position. The first real entry has index 1; index 0 is the empty prefix.
pub type Index = u64;

/// A journal record sequence number. Sequence numbers start at 1 and grow by one
/// for every record the core asks the host to persist.
pub type Seq = u64;

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Accepts entries from the leader of its term and grants votes.
    Follower,
    /// Asking peers whether it could win an election, without raising anyone's term.
    PreCandidate,
    /// Raised its term and voted for itself; collecting votes.
    Candidate,
    /// Replicates its log to the others and decides what is committed.
    Leader,
}

impl Role {
    /// A short lower-case name, used in logs, metrics and the web demo.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader as its first entry, so that it can commit an
    /// entry of its own term promptly (Raft §5.4.2) and learn the commit point.
    Noop,
    /// An opaque command for the state machine.
    Command(Vec<u8>),
    /// Reserved for membership changes. The format is fixed now so that journals
    /// written today stay readable when membership changes arrive; the engine
    /// currently applies it as a no-op.
    ConfChange(Vec<u8>),
    /// Opens a client session whose id is this entry's index.
    Register,
    /// A client write on a session (applied at most once per `(session, seq)`).
    Write {
        /// The session.
        session: u64,
        /// The write's number within the session.
        seq: u64,
        /// Lowest seq the client still awaits.
        ack: u64,
        /// The state machine command.
        command: Vec<u8>,
    },
    /// Keeps a session alive.
    KeepAlive {
        /// The session.
        session: u64,
        /// Lowest seq the client still awaits.
        ack: u64,
    },
}

impl Payload {
    /// Bytes of user data carried, used for the memory and batch limits.
    pub fn data_len(&self) -> usize {
        match self {
            Payload::Noop | Payload::Register | Payload::KeepAlive { .. } => 0,
            Payload::Command(b) | Payload::ConfChange(b) | Payload::Write { command: b, .. } => b.len(),
        }
    }
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// Cluster time in ticks when the leader created it. Cluster time never goes
    /// backwards: a new leader continues from the last entry in its log.
    pub time: u64,
    /// The contents.
    pub payload: Payload,
}

impl Entry {
    /// Approximate size in memory and on the wire, used for byte limits. Counts
    /// the fixed fields plus the payload so empty entries still cost something.
    pub fn size(&self) -> usize {
        32 + self.payload.data_len()
    }
}

/// The state that must be durable before a node may vote or act on a term
/// (Raft Figure 2, "persistent state"), plus the role for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// The role at the time of writing. A restart always begins as follower;
    /// this is kept for tooling and for the record.
    pub role: Role,
}

impl Default for HardState {
    fn default() -> Self {
        HardState { term: 0, voted_for: None, role: Role::Follower }
    }
}
