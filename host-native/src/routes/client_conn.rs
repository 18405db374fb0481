//! One client connection at `/client`: requests in (JSON text frames or
//! binary frames, see [`crate::protocol`]), each passed to the node task
//! under a token unique to the node, and replies out in whatever order the
//! node answers.
//!
//! The connection stops reading while `client_inflight` requests are
//! outstanding, so one client cannot queue unbounded work; it writes every
//! reply that is ready before flushing, so the replies of one group commit
//! cost one system call. It is closed, with a Close frame, when it is idle
//! too long, leaves a frame unfinished too long, sends a message over the
//! transport limit (1009), or owes more than `max_queued_bytes` of replies
//! and pongs to a client that does not read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::http::{header, HeaderMap};
use futures_util::SinkExt;
use tokio::sync::mpsc;

use raft_core::{ClientToken, NodeId, Owner};

use crate::auth::{required_role, Principal};
use crate::config::Config;
use crate::inbox::{AddressBook, AdminAnswer, Inbox, Input, ReplyRoute};
use crate::listen::{close, is_too_big, IoStats, Verdict, Watchdog};
use crate::metrics::Metrics;
use crate::protocol::{
    decode_request, encode_response, outcome, parse_json_request, response_to_json, secret_hash, AdminOp, BadRequest,
    Failure, Op, Request, Response, Secret, Success,
};
use crate::watches::{Pushed, QueueBytes, WatchSink};

/// How long a connection waits for the node task to carry out an operator
/// command (a member change waits for its commit; the node gives up first).
const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes of a snapshot per `snapshot_save` reply frame.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// What one connection needs of its node.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Unique among the node's connections: the high half of every token.
    pub id: u64,
    /// The node task's inbox.
    pub inbox: Inbox,
    /// The node addresses, for leader hints.
    pub addrs: AddressBook,
    /// Limits and allowed origins.
    pub config: Arc<Config>,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
    /// Who is on the connection (its token's name and role).
    pub principal: Principal,
    /// Whom its sessions are counted against: the principal when
    /// authentication is on, else the remote address.
    pub owner: Owner,
}

/// 32 bytes from the OS's random source (`None`, logged, if it fails).
fn fresh_secret() -> Option<Secret> {
    let mut s = [0u8; 32];
    match getrandom::fill(&mut s) {
        Ok(()) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "no system randomness for a session secret; closing the connection");
            None
        }
    }
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
    /// For a `register`: the secret drawn for the new session.
    secret: Option<Secret>,
}

/// A watch this connection opened: how to answer it.
struct OpenWatch {
    /// The `watch` request's id (its `Watching` answer carries it).
    request: u64,
    json: bool,
}

/// The connection's watches and its end of their queue (made at the first
/// `watch`).
#[derive(Default)]
struct Watches {
    open: HashMap<u64, OpenWatch>,
    next_id: u64,
    queue: Option<(WatchSink, mpsc::Receiver<Pushed>, Arc<QueueBytes>)>,
}

