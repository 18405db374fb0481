//! Links between nodes: WebSockets at `/raft`, an authenticating handshake,
//! batched frames, reconnection with back-off.
//!
//! Each node dials every peer and uses that connection only to *send*; it
//! receives on the connections its peers dialled. Two one-way links per pair
//! avoid deciding which of two simultaneous dials wins.
//!
//! * [`handshake`] — both sides prove the cluster's secret (HMAC over each
//!   other's nonce); frames `RKVH`.
//! * [`batch`] — after `Welcome`, frames `RKVB` of postcard `(seq,
//!   Vec<Message>)` with an HMAC under the key the handshake derived; a frame
//!   that fails it, or is over the transport limit, closes the link.
//! * [`outgoing`] — the dialer: one task per peer, fed by the node task.
//! * [`incoming`] — the acceptor: a `/raft` connection, feeding the node task.
//! * [`join`] — `/join`: a new node proves the secret and asks to enter as a
//!   learner; it gets the cluster's settings and bootstrap configuration.
//!
//! `outgoing` and `incoming` use `handshake` and `batch`; those two use
//! neither each other nor the links.

pub mod batch;
pub mod handshake;
pub mod incoming;
pub mod join;
pub mod outgoing;
