//! The cluster configuration: one TOML file shared by every node of a cluster.
//!
//! Every node reads the same file and is told which entry it is (`--id`). The
//! file names the cluster, the shared secret peers prove to each other, every
//! node's listen address and the URL clients and peers use to reach it, the data
//! directory, the tick length, the browser origins allowed to drive `/client`,
//! and the limits. With no file, [`Config::default_local`] describes three nodes
//! on 127.0.0.1 (ports 7001–7003) and the demo origin `http://127.0.0.1:8080`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use raft_core::NodeId;

use crate::disk::InlineSync;

/// The secret of the embedded default configuration. Anyone can read it here,
/// so a node using it logs a warning.
pub const DEV_SECRET: &str = "raftkv-dev-secret-change-me";

/// The embedded default configuration: three nodes on loopback.
pub const DEFAULT_CONFIG: &str = r#"# raftkv: three nodes on this machine (the embedded default).
cluster_id = "raftkv-local"
# Peers prove they know this secret (HMAC challenge-response); it never crosses
# the wire. Change it for anything but a local try-out.
secret = "raftkv-dev-secret-change-me"
data_dir = "raftkv-data"
tick_ms = 10
# Client sessions idle this long expire (clients send keep-alives when idle).
session_timeout_ms = 60000
# Browser pages from these origins may use /client (non-browser clients send no
# Origin header and are always allowed).
allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]

[[nodes]]
id = 1
listen = "127.0.0.1:7001"
url = "ws://127.0.0.1:7001"

[[nodes]]
id = 2
listen = "127.0.0.1:7002"
url = "ws://127.0.0.1:7002"

[[nodes]]
id = 3
listen = "127.0.0.1:7003"
url = "ws://127.0.0.1:7003"
"#;

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id (not 0; unique in the cluster).
    pub id: NodeId,
    /// Address the node's HTTP/WebSocket server binds (`/raft`, `/client`,
    /// `/status`, `/metrics` all share it).
    pub listen: SocketAddr,
    /// Base URL peers and clients use to reach the node, e.g.
    /// `ws://127.0.0.1:7001`; it is what `not_leader` replies carry as the
    /// leader's `addr`. Defaults to `ws://{listen}`.
    #[serde(default)]
    pub url: Option<String>,
}

impl NodeConfig {
    /// The base WebSocket URL of the node.
    pub fn url(&self) -> String {
        match &self.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("ws://{}", self.listen),
        }
    }
}

