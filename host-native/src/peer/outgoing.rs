//! The sending side of a peer link: dial the peer's `/raft`, run the
//! handshake, then send batches of whatever the node task queued for it.
//!
//! A link that fails for any reason drops what is queued (Raft resends what
//! matters) and reconnects with exponential back-off, forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raft_core::{Message, NodeId};

use crate::metrics::Metrics;
use crate::peer::batch::Sealer;
use crate::peer::handshake::{dial_handshake, PeerAuth, HANDSHAKE_TIMEOUT};

/// How long one frame may take to go out before the link is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Read buffer of the dialing side of a peer link (it reads only the handshake).
const PEER_DIALER_READ_BUFFER: usize = 4096;

/// Adapts a tungstenite stream to the byte-frame view the handshakes use:
/// binary frames in and out; any other data frame is an error.
pub fn binary_frames<S>(
    ws: S,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, String>> + futures_util::Sink<Vec<u8>, Error = String> + Unpin
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<WsMessage, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    ws.sink_map_err(|e| e.to_string())
        .with(|b: Vec<u8>| futures_util::future::ready(Ok::<_, String>(WsMessage::binary(b))))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(WsMessage::Binary(b)) => Some(Ok(b.to_vec())),
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => None,
                Ok(WsMessage::Text(_)) => Some(Err("unexpected text frame".to_string())),
                Ok(WsMessage::Close(_)) => Some(Err("peer closed the connection".to_string())),
                Err(e) => Some(Err(e.to_string())),
            })
        })
}

/// The transport configuration of the dialing side of a peer link.
fn ws_config(max_frame: usize) -> WebSocketConfig {
    // The dialing side only sends: a small read buffer (tungstenite zero-fills
    // the free part of it before every read).
    WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
        .read_buffer_size(PEER_DIALER_READ_BUFFER)
}

/// How a sending link is set up.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Largest batch frame (one larger message still goes alone).
    pub batch_bytes: usize,
    /// Largest frame at all.
    pub max_frame: usize,
    /// For `wss://` peers: mutual TLS with this node's certificate.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// Runs the link that sends messages to peer `to` at `url`, forever: connect,
/// handshake, send batches; on any failure drop what is queued (Raft resends)
/// and reconnect with exponential back-off.
pub async fn run_sender(
    to: NodeId,
    url: String,
    auth: Arc<PeerAuth>,
    mut rx: mpsc::Receiver<Message>,
    link: LinkConfig,
    metrics: Arc<Metrics>,
) {
    let LinkConfig { batch_bytes, max_frame, tls } = link;
    let url = format!("{url}/raft");
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    loop {
        let attempt = async {
            let stream = crate::tls::dial(&url, tls.as_ref()).await?;
            // Over TLS the peer's certificate must name the node we mean to reach.
            if tls.is_some() && !stream.server_cert.as_ref().is_some_and(|c| crate::tls::cert_names_node(c, to)) {
                return Err(format!("{url}: its TLS certificate does not name node {to}"));
            }
            let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(ws_config(max_frame)))
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let mut ws = binary_frames(ws);
            let key = dial_handshake(&mut ws, &auth, to, HANDSHAKE_TIMEOUT).await?;
            Ok::<_, String>((ws, Sealer::new(key)))
        };
        let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, attempt).await {
            Ok(r) => r,
            Err(_) => Err("connection attempt timed out".to_string()),
        };
        let (mut ws, mut sealer) = match result {
            Ok(link) => link,
            Err(e) => {
                metrics.peer_connects_failed_total.inc();
                if !reported {
                    tracing::info!(peer = to, error = %e, "cannot reach peer; retrying with back-off");
                    reported = true;
                } else {
                    tracing::debug!(peer = to, error = %e, "cannot reach peer");
                }
                // Messages queued while the link is down are stale: drop them.
                let mut dropped = 0;
                while rx.try_recv().is_ok() {
                    dropped += 1;
                }
                metrics.peer_messages_dropped_total.add(dropped);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        tracing::info!(peer = to, "link to peer established");
        metrics.peer_handshakes_ok_total.inc();
        reported = false;
        backoff = BACKOFF_MIN;
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return };
                    let mut bytes = m.size();
                    batch.push(m);
                    while bytes < batch_bytes {
                        match rx.try_recv() {
                            Ok(m) => {
                                bytes += m.size();
                                batch.push(m);
                            }
                            Err(_) => break,
                        }
                    }
                    let n = batch.len() as u64;
                    let frame = sealer.seal(&batch);
                    batch.clear();
                    // A peer that stops reading (paused, or its machine gone
                    // without a reset) must not hold this link forever.
                    let sent = match tokio::time::timeout(SEND_TIMEOUT, ws.send(frame)).await {
                        Ok(r) => r,
                        Err(_) => Err("send timed out".to_string()),
                    };
                    if let Err(e) = sent {
                        tracing::info!(peer = to, error = %e, "link to peer lost");
                        metrics.peer_messages_dropped_total.add(n);
                        break;
                    }
                    metrics.peer_frames_sent_total.inc();
                }
                // The acceptor sends nothing after Welcome: anything here is
                // the connection ending.
                _ = ws.next() => {
                    tracing::info!(peer = to, "link to peer closed");
                    break;
                }
            }
        }
    }
}
