//! The HTTP routes of a node, all on its one port: `/raft` (peer links),
//! `/client` (the client protocol), `/live` (the live view's stream),
//! `/status` (JSON) and `/metrics` (Prometheus text); and, on a port of its own, the demo page that
//! `raftkv cluster` serves ([`demo`]).
//!
//! This file builds the router and holds what every handler needs
//! ([`NodeHandle`]); the work of a route is in the module named after it,
//! which is given exactly the parts it uses and knows nothing of the router.

pub mod client_conn;
pub mod cluster_controls;
pub mod demo;
pub mod live_conn;
pub mod prometheus;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Extension, Json, Router};

use raft_core::NodeId;

use crate::auth::{Denied, Principal, Tokens, SUBPROTOCOL};
use crate::config::Config;
use crate::identity::Identity;
use crate::inbox::{AddressBook, Inbox, Input};
use crate::listen::{ConnInfo, Gate};
use crate::metrics::Metrics;
use crate::peer::handshake::PeerAuth;
use crate::peer::incoming::{serve_incoming, PEER_READ_BUFFER};
use crate::protocol::READ_BUFFER;

/// What the routes of a running node hold: its inbox and what it was started
/// with. Cheap to clone (every field is shared).
#[derive(Clone, Debug)]
pub struct NodeHandle {
    /// The node's id.
    pub id: NodeId,
    /// The cluster configuration.
    pub config: Arc<Config>,
    /// The node task's inbox.
    pub inbox: Inbox,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
    /// For the peer handshake.
    pub auth: Arc<PeerAuth>,
    /// The data directory's identity (the bootstrap configuration `/join`
    /// hands out).
    pub identity: Arc<Identity>,
    /// Where every node is (for leader hints).
    pub addrs: AddressBook,
    /// The live view's frames and subscribers.
    pub live: Arc<crate::live::LiveHub>,
}

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    /// Numbers client connections, so their request tokens never collide.
    next_conn: Arc<AtomicU64>,
    /// The node's connection limits.
    gate: Arc<Gate>,
    /// The client tokens.
    tokens: Arc<Tokens>,
}

/// Serves the node's routes on `listener` until the process ends, within
/// the connection limits of its configuration (see [`crate::listen`]).
pub async fn serve(listener: tokio::net::TcpListener, node: NodeHandle, tls: Option<tokio_rustls::TlsAcceptor>) {
    let limits = &node.config.limits;
    let fds = crate::listen::fd_usage();
    let max = crate::listen::connection_limit(limits, fds);
    if max < limits.max_connections {
        tracing::warn!(
            max_connections = limits.max_connections,
            fd_limit = fds.map(|f| f.0),
            fds_open = fds.map(|f| f.1),
            fitted = max,
            "the file-descriptor limit is low: holding at most {max} connections (raise `ulimit -n`)"
        );
    }
    let gate = Arc::new(Gate::new(limits, max, node.metrics.clone()));
    let handshake = Duration::from_millis(limits.handshake_timeout_ms);
    let metrics = node.metrics.clone();
    let tokens = Arc::new(Tokens::new(&node.config));
    let state = AppState { node, next_conn: Arc::new(AtomicU64::new(1)), gate: gate.clone(), tokens };
    let app = Router::new()
        .route("/raft", get(raft_ws))
        .route("/join", get(join_ws))
        .route("/client", get(client_ws))
        .route("/live", get(live_ws))
        .route("/status", get(status))
        .route("/metrics", get(metrics_page))
        .with_state(state);
    crate::listen::serve(listener, app, gate, handshake, tls, metrics).await
}

/// The WebSocket settings every route shares: message and frame limits, and
/// the bound on bytes queued towards a peer that does not read (tungstenite
/// then stops buffering; [`crate::listen::Watchdog`] closes the socket).
fn ws_limits(ws: WebSocketUpgrade, limits: &crate::config::Limits, read_buffer: usize) -> WebSocketUpgrade {
    let write_buffer = (limits.max_queued_bytes / 4).min(128 * 1024);
    ws.max_message_size(limits.max_transport_frame)
        .max_frame_size(limits.max_transport_frame)
        .read_buffer_size(read_buffer)
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(limits.max_queued_bytes)
}

