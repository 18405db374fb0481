//! Log entries: what the log holds at each index.

use serde::{Deserialize, Serialize};

use crate::client::{Owner, SecretHash};
use crate::codec::{DecodeError, Reader};
use crate::membership::ConfChange;
use crate::types::{Bytes, Index, Term};

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader as its first entry, so that it can commit an
    /// entry of its own term promptly (Raft §5.4.2) and learn the commit point.
    Noop,
    /// An opaque command for the state machine.
    Command(Bytes),
    /// A membership change. It takes effect on a node as soon as it is
    /// appended to its log (see [`crate::membership`]).
    ConfChange(ConfChange),
    /// Opens a client session whose id is this entry's index.
    Register {
        /// Whose session it is.
        owner: Owner,
        /// Hash of the session's secret.
        secret_hash: SecretHash,
    },
    /// A client write on a session (applied at most once per `(session, seq)`).
    Write {
        /// The session.
        session: u64,
        /// Hash of the secret the client presented.
        secret_hash: SecretHash,
        /// The write's number within the session.
        seq: u64,
        /// Lowest seq the client still awaits.
        ack: u64,
        /// The state machine command.
        command: Bytes,
    },
    /// Keeps a session alive.
    KeepAlive {
        /// The session.
        session: u64,
        /// Hash of the secret the client presented.
        secret_hash: SecretHash,
        /// Lowest seq the client still awaits.
        ack: u64,
    },
}

impl Payload {
    /// Bytes of user data carried, used for the memory and batch limits.
    #[inline]
    pub fn data_len(&self) -> usize {
        match self {
            Payload::Noop | Payload::Register { .. } | Payload::KeepAlive { .. } => 0,
            Payload::ConfChange(cc) => match cc {
                ConfChange::Begin { changes, .. } => 16 * changes.len(),
                ConfChange::LeaveJoint => 0,
            },
            Payload::Command(b) | Payload::Write { command: b, .. } => b.len(),
        }
    }

    /// The user data it carries, if any.
    pub fn command(&self) -> Option<&Bytes> {
        match self {
            Payload::Command(b) | Payload::Write { command: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The user data it carries, if any, to change in place (as the log
    /// does when it copies a payload out of a read buffer).
    pub(crate) fn command_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Payload::Command(b) | Payload::Write { command: b, .. } => Some(b),
            _ => None,
        }
    }

    /// Decodes what serde's `Serialize` wrote, by hand (see
    /// [`Reader`]): postcard numbers the variants by position, in the order
    /// they are declared above (the golden tests pin it). Membership changes
    /// are rare and decoded by serde.
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<Payload, DecodeError> {
        Ok(match r.u32()? {
            0 => Payload::Noop,
            1 => Payload::Command(r.bytes()?),
            2 => Payload::ConfChange(r.serde()?),
            3 => Payload::Register { owner: r.u64()?, secret_hash: r.array()? },
            4 => Payload::Write {
                session: r.u64()?,
                secret_hash: r.array()?,
                seq: r.u64()?,
                ack: r.u64()?,
                command: r.bytes()?,
            },
            5 => Payload::KeepAlive { session: r.u64()?, secret_hash: r.array()?, ack: r.u64()? },
            _ => return Err(DecodeError::Malformed),
        })
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
    #[inline]
    pub fn size(&self) -> usize {
        32 + self.payload.data_len()
    }

    /// Decodes one entry as serde's `Serialize` wrote it (its fields in
    /// order), by hand: journal replay's decoder (see [`Reader`]).
    // Inlined into both callers (replay, peer messages), with `Payload::decode`
    // and `Bytes::shared`: as calls they cost replay ~2.5 % more instructions.
    #[inline(always)]
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
        Ok(Entry { term: r.u64()?, index: r.u64()?, time: r.u64()?, payload: Payload::decode(r)? })
    }
}

/// One entry of every kind of payload, with edge values (indexes from 1,
/// term 3): what the hand decoders' differential tests (journal records,
/// peer messages) compare against serde.
#[cfg(test)]
pub(crate) fn every_kind_of_entry() -> alloc::vec::Vec<Entry> {
    use crate::membership::Change;
    use alloc::vec;
    let payloads = [
        Payload::Noop,
        Payload::Command(Bytes::default()),
        Payload::Command(vec![3; 300].into()),
        Payload::ConfChange(ConfChange::Begin {
            joint: true,
            changes: vec![Change::AddVoter { id: 4, inc: 9 }, Change::Remove { id: 1 }],
        }),
        Payload::ConfChange(ConfChange::LeaveJoint),
        Payload::Register { owner: u64::MAX, secret_hash: [0xab; 32] },
        Payload::Write {
            session: 5,
            secret_hash: [0xcd; 32],
            seq: u64::MAX,
            ack: 1 << 35,
            command: b"w".to_vec().into(),
        },
        Payload::KeepAlive { session: 7, secret_hash: [1; 32], ack: 2 },
    ];
    payloads.into_iter().zip(1..).map(|(payload, i)| Entry { term: 3, index: i, time: i << 40, payload }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_entry_is_no_bigger_than_when_bytes_could_not_share() {
        // `Bytes` grew from 16 bytes to 24 to be able to point into a read
        // buffer, but a payload's tag fits in the spare values of `Bytes`'
        // own: the log holds millions of these, and they did not grow.
        assert_eq!(core::mem::size_of::<Payload>(), 80);
        assert_eq!(core::mem::size_of::<Entry>(), 104);
    }
}
