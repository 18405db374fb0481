//! The vocabulary every other module speaks: ids, terms, indexes and log entries.
//!
//! Every field is an integer or bytes, so the wire and journal encodings (postcard)
//! stay compact and language-neutral; nothing here is positional (node ids are
//! configured numbers, not offsets into an array).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Immutable shared bytes: an entry's command is written once and then only
/// read — by the log, the journal record, every follower's AppendEntries, the
/// state machine — so clones share one buffer instead of copying it.
/// On the wire and on disk it is a plain byte string (the same postcard
/// encoding as `Vec<u8>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bytes(Arc<[u8]>);

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v.into())
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.into())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Bytes {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                // Bounded pre-allocation: the length hint comes from input.
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Bytes::from(v))
            }
        }
        d.deserialize_bytes(V)
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
    /// This node found at recovery that its journal lost records it had
    /// made durable (a damaged frame in a group-commit batch whose end marker
    /// survived), and has not yet durably matched a current leader up to
    /// that leader's commit index. Until then it grants no vote or pre-vote,
    /// does not campaign, and its acknowledgements are not counted.
    pub lost_data: bool,
}

impl Default for HardState {
    fn default() -> Self {
        HardState { term: 0, voted_for: None, role: Role::Follower, lost_data: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn bytes_encode_like_a_vec() {
        let v: Vec<u8> = vec![1, 2, 3, 200];
        let as_vec = postcard::to_allocvec(&v).unwrap();
        let as_bytes = postcard::to_allocvec(&Bytes::from(v.clone())).unwrap();
        assert_eq!(as_vec, as_bytes, "same wire and journal format as Vec<u8>");
        let back: Bytes = postcard::from_bytes(&as_vec).unwrap();
        assert_eq!(&*back, &v[..]);
        // A length prefix larger than the input is an error, not an allocation.
        assert!(postcard::from_bytes::<Bytes>(&[0xff, 0xff, 0xff, 0x0f]).is_err());
        let shared = back.clone();
        assert!(core::ptr::eq(shared.as_slice(), back.as_slice()), "clones share the buffer");
    }
}
