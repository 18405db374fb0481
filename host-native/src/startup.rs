//! Start-up wiring: everything `raftkv node` does before the node serves —
//! check the data directory, replay the journal, recover the core, start the
//! journal thread, one sender task per peer, the node task and the HTTP
//! routes — and then waiting on them.
//!
//! The order matters: the journal is replayed and the port bound before any
//! task starts, so a node that cannot start says why and exits without
//! having talked to anyone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use raft_core::kv::KvLimits;
use raft_core::{KvStore, NodeId, Raft};

use crate::config::Config;
use crate::inbox::Inbox;
use crate::journal::{check_identity, spawn_disk_thread, Journal};
use crate::metrics::Metrics;
use crate::node::NodeTask;
use crate::peer::handshake::PeerAuth;
use crate::peer::outgoing::{run_sender, LinkConfig};
use crate::routes::{self, NodeHandle};

pub use crate::journal::StartError;

/// Capacity of the node's inbox.
const INBOX_CAPACITY: usize = 4096;

/// Starts node `id` of `config` and serves until the process ends. Refuses to
/// start (with a message naming the problem) on a data directory of another
/// node, a corrupt journal, or an address in use.
/// `insecure`: allow plain `ws://` on an address other than loopback.
pub async fn run(config: Config, id: NodeId, data_dir: Option<PathBuf>, insecure: bool) -> Result<(), StartError> {
    let me = config
        .node(id)
        .cloned()
        .ok_or_else(|| StartError(format!("node {id} is not in the configuration (ids: {:?})", config.ids())))?;
    let tls = crate::tls::load_node(&config, id).map_err(|e| StartError(format!("TLS: {e}")))?;
    if tls.is_none() && !me.listen.ip().is_loopback() && !insecure {
        return Err(StartError(format!(
            "refusing to listen on {} without TLS: add [tls] (see `raftkv certs`), or pass --insecure",
            me.listen
        )));
    }
    let dir = data_dir.unwrap_or_else(|| config.node_dir(id));
    check_identity(&dir, &config.cluster_id, id)?;
    let metrics = Arc::new(Metrics::default());
    let (journal, state, snapshot) = Journal::open(&dir, config.limits.segment_bytes, metrics.clone())?;
    tracing::info!(
        node = id,
        dir = %dir.display(),
        term = state.hard.term,
        last_index = state.log.last_index(),
        last_seq = state.last_seq,
        "journal replayed"
    );
    let listener = tokio::net::TcpListener::bind(me.listen).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse { " (is another node running there?)" } else { "" };
        StartError(format!("cannot listen on {}: {e}{hint}", me.listen))
    })?;
    if config.tokens.is_empty() {
        tracing::warn!(
            "client authentication is off (no [[tokens]] in the configuration): anyone who can reach {} can read, \
             write and ask /status and /metrics",
            me.listen
        );
    } else {
        tracing::info!(tokens = config.tokens.len(), "client authentication is on");
    }
    if config.uses_dev_secret() {
        tracing::warn!("using the built-in development secret: fine on one machine, change it for anything else");
    }

    let mut raft_cfg = raft_core::Config::new(id, config.ids());
    let mut seed = [0u8; 8];
    // A fresh seed per start keeps restarted nodes from timing out in lockstep.
    let _ = getrandom::fill(&mut seed);
    raft_cfg.seed = u64::from_le_bytes(seed) ^ id;
    raft_cfg.sessions.timeout_ticks = config.session_timeout_ticks();
    raft_cfg.sessions.max_per_owner = config.limits.max_sessions_per_principal;
    raft_cfg.snapshot_entries = config.limits.snapshot_entries;
    // Lease TTLs are milliseconds; the store counts them in ticks.
    let kv = KvStore::with_limits(KvLimits { tick_ms: config.tick_ms, ..KvLimits::default() });
    let raft = Raft::recover(raft_cfg, state, snapshot.as_deref(), kv).map_err(|e| StartError(e.to_string()))?;

    let (durable_tx, durable_rx) = mpsc::channel(64);
    let disk = spawn_disk_thread(journal, durable_tx)
        .map_err(|e| StartError(format!("cannot start the journal thread: {e}")))?;

    let config = Arc::new(config);
    let auth = Arc::new(PeerAuth::new(&config, id));
    let mut peers = HashMap::new();
    for peer in config.nodes.iter().filter(|n| n.id != id) {
        let (tx, rx) = mpsc::channel(config.limits.peer_queue);
        peers.insert(peer.id, tx);
        tokio::spawn(run_sender(
            peer.id,
            peer.url(),
            auth.clone(),
            rx,
            LinkConfig {
                batch_bytes: config.limits.peer_batch_bytes,
                max_frame: config.limits.max_transport_frame,
                tls: tls.as_ref().map(|t| t.peers.clone()),
            },
            metrics.clone(),
        ));
    }

    let (inbox, inputs) = Inbox::channel(INBOX_CAPACITY);
    let handle = NodeHandle { id, config: config.clone(), inbox, metrics: metrics.clone(), auth };
    let task = NodeTask::new(raft, peers, disk, metrics);
    let node = tokio::spawn(task.run(inputs, durable_rx, Duration::from_millis(config.tick_ms)));
    tracing::info!(node = id, listen = %me.listen, url = %me.url(), "serving /raft, /client, /status, /metrics");
    if tls.is_some() {
        tracing::info!("TLS on every route; peers use mutual TLS");
    }
    let server = tokio::spawn(routes::serve(listener, handle, tls.map(|t| t.acceptor)));
    tokio::select! {
        r = node => Err(StartError(format!("node task ended: {r:?}"))),
        r = server => Err(StartError(format!("server ended: {r:?}"))),
    }
}
