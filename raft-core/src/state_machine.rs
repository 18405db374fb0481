//! The state machine the engine drives.
//!
//! The engine owns it and applies committed entries to it synchronously, inside
//! the step that commits them, so a reply can go out right after each apply.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::types::{Bytes, Index};

/// A deterministic state machine: the same commands in the same order must
/// produce the same state and outputs on every replica.
pub trait StateMachine {
    /// Entry `index`, created at cluster time `time`, is about to apply —
    /// every entry, whatever it carries, after the sessions have expired and
    /// before its command (if any) is applied. A machine with deadlines in
    /// cluster time (leases) acts on them here, so an idle cluster's no-ops
    /// still move it.
    fn advance(&mut self, index: Index, time: u64) {
        let _ = (index, time);
    }
    /// Applies the command committed at `index`, created at cluster time `time`
    /// (ticks; never decreasing), and returns its output for the client.
    /// The output is [`Bytes`]: a machine whose outputs repeat (an "ok") can
    /// hand out one shared buffer instead of allocating per command.
    fn apply(&mut self, index: Index, time: u64, command: &[u8]) -> Bytes;
    /// Answers a read-only query against the current state. Reads never enter
    /// the log: the engine calls this once the read is known linearizable.
    fn query(&self, query: &[u8]) -> Vec<u8> {
        let _ = query;
        Vec::new()
    }
    /// Checks a command before it is proposed, so malformed or oversize input
    /// is refused with `BadRequest` instead of entering the log.
    fn validate_command(&self, command: &[u8]) -> Result<(), &'static str> {
        let _ = command;
        Ok(())
    }
    /// Checks a query before it is queued.
    fn validate_query(&self, query: &[u8]) -> Result<(), &'static str> {
        let _ = query;
        Ok(())
    }
    /// The earliest cluster time at which [`StateMachine::advance`] would
    /// change something (a lease's deadline), if any. A leader whose clock
    /// has passed it appends a no-op, which carries the time, so that the
    /// change happens even when no client writes.
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    /// Serialises the whole state (for snapshots).
    fn snapshot(&self) -> Vec<u8>;
    /// A copy of the state as it is now, to be serialised later — possibly
    /// on another thread, while this machine applies on (the engine's
    /// snapshots with [`Config::async_snapshots`](crate::Config::async_snapshots)).
    /// Its [`FrozenState::encode`] must return exactly what
    /// [`StateMachine::snapshot`] returns now. The default encodes at once;
    /// a machine whose state is large overrides it with a copy that is
    /// cheaper to make than its encoding.
    fn freeze(&self) -> Box<dyn FrozenState> {
        Box::new(EncodedState(self.snapshot()))
    }
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError>;
}

/// A state machine's state frozen at one index ([`StateMachine::freeze`]),
/// encoded later. `Send + Sync`: a host encodes it on a thread of its own.
pub trait FrozenState: Send + Sync {
    /// The bytes [`StateMachine::snapshot`] returned when the state was frozen.
    fn encode(&self) -> Vec<u8>;
}

/// A state that was encoded when it was frozen (the default
/// [`StateMachine::freeze`]).
#[derive(Clone, Debug)]
pub struct EncodedState(pub Vec<u8>);

impl FrozenState for EncodedState {
    fn encode(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A snapshot could not be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreError(pub &'static str);

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot restore snapshot: {}", self.0)
    }
}

/// A minimal state machine: a running digest of every command applied, and
/// how many. Two replicas agree exactly when their digests do, which makes it
/// the simulator's default. Its output for each command is the new digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestMachine {
    /// FNV-1a over (index, command) of everything applied.
    pub digest: u64,
    /// Number of commands applied.
    pub count: u64,
}

impl StateMachine for DigestMachine {
    fn apply(&mut self, index: Index, _time: u64, command: &[u8]) -> Bytes {
        let mut h = if self.count == 0 { 0xcbf2_9ce4_8422_2325 } else { self.digest };
        for b in index.to_le_bytes().iter().chain(command) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.digest = h;
        self.count += 1;
        h.to_le_bytes().to_vec().into()
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.digest.to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut v = self.digest.to_le_bytes().to_vec();
        v.extend_from_slice(&self.count.to_le_bytes());
        v
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        if data.len() != 16 {
            return Err(RestoreError("digest snapshot must be 16 bytes"));
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[..8]);
        self.digest = u64::from_le_bytes(a);
        a.copy_from_slice(&data[8..]);
        self.count = u64::from_le_bytes(a);
        Ok(())
    }
}
