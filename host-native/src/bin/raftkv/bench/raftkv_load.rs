//! The raftkv side of `raftkv bench`: each client a connection and a
//! session, with up to `depth` requests in flight on it.
//!
//! Each client speaks the protocol itself rather than through
//! [`raftkv::Client`]: the library runs one call at a time per client, and
//! the pipeline needs several writes of one session in flight, acknowledged
//! in order. The library's retry logic is not needed for a measurement: a
//! failed request is counted as an error; a lost connection or leader change
//! makes the client reconnect (following the leader hint) and open a new
//! session.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use raft_core::kv::{Cmp, Compare, Txn, TxnOp};
use raftkv::protocol::{
    decode_response, encode_request, ErrorCode, Op, Request, Secret, Success, MAX_SAFE_INTEGER, READ_BUFFER,
};
use raftkv::ClientOptions;
use raftkv::KvOp;

use super::driver::{StartLine, Worker, Workset};
use super::settings::{Workload, WATCH_PREFIX};

type Ws = WebSocketStream<raftkv::tls::Stream>;

/// Connects to the cluster and opens a session on the leader, following
/// `not_leader` hints (reads must go to the leader too, so a read-only client
/// registers as well: that finds the leader and costs one log entry).
async fn open_session(
    addrs: &[String],
    mut target: String,
    opts: &ClientOptions,
) -> Result<(Ws, (u64, Secret), String), String> {
    let deadline = Instant::now() + opts.timeout;
    let mut idx = addrs.iter().position(|a| *a == target).unwrap_or(0);
    let mut last = String::from("no attempt made");
    let cfg = WebSocketConfig::default().max_message_size(Some(opts.max_frame)).read_buffer_size(READ_BUFFER);
    while Instant::now() < deadline {
        let url = format!("{target}/client");
        let attempt = async {
            let stream = raftkv::tls::dial(&url, opts.tls.as_ref()).await?;
            let (mut ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(cfg))
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let frame = encode_request(&Request { id: 0, op: Op::Register });
            ws.send(WsMessage::binary(frame)).await.map_err(|e| format!("{url}: {e}"))?;
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(b))) => {
                        let r = decode_response(&b, opts.max_frame).map_err(|e| format!("{url}: {e}"))?;
                        return Ok((ws, r.result));
                    }
                    Some(Ok(WsMessage::Close(_))) | None => return Err(format!("{url}: connection closed")),
                    Some(Err(e)) => return Err(format!("{url}: {e}")),
                    Some(Ok(_)) => {}
                }
            }
        };
        match tokio::time::timeout(opts.attempt_timeout, attempt).await {
            Ok(Ok((ws, Ok(Success::Registered { session, secret })))) => return Ok((ws, (session, secret), target)),
            Ok(Ok((_, Err(f)))) if f.error == ErrorCode::NotLeader && f.leader.is_some() => {
                if let Some(l) = f.leader {
                    target = l.addr;
                }
                continue;
            }
            Ok(Ok((_, r))) => last = format!("{target} answered {r:?}"),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{target}: no answer in time"),
        }
        idx = (idx + 1) % addrs.len();
        target = addrs[idx].clone();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("cannot open a session on the cluster: {last}"))
}

/// A plain connection to `node`'s `/client` (no session).
async fn connect(node: &str, opts: &ClientOptions) -> Result<Ws, String> {
    let url = format!("{node}/client");
    let cfg = WebSocketConfig::default().max_message_size(Some(opts.max_frame)).read_buffer_size(READ_BUFFER);
    let attempt = async {
        let stream = raftkv::tls::dial(&url, opts.tls.as_ref()).await?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(cfg))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        Ok(ws)
    };
    tokio::time::timeout(opts.attempt_timeout, attempt).await.map_err(|_| format!("{url}: no answer in time"))?
}

/// The write of `workload` on `key`.
fn write_op(workload: Workload, key: String, value: &str) -> KvOp {
    match workload {
        Workload::Txn => KvOp::Txn(Txn {
            compare: vec![Compare::ModRevision { key: key.clone(), cmp: Cmp::Less, revision: MAX_SAFE_INTEGER }],
            success: vec![TxnOp::Put { key, value: value.into(), lease: 0 }],
            failure: vec![],
        }),
        Workload::Watch => KvOp::Put { key: format!("{WATCH_PREFIX}{key}"), value: value.into() },
        _ => KvOp::Put { key, value: value.into() },
    }
}

/// The read of `workload` on `key`: a get, or the prefix read of the 100
/// keys that share all but its last two digits.
fn read_op(workload: Workload, mut key: String) -> KvOp {
    match workload {
        Workload::Range => {
            key.truncate(key.len().saturating_sub(2));
            KvOp::Prefix { prefix: key, from: None, limit: 100 }
        }
        _ => KvOp::Get { key },
    }
}

