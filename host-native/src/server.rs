//! The node's HTTP server: `/raft` (peer links), `/client` (the client
//! protocol), `/status` (JSON) and `/metrics` (Prometheus text), all on one port.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::SinkExt;
use tokio::sync::mpsc;

use raft_core::{ClientToken, NodeId};

use crate::node::{Input, NodeHandle};
use crate::peer;
use crate::protocol::{
    decode_request, encode_response, outcome, parse_json_request, response_to_json, BadRequest, OpKind, Request,
    Response,
};

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
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
    let n = s.node.clone();
    ws.max_message_size(limit).max_frame_size(limit).read_buffer_size(peer::PEER_READ_BUFFER).on_upgrade(
        move |socket| peer::serve_incoming(socket, n.auth.clone(), n.inputs.clone(), limit, n.metrics.clone(), remote),
    )
}

/// Whether a browser page from `origin` may use `/client`. Requests without
/// an `Origin` header come from programs, not pages, and are allowed: the
/// check exists so a page on another site cannot drive a local cluster.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(o) => {
            let o = o.to_str().unwrap_or("");
            if allowed.iter().any(|a| a == o) {
                Ok(())
            } else {
                Err(o.to_string())
            }
        }
    }
}

async fn client_ws(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    State(s): State<AppState>,
) -> HttpResponse {
    if let Err(origin) = origin_allowed(&headers, &s.node.config.allowed_origins) {
        s.node.metrics.client_origin_refused_total.inc();
        tracing::warn!(%remote, origin, "refused a client connection from a page of another origin");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin:?} is not allowed (see allowed_origins in the config)\n"),
        )
            .into_response();
    }
    let limit = s.node.config.limits.max_transport_frame;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(CLIENT_READ_BUFFER)
        .on_upgrade(move |socket| serve_client(socket, s))
}

/// Read buffer of a client connection. Requests are small; tungstenite
/// zero-fills the free part of its read buffer before every read, so its
/// default of 128 KiB would cost more per request than the request itself.
/// (Bigger frames are read into a buffer of their own size.)
pub const CLIENT_READ_BUFFER: usize = 8 * 1024;

/// What a connection remembers about a request it passed to the node.
struct Pending {
    id: u64,
    kind: OpKind,
    json: bool,
}

async fn serve_client(mut socket: WebSocket, s: AppState) {
    let node = &s.node;
    let conn = s.next_conn.fetch_add(1, Ordering::Relaxed);
    node.metrics.client_connections_total.inc();
    let limits = &node.config.limits;
    let (reply_tx, mut reply_rx) = mpsc::channel(limits.client_inflight + 1);
    let mut pending: HashMap<ClientToken, Pending> = HashMap::new();
    let mut counter: u32 = 0;
    let config = node.config.clone();
    let addr_of = move |id: NodeId| config.node(id).map(|n| n.url());
    loop {
        tokio::select! {
            // Stop reading while too many requests are in flight, so a
            // client cannot queue unbounded work.
            frame = socket.recv(), if pending.len() < limits.client_inflight => {
                let (parsed, json) = match frame {
                    None | Some(Err(_)) => break,
                    Some(Ok(WsMessage::Close(_))) => break,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Ok(WsMessage::Text(t))) => {
                        node.metrics.client_requests_total.inc();
                        if t.len() > limits.max_client_frame {
                            (Err(oversize(t.len(), limits.max_client_frame)), true)
                        } else {
                            (parse_json_request(t.as_str()), true)
                        }
                    }
                    Some(Ok(WsMessage::Binary(b))) => {
                        node.metrics.client_requests_total.inc();
                        if b.len() > limits.max_client_frame {
                            (Err(oversize(b.len(), limits.max_client_frame)), false)
                        } else {
                            (decode_request(&b, limits.max_client_frame), false)
                        }
                    }
                };
                match parsed {
                    Err(bad) => {
                        node.metrics.client_bad_requests_total.inc();
                        if send(&mut socket, &bad.response(), json, node).await.is_err() {
                            break;
                        }
                    }
                    Ok(Request { id, op }) => {
                        counter = counter.wrapping_add(1);
                        let token = (conn << 32) | counter as u64;
                        pending.insert(token, Pending { id, kind: op.kind(), json });
                        let input = Input::Client { token, request: op.to_client_request(), reply: reply_tx.clone() };
                        if node.inputs.send(input).await.is_err() {
                            break;
                        }
                    }
                }
            }
            Some((token, reply)) = reply_rx.recv() => {
                // Answer every reply that is ready, then write them out at
                // once: one system call for a whole group commit's replies.
                let mut next = Some((token, reply));
                let mut ok = true;
                while let Some((token, reply)) = next.take() {
                    if let Some(p) = pending.remove(&token) {
                        let r = Response { id: Some(p.id), result: outcome(p.kind, reply, &addr_of) };
                        if feed(&mut socket, &r, p.json, node).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    next = reply_rx.try_recv().ok();
                }
                if !ok || socket.flush().await.is_err() {
                    break;
                }
            }
        }
    }
}

