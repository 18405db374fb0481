//! Start-up wiring: everything `raftkv node` does before the node serves —
//! check the data directory, replay the journal, recover the core, start the
//! journal thread, one sender task per peer, the node task and the HTTP
//! routes — and then waiting on them.
//!
//! The order matters: the journal is replayed and the port bound before any
//! task starts, so a node that cannot start says why and exits without
//! having talked to anyone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use raft_core::kv::KvLimits;
use raft_core::{KvStore, NodeId, Raft};

use crate::config::{Config, NodeConfig};
use crate::disk::Disk;
use crate::identity::{self, Identity, SETTINGS_FILE};
use crate::inbox::{AddressBook, Inbox};
use crate::journal::{write_file_atomically, Journal};
use crate::metrics::Metrics;
use crate::node::{Links, NodeTask, Own};
use crate::peer::handshake::PeerAuth;
use crate::peer::join::JoinAnswer;
use crate::peer::outgoing::LinkConfig;
use crate::routes::{self, NodeHandle};
use crate::snapshot_builder::SnapshotBuilder;

pub use crate::journal::StartError;

/// Capacity of the node's inbox.
const INBOX_CAPACITY: usize = 4096;

/// How a node starts besides its id and data directory.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// On an empty data directory: start a new one-voter cluster of this
    /// node instead of joining one.
    pub bootstrap: bool,
    /// A member to join through (`--join`); with no TOML file, where the
    /// cluster's settings come from.
    pub join: Option<String>,
    /// The shared secret (`--join` without a TOML file).
    pub secret: Option<String>,
    /// Where to listen (`--join` without a TOML file).
    pub listen: Option<SocketAddr>,
    /// This node's URL (`--join` without a TOML file; default `ws://LISTEN`).
    pub url: Option<String>,
    /// Allow plain `ws://` on an address other than loopback.
    pub insecure: bool,
    /// `--join` without a TOML file into a TLS cluster: the cluster's CA and
    /// the directory of this node's certificate and key (`node-ID.pem`,
    /// `node-ID-key.pem`, signed by that CA). Certificates belong to each
    /// machine, so they are never taken from the member's settings.
    pub tls: Option<crate::config::TlsConfig>,
    /// Started by `raftkv cluster`: read its control lines (isolate,
    /// rejoin) from stdin (see [`crate::control`]).
    pub supervised: bool,
}

/// How long to wait between attempts to reach the cluster.
const JOIN_RETRY: Duration = Duration::from_millis(500);

/// Asks the members at `urls` (following `not_leader` hints) until one
/// answers a proven join request with an admission or a membership, trying
/// forever: a node that cannot reach its cluster waits for it.
async fn reach_cluster(
    urls: Vec<String>,
    me: (NodeId, &str, u64),
    secret: &str,
    step: Duration,
    tls: Option<&Arc<tokio_rustls::rustls::ClientConfig>>,
) -> JoinAnswer {
    let (id, me, inc) = me;
    let mut i = 0usize;
    let mut hinted: Option<String> = None;
    let mut said = false;
    loop {
        let url = hinted.take().unwrap_or_else(|| urls[i % urls.len()].clone());
        i += 1;
        let attempt = async {
            let join_url = format!("{}/join", url.trim_end_matches('/'));
            // A wss:// member: the CA checks it (and this node shows its
            // own certificate, as on its peer links).
            let stream = crate::tls::dial(&join_url, tls).await?;
            let (ws, _) = tokio_tungstenite::client_async(join_url.as_str(), stream)
                .await
                .map_err(|e| format!("cannot connect to {join_url}: {e}"))?;
            let mut ws = crate::peer::outgoing::binary_frames(ws);
            crate::peer::join::request(&mut ws, id, me, inc, secret, step).await
        };
        match tokio::time::timeout(step * 3, attempt).await {
            Ok(Ok(a)) => match crate::peer::join::redirect(&a) {
                Some(Some(leader)) => hinted = Some(leader),
                Some(None) => tokio::time::sleep(JOIN_RETRY).await,
                None => match &a.result {
                    Ok(_) => return a,
                    Err(f) => {
                        tracing::info!(
                            member = %url,
                            error = f.error.as_str(),
                            message = f.message.as_deref().unwrap_or(""),
                            "the cluster did not admit this node yet; retrying"
                        );
                        tokio::time::sleep(JOIN_RETRY).await;
                    }
                },
            },
            other => {
                let e = match other {
                    Ok(Err(e)) => e,
                    _ => "timed out".to_string(),
                };
                if !said {
                    tracing::info!(member = %url, error = %e, "waiting to reach the cluster");
                    said = true;
                } else {
                    tracing::debug!(member = %url, error = %e, "cannot reach the cluster yet");
                }
                tokio::time::sleep(JOIN_RETRY).await;
            }
        }
    }
}

