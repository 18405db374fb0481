//! The receiving side of a peer link: a connection a peer dialled to
//! `/raft`, authenticated by the handshake, whose batches are fed to the
//! node task message by message.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};

use crate::inbox::{Inbox, Input};
use crate::metrics::Metrics;
use crate::peer::batch::decode_batch;
use crate::peer::handshake::{accept_handshake, PeerAuth};

/// Read buffer of the accepting side, which receives the batches: bigger
/// frames are read straight into a buffer of their own size, so this only
/// bounds one read (tungstenite zero-fills the free part of the buffer before
/// every read, so its default of 128 KiB costs more than it saves).
pub const PEER_READ_BUFFER: usize = 32 * 1024;

/// Serves an accepted `/raft` connection: handshake, then feed every message
/// from the authenticated peer to the node.
pub async fn serve_incoming(
    socket: WebSocket,
    auth: Arc<PeerAuth>,
    node: Inbox,
    max_frame: usize,
    metrics: Arc<Metrics>,
    remote: SocketAddr,
) {
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
    let peer = match accept_handshake(&mut ws, &auth).await {
        Ok(p) => p,
        Err(e) => {
            metrics.peer_handshakes_failed_total.inc();
            tracing::warn!(%remote, error = %e, "refused a peer connection");
            return;
        }
    };
    tracing::info!(peer, %remote, "accepted link from peer");
    while let Some(frame) = ws.next().await {
        let bytes = match frame {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(peer, error = %e, "link from peer ended");
                return;
            }
        };
        let msgs = match decode_batch(&bytes, max_frame) {
            Ok(m) => m,
            Err(e) => {
                metrics.peer_frames_rejected_total.inc();
                tracing::warn!(peer, error = %e, "dropping a peer frame that does not decode");
                continue;
            }
        };
        for m in msgs {
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
    }
}
