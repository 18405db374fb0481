//! Watches on the node side: the cursors of every open watch over the
//! store's window of recent events, polled by the node task after each
//! batch of applied entries, and the bounded queue each client connection
//! takes its watch frames from.
//!
//! ```text
//!  node task: apply ─> KvStore's EventLog ─> WatchHub::poll ─┬─> conn 1's queue ─> conn 1 ─> socket
//!                                                          └─> conn 2's queue ─> ...
//! ```
//!
//! The store keeps the window (raft-core's `kv::watch`); the hub only holds
//! cursors, so a watch costs its cursor and whatever frames wait in its
//! connection's queue. Three bounds keep the node task responsive and its
//! memory flat whatever the clients do:
//!
//! * one poll hands out at most [`EVENTS_PER_POLL`] events (and each watch
//!   at most [`FRAMES_PER_WATCH`] frames); what is left waits for the next
//!   turn of the node loop, which comes at once when [`WatchHub::poll`]
//!   says there is more;
//! * a connection's queue holds at most `watch_queue_bytes` of frames: a
//!   watch whose next frame does not fit waits (its cursor stays on that
//!   revision, and the window keeps the events), and one that has waited
//!   for `watch_slow_ms` is cancelled with reason `slow` (the client
//!   resumes from its last revision + 1);
//! * a connection has at most `max_watches_per_connection` watches (the
//!   connection refuses more before they get here).
//!
//! The queue's channel holds [`QUEUE_FRAMES`] frames within the byte bound
//! (a watch whose frame finds it full is cancelled as `slow` too), plus one
//! "watch started" and one "watch cancelled" per watch the connection may
//! have: those two are never refused for the bounds (a cancellation must
//! reach the client, or it would wait forever).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use raft_core::kv::watch::{EventLog, Poll, Watcher};

use crate::metrics::Metrics;
use crate::protocol::{CancelReason, Success, WatchSpec, RESERVED_PREFIX};

/// Most events one [`WatchHub::poll`] hands out, over all watches.
pub const EVENTS_PER_POLL: usize = 16_384;
/// Most frames one watch gets per [`WatchHub::poll`] (so one busy watch
/// does not take a whole poll's budget from the others).
pub const FRAMES_PER_WATCH: usize = 64;
/// Frames (of any size) a connection's queue holds at most, besides the
/// starts and cancellations it always has room for.
pub const QUEUE_FRAMES: usize = 4_096;

/// One frame for a connection: the watch it belongs to, the frame, and the
/// bytes it counts against the queue's bound (0 for the frames that do not).
pub type Pushed = (u64, Success, usize);

/// The bytes of the frames waiting in one connection's watch queue.
#[derive(Debug)]
pub struct QueueBytes {
    bytes: AtomicUsize,
    /// Frames waiting that count against the bounds.
    frames: AtomicUsize,
    max: usize,
    /// A frame that must not be dropped found the channel full: the
    /// connection must close (its client then resumes elsewhere).
    broken: AtomicBool,
}