impl Watches {
    /// The next frame of any watch (never, before the first watch).
    async fn next(&mut self) -> Option<Pushed> {
        match self.queue.as_mut() {
            Some((_, rx, _)) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    fn broken(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.2.broken())
    }

    /// The reply frame of a pushed frame (`None`: its watch was cancelled
    /// by the client meanwhile, and nothing of it follows the answer).
    fn frame(&mut self, watch_id: u64, s: Success, metrics: &Metrics) -> Option<WsMessage> {
        let w = self.open.get(&watch_id)?;
        let json = w.json;
        let r = match s {
            Success::Watching { .. } => Response { id: Some(w.request), result: Ok(s) },
            Success::WatchCanceled { .. } => {
                self.open.remove(&watch_id);
                Response { id: None, result: Ok(s) }
            }
            other => Response { id: None, result: Ok(other) },
        };
        Some(if r.id.is_some() { encode(&r, json, metrics) } else { encode_push(&r, json) })
    }
}

/// Serves one upgraded `/client` connection until either side closes it,
/// or a limit of [`crate::listen::Watchdog`] closes it with a Close frame.
pub async fn serve(mut socket: WebSocket, node: Connection, io: Arc<IoStats>) {
    let conn = node.id;
    node.metrics.client_connections_total.inc();
    let limits = &node.config.limits;
    let (reply_tx, mut reply_rx, held) = ReplyRoute::channel(limits.client_inflight + 1, limits.max_queued_bytes);
    let mut pending: HashMap<ClientToken, Pending> = HashMap::new();
    let mut counter: u32 = 0;
    let addrs = node.addrs.clone();
    let addr_of = move |id: NodeId| addrs.get(id);
    let mut watches = Watches { next_id: 1, ..Watches::default() };
    let mut dog = Watchdog::new(io, limits);
    let mut check = tokio::time::interval(dog.period());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let verdict: Option<Verdict> = loop {
        tokio::select! {
            // Stop reading while too many requests are in flight, so a
            // client cannot queue unbounded work.
            frame = socket.recv(), if pending.len() < limits.client_inflight => {
                let (parsed, json) = match frame {
                    None => break None,
                    Some(Err(e)) => break is_too_big(&e).then_some(Verdict::TooBig),
                    Some(Ok(WsMessage::Close(_))) => break None,
                    Some(Ok(WsMessage::Ping(p))) => {
                        // The WebSocket layer answers with a pong of the same
                        // bytes: they count towards what this client owes.
                        dog.received();
                        dog.queued(p.len());
                        if dog.overflowed() {
                            break Some(Verdict::QueueFull);
                        }
                        continue;
                    }
                    Some(Ok(WsMessage::Pong(_))) => {
                        dog.received();
                        continue;
                    }
                    Some(Ok(WsMessage::Text(t))) => {
                        dog.received();
                        node.metrics.client_requests_total.inc();
                        if t.len() > limits.max_client_frame {
                            (Err(oversize(t.len(), limits.max_client_frame)), true)
                        } else {
                            (parse_json_request(t.as_str()), true)
                        }
                    }
                    Some(Ok(WsMessage::Binary(b))) => {
                        dog.received();
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
                        let frame = encode(&bad.response(), json, &node.metrics);
                        if let Err(v) = feed(&mut socket, &mut dog, frame).await.and(flush(&mut socket, &dog).await) {
                            break v;
                        }
                    }
                    Ok(Request { id, op }) if required_role(&op) > node.principal.role => {
                        node.metrics.client_forbidden_total.inc();
                        let p = &node.principal;
                        let message = format!("token {:?} (role {}) may not {}", p.name, p.role.as_str(), op.name());
                        let r = Response { id: Some(id), result: Err(Failure::forbidden(message)) };
                        let frame = encode(&r, json, &node.metrics);
                        if let Err(v) = feed(&mut socket, &mut dog, frame).await.and(flush(&mut socket, &dog).await) {
                            break v;
                        }
                    }
                    Ok(Request { id, op: Op::Watch(spec) }) => {
                        let result = if watches.open.len() >= limits.max_watches_per_connection {
                            node.metrics.watch_refused_limit_total.inc();
                            Err(Failure::refused(format!(
                                "watch limit reached: at most {} watches per connection (max_watches_per_connection)",
                                limits.max_watches_per_connection
                            )))
                        } else {
                            Ok(())
                        };
                        if let Err(f) = result {
                            let frame = encode(&Response { id: Some(id), result: Err(f) }, json, &node.metrics);
                            if let Err(v) = feed(&mut socket, &mut dog, frame).await.and(flush(&mut socket, &dog).await) {
                                break v;
                            }
                            continue;
                        }
                        let (max_bytes, max_watches) = (limits.watch_queue_bytes, limits.max_watches_per_connection);
                        let (sink, _, _) = watches.queue.get_or_insert_with(|| WatchSink::channel(max_bytes, max_watches));
                        let sink = sink.clone();
                        let watch_id = watches.next_id;
                        watches.next_id += 1;
                        watches.open.insert(watch_id, OpenWatch { request: id, json });
                        // Answered through the watch queue, ahead of its frames.
                        if node.inbox.send(Input::Watch { conn, watch_id, spec, sink }).await.is_err() {
                            break None;
                        }
                    }
                    Ok(Request { id, op: Op::CancelWatch { watch_id } }) => {
                        let result = match watches.open.remove(&watch_id) {
                            Some(_) => {
                                if node.inbox.send(Input::CancelWatch { conn, watch_id }).await.is_err() {
                                    break None;
                                }
                                Ok(Success::Unwatched { watch_id })
                            }
                            None => Err(Failure::bad_request(format!("no watch {watch_id} on this connection"))),
                        };
                        let frame = encode(&Response { id: Some(id), result }, json, &node.metrics);
                        if let Err(v) = feed(&mut socket, &mut dog, frame).await.and(flush(&mut socket, &dog).await) {
                            break v;
                        }
                    }
                    Ok(Request { id, op: Op::Admin(op) }) => {
                        // Operator commands are rare: answered in line (the
                        // connection reads nothing else meanwhile).
                        if let Err(v) = admin(&mut socket, &mut dog, &node, id, op, json).await {
                            break v;
                        }
                    }
                    Ok(Request { id, op }) => {
                        counter = counter.wrapping_add(1);
                        let token = (conn << 32) | counter as u64;
                        // A new session's secret comes from the OS's random
                        // source; the log gets only its hash.
                        let secret = match op {
                            Op::Register => match fresh_secret() {
                                Some(s) => Some(s),
                                None => break None,
                            },
                            _ => None,
                        };
                        let fresh = secret.as_ref().map(secret_hash).unwrap_or_default();
                        pending.insert(token, Pending { id, json, secret });
                        let Ok(request) = op.into_client_request(node.owner, fresh) else { continue };
                        let input = Input::Client { token, request, reply: reply_tx.clone() };
                        if node.inbox.send(input).await.is_err() {
                            break None;
                        }
                    }
                }
            }
            Some((token, reply)) = reply_rx.recv() => {
                // Answer every reply that is ready, then write them out at
                // once: one system call for a whole group commit's replies.
                // Each is encoded only once the queue bound allows it, so a
                // client that does not read costs at most that much work.
                let mut next = Some((token, reply));
                let mut done = Ok(());
                while let Some((token, reply)) = next.take() {
                    held.taken(&reply);
                    if let Some(p) = pending.remove(&token) {
                        let mut result = outcome(reply, &addr_of);
                        if let (Ok(Success::Registered { secret, .. }), Some(drawn)) = (&mut result, p.secret) {
                            *secret = drawn;
                        }
                        let r = Response { id: Some(p.id), result };
                        done = feed(&mut socket, &mut dog, encode(&r, p.json, &node.metrics)).await;
                        if done.is_err() {
                            break;
                        }
                    }
                    next = reply_rx.try_recv().ok();
                }
                if let Err(v) = done.and(flush(&mut socket, &dog).await) {
                    break v;
                }
            }
            Some((watch_id, frame, bytes)) = watches.next() => {
                // Like the replies: every frame that is ready, one flush.
                let mut next = Some((watch_id, frame, bytes));
                let mut done = Ok(());
                let mut taken = 0;
                while let Some((watch_id, frame, bytes)) = next.take() {
                    if let Some((_, _, q)) = &watches.queue {
                        q.taken(bytes);
                    }
                    if let Some(f) = watches.frame(watch_id, frame, &node.metrics) {
                        done = feed(&mut socket, &mut dog, f).await;
                        if done.is_err() {
                            break;
                        }
                    }
                    taken += 1;
                    // Bounded, so requests and replies are not starved.
                    if taken < 256 {
                        next = watches.queue.as_mut().and_then(|(_, rx, _)| rx.try_recv().ok());
                    }
                }
                if let Err(v) = done.and(flush(&mut socket, &dog).await) {
                    break v;
                }
            }
            _ = check.tick() => {
                if held.overflowed() || watches.broken() {
                    break Some(Verdict::QueueFull);
                }
                // A connection with open watches waits on the node, not idle.
                if let Some(v) = dog.check(!pending.is_empty() || !watches.open.is_empty()) {
                    break Some(v);
                }
            }
        }
    };
    if let Some(v) = verdict {
        if let Some(c) = v.counter(&node.metrics) {
            c.inc();
        }
        tracing::debug!(conn, reason = v.reason(), "closing a client connection");
        close(&mut socket, v.code(), v.reason()).await;
    }
}

/// Carries out an operator command and writes its answer: one reply, or the
/// snapshot of `snapshot_save` in pieces of [`SNAPSHOT_CHUNK`] bytes, each
/// written only as the client takes the last (so a slow reader holds at
/// most `max_queued_bytes` of it here; the snapshot itself is shared).
async fn admin(
    socket: &mut WebSocket,
    dog: &mut Watchdog,
    node: &Connection,
    id: u64,
    op: AdminOp,
    json: bool,
) -> Result<(), Option<Verdict>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let result = match node.inbox.send(Input::Admin { op, reply: tx }).await {
        Err(_) => return Err(None),
        Ok(()) => match tokio::time::timeout(ADMIN_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(Failure::refused("the node did not answer in time")),
        },
    };
    let reply = |result| encode(&Response { id: Some(id), result }, json, &node.metrics);
    match result {
        Ok(AdminAnswer::Snapshot(snap)) => {
            let data = &snap.data;
            let crc32c = raft_core::codec::crc32c(data);
            let mut offset = 0;
            loop {
                let end = (offset + SNAPSHOT_CHUNK).min(data.len());
                let chunk = Success::SnapshotChunk {
                    index: snap.meta.index,
                    term: snap.meta.term,
                    size: data.len() as u64,
                    offset: offset as u64,
                    crc32c,
                    data: data[offset..end].to_vec(),
                };
                feed(socket, dog, reply(Ok(chunk))).await?;
                flush(socket, dog).await?;
                offset = end;
                if offset >= data.len() {
                    return Ok(());
                }
            }
        }
        Ok(AdminAnswer::Members(view)) => feed(socket, dog, reply(Ok(Success::Members(view)))).await,
        Ok(AdminAnswer::Transferred(leader)) => feed(socket, dog, reply(Ok(Success::Transferred { leader }))).await,
        Err(f) => feed(socket, dog, reply(Err(f))).await,
    }?;
    flush(socket, dog).await
}

