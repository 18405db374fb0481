//! The HTTP routes of a node, all on its one port: `/raft` (peer links),
//! `/client` (the client protocol), `/status` (JSON) and `/metrics`
//! (Prometheus text); and, on a port of its own, the demo page that
//! `raftkv cluster` serves ([`demo`]).
//!
//! This file builds the router and holds what every handler needs
//! ([`NodeHandle`]); the work of a route is in the module named after it,
//! which is given exactly the parts it uses and knows nothing of the router.

pub mod client_conn;
pub mod demo;
pub mod prometheus;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};

use raft_core::NodeId;

use crate::config::Config;
use crate::inbox::Inbox;
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
}

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    /// Numbers client connections, so their request tokens never collide.
    next_conn: Arc<AtomicU64>,
}

/// Serves the node's routes on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, node: NodeHandle) -> std::io::Result<()> {
    let state = AppState { node, next_conn: Arc::new(AtomicU64::new(1)) };
    let app = Router::new()
        .route("/raft", get(raft_ws))
        .route("/client", get(client_ws))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(state);
    // Small frames matter more than throughput here: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

async fn raft_ws(
    ws: WebSocketUpgrade,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    State(s): State<AppState>,
) -> HttpResponse {
    let limit = s.node.config.limits.max_transport_frame;
    let n = s.node;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(PEER_READ_BUFFER)
        .on_upgrade(move |socket| serve_incoming(socket, n.auth, n.inbox, limit, n.metrics, remote))
}

async fn client_ws(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    State(s): State<AppState>,
) -> HttpResponse {
    if let Err(origin) = client_conn::origin_allowed(&headers, &s.node.config.allowed_origins) {
        s.node.metrics.client_origin_refused_total.inc();
        tracing::warn!(%remote, origin, "refused a client connection from a page of another origin");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin:?} is not allowed (see allowed_origins in the config)\n"),
        )
            .into_response();
    }
    let limit = s.node.config.limits.max_transport_frame;
    let conn = client_conn::Connection {
        id: s.next_conn.fetch_add(1, Ordering::Relaxed),
        inbox: s.node.inbox,
        config: s.node.config,
        metrics: s.node.metrics,
    };
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| client_conn::serve(socket, conn))
}

async fn status(State(s): State<AppState>) -> HttpResponse {
    match s.node.inbox.status().await {
        Some(st) => Json(st).into_response(),
        None => unavailable(),
    }
}

async fn metrics(State(s): State<AppState>) -> HttpResponse {
    match s.node.inbox.status().await {
        Some(st) => ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], prometheus::render(&st, &s.node.metrics))
            .into_response(),
        None => unavailable(),
    }
}

fn unavailable() -> HttpResponse {
    (StatusCode::SERVICE_UNAVAILABLE, "node task not answering\n").into_response()
}
