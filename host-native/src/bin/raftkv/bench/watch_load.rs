//! The watchers of `raftkv bench --workload watch`: `--watchers` watches on
//! the prefix the writers write under, `--watchers-per-conn` of them on each
//! connection (raftkv: a WebSocket; etcd: one gRPC `Watch` stream on its own
//! HTTP/2 connection, as etcd's client multiplexes watches on a stream).
//! They count the events they receive; the writers are the usual closed
//! loop ([`super::phase`]).
//!
//! etcd's `Watch` is a bidirectional gRPC stream: the request body stays
//! open (etcd ends the stream when it ends), carrying one
//! `WatchRequest { create_request { key, range_end } }` per watch; each
//! `WatchResponse` is walked just far enough to count its `events` (field
//! 11) and to see `created` (3) and `canceled` (4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raft_core::kv::prefix_end;
use raft_core::kv::watch::Selector;
use raftkv::protocol::{decode_response, encode_request, Op, Request as RkvRequest, Success, WatchSpec};
use raftkv::ClientOptions;

use super::etcd_load::{grpc_frame, pb_bytes};
use super::settings::WATCH_PREFIX;

/// What the watchers counted, shared by their tasks.
#[derive(Debug, Default)]
pub struct Counts {
    /// Events received.
    pub events: AtomicU64,
    /// Watches the server cancelled (raftkv: as `slow`; each is opened
    /// again from its last revision + 1, as the client library does).
    pub canceled: AtomicU64,
}

fn watch_op(start_rev: Option<u64>) -> Op {
    Op::Watch(WatchSpec {
        selector: Selector::Prefix(WATCH_PREFIX.into()),
        start_rev,
        prev_kv: false,
        progress_notify: false,
        no_leader_cancel: false,
    })
}

/// Opens `n` watches from revision `from` (so a follower that has not
/// applied earlier writes yet does not count them) on one connection and
/// counts their events into
/// `counts` until the task is aborted; reports on `ready` once every watch
/// is acknowledged (or why it could not be).
pub async fn raftkv_watcher(
    addr: String,
    n: usize,
    from: u64,
    opts: ClientOptions,
    counts: Arc<Counts>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let url = format!("{addr}/client");
    let cfg = WebSocketConfig::default().max_message_size(Some(opts.max_frame));
    let connect = async {
        let stream = raftkv::tls::dial(&url, opts.tls.as_ref()).await?;
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(cfg))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))
    };
    let mut ws = match tokio::time::timeout(opts.timeout, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return fail(&ready, e).await,
        Err(_) => return fail(&ready, format!("connecting to {url} timed out")).await,
    };
    for i in 0..n {
        let frame = encode_request(&RkvRequest { id: i as u64, op: watch_op(Some(from)) });
        if let Err(e) = ws.feed(WsMessage::binary(frame)).await {
            return fail(&ready, format!("{url}: {e}")).await;
        }
    }
    if let Err(e) = ws.flush().await {
        return fail(&ready, format!("{url}: {e}")).await;
    }
    let mut created = 0;
    let mut ready = Some(ready);
    // Each open watch's next revision, by watch id.
    let mut next: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut next_req = n as u64;
    // Resumed watches' start revisions, by request id.
    let mut resumed: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    while let Some(Ok(m)) = ws.next().await {
        let WsMessage::Binary(b) = m else { continue };
        let Ok(r) = decode_response(&b, opts.max_frame) else { continue };
        match r.result {
            Ok(Success::Watching { watch_id, .. }) => {
                let start = r.id.and_then(|id| resumed.remove(&id)).unwrap_or(from);
                next.insert(watch_id, start);
                created += 1;
                if created == n {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(())).await;
                    }
                }
            }
            Ok(Success::WatchEvents { watch_id, revision, events }) => {
                next.insert(watch_id, revision + 1);
                counts.events.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            Ok(Success::WatchCanceled { watch_id, .. }) => {
                counts.canceled.fetch_add(1, Ordering::Relaxed);
                // Resume from where it was (the new watch gets a new id).
                let Some(from) = next.remove(&watch_id) else { continue };
                next_req += 1;
                resumed.insert(next_req, from);
                let frame = encode_request(&RkvRequest { id: next_req, op: watch_op(Some(from)) });
                if ws.send(WsMessage::binary(frame)).await.is_err() {
                    return;
                }
                // Its `Watching` answer counts again: keep `created` at n.
                created -= 1;
            }
            Ok(_) => {}
            Err(f) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(format!("{url} refused a watch: {f:?}"))).await;
                }
            }
        }
    }
}

async fn fail(ready: &mpsc::Sender<Result<(), String>>, why: String) {
    let _ = ready.send(Err(why)).await;
}

/// The body of an open gRPC stream: what the channel carries, until the
/// task holding its sender ends.
type StreamingBody = StreamBody<
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Send>>,
>;