/// Limits that protect a node from its inputs. The defaults suit most uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest client frame answered normally; a bigger one (up to
    /// `max_transport_frame`) gets `bad_request`. Must hold a `cas` with a
    /// 1 MiB `expect` and a 1 MiB `value`.
    pub max_client_frame: usize,
    /// Largest WebSocket message read at all; the connection is closed (code
    /// 1009) on a bigger one. Also bounds peer frames.
    pub max_transport_frame: usize,
    /// Largest batch of peer messages sent in one frame (one larger message
    /// still goes alone).
    pub peer_batch_bytes: usize,
    /// Messages queued for one peer before new ones are dropped (Raft resends).
    pub peer_queue: usize,
    /// Requests one client connection may have in flight; beyond it the
    /// connection stops reading until replies go out.
    pub client_inflight: usize,
    /// A journal segment is closed and a new one begun past this size.
    pub segment_bytes: u64,
    /// A node snapshots its state every this many applied entries; the journal
    /// and the in-memory log then drop what the snapshot covers.
    pub snapshot_entries: u64,
    /// Connections a node holds open at once (peers, clients, `/status`);
    /// more are closed as soon as they are accepted. Lowered at start-up to
    /// fit the process's file-descriptor limit (less `fd_headroom`).
    pub max_connections: usize,
    /// Connections one remote IP address may hold open at once.
    pub max_connections_per_address: usize,
    /// Of `max_connections`, kept from client WebSockets: a `/client`
    /// upgrade is refused (503) once only this many are left, so peers and
    /// `/status` still get in.
    pub reserved_connections: usize,
    /// File descriptors kept for the journal, outgoing peer links and the
    /// rest of the process when the connection limit is fitted to the
    /// file-descriptor limit.
    pub fd_headroom: usize,
    /// Time a new connection has to finish its TLS handshake and send its
    /// HTTP request headers (and, on `/raft`, each step of the peer
    /// handshake); then it is closed.
    pub handshake_timeout_ms: u64,
    /// A client WebSocket that sends no frame for this long is closed (code
    /// 1001). The client library sends keep-alives well within it.
    pub idle_timeout_ms: u64,
    /// A WebSocket frame whose first bytes arrived must be complete within
    /// this long, or the connection is closed (code 1008).
    pub frame_timeout_ms: u64,
    /// Bytes a connection may owe its peer — replies and pongs written but
    /// not yet taken by the other side — before it is closed (code 1008):
    /// a client that sends but does not read cannot make the node hold more.
    pub max_queued_bytes: usize,
    /// Open sessions one principal may hold (one token's name; with
    /// authentication off, one remote address): a `register` beyond it gets
    /// `busy`, so one client cannot take the whole session table. Decided at
    /// apply: must be the same on every node.
    pub max_sessions_per_principal: usize,
    /// A learner is made a voter only if it lags the leader's log by at
    /// most this many entries (unless the promotion is forced).
    pub max_promotion_lag: u64,
    /// A peer link on which nothing is heard for this long is declared dead
    /// (`peer_links_dead_total`) and closed, and its sender dials again: the
    /// dialer pings four times as often and the acceptor answers, so a link
    /// cut without a reset (a partition, a machine gone) is noticed within
    /// about one election timeout. Half of it bounds each TCP connect to a
    /// peer, a quarter the wait between attempts; four times it is the
    /// dialled sockets' `TCP_USER_TIMEOUT`.
    pub peer_dead_ms: u64,
    /// Watches one client connection may have open; a `watch` beyond it is
    /// refused (`refused`, counted in `watch_refused_limit_total`).
    pub max_watches_per_connection: usize,
    /// Bytes of watch frames the node may hold for one connection that has
    /// not taken them yet (and at most 4,096 frames); a watch whose next
    /// frame does not fit waits for room.
    pub watch_queue_bytes: usize,
    /// A watch that has waited this long for room in its connection's queue
    /// is cancelled with reason `slow` (its client resumes from its last
    /// revision + 1).
    pub watch_slow_ms: u64,
    /// Events the node keeps for watchers (its window of recent changes);
    /// a watch that starts before the window, or falls behind it, is
    /// cancelled with reason `compacted`.
    pub watch_window_events: usize,
    /// Bytes of events the window holds at most.
    pub watch_window_bytes: usize,
    /// How often a watch that asked for it (`progress_notify`) is told the
    /// revision it has received everything up to.
    pub watch_progress_ms: u64,
    /// `/live` subscribers (the web page's live view) at a time; one more
    /// is refused with 503. 0 turns `/live` off.
    pub max_live_subscribers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_client_frame: 4 << 20,
            max_transport_frame: 16 << 20,
            peer_batch_bytes: 1 << 20,
            peer_queue: 4096,
            client_inflight: 1024,
            segment_bytes: 64 << 20,
            snapshot_entries: 10_000,
            max_connections: 1024,
            max_connections_per_address: 256,
            reserved_connections: 32,
            fd_headroom: 64,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            frame_timeout_ms: 10_000,
            max_queued_bytes: 8 << 20,
            max_sessions_per_principal: 1024,
            max_promotion_lag: 1_000,
            peer_dead_ms: 500,
            max_watches_per_connection: 1024,
            watch_queue_bytes: 4 << 20,
            watch_slow_ms: 1_000,
            watch_window_events: 100_000,
            watch_window_bytes: 64 << 20,
            watch_progress_ms: 10_000,
            max_live_subscribers: 16,
        }
    }
}

/// What a token may do. Ordered: each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Linearizable reads, `/status`, `/metrics`.
    Read,
    /// Also sessions and writes.
    Write,
    /// Also membership, snapshot and transfer commands.
    Admin,
}

impl Role {
    /// The role's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// `[tls]`: where the cluster's CA and the nodes' certificates are (see
/// `tls`; `raftkv certs` writes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA certificate (PEM) every node and client trusts.
    pub ca: PathBuf,
    /// The directory of `node-ID.pem` and `node-ID-key.pem`.
    pub dir: PathBuf,
}

/// One `[[tokens]]` entry of the configuration (see `auth`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Whose token it is: the principal sessions are counted against.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token, 64 hex digits.
    pub sha256: String,
}