async fn raft_ws(
    ws: WebSocketUpgrade,
    Extension(conn): Extension<ConnInfo>,
    State(s): State<AppState>,
) -> HttpResponse {
    let n = s.node;
    ws_limits(ws, &n.config.limits, PEER_READ_BUFFER)
        .on_upgrade(move |socket| serve_incoming(socket, n.auth, n.inbox, n.config, n.metrics, conn))
}

async fn join_ws(
    ws: WebSocketUpgrade,
    Extension(conn): Extension<ConnInfo>,
    State(s): State<AppState>,
) -> HttpResponse {
    let n = s.node;
    ws.max_message_size(crate::peer::join::MAX_JOIN_FRAME)
        .max_frame_size(crate::peer::join::MAX_JOIN_FRAME)
        .read_buffer_size(4096)
        .on_upgrade(move |socket| serve_join(socket, n, conn))
}

/// Serves one `/join` exchange (see [`crate::peer::join`]): prove, hand the
/// request to the node task, answer, close.
async fn serve_join(socket: axum::extract::ws::WebSocket, n: NodeHandle, conn: ConnInfo) {
    use axum::extract::ws::Message as WsMessage;
    use futures_util::{SinkExt, StreamExt};
    let mut ws = socket
        .sink_map_err(|e| e.to_string())
        .with(|b: Vec<u8>| futures_util::future::ready(Ok::<_, String>(WsMessage::Binary(b.into()))))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(WsMessage::Binary(b)) => Some(Ok(b.to_vec())),
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => None,
                Ok(_) => Some(Err("unexpected frame".to_string())),
                Err(e) => Some(Err(e.to_string())),
            })
        });
    let step = Duration::from_millis(n.config.limits.handshake_timeout_ms);
    let proven = match crate::peer::join::accept(&mut ws, &n.auth, step).await {
        Ok(p) => p,
        Err(e) => {
            n.metrics.peer_handshakes_failed_total.inc();
            tracing::warn!(remote = %conn.remote, error = %e, "refused a join request");
            return;
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let input = Input::Join { id: proven.id, url: proven.url.clone(), inc: proven.inc, reply: tx };
    let result = match n.inbox.send(input).await {
        Ok(()) => match tokio::time::timeout(step, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(crate::protocol::Failure::refused("the node did not answer in time")),
        },
        Err(_) => Err(crate::protocol::Failure::refused("the node is stopping")),
    };
    let mut settings = (*n.config).clone();
    settings.secret = String::new();
    let answer = crate::peer::join::JoinAnswer {
        cluster: n.identity.cluster_uuid.clone(),
        cluster_name: n.identity.cluster_name.clone(),
        settings: settings.to_toml(),
        bootstrap: n.identity.bootstrap.clone(),
        result,
    };
    if let Err(e) = crate::peer::join::answer(&mut ws, answer).await {
        tracing::debug!(error = %e, "could not answer a join request");
    }
}

/// The browser Origin check of `/client` and `/live`: a page of another
/// origin is refused with 403 (and counted), naming the setting that allows it.
/// (The large `Err` is the answer itself, built only for a refused upgrade.)
#[allow(clippy::result_large_err)]
fn check_origin(
    s: &AppState,
    headers: &HeaderMap,
    remote: std::net::SocketAddr,
    what: &str,
) -> Result<(), HttpResponse> {
    let Err(origin) = client_conn::origin_allowed(headers, &s.node.config.allowed_origins) else { return Ok(()) };
    s.node.metrics.client_origin_refused_total.inc();
    tracing::warn!(%remote, origin, "refused {what} from a page of another origin");
    Err((StatusCode::FORBIDDEN, format!("origin {origin:?} is not allowed (see allowed_origins in the config)\n"))
        .into_response())
}

async fn client_ws(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Extension(info): Extension<ConnInfo>,
    State(s): State<AppState>,
) -> HttpResponse {
    let remote = info.remote;
    if let Err(refusal) = check_origin(&s, &headers, remote, "a client connection") {
        return refusal;
    }
    let principal = match authenticate(&s, &headers, "/client", remote) {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    let Some(client_slot) = s.gate.admit_client() else {
        let (open, clients) = s.gate.open();
        tracing::warn!(%remote, open, clients, "refused a client connection: only the reserve for peers and /status is left");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many client connections; try later\n").into_response();
    };
    let conn = client_conn::Connection {
        id: s.next_conn.fetch_add(1, Ordering::Relaxed),
        inbox: s.node.inbox,
        addrs: s.node.addrs,
        config: s.node.config,
        metrics: s.node.metrics,
        owner: owner_of(&principal, remote, s.tokens.enabled()),
        principal,
    };
    // A browser that sent its token as a subprotocol gets `raftkv` back.
    ws_limits(ws, &conn.config.limits, READ_BUFFER).protocols([SUBPROTOCOL]).on_upgrade(move |socket| async move {
        // Both slots are held for as long as the socket lives.
        let _held = (info.slot.clone(), client_slot);
        client_conn::serve(socket, conn, info.io).await
    })
}

/// `/live`: the Origin check and the token (any role) as for `/client`,
/// then a place under `max_live_subscribers` (503 past it).
async fn live_ws(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Extension(info): Extension<ConnInfo>,
    State(s): State<AppState>,
) -> HttpResponse {
    let remote = info.remote;
    if let Err(refusal) = check_origin(&s, &headers, remote, "a /live subscription") {
        return refusal;
    }
    if let Err(refusal) = authenticate(&s, &headers, "/live", remote) {
        return refusal;
    }
    let sub = match s.node.live.subscribe() {
        Ok(sub) => sub,
        Err(crate::live::TooMany { max }) => {
            s.node.metrics.live_refused_limit_total.inc();
            tracing::warn!(%remote, max, "refused a /live subscription: max_live_subscribers reached");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("too many live subscribers: this node serves at most {max} (limits.max_live_subscribers)\n"),
            )
                .into_response();
        }
    };
    s.node.metrics.live_subscribers_total.inc();
    let limits = &s.node.config.limits;
    let subscriber = live_conn::Subscriber {
        sub,
        slow: Duration::from_millis(limits.watch_slow_ms),
        io: info.io.clone(),
        limits: limits.clone(),
        metrics: s.node.metrics.clone(),
    };
    ws_limits(ws, limits, 4096)
        .max_message_size(live_conn::MAX_INCOMING)
        .max_frame_size(live_conn::MAX_INCOMING)
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| async move {
            // The connection's slot is held for as long as the socket lives.
            let _held = info.slot.clone();
            live_conn::serve(socket, subscriber).await
        })
}