impl QueueBytes {
    /// The connection took a frame of `bytes` out of the queue (`bytes`
    /// as it was queued: 0 for a start or a cancellation).
    pub fn taken(&self, bytes: usize) {
        if bytes > 0 {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.frames.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether a frame that must be delivered could not be queued.
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Bytes waiting now.
    pub fn held(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The node's end of one connection's watch queue.
#[derive(Clone, Debug)]
pub struct WatchSink {
    tx: mpsc::Sender<Pushed>,
    queue: Arc<QueueBytes>,
}

impl WatchSink {
    /// A queue of at most `max_bytes` of frames for a connection that may
    /// have `max_watches` watches; the connection's ends of it.
    pub fn channel(max_bytes: usize, max_watches: usize) -> (WatchSink, mpsc::Receiver<Pushed>, Arc<QueueBytes>) {
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES + 2 * max_watches.max(1));
        let queue = Arc::new(QueueBytes {
            bytes: AtomicUsize::new(0),
            frames: AtomicUsize::new(0),
            max: max_bytes,
            broken: AtomicBool::new(false),
        });
        (WatchSink { tx, queue: queue.clone() }, rx, queue)
    }

    /// Queues a frame counted against the bound; `false` (nothing queued)
    /// if it does not fit. An empty queue takes any one frame (a revision
    /// larger than the bound would otherwise never go out).
    fn offer(&self, watch_id: u64, frame: Success, bytes: usize) -> bool {
        // (Counted frames have at least one byte: `taken` tells them apart.)
        let bytes = bytes.max(1);
        let held = self.queue.bytes.load(Ordering::Relaxed);
        if held > 0 && held + bytes > self.queue.max {
            return false;
        }
        // The channel's last slots are for starts and cancellations.
        if self.queue.frames.load(Ordering::Relaxed) >= QUEUE_FRAMES {
            return false;
        }
        self.queue.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.queue.frames.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((watch_id, frame, bytes)) {
            Ok(()) => true,
            Err(_) => {
                self.queue.bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.queue.frames.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues a frame that must arrive (a start or a cancellation); the
    /// channel keeps room for them, and should it be full the connection is
    /// told to close rather than leave its client waiting.
    fn force(&self, watch_id: u64, frame: Success) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send((watch_id, frame, 0)) {
            self.queue.broken.store(true, Ordering::Relaxed);
        }
    }

    fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One open watch.
#[derive(Debug)]
struct Open {
    cursor: Watcher,
    progress_notify: bool,
    no_leader_cancel: bool,
    /// Since when its next frame has not fitted in its connection's queue.
    blocked_since: Option<Instant>,
}

/// What a poll left undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// The budget ran out with frames ready: poll again at once.
    pub more: bool,
    /// Some watch waits for room in its connection's queue: poll again
    /// soon (at the next tick), not at once.
    pub blocked: bool,
}

/// The watches of one connection.
#[derive(Debug)]
struct ConnWatches {
    sink: WatchSink,
    watches: BTreeMap<u64, Open>,
}

/// Every open watch of the node, by connection.
#[derive(Debug)]
pub struct WatchHub {
    conns: HashMap<u64, ConnWatches>,
    metrics: Arc<Metrics>,
    /// How long a watch may wait for room before it is cancelled as slow.
    slow_after: Duration,
}

impl WatchHub {
    /// No watches yet; counts in `metrics`; a watch that waits for room in
    /// its connection's queue for `slow_after` is cancelled as slow.
    pub fn new(metrics: Arc<Metrics>, slow_after: Duration) -> WatchHub {
        WatchHub { conns: HashMap::new(), metrics, slow_after }
    }

    /// Watches open.
    pub fn len(&self) -> usize {
        self.conns.values().map(|c| c.watches.len()).sum()
    }

    /// Whether no watch is open.
    pub fn is_empty(&self) -> bool {
        self.conns.values().all(|c| c.watches.is_empty())
    }

    /// Opens watch `watch_id` of connection `conn` (its frames go to
    /// `sink`) and tells the connection, with the revision it starts after.
    /// `applied`: the store's revision now.
    pub fn add(&mut self, conn: u64, watch_id: u64, spec: WatchSpec, sink: WatchSink, applied: u64) {
        let start = spec.start_rev.unwrap_or(applied + 1);
        let open = Open {
            cursor: Watcher::new(spec.selector, start, spec.prev_kv),
            progress_notify: spec.progress_notify,
            no_leader_cancel: spec.no_leader_cancel,
            blocked_since: None,
        };
        let c = self.conns.entry(conn).or_insert_with(|| ConnWatches { sink: sink.clone(), watches: BTreeMap::new() });
        c.sink = sink;
        c.sink.force(watch_id, Success::Watching { watch_id, revision: applied });
        c.watches.insert(watch_id, open);
        self.metrics.watch_created_total.inc();
    }

    /// Ends watch `watch_id` of `conn` (the client asked; it was answered).
    pub fn cancel(&mut self, conn: u64, watch_id: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches.remove(&watch_id);
        }
    }

    /// Hands every watch the frames the window has for it, within the
    /// bounds above; `log` is the store's window, `applied` its revision.
    /// Returns what it left undone (see [`Leftover`]).
    pub fn poll(&mut self, log: &EventLog, applied: u64) -> Leftover {
        self.conns.retain(|_, c| !c.sink.closed() && !c.watches.is_empty());
        let mut budget = EVENTS_PER_POLL;
        let (mut more, mut blocked) = (false, false);
        let now = Instant::now();
        for c in self.conns.values_mut() {
            let mut ended: Vec<(u64, CancelReason, Option<u64>)> = Vec::new();
            for (&id, w) in c.watches.iter_mut() {
                if budget == 0 {
                    more = true;
                    break;
                }
                let mut frames = 0;
                loop {
                    if frames == FRAMES_PER_WATCH || budget == 0 {
                        more = true;
                        break;
                    }
                    match w.cursor.poll(log, applied) {
                        Poll::Pending => break,
                        Poll::Compacted { oldest } => {
                            ended.push((id, CancelReason::Compacted, Some(oldest)));
                            break;
                        }
                        Poll::Frame { revision, mut events } => {
                            // The cluster's own keys (the address map) are not
                            // the clients': a watch on "" must not see them.
                            events.retain(|e| !e.kv.key.starts_with(RESERVED_PREFIX));
                            if events.is_empty() {
                                budget = budget.saturating_sub(1);
                                continue;
                            }
                            let bytes: usize = 32 + events.iter().map(|e| e.bytes()).sum::<usize>();
                            let n = events.len();
                            let frame = Success::WatchEvents { watch_id: id, revision, events };
                            if !c.sink.offer(id, frame, bytes) {
                                // Not delivered: the same revision next time.
                                w.cursor.next = revision;
                                let since = *w.blocked_since.get_or_insert(now);
                                if now.duration_since(since) >= self.slow_after {
                                    ended.push((id, CancelReason::Slow, None));
                                } else {
                                    blocked = true;
                                }
                                break;
                            }
                            w.blocked_since = None;
                            self.metrics.watch_frames_sent_total.inc();
                            self.metrics.watch_events_sent_total.add(n as u64);
                            frames += 1;
                            budget = budget.saturating_sub(n.max(1));
                        }
                    }
                }
            }
            for (id, reason, compact_revision) in ended {
                c.watches.remove(&id);
                count_cancel(&self.metrics, reason);
                c.sink.force(id, Success::WatchCanceled { watch_id: id, reason, compact_revision });
            }
        }
        Leftover { more, blocked }
    }

    /// Tells every watch that asked for progress the revision it has
    /// received everything up to (the node has applied `applied`). A queue
    /// with no room skips the notice: the next one says as much.
    pub fn progress(&mut self, applied: u64) {
        for c in self.conns.values() {
            for (&id, w) in &c.watches {
                if w.progress_notify {
                    let revision = (w.cursor.next - 1).min(applied);
                    if c.sink.offer(id, Success::WatchProgress { watch_id: id, revision }, 32) {
                        self.metrics.watch_progress_sent_total.inc();
                    }
                }
            }
        }
    }

    /// The node has had no leader for an election timeout: ends the
    /// watches that asked to be ended then.
    pub fn no_leader(&mut self) {
        for c in self.conns.values_mut() {
            let gone: Vec<u64> = c.watches.iter().filter(|(_, w)| w.no_leader_cancel).map(|(&id, _)| id).collect();
            for id in gone {
                c.watches.remove(&id);
                self.metrics.watch_canceled_no_leader_total.inc();
                let frame =
                    Success::WatchCanceled { watch_id: id, reason: CancelReason::NoLeader, compact_revision: None };
                c.sink.force(id, frame);
            }
        }
    }
}

fn count_cancel(metrics: &Metrics, reason: CancelReason) {
    match reason {
        CancelReason::Compacted => metrics.watch_canceled_compacted_total.inc(),
        CancelReason::Slow => metrics.watch_canceled_slow_total.inc(),
        CancelReason::NoLeader => metrics.watch_canceled_no_leader_total.inc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::kv::watch::{Event, EventKind, Selector, WindowLimits};
    use raft_core::kv::KeyValue;

    fn put(revision: u64, key: &str, value: &str) -> Event {
        let kv = KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        Event { revision, sub: 0, kind: EventKind::Put, kv, prev: None }
    }

    fn spec(prefix: &str, start_rev: Option<u64>) -> WatchSpec {
        WatchSpec {
            selector: Selector::Prefix(prefix.into()),
            start_rev,
            prev_kv: false,
            progress_notify: true,
            no_leader_cancel: true,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Pushed>, q: &QueueBytes) -> Vec<Success> {
        let mut out = Vec::new();
        while let Ok((_, s, bytes)) = rx.try_recv() {
            q.taken(bytes);
            out.push(s);
        }
        out
    }

    #[test]
    fn frames_in_order_then_progress_then_no_leader() {
        let mut log = EventLog::new(WindowLimits::default());
        for r in 1..=5 {
            log.push(put(r, if r % 2 == 0 { "b/x" } else { "a/x" }, "v")).expect("an event the store could make");
        }
        let mut hub = WatchHub::new(Arc::default(), Duration::ZERO);
        let (sink, mut rx, q) = WatchSink::channel(1 << 20, 8);
        hub.add(1, 1, spec("a/", Some(1)), sink, 5);
        assert_eq!(hub.poll(&log, 5), Leftover::default());
        let got = drain(&mut rx, &q);
        assert_eq!(got[0], Success::Watching { watch_id: 1, revision: 5 });
        let revs: Vec<u64> = got[1..]
            .iter()
            .map(|s| match s {
                Success::WatchEvents { revision, .. } => *revision,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(revs, [1, 3, 5]);
        assert_eq!(q.held(), 0);
        hub.progress(5);
        assert_eq!(drain(&mut rx, &q), [Success::WatchProgress { watch_id: 1, revision: 5 }]);
        hub.no_leader();
        let end = Success::WatchCanceled { watch_id: 1, reason: CancelReason::NoLeader, compact_revision: None };
        assert_eq!(drain(&mut rx, &q), [end]);
        assert!(hub.is_empty());
    }

    #[test]
    fn a_full_queue_makes_a_watch_wait_then_cancels_it_slow_and_a_start_before_the_window_is_compacted() {
        let mut log = EventLog::new(WindowLimits { max_events: 4, max_bytes: usize::MAX });
        for r in 1..=10 {
            log.push(put(r, "a/x", &"v".repeat(100))).expect("an event the store could make");
            log.trim();
        }
        assert_eq!(log.floor(), 7);
        let metrics = Arc::new(Metrics::default());
        let mut hub = WatchHub::new(metrics.clone(), Duration::from_millis(50));
        // Room for two frames of 231 bytes.
        let (sink, mut rx, q) = WatchSink::channel(500, 8);
        hub.add(1, 1, spec("a/", Some(7)), sink.clone(), 10);
        hub.add(1, 2, spec("a/", Some(2)), sink, 10);
        assert_eq!(hub.poll(&log, 10), Leftover { more: false, blocked: true }, "watch 1 waits for room");
        let revs = |got: &[Success]| {
            got.iter()
                .filter_map(|s| match s {
                    Success::WatchEvents { revision, .. } => Some(*revision),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let got = drain(&mut rx, &q);
        assert_eq!(revs(&got), [7, 8]);
        let compacted =
            Success::WatchCanceled { watch_id: 2, reason: CancelReason::Compacted, compact_revision: Some(7) };
        assert!(got.contains(&compacted), "{got:?}");
        // Room again: it goes on where it stopped, nothing skipped.
        hub.poll(&log, 10);
        assert_eq!(revs(&drain(&mut rx, &q)), [9, 10]);
        assert_eq!(metrics.watch_canceled_slow_total.get(), 0);
        // A client that stops reading: after the grace, cancelled.
        for r in 11..=14 {
            log.push(put(r, "a/x", &"v".repeat(100))).expect("an event the store could make");
            log.trim();
        }
        assert!(hub.poll(&log, 14).blocked);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(hub.poll(&log, 14), Leftover::default());
        let got = drain(&mut rx, &q);
        assert_eq!(revs(&got), [11, 12]);
        let slow = Success::WatchCanceled { watch_id: 1, reason: CancelReason::Slow, compact_revision: None };
        assert_eq!(got.last(), Some(&slow));
        assert_eq!((metrics.watch_canceled_slow_total.get(), metrics.watch_canceled_compacted_total.get()), (1, 1));
        assert!(hub.is_empty());
    }

    #[test]
    fn one_poll_is_bounded() {
        let mut log = EventLog::new(WindowLimits::default());
        for r in 1..=200 {
            log.push(put(r, "a/x", "v")).expect("an event the store could make");
        }
        let mut hub = WatchHub::new(Arc::default(), Duration::ZERO);
        let (sink, mut rx, q) = WatchSink::channel(usize::MAX / 2, 8);
        hub.add(1, 1, spec("a/", Some(1)), sink, 200);
        assert!(hub.poll(&log, 200).more, "64 frames per watch per poll: more to come");
        assert_eq!(drain(&mut rx, &q).len(), 1 + FRAMES_PER_WATCH);
        while hub.poll(&log, 200).more {}
        assert_eq!(drain(&mut rx, &q).len(), 200 - FRAMES_PER_WATCH);
    }
}