fn oversize(len: usize, max: usize) -> BadRequest {
    BadRequest { id: None, message: format!("frame of {len} bytes exceeds the limit of {max} bytes") }
}

async fn send(socket: &mut WebSocket, r: &Response, json: bool, node: &NodeHandle) -> Result<(), axum::Error> {
    feed(socket, r, json, node).await?;
    socket.flush().await
}

/// Queues a reply on the connection without writing it out yet.
async fn feed(socket: &mut WebSocket, r: &Response, json: bool, node: &NodeHandle) -> Result<(), axum::Error> {
    if r.result.is_ok() {
        node.metrics.client_replies_ok_total.inc();
    } else {
        node.metrics.client_replies_error_total.inc();
    }
    let frame =
        if json { WsMessage::Text(response_to_json(r).into()) } else { WsMessage::Binary(encode_response(r).into()) };
    SinkExt::feed(socket, frame).await
}

async fn status(State(s): State<AppState>) -> HttpResponse {
    match s.node.status().await {
        Some(st) => Json(st).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "node task not answering\n").into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> HttpResponse {
    let Some(st) = s.node.status().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "node task not answering\n").into_response();
    };
    let mut out = String::new();
    let node = st.id;
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP raftkv_{name} {help}\n# TYPE raftkv_{name} gauge\nraftkv_{name}{{node=\"{node}\"}} {v}"
        );
    };
    gauge("term", "Current term.", st.term);
    gauge("is_leader", "1 if this node is the leader.", (st.role == "leader") as u64);
    gauge("leader_id", "The known leader of the term (0: unknown).", st.leader.unwrap_or(0));
    gauge("commit_index", "Commit index.", st.commit_index);
    gauge("applied_index", "Applied index.", st.applied_index);
    gauge("last_index", "Last log index.", st.last_index);
    gauge("durable_index", "Highest index durable in the journal.", st.durable_index);
    gauge("snapshot_index", "Index covered by the latest snapshot.", st.snapshot_index);
    gauge("sessions", "Open client sessions.", st.sessions as u64);
    gauge("keys", "Keys in the store.", st.keys as u64);
    gauge("pending_reads", "Reads waiting for confirmation.", st.pending_reads as u64);
    gauge("pending_writes", "Writes waiting to apply.", st.pending_writes as u64);
    let _ = writeln!(out, "# HELP raftkv_peer_match_index Leader only: highest index replicated on each peer.");
    let _ = writeln!(out, "# TYPE raftkv_peer_match_index gauge");
    for p in &st.peers {
        let _ = writeln!(out, "raftkv_peer_match_index{{node=\"{node}\",peer=\"{}\"}} {}", p.id, p.match_index);
    }
    for (name, help, v) in s.node.metrics.all() {
        let _ = writeln!(
            out,
            "# HELP raftkv_{name} {help}\n# TYPE raftkv_{name} counter\nraftkv_{name}{{node=\"{node}\"}} {v}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A minimal HTTP/1.0 GET of `path` on the node whose base URL is `base`
/// (`ws://host:port`), returning the body of a 200 answer. Enough for
/// `raftkv status` and the demo page without an HTTP client dependency.
pub async fn http_get(base: &str, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = base
        .trim_start_matches("ws://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&hostport).await.map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(16 << 20).read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(3), io)
        .await
        .map_err(|_| format!("{hostport}: timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{hostport}: malformed HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{hostport}: {status}"));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let allowed = vec!["http://127.0.0.1:8080".to_string()];
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&h, &allowed).is_ok(), "programs send no Origin");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(origin_allowed(&h, &allowed).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(origin_allowed(&h, &allowed), Err("https://evil.example".to_string()));
    }
}