/// A whole cluster's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Names the cluster; recorded in each data directory and checked in the
    /// peer handshake, so nodes of two clusters never mix.
    pub cluster_id: String,
    /// Shared secret for the peer handshake.
    pub secret: String,
    /// Directory holding one `node-{id}` subdirectory per node (relative paths
    /// are relative to the working directory).
    pub data_dir: PathBuf,
    /// Milliseconds per Raft tick (election timeout 30–60 ticks, heartbeat 10).
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// A client session idle longer than this (in cluster time) expires. Must
    /// be the same on every node (it is decided when entries are applied).
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Origins whose pages may open `/client` (exact match, e.g. `http://127.0.0.1:8080`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The nodes, in any order.
    pub nodes: Vec<NodeConfig>,
    /// TLS on every route and mutual TLS between peers; none: plain
    /// `ws://`, allowed only on loopback addresses (or with `--insecure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Client tokens (hashes) and their roles; none: authentication is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenEntry>,
    /// A voter that comes back with a new incarnation (its directory wiped
    /// or its journal cut) is rebound by the leader itself once it caught
    /// up, instead of waiting for `raftkv member replace ID ID`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_readmit: bool,
    /// Leaders answer linearizable reads on their lease, without a
    /// confirmation round (raft-core's `lease` module has the argument). Off
    /// by default: it trusts every node's clock to run within
    /// `lease_drift_ppm` of real time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lease_reads: bool,
    /// The clock-rate difference lease reads allow, in parts per million
    /// (the lease is shortened by twice this); default 50,000 (5 %).
    #[serde(default = "default_lease_drift_ppm")]
    pub lease_drift_ppm: u32,
    /// Which roles write and sync journal batches on the event loop when
    /// the journal thread is idle, saving its two wake-ups on the path of a
    /// write: `"followers"` (the default: everyone but the leader, whose sync
    /// overlaps its round trip to the followers) or `"never"` (see
    /// `crate::disk`; a leader writing inline too was measured slower).
    #[serde(default, skip_serializing_if = "is_default_inline")]
    pub journal_inline: InlineSync,
}

fn is_default_inline(v: &InlineSync) -> bool {
    *v == InlineSync::default()
}

fn default_tick_ms() -> u64 {
    10
}

fn default_lease_drift_ppm() -> u32 {
    raft_core::lease::LeaseTiming::DEFAULT_DRIFT_PPM
}

fn default_session_timeout_ms() -> u64 {
    60_000
}

