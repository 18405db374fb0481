//! One `/live` subscriber: the node's live-view frames (see [`crate::live`])
//! written to a WebSocket as text, the newest one each time.
//!
//! The frames come out of a one-value channel, so a reader that falls
//! behind skips frames instead of queueing them; what it can make the node
//! hold is what its socket owes. A subscriber is closed (1008, `slow`) when
//! a frame is not taken within `watch_slow_ms`, or when more than
//! [`MAX_OWED`] bytes of earlier frames are still waiting for its socket.
//! It sends nothing but pings and its close; anything else is ignored, and
//! a message over [`MAX_INCOMING`] bytes closes it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};

use crate::listen::{close, is_too_big, IoStats, Verdict, Watchdog};
use crate::live::Subscription;
use crate::metrics::Metrics;

/// Bytes of earlier frames a subscriber's socket may still owe when the next
/// frame is due (a few frames' worth).
pub const MAX_OWED: usize = 256 * 1024;
/// Largest message a subscriber may send (it has nothing to say).
pub const MAX_INCOMING: usize = 4096;

/// What a subscriber connection needs besides its socket.
#[derive(Debug)]
pub struct Subscriber {
    /// Its place and its frames.
    pub sub: Subscription,
    /// How long one frame may take to be written (`watch_slow_ms`).
    pub slow: Duration,
    /// The connection's byte counts.
    pub io: Arc<IoStats>,
    /// The node's limits (frame timeout, queued bytes).
    pub limits: crate::config::Limits,
    /// The node's counters.
    pub metrics: Arc<Metrics>,
}

/// Serves one upgraded `/live` connection until either side closes it.
pub async fn serve(mut socket: WebSocket, s: Subscriber) {
    let Subscriber { mut sub, slow, io, limits, metrics } = s;
    let limits = crate::config::Limits { max_queued_bytes: MAX_OWED, ..limits };
    let mut dog = Watchdog::new(io, &limits);
    let mut check = tokio::time::interval(dog.period());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let verdict = loop {
        tokio::select! {
            changed = sub.frames.changed() => {
                if changed.is_err() {
                    // The node task is gone: the process is stopping.
                    close(&mut socket, 1001, "the node is stopping").await;
                    return;
                }
                let Some(text) = sub.frames.borrow_and_update().clone() else { continue };
                if dog.would_overflow(text.len()) {
                    break Some(Verdict::QueueFull);
                }
                dog.queued(text.len());
                match tokio::time::timeout(slow, socket.send(WsMessage::Text(text.to_string().into()))).await {
                    Ok(Ok(())) => metrics.live_frames_sent_total.inc(),
                    Ok(Err(_)) => return,
                    Err(_) => break Some(Verdict::QueueFull),
                }
            }
            m = socket.recv() => match m {
                None | Some(Ok(WsMessage::Close(_))) => return,
                Some(Err(e)) => break is_too_big(&e).then_some(Verdict::TooBig),
                Some(Ok(WsMessage::Ping(p))) => {
                    // Answered with a pong of the same bytes, which this
                    // subscriber then owes.
                    dog.received();
                    dog.queued(p.len());
                }
                Some(Ok(_)) => dog.received(),
            },
            _ = check.tick() => {
                // A subscriber only listens: silence is not idleness.
                if let Some(v) = dog.check(true) {
                    break Some(v);
                }
            }
        }
    };
    if let Some(v) = verdict {
        if v == Verdict::QueueFull {
            metrics.live_dropped_slow_total.inc();
            tracing::info!("closing a /live subscriber that does not keep up");
            close(&mut socket, v.code(), "slow: frames were not taken in time").await;
            return;
        }
        if let Some(c) = v.counter(&metrics) {
            c.inc();
        }
        close(&mut socket, v.code(), v.reason()).await;
    }
}
