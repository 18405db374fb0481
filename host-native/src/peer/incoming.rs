//! The receiving side of a peer link: a connection a peer dialled to
//! `/raft`, authenticated by the handshake, whose batches are fed to the
//! node task message by message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};

use crate::config::Config;
use crate::inbox::{Inbox, Input};
use crate::listen::{close, is_too_big, ConnInfo, Verdict, Watchdog};
use crate::metrics::Metrics;
use crate::peer::batch::Opener;
use crate::peer::handshake::{accept_handshake, PeerAuth};

/// Read buffer of the accepting side, which receives the batches: bigger
/// frames are read straight into a buffer of their own size, so this only
/// bounds one read (tungstenite zero-fills the free part of the buffer before
/// every read, so its default of 128 KiB costs more than it saves).
pub const PEER_READ_BUFFER: usize = 32 * 1024;

/// Serves an accepted `/raft` connection: handshake, then feed every message
/// from the authenticated peer to the node. A refused handshake, a frame
/// left unfinished for `frame_timeout_ms`, a message over the transport
/// limit, a message naming another incarnation than the handshake proved,
/// and `peer_dead_ms` without a byte from the peer (the dialer pings more
/// often than that: silence means the link is cut) close the link.
pub async fn serve_incoming(
    socket: WebSocket,
    auth: Arc<PeerAuth>,
    node: Inbox,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    conn: ConnInfo,
) {
    let remote = conn.remote;
    let max_frame = config.limits.max_transport_frame;
    let mut ws = socket
        .sink_map_err(|e| e.to_string())
        .with(|b: Vec<u8>| futures_util::future::ready(Ok::<_, String>(WsMessage::Binary(b.into()))))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(WsMessage::Binary(b)) => Some(Ok(b.to_vec())),
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => None,
                Ok(WsMessage::Text(_)) => Some(Err("unexpected text frame".to_string())),
                Ok(WsMessage::Close(_)) => Some(Err("peer closed the connection".to_string())),
                Err(e) => Some(Err(e.to_string())),
            })
        });
    let hs_timeout = Duration::from_millis(config.limits.handshake_timeout_ms);
    let accepted = accept_handshake(&mut ws, &auth, hs_timeout).await;
    let mut socket = ws.into_inner().into_inner().into_inner();
    let (peer, peer_inc, mut opener) = match accepted {
        Ok(a) => (a.peer, a.inc, Opener::new(a.key)),
        Err(e) => {
            metrics.peer_handshakes_failed_total.inc();
            tracing::warn!(%remote, error = %e, "refused a peer connection");
            close(&mut socket, Verdict::Policy.code(), "peer handshake failed").await;
            return;
        }
    };
    // Over TLS the peer must also hold a certificate of the cluster's CA
    // that names the node its handshake proved to be.
    if config.tls.is_some() && !conn.peer_cert.as_deref().is_some_and(|c| crate::tls::cert_names_node(c, peer)) {
        metrics.peer_handshakes_failed_total.inc();
        tracing::warn!(peer, %remote, "refused a peer link: its TLS certificate does not name node {peer}");
        close(&mut socket, Verdict::Policy.code(), "certificate does not name the node").await;
        return;
    }
    tracing::info!(peer, incarnation = peer_inc, %remote, "accepted link from peer");
    let mut dog = Watchdog::new(conn.io.clone(), &config.limits);
    let dead_after = Duration::from_millis(config.limits.peer_dead_ms);
    let period = dog.period().min(dead_after / 4);
    let mut check = tokio::time::interval(period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    // Any byte counts as life (a big frame arrives over many reads).
    let (mut bytes_seen, mut heard) = (conn.io.read(), Instant::now());
    let verdict = 'frames: loop {
        let frame = tokio::select! {
            f = socket.recv() => f,
            _ = check.tick() => {
                let now = conn.io.read();
                // A tick far late: this process did not run, and what the
                // peer sent may be waiting unread; the silence is ours.
                let stalled = std::mem::replace(&mut last_tick, Instant::now()).elapsed() > period * 2;
                if now != bytes_seen || stalled {
                    (bytes_seen, heard) = (now, Instant::now());
                } else if heard.elapsed() >= dead_after {
                    metrics.peer_links_dead_total.inc();
                    tracing::warn!(peer, %remote, "link from peer declared dead: nothing heard within peer_dead_ms");
                    // No Close frame: nothing gets through this link.
                    return;
                }
                match dog.check(true) {
                    Some(v) => break Some(v),
                    None => continue,
                }
            }
        };
        let bytes = match frame {
            Some(Ok(WsMessage::Binary(b))) => b,
            Some(Ok(WsMessage::Ping(p))) => {
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
            Some(Ok(WsMessage::Text(_))) => {
                metrics.peer_frames_rejected_total.inc();
                tracing::warn!(peer, "closing a peer link that sent a text frame");
                break Some(Verdict::Policy);
            }
            Some(Ok(WsMessage::Close(_))) | None => {
                tracing::info!(peer, "link from peer closed");
                break None;
            }
            Some(Err(e)) => {
                tracing::info!(peer, error = %e, "link from peer ended");
                break is_too_big(&e).then_some(Verdict::TooBig);
            }
        };
        dog.received();
        let msgs = match opener.open(&bytes, max_frame) {
            Ok(m) => m,
            Err(e) => {
                // The link can no longer be trusted: what follows would be
                // out of sequence anyway. The dialer reconnects.
                metrics.peer_frames_rejected_total.inc();
                tracing::warn!(peer, %remote, error = %e, "closing a peer link: a frame failed its check");
                break Some(Verdict::Policy);
            }
        };
        for m in msgs {
            if m.from_inc != peer_inc {
                // raft-core decides by incarnation who may vote as a bound
                // member: an incarnation it was not proven for is a lie.
                metrics.peer_frames_rejected_total.inc();
                tracing::error!(
                    peer,
                    %remote,
                    proven = peer_inc,
                    claimed = m.from_inc,
                    "closing a peer link: node {peer} proved incarnation {peer_inc} at the handshake but a message \
                     names incarnation {}",
                    m.from_inc
                );
                break 'frames Some(Verdict::Policy);
            }
            if m.from != peer || m.to != auth.me() {
                metrics.peer_frames_rejected_total.inc();
                tracing::warn!(peer, from = m.from, to = m.to, "dropping a message with the wrong sender or recipient");
                continue;
            }
            metrics.peer_messages_received_total.inc();
            if node.send(Input::Peer(m)).await.is_err() {
                return;
            }
        }
    };
    if let Some(v) = verdict {
        if let Some(c) = v.counter(&metrics) {
            c.inc();
        }
        close(&mut socket, v.code(), v.reason()).await;
    }
}
