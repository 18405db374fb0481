//! # raftkv — the native host
//!
//! Runs raft-core as a tokio WebSocket server with its journal on disk, and
//! talks to such servers as a client. The `raftkv` binary (`src/bin/raftkv/`:
//! the CLI, `raftkv cluster` and the `raftkv bench` load generator) is built
//! on this library; the load generator and its etcd client are modules of
//! the binary only.
//!
//! ## Floor plan
//!
//! Each module imports only modules above it in this list, so the crate
//! reads top to bottom and no two files import each other:
//!
//! * Shared vocabulary, importing nothing of this crate:
//!   * [`config`] — the TOML cluster configuration.
//!   * [`metrics`] — counters exported by `/metrics`.
//!   * [`protocol`] — the public client protocol (JSON and postcard frames).
//!   * [`auth`] — client tokens (stored as hashes), roles, and which
//!     request needs which role.
//!   * [`watches`] — the node's open watches over the store's window of
//!     recent events, and the bounded queue each connection takes its
//!     watch frames from.
//!   * [`inbox`] — what the I/O tasks send to the node task ([`inbox::Input`]),
//!     and the [`inbox::Inbox`] they send it with.
//!   * [`control`] — a node's private control channel from `raftkv cluster`
//!     (stdin lines: isolate, rejoin).
//!   * [`live`] — the live view's feed: the status frames `/live` streams,
//!     coalesced to at most 10 a second.
//!   * [`tls`] — rustls: the node's server side, mutual TLS for peers, the
//!     client side, [`tls::dial`], the development CA.
//!   * [`http`] — a plain HTTP GET of `/status` and the like (hyper's client).
//! * The server, bottom-up:
//!   * [`listen`] — the accept loop and every limit on what an outsider's
//!     connection can make the node hold (counts, timeouts, queued bytes).
//!   * [`journal`] — the data directory and the journal on disk (segments,
//!     group commit, recovery).
//!   * [`identity`] — the data directory's identity: cluster UUID, node id,
//!     incarnation, the bound bootstrap configuration.
//!   * [`backup`] — snapshot files: inspect one, restore one as a new cluster.
//!   * [`node`] — the node task, the one task that owns the Raft core.
//!   * [`peer`] — peer links: the handshake, batch frames, the sending and
//!     the receiving side of a link, and `/join`.
//!   * [`supervisor`] — the node processes `raftkv cluster` runs, and what
//!     its web page's controls do to them (kill -9, restart, SIGSTOP, isolate).
//!   * [`routes`] — the HTTP routes: `/raft`, `/client`, `/status`,
//!     `/metrics`, and the demo page's server.
//!   * [`startup`] — start-up wiring: [`startup::run`] is `raftkv node`.
//! * The client side:
//!   * [`client`] — the client library ([`Client`]), over [`protocol`].
//!
//! The demo page's server ([`routes::demo`]) and `raftkv status` read the
//! nodes' `/status` with [`http`], as any other program would.

#![deny(missing_docs)]

pub mod auth;
pub mod backup;
pub mod client;
pub mod config;
pub mod control;
pub mod disk;
pub mod http;
pub mod identity;
pub mod inbox;
pub mod journal;
pub mod listen;
pub mod live;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod protocol;
pub mod routes;
pub mod snapshot_builder;
pub mod startup;
pub mod supervisor;
pub mod tls;
pub mod watches;

pub use client::{Client, ClientOptions, Error, WatchOptions, WatchResponse, WatchStream};
pub use config::Config;
/// The operations [`Client::execute`] runs and their answers: raft-core's.
pub use raft_core::kv::{KvOp, KvOutput};
