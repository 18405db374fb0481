//! # raftkv — the native host
//!
//! Runs raft-core as a tokio WebSocket server with its journal on disk, and
//! talks to such servers as a client.
//!
//! * [`node`] — the task that owns the Raft core, and node start-up.
//! * [`journal`] — the data directory and the journal on disk (segments,
//!   group commit, recovery).
//! * [`peer`] — peer links: WebSockets at `/raft`, an HMAC handshake, batching.
//! * [`server`] — the HTTP routes: `/raft`, `/client`, `/status`, `/metrics`.
//! * [`protocol`] — the public client protocol (JSON and postcard frames).
//! * [`client`] — the client library ([`Client`]).
//! * [`config`] — the TOML cluster configuration.
//! * [`metrics`] — counters exported by `/metrics`.
//! * [`bench`](mod@bench) — the load generator behind `raftkv bench`.
//! * [`etcd_load`] — its etcd client (gRPC or the JSON gateway), for comparisons.

#![deny(missing_docs)]

pub mod bench;
pub mod client;
pub mod config;
pub mod etcd_load;
pub mod journal;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientOptions, Error};
pub use config::Config;