/// Queues one frame on the connection without writing it out yet, unless
/// that would put more than `max_queued_bytes` in flight towards a client
/// that does not read, or the socket takes none of it for an idle timeout.
/// `Err(None)`: the connection is gone.
async fn feed(socket: &mut WebSocket, dog: &mut Watchdog, frame: WsMessage) -> Result<(), Option<Verdict>> {
    let len = match &frame {
        WsMessage::Text(t) => t.len(),
        WsMessage::Binary(b) => b.len(),
        _ => 0,
    };
    if dog.would_overflow(len) {
        return Err(Some(Verdict::QueueFull));
    }
    dog.queued(len);
    match tokio::time::timeout(dog.idle_timeout(), SinkExt::feed(socket, frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(Verdict::QueueFull)),
    }
}

/// Writes out what [`feed`] queued, within an idle timeout.
async fn flush(socket: &mut WebSocket, dog: &Watchdog) -> Result<(), Option<Verdict>> {
    match tokio::time::timeout(dog.idle_timeout(), socket.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(Verdict::QueueFull)),
    }
}

fn oversize(len: usize, max: usize) -> BadRequest {
    BadRequest { id: None, message: format!("frame of {len} bytes exceeds the limit of {max} bytes") }
}

/// The frame of a pushed watch frame (not a reply: not counted as one).
fn encode_push(r: &Response, json: bool) -> WsMessage {
    if json {
        WsMessage::Text(response_to_json(r).into())
    } else {
        WsMessage::Binary(encode_response(r).into())
    }
}

/// The frame of one reply (counted as ok or error).
fn encode(r: &Response, json: bool, metrics: &Metrics) -> WsMessage {
    if r.result.is_ok() {
        metrics.client_replies_ok_total.inc();
    } else {
        metrics.client_replies_error_total.inc();
    }
    if json {
        WsMessage::Text(response_to_json(r).into())
    } else {
        WsMessage::Binary(encode_response(r).into())
    }
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
