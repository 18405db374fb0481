//! host-wasm: a whole raftkv cluster in a browser tab.
//!
//! The [`Driver`] wraps raft-core's deterministic simulator with what a page
//! needs: user actions stamped so that a run replays exactly ([`action`]), a
//! client with a session ([`client`]), an event feed in plain words, and one
//! call that returns the whole observable state ([`view`]). [`workload`] runs
//! one random seed with faults and simulated clients for the page's test mode.
//! The `#[wasm_bindgen]` surface is in [`bindings`]; everything else is plain
//! Rust, tested natively as well as in Node.

pub mod action;
pub mod bindings;
pub mod client;
pub mod committed;
pub mod driver;
pub mod journal_view;
pub mod membership;
pub mod options;
pub mod view;
pub mod words;
pub mod workload;

pub use action::{Action, ClientOp, Op};
pub use driver::{Driver, FeedItem, Refused};
pub use options::Options;
pub use view::ViewOptions;