/// The cluster settings and data directory of a node started with
/// `--join` and no TOML file: those saved in its directory by an earlier
/// start, or none yet.
fn saved_settings(dir: &Path) -> Result<Option<Config>, StartError> {
    let path = dir.join(SETTINGS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Config::load(Some(&path)).map(Some).map_err(|e| StartError(e.to_string()))
}

/// Starts node `id` and serves until the process ends. `config`: the TOML
/// file (none with `--join`). Refuses to start (with a message naming the
/// problem) on a data directory of another cluster or node, a corrupt
/// journal, or an address in use.
pub async fn run(
    config: Option<Config>,
    id: NodeId,
    data_dir: Option<PathBuf>,
    opts: StartOptions,
) -> Result<(), StartError> {
    if id == 0 || id > crate::protocol::MAX_SAFE_INTEGER {
        return Err(StartError("--id must be from 1 to 2^53-1".into()));
    }
    // Without a TOML file (a node that joined): its settings come from the
    // member it joins through, and are kept in its data directory.
    let (mut config, dir, joined) = match config {
        Some(c) => {
            let dir = data_dir.unwrap_or_else(|| c.node_dir(id));
            (c, dir, false)
        }
        None => {
            if opts.join.is_none() {
                return Err(StartError("a node needs --config, or --join ws://MEMBER to join a cluster".into()));
            }
            let dir = data_dir.unwrap_or_else(|| PathBuf::from("raftkv-data").join(format!("node-{id}")));
            let listen =
                opts.listen.ok_or_else(|| StartError("--join needs --listen ADDR (and usually --url URL)".into()))?;
            let scheme = if opts.tls.is_some() { "wss" } else { "ws" };
            let url = opts.url.clone().unwrap_or_else(|| format!("{scheme}://{listen}"));
            crate::protocol::check_url(&url).map_err(StartError)?;
            let secret = opts.secret.clone().ok_or_else(|| {
                StartError("--join needs the cluster's secret (--secret-file or RAFTKV_SECRET)".into())
            })?;
            let mut c = match saved_settings(&dir)? {
                Some(c) => c,
                None => {
                    // A placeholder until the member sends the settings.
                    let mut c = Config::default_local();
                    c.secret = secret.clone();
                    c.data_dir = dir.clone();
                    c.nodes = vec![NodeConfig { id, listen, url: Some(url) }];
                    c
                }
            };
            // Given again on a later start: this start's paths win.
            if let Some(t) = &opts.tls {
                c.tls = Some(t.clone());
            }
            (c, dir, true)
        }
    };
    let me = config
        .node(id)
        .cloned()
        .ok_or_else(|| StartError(format!("node {id} is not in the configuration (ids: {:?})", config.ids())))?;
    let tls = crate::tls::load_node(&config, id).map_err(|e| StartError(format!("TLS: {e}")))?;
    if tls.is_none() && !me.listen.ip().is_loopback() && !opts.insecure {
        return Err(StartError(format!(
            "refusing to listen on {} without TLS: add [tls] (see `raftkv certs`), or pass --insecure",
            me.listen
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| StartError(format!("cannot create {}: {e}", dir.display())))?;

    // A directory of another node is refused before anything else (even
    // before the port: that node may be running).
    let found = Identity::load(&dir)?;
    if let Some(i) = &found {
        i.check(&dir, (!joined).then_some(config.cluster_id.as_str()), id)?;
    }
    let listener = tokio::net::TcpListener::bind(me.listen).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse { " (is another node running there?)" } else { "" };
        StartError(format!("cannot listen on {}: {e}{hint}", me.listen))
    })?;
    let ident = match found {
        Some(i) => i,
        None => {
            if let Some(aside) = identity::set_aside_unidentified(&dir)? {
                tracing::warn!(
                    dir = %dir.display(),
                    aside = %aside.display(),
                    "the data directory has a journal but no identity file: moved it aside; starting as a new \
                     incarnation"
                );
            }
            let ident = if opts.bootstrap {
                tracing::info!(node = id, "bootstrapping a new one-voter cluster");
                identity::single(&config.cluster_id, id)?
            } else {
                let inc = identity::random_incarnation()?;
                let urls = match &opts.join {
                    Some(u) => vec![u.clone()],
                    None => config.nodes.iter().filter(|n| n.id != id).map(|n| n.url()).collect(),
                };
                if urls.is_empty() {
                    return Err(StartError(
                        "an empty data directory and no other node to join: start it with --bootstrap".into(),
                    ));
                }
                tracing::info!(node = id, inc, "empty data directory: asking the cluster for its configuration");
                let step = Duration::from_millis(config.limits.handshake_timeout_ms);
                let peers_tls = tls.as_ref().map(|t| t.peers.clone());
                let a = reach_cluster(urls, (id, &me.url(), inc), &config.secret, step, peers_tls.as_ref()).await;
                if joined {
                    let mut c = Config::parse_unchecked(&a.settings).map_err(|e| StartError(e.to_string()))?;
                    c.secret = config.secret.clone();
                    c.data_dir = dir.clone();
                    c.nodes.retain(|n| n.id != id);
                    c.nodes.push(me.clone());
                    // Certificates are per machine: the joiner's own (--ca,
                    // --tls-dir), never the paths of the member's machine.
                    c.tls = config.tls.clone();
                    c.validate().map_err(|e| StartError(format!("the settings the member sent: {e}")))?;
                    write_file_atomically(&dir, SETTINGS_FILE, c.to_toml().as_bytes())
                        .map_err(|e| StartError(format!("cannot save the cluster settings: {e}")))?;
                    config = c;
                }
                let mut ident = identity::joining(&a.cluster, &a.cluster_name, id, a.bootstrap)?;
                ident.incarnation = inc;
                ident
            };
            ident.create(&dir)?;
            ident
        }
    };
    let metrics = Arc::new(Metrics::default());
    let (journal, state, snapshot) = Journal::open(&dir, config.limits.segment_bytes, metrics.clone())?;
    tracing::info!(
        node = id,
        dir = %dir.display(),
        cluster = %ident.cluster_uuid,
        incarnation = ident.incarnation,
        term = state.hard.term,
        last_index = state.log.last_index(),
        last_seq = state.last_seq,
        "journal replayed"
    );
    if config.tokens.is_empty() {
        tracing::warn!(
            "client authentication is off (no [[tokens]] in the configuration): anyone who can reach {} can read, \
             write, change the membership and ask /status and /metrics",
            me.listen
        );
    } else {
        tracing::info!(tokens = config.tokens.len(), "client authentication is on");
    }
    if config.uses_dev_secret() {
        tracing::warn!("using the built-in development secret: fine on one machine, change it for anything else");
    }

    let mut seed = [0u8; 8];
    // A fresh seed per start keeps restarted nodes from timing out in lockstep.
    let _ = getrandom::fill(&mut seed);
    let mut raft_cfg = core_config(&config, &ident, u64::from_le_bytes(seed) ^ id);
    // Counted only once the journal replayed: a start that fails before
    // it talked to anyone needs no number of its own.
    raft_cfg.epoch = identity::next_epoch(&dir)?;
    tracing::info!(node = id, epoch = raft_cfg.epoch, "start number (epoch) recorded");
    // Lease TTLs are milliseconds; the store counts them in ticks.
    // The address map is the cluster's: client range reads skip it (and
    // the client protocol refuses its keys in a get or a write).
    let window = raft_core::kv::watch::WindowLimits {
        max_events: config.limits.watch_window_events,
        max_bytes: config.limits.watch_window_bytes,
    };
    // Clients choose the keys: the table the store finds them in is seeded
    // at random, so they cannot aim them all at one bucket.
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| StartError(format!("no system randomness: {e}")))?;
    let kv = KvStore::with_limits(KvLimits {
        tick_ms: config.tick_ms,
        hidden: crate::protocol::RESERVED_PREFIX,
        window,
        hash_seed: u64::from_le_bytes(seed),
        ..KvLimits::default()
    });
    let raft = Raft::recover(raft_cfg, state, snapshot.as_deref(), kv).map_err(|e| StartError(e.to_string()))?;

    let (durable_tx, durable_rx) = mpsc::channel(64);
    let disk = Disk::spawn(journal, durable_tx, metrics.clone())
        .map_err(|e| StartError(format!("cannot start the journal thread: {e}")))?;

    let config = Arc::new(config);
    let auth = Arc::new(PeerAuth::for_cluster(&ident.cluster_uuid, &config.secret, id, ident.incarnation));
    // The TOML file's nodes are known from the start; the others come from
    // the replicated address map as the log is applied.
    let addrs = AddressBook::default();
    for n in &config.nodes {
        addrs.set(n.id, &n.url());
    }
    let links = Links {
        auth: auth.clone(),
        link: LinkConfig::new(&config.limits, tls.as_ref().map(|t| t.peers.clone())),
        queue: config.limits.peer_queue,
    };
    let (inbox, inputs) = Inbox::channel(INBOX_CAPACITY);
    let inc = ident.incarnation;
    let bootstrap = ident.bootstrap.clone();
    let live = crate::live::LiveHub::new(config.limits.max_live_subscribers);
    let isolation = Arc::new(crate::control::Isolation::default());
    if opts.supervised {
        tokio::spawn(crate::control::run(tokio::io::stdin(), isolation.clone()));
    }
    let handle = NodeHandle {
        id,
        live: live.clone(),
        config: config.clone(),
        inbox,
        metrics: metrics.clone(),
        auth,
        identity: Arc::new(ident),
        addrs: addrs.clone(),
    };
    let progress_ticks = (config.limits.watch_progress_ms / config.tick_ms).max(1);
    let task =
        NodeTask::new(raft, links, addrs, disk, metrics, Own { inc, bootstrap, auto_readmit: config.auto_readmit })
            .with_watch_limits(progress_ticks, Duration::from_millis(config.limits.watch_slow_ms))
            .with_live(live, isolation)
            .with_inline_sync(config.journal_inline)
            .with_snapshot_builder(SnapshotBuilder::new(dir.join("snapshots")));
    let node = tokio::spawn(task.run(inputs, durable_rx, Duration::from_millis(config.tick_ms)));
    tracing::info!(node = id, listen = %me.listen, url = %me.url(), "serving /raft, /join, /client, /live, /status, /metrics");
    if tls.is_some() {
        tracing::info!("TLS on every route; peers use mutual TLS");
    }
    let server = tokio::spawn(routes::serve(listener, handle, tls.map(|t| t.acceptor)));
    tokio::select! {
        r = node => Err(StartError(format!("node task ended: {r:?}"))),
        r = server => Err(StartError(format!("server ended: {r:?}"))),
    }
}

/// The core's configuration for node `ident.node_id`: the bootstrap voters
/// of its data directory (every node of the cluster holds the same), its
/// limits from the TOML settings, and `seed` for its timers.
pub fn core_config(config: &Config, ident: &Identity, seed: u64) -> raft_core::Config {
    let mut c = raft_core::Config::new(ident.node_id, ident.bootstrap_ids());
    // Bound at bootstrap: a node votes only as the incarnation named here.
    c.voters = ident.bootstrap.iter().map(|m| raft_core::Member { id: m.id, inc: m.inc }).collect();
    c.inc = ident.incarnation;
    c.seed = seed;
    c.sessions.timeout_ticks = config.session_timeout_ticks();
    c.sessions.max_per_owner = config.limits.max_sessions_per_principal;
    c.snapshot_entries = config.limits.snapshot_entries;
    // Snapshots are encoded and stored on a blocking thread, not on the node
    // task (crate::snapshot_builder): the node task must drain the jobs.
    c.async_snapshots = true;
    c.max_promotion_lag = config.limits.max_promotion_lag;
    if config.lease_reads {
        // The clock the node task passes in counts microseconds.
        let tick = config.tick_ms.saturating_mul(1_000);
        c.lease_reads = Some(raft_core::lease::LeaseTiming { tick, drift_ppm: config.lease_drift_ppm });
    }
    c
}