/// A configuration that cannot be used, with the reason.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The embedded default: three nodes on 127.0.0.1:7001–7003.
    pub fn default_local() -> Config {
        match Config::parse(DEFAULT_CONFIG) {
            Ok(c) => c,
            Err(e) => unreachable!("the embedded default configuration is valid: {e}"),
        }
    }

    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError(format!("bad config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a configuration without checking it (for settings a member
    /// sent at `/join`, which lack the secret until the joiner adds its own).
    pub fn parse_unchecked(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("bad config: {e}")))
    }

    /// Reads a configuration file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Config::default_local()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("cannot read config {}: {e}", p.display())))?;
                Config::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))
            }
        }
    }

    /// The configuration as TOML (to hand to child processes).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(format!("bad config: {m}")));
        if self.cluster_id.is_empty() || self.cluster_id.len() > 128 {
            return err("cluster_id must be 1 to 128 bytes".into());
        }
        if self.secret.len() < 8 {
            return err("secret must be at least 8 bytes".into());
        }
        if self.nodes.is_empty() {
            return err("no [[nodes]]".into());
        }
        if self.tick_ms == 0 || self.tick_ms > 10_000 {
            return err("tick_ms must be between 1 and 10000".into());
        }
        if self.session_timeout_ms < 10 * self.tick_ms {
            return err("session_timeout_ms must be at least 10 ticks".into());
        }
        if self.lease_drift_ppm >= 400_000 {
            return err("lease_drift_ppm must be below 400000 (40 %): no lease would be left".into());
        }
        let mut ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        if ids.contains(&0) {
            return err("node id 0 is reserved".into());
        }
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return err("two nodes share an id".into());
        }
        let mut listens: Vec<SocketAddr> = self.nodes.iter().map(|n| n.listen).collect();
        listens.sort_unstable();
        if listens.windows(2).any(|w| w[0] == w[1]) {
            return err("two nodes share a listen address".into());
        }
        for n in &self.nodes {
            let u = n.url();
            if !(u.starts_with("ws://") || u.starts_with("wss://")) {
                return err(format!("node {}: url must start with ws:// or wss://", n.id));
            }
            if u.starts_with("wss://") != self.tls.is_some() {
                return err(format!(
                    "node {}: url {u}: wss:// URLs go with a [tls] section (ca, dir), ws:// URLs without one",
                    n.id
                ));
            }
        }
        let l = &self.limits;
        if l.max_client_frame < (2 << 20) + 64 * 1024 {
            return err(
                "limits.max_client_frame must hold a cas with 1 MiB expect and value (>= 2 MiB + 64 KiB)".into()
            );
        }
        if l.max_transport_frame < l.max_client_frame || l.max_transport_frame < (4 << 20) {
            return err("limits.max_transport_frame must be >= max_client_frame and >= 4 MiB".into());
        }
        if l.peer_batch_bytes == 0 || l.peer_queue == 0 || l.client_inflight == 0 {
            return err("limits must be positive".into());
        }
        if l.snapshot_entries == 0 {
            return err("limits.snapshot_entries must be at least 1".into());
        }
        if l.max_connections <= l.reserved_connections || l.max_connections_per_address == 0 {
            return err("limits.max_connections must exceed reserved_connections; per address at least 1".into());
        }
        if l.handshake_timeout_ms == 0 || l.idle_timeout_ms == 0 || l.frame_timeout_ms == 0 {
            return err("limits: timeouts must be positive".into());
        }
        if l.peer_dead_ms < 20 {
            return err("limits.peer_dead_ms must be at least 20".into());
        }
        if l.max_sessions_per_principal == 0 {
            return err("limits.max_sessions_per_principal must be at least 1".into());
        }
        if l.max_queued_bytes < l.max_client_frame + 64 * 1024 {
            return err("limits.max_queued_bytes must hold one reply of max_client_frame (+ 64 KiB)".into());
        }
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for t in &self.tokens {
            if t.name.is_empty() || t.name.len() > 64 || !names.insert(&t.name) {
                return err(format!("token name {:?} must be 1 to 64 bytes and unique", t.name));
            }
            let h = t.sha256.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err(format!("token {:?}: sha256 must be 64 hex digits", t.name));
            }
            if !hashes.insert(h) {
                return err(format!("token {:?}: two tokens have the same hash", t.name));
            }
        }
        if l.segment_bytes < 4096 {
            return err("limits.segment_bytes must be at least 4096".into());
        }
        Ok(())
    }

    /// The entry of node `id`.
    pub fn node(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every node id, sorted.
    pub fn ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The data directory of node `id`.
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.data_dir.join(format!("node-{id}"))
    }

    /// The client URLs of every node (for the client library).
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The session timeout in ticks.
    pub fn session_timeout_ticks(&self) -> u64 {
        self.session_timeout_ms / self.tick_ms
    }

    /// Whether the embedded, public development secret is in use.
    pub fn uses_dev_secret(&self) -> bool {
        self.secret == DEV_SECRET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_roundtrips() {
        let c = Config::default_local();
        assert_eq!(c.ids(), vec![1, 2, 3]);
        assert_eq!(c.node(2).unwrap().url(), "ws://127.0.0.1:7002");
        assert!(c.uses_dev_secret());
        assert_eq!(Config::parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let bad = DEFAULT_CONFIG.replace("id = 2", "id = 1");
        assert!(Config::parse(&bad).unwrap_err().0.contains("share an id"));
        let bad = DEFAULT_CONFIG.replace("tick_ms = 10", "tick_ms = 10\nbogus = 1");
        assert!(Config::parse(&bad).unwrap_err().0.contains("bogus"));
        let bad = DEFAULT_CONFIG.replace("127.0.0.1:7002\"\nurl", "127.0.0.1:7001\"\nurl");
        assert!(Config::parse(&bad).unwrap_err().0.contains("listen"));
        assert!(Config::parse("cluster_id = 3").is_err());
        let bad = format!("{DEFAULT_CONFIG}\n[limits]\npeer_dead_ms = 5\n");
        assert!(Config::parse(&bad).unwrap_err().0.contains("peer_dead_ms"));
        assert_eq!(Config::default_local().limits.peer_dead_ms, 500);
    }

    #[test]
    fn journal_inline_is_followers_unless_set() {
        assert_eq!(Config::default_local().journal_inline, InlineSync::Followers);
        let never = DEFAULT_CONFIG.replace("tick_ms = 10", "tick_ms = 10\njournal_inline = \"never\"");
        let c = Config::parse(&never).unwrap();
        assert_eq!(c.journal_inline, InlineSync::Never);
        assert_eq!(Config::parse(&c.to_toml()).unwrap(), c);
        let bad = DEFAULT_CONFIG.replace("tick_ms = 10", "tick_ms = 10\njournal_inline = \"leader\"");
        let e = Config::parse(&bad).unwrap_err().0;
        assert!(e.contains("journal_inline") || e.contains("followers"), "{e}");
    }
}
