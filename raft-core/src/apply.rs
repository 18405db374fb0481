//! The applied state: the state machine, the session table, and how one
//! committed entry changes them.
//!
//! Applying is the same on every replica and depends only on the entry:
//! first the cluster clock advances to the entry's timestamp, then idle
//! sessions expire, then the state machine advances to the entry (where
//! leases expire, see [`StateMachine::advance`]), then the command runs
//! (clock, expiry, command; see docs/ARCHITECTURE.md §7), so every replica
//! expires the same sessions and leases at the same log position. The engine calls `Machine::apply` for each newly committed
//! entry, in index order, inside the step that committed it, and answers the
//! client waiting for that entry (if it is the leader) before the next one.

use crate::client::{ClientError, ClientReply};
use crate::entry::{Entry, Payload};
use crate::session::{SessionLimits, Sessions};
use crate::state_machine::StateMachine;
use crate::types::{Bytes, Index};

/// What the replicated state says about one applied entry.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The reply for the client that proposed it through a session, if the
    /// entry is a client request (register, write, keep-alive).
    pub reply: Option<Result<ClientReply, ClientError>>,
    /// The state machine's output for a raw command.
    pub output: Bytes,
}

/// The state machine and session table, as of `index`.
#[derive(Debug)]
pub(crate) struct Machine<S> {
    /// The state machine.
    pub sm: S,
    /// The replicated session table (part of the applied state, like `sm`).
    pub sessions: Sessions,
    /// Highest index applied.
    pub index: Index,
    /// The local limits (a snapshot's table takes these, not the sender's).
    limits: SessionLimits,
}

impl<S: StateMachine> Machine<S> {
    /// A fresh state machine at `index` (a snapshot restored later fills it).
    pub fn new(sm: S, limits: SessionLimits, no_dedup: bool, index: Index) -> Self {
        let mut sessions = Sessions::new(limits);
        sessions.no_dedup = no_dedup;
        Machine { sm, sessions, index, limits }
    }

    /// Applies the entry right after `index`.
    pub fn apply(&mut self, entry: &Entry) -> Outcome {
        debug_assert_eq!(entry.index, self.index + 1, "entries apply in order, each once");
        let (index, time) = (entry.index, entry.time);
        self.sessions.advance(time);
        self.sm.advance(index, time);
        let sm = &mut self.sm;
        let mut output = Bytes::default();
        let reply = match &entry.payload {
            Payload::Noop | Payload::ConfChange(_) => None,
            Payload::Command(data) => {
                output = sm.apply(index, time, data);
                None
            }
            Payload::Register { owner, secret_hash } => Some(
                self.sessions.register(index, *owner, *secret_hash).map(|session| ClientReply::Registered { session }),
            ),
            Payload::Write { session, secret_hash, seq, ack, command } => Some(
                self.sessions
                    .write(*session, secret_hash, *seq, *ack, || sm.apply(index, time, command))
                    .map(|output| ClientReply::Written { output }),
            ),
            Payload::KeepAlive { session, secret_hash, ack } => {
                Some(self.sessions.keep_alive(*session, secret_hash, *ack).map(|_| ClientReply::KeptAlive))
            }
        };
        self.index = index;
        Outcome { reply, output }
    }

    /// Replaces the state with a snapshot's, as of `index`.
    pub fn restore(
        &mut self,
        index: Index,
        state: &[u8],
        sessions: Sessions,
    ) -> Result<(), crate::state_machine::RestoreError> {
        self.sm.restore(state)?;
        let no_dedup = self.sessions.no_dedup;
        self.sessions = sessions;
        self.sessions.set_limits(self.limits);
        self.sessions.no_dedup = no_dedup;
        self.index = index;
        Ok(())
    }
}
