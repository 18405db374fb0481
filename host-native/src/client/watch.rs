//! Watches in the client library: [`Client::watch`] returns a
//! [`WatchStream`], a `futures` [`Stream`] of [`WatchResponse`]s.
//!
//! A task of its own keeps one connection per watch, to any node (a
//! follower answers watches as well as the leader). When the connection
//! breaks, or the node cancels the watch because the stream was not read
//! fast enough (`slow`), the task opens the watch again — on the next node
//! if need be — from the last complete revision + 1: each revision arrives
//! once and none is skipped. What it cannot hide ends the stream with an
//! error item: [`Error::Compacted`] (the events it needs are gone from the
//! node's window; start again from `oldest`, after reading the current
//! state), [`Error::WatchCanceled`] (`no_leader`, when asked for), a
//! refusal (the watch limit, a bad key), or [`Error::Unreachable`] when no
//! node could be reached for the client's whole timeout.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftkv::Error> {
//! use futures_util::StreamExt;
//! let client = raftkv::Client::new(vec!["ws://127.0.0.1:7001".into()], Default::default());
//! let mut w = client.watch("app/", raftkv::WatchOptions { prefix: true, ..Default::default() }).await;
//! while let Some(item) = w.next().await {
//!     if let raftkv::WatchResponse::Events { revision, events } = item? {
//!         println!("{revision}: {} events", events.len());
//!     }
//! }
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raft_core::kv::watch::{Event, Selector};

use super::{rejected, unexpected, upgrade_request, Client, ClientOptions, Error};
use crate::protocol::{decode_response, encode_request, CancelReason, Op, Request, Success, WatchSpec};

/// Items the watch task may have ready before the application takes them;
/// then it stops reading the connection (and the node, past its queue
/// bound, cancels the watch as `slow`, which the task resumes).
const STREAM_BUFFER: usize = 64;

/// How a watch is opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Watch every key starting with the key given (else that key only).
    pub prefix: bool,
    /// The first revision wanted (`None`: the changes after now).
    pub start_rev: Option<u64>,
    /// Events carry the key as it was before.
    pub prev_kv: bool,
    /// Receive [`WatchResponse::Progress`] every `watch_progress_ms`.
    pub progress_notify: bool,
    /// End the stream with [`Error::WatchCanceled`] when the node has known
    /// no leader for an election timeout.
    pub no_leader_cancel: bool,
}

/// One item of a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchResponse {
    /// Every matching event of one revision, in order.
    Events {
        /// The revision.
        revision: u64,
        /// Its events.
        events: Vec<Event>,
    },
    /// Every event up to `revision` has been delivered.
    Progress {
        /// The confirmed revision.
        revision: u64,
    },
}

/// The stream [`Client::watch`] returns. Dropping it ends the watch.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchResponse, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Watches `key` (with `opts.prefix`, every key starting with it): the
    /// changes from `opts.start_rev` (default: after now), one revision per
    /// item, each once, resumed across reconnections (see the module).
    pub async fn watch(&self, key: &str, opts: WatchOptions) -> WatchStream {
        let (addrs, start_at, copts) = {
            let g = self.inner.lock().await;
            (g.addrs.clone(), g.idx, g.opts.clone())
        };
        let selector = if opts.prefix { Selector::Prefix(key.into()) } else { Selector::Key(key.into()) };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let task = tokio::spawn(run(addrs, start_at, copts, selector, opts, tx));
        WatchStream { rx, task }
    }
}

/// How one connection's watch ended.
enum End {
    /// The stream is over (its last item was sent, or nobody reads it).
    Done,
    /// Open it again on the same node (cancelled as slow).
    Again,
    /// Open it again elsewhere (the connection broke).
    Lost(String),
}

