//! One client connection at `/client`: requests in (JSON text frames or
//! binary frames, see [`crate::protocol`]), each passed to the node task
//! under a token unique to the node, and replies out in whatever order the
//! node answers.
//!
//! The connection stops reading while `client_inflight` requests are
//! outstanding, so one client cannot queue unbounded work; it writes every
//! reply that is ready before flushing, so the replies of one group commit
//! cost one system call.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::http::{header, HeaderMap};
use futures_util::SinkExt;
use tokio::sync::mpsc;

use raft_core::{ClientToken, NodeId};

use crate::config::Config;
use crate::inbox::{Inbox, Input};
use crate::metrics::Metrics;
use crate::protocol::{
    decode_request, encode_response, outcome, parse_json_request, response_to_json, BadRequest, Request, Response,
};

/// What one connection needs of its node.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Unique among the node's connections: the high half of every token.
    pub id: u64,
    /// The node task's inbox.
    pub inbox: Inbox,
    /// Limits, allowed origins, and the node addresses for leader hints.
    pub config: Arc<Config>,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
}

/// Whether a browser page from `origin` may use `/client`. Requests without
/// an `Origin` header come from programs, not pages, and are allowed: the
/// check exists so a page on another site cannot drive a local cluster.
/// `Err` carries the refused origin.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
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

/// What a connection remembers about a request it passed to the node: the
/// client's id for it, and whether to answer in JSON.
struct Pending {
    id: u64,
    json: bool,
}

/// Serves one upgraded `/client` connection until either side closes it.
pub async fn serve(mut socket: WebSocket, node: Connection) {
    let conn = node.id;
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
                        if send(&mut socket, &bad.response(), json, &node.metrics).await.is_err() {
                            break;
                        }
                    }
                    Ok(Request { id, op }) => {
                        counter = counter.wrapping_add(1);
                        let token = (conn << 32) | counter as u64;
                        pending.insert(token, Pending { id, json });
                        let input = Input::Client { token, request: op.into_client_request(), reply: reply_tx.clone() };
                        if node.inbox.send(input).await.is_err() {
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
                        let r = Response { id: Some(p.id), result: outcome(reply, &addr_of) };
                        if feed(&mut socket, &r, p.json, &node.metrics).await.is_err() {
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

async fn send(socket: &mut WebSocket, r: &Response, json: bool, metrics: &Metrics) -> Result<(), axum::Error> {
    feed(socket, r, json, metrics).await?;
    socket.flush().await
}

/// Queues a reply on the connection without writing it out yet.
async fn feed(socket: &mut WebSocket, r: &Response, json: bool, metrics: &Metrics) -> Result<(), axum::Error> {
    if r.result.is_ok() {
        metrics.client_replies_ok_total.inc();
    } else {
        metrics.client_replies_error_total.inc();
    }
    let frame =
        if json { WsMessage::Text(response_to_json(r).into()) } else { WsMessage::Binary(encode_response(r).into()) };
    SinkExt::feed(socket, frame).await
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
