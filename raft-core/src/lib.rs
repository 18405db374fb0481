//! # raft-core
//!
//! A sans-IO, deterministic, `no_std` implementation of the Raft consensus
//! algorithm, with the journal records a host persists, and (behind the `sim`
//! feature) a deterministic cluster simulator that checks Raft's safety
//! properties after every event.
//!
//! ## The shape of it
//!
//! A [`Raft`] is one node. It has no clock, no sockets, no files, no threads:
//! a host feeds it inputs and carries out its outputs.
//!
//! * [`Raft::tick`] — one unit of logical time. Election timeouts (randomised in
//!   `[E, 2E)` by a PRNG the host seeds) and heartbeats are counted in ticks.
//! * [`Raft::step`] — a message from a peer.
//! * [`Raft::propose`] — a client command (only a leader accepts it).
//! * [`Raft::submit`] — a client request (register, write on a session,
//!   keep-alive, linearizable read); its reply comes back under the same token.
//! * [`Raft::persisted`] — journal records up to a sequence number are durable.
//!
//! After each input the host drains a [`Ready`]: journal records to persist,
//! messages to send, committed entries applied to the [`StateMachine`] (with
//! their outputs, to answer clients), and events. [`Ready`]'s documentation
//! spells out the persistence contract and shows a driving loop.
//!
//! ## Reading order
//!
//! [`types`] → [`membership`] → [`entry`] → [`log`] → [`message`] → [`journal`] → [`config`] → [`quorum`]
//! → [`progress`] → [`election`] → [`replication`] → [`read`] → [`lease`] → [`follower_read`] → [`apply`] →
//! [`storage`] → [`outbox`] → [`role`] → [`ready`] → [`raft`] (the engine: the
//! inputs, the term rules, one step function per role, commit and apply) →
//! [`client`] → [`session`] → [`kv`] → [`snapshot`] → `checker` → `sim`. Each
//! module imports only modules before it in this order, except that [`raft`]
//! sits above all the engine's pieces. `docs/ARCHITECTURE.md` in the
//! repository is the map of the whole project: the host contract, the
//! formats, the durability rules and the path of a write and of a read.
//!
//! ## Safety, and how it is checked
//!
//! The simulator (feature `sim`) runs whole clusters on a virtual clock with a
//! seeded PRNG: message loss, duplication, reordering, partitions, slow disks,
//! and crashes that lose unsynced journal records (tearing the last one). After
//! every event it checks election safety, log matching, leader completeness,
//! state machine safety and that nothing committed is ever lost. The `bugs`
//! feature switches on deliberate protocol bugs so tests can show those checks
//! catch them.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
// The `std` feature (hardware CRC-32C detection) and the tests use std;
// everything else is `no_std`.
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod apply;
#[cfg(feature = "checker")]
pub mod checker;
pub mod client;
pub mod codec;
pub mod config;
pub mod configs;
pub mod crc;
pub mod election;
pub mod entry;
pub mod follower_read;
pub mod hash;
pub mod journal;
pub mod kv;
pub mod lease;
pub mod log;
pub mod membership;
pub mod message;
pub mod outbox;
pub mod progress;
pub mod quorum;
pub mod raft;
pub mod read;
pub mod ready;
pub mod replication;
pub mod rng;
pub mod role;
pub mod session;
pub mod snapshot;
pub mod state_machine;
pub mod storage;
pub mod types;
mod varint;

#[cfg(feature = "sim")]
pub mod sim;

pub use client::{ClientError, ClientReply, ClientRequest, ClientToken, Owner, SecretHash};
pub use entry::{Entry, Payload};
pub use kv::{KvOp, KvOutput, KvStore};
pub use membership::{Change, ConfChange, Member, Membership};
pub use message::{Body, Message};
pub use raft::{Applied, Bugs, Config, ConfigError, Event, ProposeError, Raft, Ready, StepError};
pub use state_machine::{DigestMachine, RestoreError, StateMachine};
pub use types::{Bytes, HardState, Index, NodeId, Role, Seq, Term};