/// The watch task: opens the watch, forwards its frames, reopens it.
async fn run(
    addrs: Vec<String>,
    mut idx: usize,
    copts: ClientOptions,
    selector: Selector,
    opts: WatchOptions,
    tx: mpsc::Sender<Result<WatchResponse, Error>>,
) {
    if addrs.is_empty() {
        let _ = tx.send(Err(Error::NoAddresses)).await;
        return;
    }
    // The next revision the application has not seen (`None` until the
    // first node says what "now" is).
    let mut next = opts.start_rev.filter(|&r| r != 0);
    let mut failing_since: Option<Instant> = None;
    let mut misses = 0u32;
    loop {
        let spec = WatchSpec {
            selector: selector.clone(),
            start_rev: next,
            prev_kv: opts.prev_kv,
            progress_notify: opts.progress_notify,
            no_leader_cancel: opts.no_leader_cancel,
        };
        let target = addrs[idx % addrs.len()].clone();
        match session(&target, &copts, spec, &mut next, &tx, &mut failing_since).await {
            End::Done => return,
            End::Again => misses = 0,
            End::Lost(why) => {
                tracing::debug!(%target, %why, "watch connection lost; resuming elsewhere");
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= copts.timeout {
                    let _ = tx.send(Err(Error::Unreachable { last: why })).await;
                    return;
                }
                idx += 1;
                misses += 1;
                tokio::time::sleep(Duration::from_millis((20u64 << misses.min(5)).min(500))).await;
            }
        }
    }
}

/// One connection: opens the watch from `next` and forwards its frames
/// until it ends; keeps `next` up to date.
async fn session(
    target: &str,
    copts: &ClientOptions,
    spec: WatchSpec,
    next: &mut Option<u64>,
    tx: &mpsc::Sender<Result<WatchResponse, Error>>,
    failing_since: &mut Option<Instant>,
) -> End {
    let url = format!("{target}/client");
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(copts.max_frame))
        .read_buffer_size(crate::protocol::READ_BUFFER);
    let request = match upgrade_request(&url, copts.token.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(Error::Unreachable { last: e })).await;
            return End::Done;
        }
    };
    let connect = async {
        let stream = crate::tls::dial(&url, copts.tls.as_ref()).await?;
        tokio_tungstenite::client_async_with_config(request, stream, Some(cfg))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))
    };
    let mut ws = match tokio::time::timeout(copts.attempt_timeout, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return End::Lost(e),
        Err(_) => return End::Lost(format!("connecting to {url} timed out")),
    };
    if let Err(e) = ws.send(WsMessage::binary(encode_request(&Request { id: 1, op: Op::Watch(spec) }))).await {
        return End::Lost(format!("send failed: {e}"));
    }
    let send = |item| async move { tx.send(item).await.is_ok() };
    loop {
        let frame = match ws.next().await {
            None => return End::Lost(format!("{target} closed the connection")),
            Some(Err(e)) => return End::Lost(format!("connection error: {e}")),
            Some(Ok(WsMessage::Binary(b))) => b,
            Some(Ok(WsMessage::Close(_))) => return End::Lost(format!("{target} closed the connection")),
            Some(Ok(_)) => continue,
        };
        let r = match decode_response(&frame, copts.max_frame) {
            Ok(r) => r,
            Err(e) => return End::Lost(format!("unreadable frame from {target}: {e}")),
        };
        let item = match r.result {
            Ok(Success::Watching { revision, .. }) => {
                *failing_since = None;
                next.get_or_insert(revision + 1);
                continue;
            }
            Ok(Success::WatchEvents { revision, events, .. }) => {
                // A node never repeats a revision; a resumed watch starts
                // after the last one delivered, so this holds across nodes.
                if next.is_some_and(|n| revision < n) {
                    continue;
                }
                *next = Some(revision + 1);
                WatchResponse::Events { revision, events }
            }
            Ok(Success::WatchProgress { revision, .. }) => {
                *next = Some(next.map_or(revision + 1, |n| n.max(revision + 1)));
                WatchResponse::Progress { revision }
            }
            Ok(Success::WatchCanceled { reason: CancelReason::Slow, .. }) => return End::Again,
            Ok(Success::WatchCanceled { reason: CancelReason::Compacted, compact_revision, .. }) => {
                let oldest = compact_revision.unwrap_or(0);
                send(Err(Error::Compacted { oldest })).await;
                return End::Done;
            }
            Ok(Success::WatchCanceled { reason, .. }) => {
                send(Err(Error::WatchCanceled { reason: reason.as_str().into() })).await;
                return End::Done;
            }
            Ok(other) => {
                send(Err(unexpected(other))).await;
                return End::Done;
            }
            Err(f) => {
                send(Err(rejected(f))).await;
                return End::Done;
            }
        };
        if !send(Ok(item)).await {
            return End::Done;
        }
    }
}