/// The principal on a request, or the 401 answer: a missing or unknown
/// token (when authentication is on) is counted and logged.
#[allow(clippy::result_large_err)]
fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    remote: std::net::SocketAddr,
) -> Result<Principal, HttpResponse> {
    s.tokens.from_headers(headers).map_err(|d| {
        s.node.metrics.client_auth_failed_total.inc();
        let why = match d {
            Denied::Missing => "no token",
            Denied::Unknown => "an unknown token",
        };
        tracing::warn!(%remote, path, "refused a request with {why}");
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{path} needs a token (Authorization: Bearer, or the bearer.TOKEN subprotocol): {why}\n"),
        )
            .into_response()
    })
}

/// Whom a connection's sessions count against: its principal's name when
/// authentication is on, its remote address when it is off (everyone is
/// `anonymous` then). The first 8 bytes of a SHA-256 with a label.
fn owner_of(p: &Principal, remote: std::net::SocketAddr, auth: bool) -> raft_core::Owner {
    use sha2::{Digest, Sha256};
    let name = if auth { format!("principal:{}", p.name) } else { format!("address:{}", remote.ip()) };
    let h = Sha256::digest(name.as_bytes());
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

async fn status(headers: HeaderMap, Extension(info): Extension<ConnInfo>, State(s): State<AppState>) -> HttpResponse {
    if let Err(refusal) = authenticate(&s, &headers, "/status", info.remote) {
        return refusal;
    }
    match s.node.inbox.status().await {
        Some(st) => Json(st).into_response(),
        None => unavailable(),
    }
}

async fn metrics_page(
    headers: HeaderMap,
    Extension(info): Extension<ConnInfo>,
    State(s): State<AppState>,
) -> HttpResponse {
    if let Err(refusal) = authenticate(&s, &headers, "/metrics", info.remote) {
        return refusal;
    }
    match s.node.inbox.status().await {
        Some(st) => ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], prometheus::render(&st, &s.node.metrics))
            .into_response(),
        None => unavailable(),
    }
}

fn unavailable() -> HttpResponse {
    (StatusCode::SERVICE_UNAVAILABLE, "node task not answering\n").into_response()
}
