//! Counters every task of a node bumps, exported by `/metrics`.
//!
//! Plain relaxed atomics: each counter is read on its own, and a scrape that
//! sees one counter a little ahead of another is fine.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! metrics {
    ($($name:ident: $help:literal,)*) => {
        /// The node's counters (see each field's help text, which `/metrics` prints).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: Counter,)*
        }

        impl Metrics {
            /// Every counter with its name and help text.
            pub fn all(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.get()),)*]
            }
        }
    };
}

metrics! {
    journal_records_total: "Journal records written.",
    journal_bytes_total: "Journal bytes written.",
    journal_losses_found_total: "Recoveries that found durable journal records damaged (the node was flagged lost_data).",
    journal_syncs_total: "Journal fsyncs (one per group-committed batch).",
    journal_inline_syncs_total: "Journal batches the node task wrote and synced itself, the journal thread being idle (journal_inline).",
    journal_segments_created_total: "Journal segments created.",
    journal_segments_deleted_total: "Journal segments deleted.",
    peer_messages_sent_total: "Raft messages handed to peer connections.",
    peer_messages_dropped_total: "Raft messages dropped because a peer queue was full or the peer unknown.",
    peer_messages_received_total: "Raft messages received from authenticated peers.",
    peer_frames_sent_total: "Peer WebSocket frames sent (each a batch of messages).",
    peer_frames_rejected_total: "Peer frames that failed to decode or came from the wrong node.",
    peer_handshakes_ok_total: "Peer handshakes completed.",
    peer_handshakes_failed_total: "Peer handshakes refused or failed (wrong secret, cluster, node, format).",
    peer_connects_failed_total: "Outgoing peer connection attempts that failed.",
    peer_connects_timed_out_total: "Outgoing peer connection attempts given up: no TCP connection within peer_dead_ms, or no handshake within handshake_timeout_ms a step.",
    peer_links_dead_total: "Peer links declared dead: nothing heard within peer_dead_ms (either end); the sender dials again.",
    client_connections_total: "Client WebSocket connections accepted.",
    client_origin_refused_total: "Client connections refused by the Origin check.",
    client_auth_failed_total: "Requests refused (401) for a missing or unknown token.",
    client_forbidden_total: "Client requests refused (forbidden) because the token's role does not allow them.",
    client_requests_total: "Client requests received.",
    client_bad_requests_total: "Client requests answered bad_request by the host (malformed, oversize).",
    client_replies_ok_total: "Client replies with ok=true.",
    client_replies_error_total: "Client replies with ok=false.",
    client_replies_dropped_total: "Client replies whose connection was gone.",
    conn_accepted_total: "TCP connections accepted.",
    conn_refused_limit_total: "Connections closed at once: the node's connection limit (max_connections, fitted to the fd limit).",
    conn_refused_address_total: "Connections closed at once: max_connections_per_address for their address.",
    conn_accept_errors_total: "accept() failures (e.g. out of file descriptors).",
    conn_tls_failed_total: "TLS handshakes that failed (wrong CA, bad certificate, not TLS).",
    conn_handshake_timeouts_total: "Connections closed for not finishing TLS or the HTTP headers within handshake_timeout_ms.",
    client_refused_reserve_total: "/client upgrades refused (503): only reserved_connections left.",
    ws_idle_closed_total: "WebSockets closed for sending nothing within idle_timeout_ms.",
    ws_frame_timeouts_total: "WebSockets closed for not finishing a frame within frame_timeout_ms.",
    ws_frame_too_big_total: "WebSockets closed (1009) for a message over max_transport_frame.",
    ws_queue_overflow_total: "WebSockets closed for owing their peer more than max_queued_bytes.",
    raft_ticks_total: "Raft ticks.",
    raft_elections_total: "Elections this node started (became candidate).",
    raft_leader_terms_total: "Terms this node won.",
    raft_entries_applied_total: "Log entries applied to the state machine.",
    raft_snapshots_total: "Snapshots this node took.",
    raft_snapshots_installed_total: "Snapshots received from a leader and installed.",
    watch_created_total: "Watches started.",
    watch_refused_limit_total: "Watches refused: the connection had max_watches_per_connection open.",
    watch_canceled_slow_total: "Watches cancelled (slow): their connection held more than watch_queue_bytes of frames.",
    watch_canceled_compacted_total: "Watches cancelled (compacted): events they had not received left the window.",
    watch_canceled_no_leader_total: "Watches cancelled (no_leader): no leader for an election timeout.",
    watch_frames_sent_total: "Watch frames (one revision each) handed to connections.",
    watch_events_sent_total: "Watch events handed to connections.",
    watch_progress_sent_total: "Watch progress notifications handed to connections.",
    raft_follower_restarts_total: "Followers a leader saw answer after a restart or with a new incarnation (progress reset).",
    raft_lease_reads_total: "Reads this leader answered on its lease, without a confirmation round.",
    peer_messages_isolated_total: "Raft messages dropped (both ways) while the supervisor isolated this node.",
    live_subscribers_total: "/live subscriptions accepted.",
    live_refused_limit_total: "/live subscriptions refused (503): max_live_subscribers were connected.",
    live_dropped_slow_total: "/live subscribers closed for not taking a frame within watch_slow_ms.",
    live_frames_sent_total: "/live frames written to subscribers.",
}