/// One protobuf field: its number, and for a varint its value (the bytes
/// of a length-delimited field are skipped, as are other wire types).
enum Field {
    Varint(u32, u64),
    Bytes(u32),
    Other,
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a protobuf message (`None` for a malformed one).
fn fields(mut b: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let num = u32::try_from(tag >> 3).ok()?;
        out.push(match tag & 7 {
            0 => Field::Varint(num, varint(&mut b)?),
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                b = b.get(len..)?;
                Field::Bytes(num)
            }
            1 => {
                b = b.get(8..)?;
                Field::Other
            }
            5 => {
                b = b.get(4..)?;
                Field::Other
            }
            _ => return None,
        });
    }
    Some(out)
}

/// Opens `n` watches on one etcd `Watch` stream at `authority` and counts
/// their events, like [`raftkv_watcher`].
pub async fn etcd_watcher(authority: String, n: usize, counts: Arc<Counts>, ready: mpsc::Sender<Result<(), String>>) {
    let stream = match tokio::net::TcpStream::connect(&authority).await {
        Ok(s) => s,
        Err(e) => return fail(&ready, format!("cannot connect to etcd at {authority}: {e}")).await,
    };
    let _ = stream.set_nodelay(true);
    let (mut send, conn) = match http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(e) => return fail(&ready, format!("HTTP/2 handshake with {authority}: {e}")).await,
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // The request body: one WatchRequest per watch, and open until this task ends.
    let (tx, rx) = mpsc::channel::<Bytes>(n + 1);
    let body_stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let body: StreamingBody = StreamBody::new(Box::pin(body_stream));
    let mut req = Request::new(body);
    *req.method_mut() = hyper::Method::POST;
    *req.uri_mut() = match format!("http://{authority}/etcdserverpb.Watch/Watch").parse() {
        Ok(u) => u,
        Err(e) => return fail(&ready, format!("bad etcd endpoint {authority}: {e}")).await,
    };
    req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    req.headers_mut().insert("te", HeaderValue::from_static("trailers"));
    let mut create = Vec::new();
    pb_bytes(1, WATCH_PREFIX.as_bytes(), &mut create);
    pb_bytes(2, prefix_end(WATCH_PREFIX).unwrap_or_default().as_bytes(), &mut create);
    let mut wr = Vec::new();
    pb_bytes(1, &create, &mut wr);
    let frame = grpc_frame(&wr);
    for _ in 0..n {
        if tx.send(frame.clone()).await.is_err() {
            return fail(&ready, "the watch stream closed".into()).await;
        }
    }
    if let Err(e) = send.ready().await {
        return fail(&ready, format!("{authority}: {e}")).await;
    }
    let resp = match send.send_request(req).await {
        Ok(r) => r,
        Err(e) => return fail(&ready, format!("{authority}: {e}")).await,
    };
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut created = 0;
    let mut ready = Some(ready);
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        // Whole gRPC messages: a flag byte, a 4-byte big-endian length.
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                break;
            }
            buf.advance(5);
            let msg = buf.split_to(len);
            let Some(fs) = fields(&msg) else { continue };
            let mut events = 0;
            for f in &fs {
                match f {
                    Field::Bytes(11) => events += 1,
                    Field::Varint(3, 1) => {
                        created += 1;
                        if created == n {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(())).await;
                            }
                        }
                    }
                    Field::Varint(4, 1) => {
                        counts.canceled.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            counts.events.fetch_add(events, Ordering::Relaxed);
        }
    }
    drop(tx);
    if let Some(r) = ready.take() {
        let _ = r.send(Err(format!("etcd at {authority} ended the watch stream"))).await;
    }
}

/// Waits until `counts` reaches `expected` events or stops growing for
/// `quiet`; returns how long after the call the last event came.
pub async fn drain(counts: &Counts, expected: u64, quiet: Duration) -> Duration {
    let start = std::time::Instant::now();
    let mut last = (counts.events.load(Ordering::Relaxed), start);
    loop {
        let now = counts.events.load(Ordering::Relaxed);
        if now >= expected {
            return start.elapsed();
        }
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if last.1.elapsed() >= quiet {
            return last.1 - start;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::etcd_load::pb_varint;

    #[test]
    fn protobuf_fields_are_walked() {
        let mut m = Vec::new();
        pb_varint(3, 1, &mut m);
        pb_bytes(11, b"ev1", &mut m);
        pb_bytes(11, b"ev2", &mut m);
        pb_varint(2, 300, &mut m);
        let fs = fields(&m).unwrap();
        assert!(matches!(fs[0], Field::Varint(3, 1)));
        assert_eq!(fs.iter().filter(|f| matches!(f, Field::Bytes(11))).count(), 2);
        assert!(matches!(fs[3], Field::Varint(2, 300)));
        assert!(fields(&[0x5a, 9, 1]).is_none(), "a length past the end");
    }
}