/// A request in flight: when it started and, for a write, its seq.
struct InFlight {
    started: Instant,
    seq: Option<u64>,
}

/// One raftkv client: a connection, a session, up to `depth` requests in
/// flight. Writes are numbered 1, 2, 3... in the session; each carries as
/// `ack` the lowest seq still awaiting its answer.
pub async fn client(
    addrs: Arc<Vec<String>>,
    set: Arc<Workset>,
    mut w: Worker,
    depth: usize,
    opts: ClientOptions,
    start: StartLine,
    read_at: Option<String>,
) -> Worker {
    let (mut ws, mut session, mut target) = match open_session(&addrs, addrs[0].clone(), &opts).await {
        Ok(x) => x,
        Err(e) => {
            start.failed(e).await;
            return w;
        }
    };
    if let Some(node) = read_at.filter(|n| *n != target) {
        // A reads-only client moves to its own node: a follower answers
        // reads itself after asking the leader for a read index.
        match connect(&node, &opts).await {
            Ok(other) => {
                ws = other;
                target = node;
            }
            Err(e) => {
                start.failed(e).await;
                return w;
            }
        }
    }
    if !start.ready_and_wait(&mut w).await {
        return w;
    }
    let mut next_seq = 1u64;
    let mut next_id = 1u64;
    let mut inflight: HashMap<u64, InFlight> = HashMap::with_capacity(depth * 2);
    // Seqs sent, in order, and whether each has been answered.
    let mut unacked: VecDeque<(u64, bool)> = VecDeque::with_capacity(depth);
    let mut more = true;
    loop {
        // Fill the pipeline, then flush once: several requests, one write.
        let mut broken: Option<String> = None;
        let mut queued = false;
        while more && inflight.len() < depth {
            let Some((write, k)) = w.next() else {
                more = false;
                break;
            };
            let id = next_id;
            next_id += 1;
            let key = set.keys[k].clone();
            let started = Instant::now();
            let (op, seq) = if write {
                let seq = next_seq;
                next_seq += 1;
                unacked.push_back((seq, false));
                let ack = unacked.front().map_or(seq, |u| u.0);
                let op = write_op(w.workload(), key, &set.value);
                (Op::Write { session: session.0, secret: session.1, seq, ack, op }, Some(seq))
            } else {
                (Op::Read { op: read_op(w.workload(), key) }, None)
            };
            inflight.insert(id, InFlight { started, seq });
            if let Err(e) = ws.feed(WsMessage::binary(encode_request(&Request { id, op }))).await {
                broken = Some(format!("send failed: {e}"));
                break;
            }
            queued = true;
        }
        if queued && broken.is_none() {
            if let Err(e) = ws.flush().await {
                broken = Some(format!("send failed: {e}"));
            }
        }
        if broken.is_none() {
            if inflight.is_empty() {
                break;
            }
            let frame = tokio::time::timeout(opts.timeout, ws.next()).await;
            match frame {
                Ok(Some(Ok(WsMessage::Binary(b)))) => match decode_response(&b, opts.max_frame) {
                    Ok(r) => {
                        let Some(f) = r.id.and_then(|id| inflight.remove(&id)) else { continue };
                        if let Some(seq) = f.seq {
                            if let Some(u) = unacked.iter_mut().find(|u| u.0 == seq) {
                                u.1 = true;
                            }
                            while unacked.front().is_some_and(|u| u.1) {
                                unacked.pop_front();
                            }
                        }
                        match r.result {
                            Ok(_) => w.finish(f.started, true),
                            Err(fail) => {
                                w.finish(f.started, false);
                                // The session or the leader is gone: start again where the hint points.
                                if matches!(
                                    fail.error,
                                    ErrorCode::NotLeader | ErrorCode::SessionExpired | ErrorCode::UnknownOutcome
                                ) {
                                    if let Some(l) = fail.leader {
                                        target = l.addr;
                                    }
                                    broken = Some(format!("{:?}", fail.error));
                                }
                            }
                        }
                    }
                    Err(e) => broken = Some(format!("unreadable reply: {e}")),
                },
                Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) => broken = Some("connection closed".into()),
                Ok(Some(Err(e))) => broken = Some(format!("connection error: {e}")),
                Ok(Some(Ok(_))) => {}
                Err(_) => broken = Some("no reply in time".into()),
            }
        }
        if let Some(why) = broken {
            tracing::debug!(%why, %target, "bench client reconnecting");
            for (_, f) in inflight.drain() {
                w.finish(f.started, false);
            }
            unacked.clear();
            if !more {
                break;
            }
            match open_session(&addrs, target.clone(), &opts).await {
                Ok((s, id, t)) => (ws, session, target) = (s, id, t),
                Err(e) => {
                    tracing::warn!(error = %e, "a bench client gave up");
                    break;
                }
            }
            next_seq = 1;
        }
    }
    let _ = ws.close(None).await;
    w
}
