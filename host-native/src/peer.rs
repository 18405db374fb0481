//! Links between nodes: WebSockets at `/raft`, an authenticating handshake,
//! batched frames, reconnection with back-off.
//!
//! Each node dials every peer and uses that connection only to *send*; it
//! receives on the connections its peers dialled. Two one-way links per pair
//! avoid deciding which of two simultaneous dials wins.
//!
//! # Handshake
//!
//! Every handshake frame is binary: `RKVH`, version 1, postcard [`Handshake`].
//!
//! ```text
//! dialer                                  acceptor
//!   Hello { cluster, from, to, nonce_d }  ->
//!                                         <- Challenge { cluster, from, nonce_a,
//!                                              proof_a = HMAC(secret, "accept", nonce_d, cluster, acceptor, dialer) }
//!   Proof { proof_d = HMAC(secret, "dial", nonce_a, cluster, dialer, acceptor) } ->
//!                                         <- Welcome
//! ```
//!
//! Each side proves the shared secret over the other's fresh random nonce, so
//! the secret never crosses the wire and a recorded handshake cannot be
//! replayed. The role label keeps a node from being used as an oracle that
//! answers its own challenge (a reflection attack). A node that names another
//! cluster, the wrong node or an unknown peer, or cannot prove the secret, is
//! refused and logged.
//!
//! # Frames
//!
//! After `Welcome` the dialer sends binary frames of `RKVB`, version 1,
//! postcard `Vec<Message>`: every message queued for that peer, up to a byte
//! budget, goes in one frame. Frames over the transport limit close the link.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::{Message, NodeId};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::Input;

/// Magic of handshake frames.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"RKVH";
/// Version of the handshake.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Magic of message batch frames.
pub const BATCH_MAGIC: [u8; 4] = *b"RKVB";
/// Version of the batch format.
pub const BATCH_VERSION: u8 = 1;
/// Largest handshake frame accepted.
const MAX_HANDSHAKE_FRAME: usize = 1024;
/// How long each handshake step may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one frame may take to go out before the link is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The handshake's frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// Dialer: who it is, whom it wants, and its challenge.
    Hello {
        /// Cluster id.
        cluster: String,
        /// The dialer's node id.
        from: NodeId,
        /// The node the dialer means to reach.
        to: NodeId,
        /// Fresh random challenge.
        nonce: [u8; 32],
    },
    /// Acceptor: its challenge and its proof over the dialer's.
    Challenge {
        /// Cluster id.
        cluster: String,
        /// The acceptor's node id.
        from: NodeId,
        /// Fresh random challenge.
        nonce: [u8; 32],
        /// HMAC over the dialer's nonce.
        proof: [u8; 32],
    },
    /// Dialer: its proof over the acceptor's challenge.
    Proof {
        /// HMAC over the acceptor's nonce.
        proof: [u8; 32],
    },
    /// Acceptor: the link is open.
    Welcome,
}

/// What both sides need to run a handshake.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    cluster: String,
    secret: Vec<u8>,
    me: NodeId,
    peers: Vec<NodeId>,
}

impl PeerAuth {
    /// From the configuration, for node `me`.
    pub fn new(cfg: &Config, me: NodeId) -> Self {
        PeerAuth {
            cluster: cfg.cluster_id.clone(),
            secret: cfg.secret.as_bytes().to_vec(),
            me,
            peers: cfg.ids().into_iter().filter(|&i| i != me).collect(),
        }
    }

    fn mac(&self, role: &str, nonce: &[u8; 32], prover: NodeId, verifier: NodeId) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        // postcard gives an unambiguous encoding of the fields.
        let input = postcard::to_allocvec(&(role, nonce, &self.cluster, prover, verifier)).unwrap_or_default();
        mac.update(&input);
        mac
    }

    fn prove(&self, role: &str, nonce: &[u8; 32], prover: NodeId, verifier: NodeId) -> [u8; 32] {
        self.mac(role, nonce, prover, verifier).finalize().into_bytes().into()
    }

    fn check(&self, role: &str, nonce: &[u8; 32], prover: NodeId, verifier: NodeId, proof: &[u8; 32]) -> bool {
        // verify_slice compares in constant time.
        self.mac(role, nonce, prover, verifier).verify_slice(proof).is_ok()
    }
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut n) {
        // Without randomness the handshake would be replayable: stop.
        panic!("no system randomness for a handshake nonce: {e}");
    }
    n
}

impl Handshake {
    /// The frame carrying this handshake message.
    pub fn encode(&self) -> Vec<u8> {
        encode_with_header(&HANDSHAKE_MAGIC, HANDSHAKE_VERSION, self)
    }

    /// Reads a handshake frame.
    pub fn decode(bytes: &[u8]) -> Result<Handshake, String> {
        decode_with_header(&HANDSHAKE_MAGIC, HANDSHAKE_VERSION, bytes, MAX_HANDSHAKE_FRAME)
            .map_err(|e| format!("bad handshake frame: {e}"))
    }
}

/// Encodes a batch of messages for one frame.
pub fn encode_batch(msgs: &[Message]) -> Vec<u8> {
    encode_with_header(&BATCH_MAGIC, BATCH_VERSION, &msgs)
}

/// Decodes a batch frame (size limit `max_len`).
pub fn decode_batch(bytes: &[u8], max_len: usize) -> Result<Vec<Message>, String> {
    decode_with_header(&BATCH_MAGIC, BATCH_VERSION, bytes, max_len).map_err(|e| e.to_string())
}

/// The acceptor's side of the handshake over any stream of binary frames.
/// Returns the authenticated peer's id.
pub async fn accept_handshake<S, E>(ws: &mut S, auth: &PeerAuth) -> Result<NodeId, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let hello = recv_hs(ws).await?;
    let Handshake::Hello { cluster, from, to, nonce: their_nonce } = hello else {
        return Err("expected Hello".into());
    };
    if cluster != auth.cluster {
        return Err(format!("peer says it is in cluster {cluster:?}, not {:?}", auth.cluster));
    }
    if to != auth.me {
        return Err(format!("peer {from} wanted node {to}, this is node {}", auth.me));
    }
    if !auth.peers.contains(&from) {
        return Err(format!("node {from} is not a peer in the configuration"));
    }
    let my_nonce = nonce();
    let proof = auth.prove("accept", &their_nonce, auth.me, from);
    let challenge = Handshake::Challenge { cluster: auth.cluster.clone(), from: auth.me, nonce: my_nonce, proof };
    ws.send(challenge.encode()).await.map_err(|_| "connection lost".to_string())?;
    let Handshake::Proof { proof } = recv_hs(ws).await? else {
        return Err("expected Proof".into());
    };
    if !auth.check("dial", &my_nonce, from, auth.me, &proof) {
        return Err(format!("node {from} failed to prove the shared secret"));
    }
    ws.send(Handshake::Welcome.encode()).await.map_err(|_| "connection lost".to_string())?;
    Ok(from)
}

/// The dialer's side of the handshake, to reach node `to`.
pub async fn dial_handshake<S, E>(ws: &mut S, auth: &PeerAuth, to: NodeId) -> Result<(), String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let my_nonce = nonce();
    let hello = Handshake::Hello { cluster: auth.cluster.clone(), from: auth.me, to, nonce: my_nonce };
    ws.send(hello.encode()).await.map_err(|_| "connection lost".to_string())?;
    let Handshake::Challenge { cluster, from, nonce: their_nonce, proof } = recv_hs(ws).await? else {
        return Err("expected Challenge".into());
    };
    if cluster != auth.cluster || from != to {
        return Err(format!("reached node {from} of cluster {cluster:?}, wanted node {to} of {:?}", auth.cluster));
    }
    if !auth.check("accept", &my_nonce, to, auth.me, &proof) {
        return Err(format!("node {to} failed to prove the shared secret"));
    }
    let proof = auth.prove("dial", &their_nonce, auth.me, to);
    ws.send(Handshake::Proof { proof }.encode()).await.map_err(|_| "connection lost".to_string())?;
    match recv_hs(ws).await? {
        Handshake::Welcome => Ok(()),
        _ => Err("expected Welcome".into()),
    }
}

async fn recv_hs<S, E>(ws: &mut S) -> Result<Handshake, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next()).await {
        Err(_) => Err("handshake timed out".into()),
        Ok(None) => Err("connection closed during the handshake".into()),
        Ok(Some(Err(e))) => Err(format!("connection error during the handshake: {e}")),
        Ok(Some(Ok(bytes))) => Handshake::decode(&bytes),
    }
}

/// Adapts a tungstenite stream to the byte-frame view the handshake uses:
/// binary frames in and out; any other data frame is an error.
fn binary_frames<S>(
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

/// The transport configuration for peer links.
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    // The dialing side only sends: a small read buffer (tungstenite zero-fills
    // the free part of it before every read).
    WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
        .read_buffer_size(PEER_DIALER_READ_BUFFER)
}

/// Read buffer of the dialing side of a peer link (it reads only the handshake).
const PEER_DIALER_READ_BUFFER: usize = 4096;
/// Read buffer of the accepting side, which receives the batches: bigger
/// frames are read straight into a buffer of their own size, so this only
/// bounds one read (tungstenite zero-fills the free part of the buffer before
/// every read, so its default of 128 KiB costs more than it saves).
pub const PEER_READ_BUFFER: usize = 32 * 1024;

/// Runs the link that sends messages to peer `to` at `url`, forever: connect,
/// handshake, send batches; on any failure drop what is queued (Raft resends)
/// and reconnect with exponential back-off.
pub async fn run_sender(
    to: NodeId,
    url: String,
    auth: Arc<PeerAuth>,
    mut rx: mpsc::Receiver<Message>,
    batch_bytes: usize,
    max_frame: usize,
    metrics: Arc<Metrics>,
) {
    let url = format!("{url}/raft");
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    loop {
        let attempt = async {
            let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(ws_config(max_frame)), true)
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let mut ws = binary_frames(ws);
            dial_handshake(&mut ws, &auth, to).await?;
            Ok::<_, String>(ws)
        };
        let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, attempt).await {
            Ok(r) => r,
            Err(_) => Err("connection attempt timed out".to_string()),
        };
        let mut ws = match result {
            Ok(ws) => ws,
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
                    let frame = encode_batch(&batch);
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

/// Serves an accepted `/raft` connection: handshake, then feed every message
/// from the authenticated peer to the node.
pub async fn serve_incoming(
    socket: axum::extract::ws::WebSocket,
    auth: Arc<PeerAuth>,
    node: mpsc::Sender<Input>,
    max_frame: usize,
    metrics: Arc<Metrics>,
    remote: std::net::SocketAddr,
) {
    use axum::extract::ws::Message as AxMessage;
    let mut ws = socket
        .sink_map_err(|e| e.to_string())
        .with(|b: Vec<u8>| futures_util::future::ready(Ok::<_, String>(AxMessage::Binary(b.into()))))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(AxMessage::Binary(b)) => Some(Ok(b.to_vec())),
                Ok(AxMessage::Ping(_) | AxMessage::Pong(_)) => None,
                Ok(AxMessage::Text(_)) => Some(Err("unexpected text frame".to_string())),
                Ok(AxMessage::Close(_)) => Some(Err("peer closed the connection".to_string())),
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
            if m.from != peer || m.to != auth.me {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// One end of an in-memory duplex of byte frames.
    struct Duplex {
        rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    }

    fn pair() -> (Duplex, Duplex) {
        let (atx, arx) = tokio::sync::mpsc::unbounded_channel();
        let (btx, brx) = tokio::sync::mpsc::unbounded_channel();
        (Duplex { rx: brx, tx: atx }, Duplex { rx: arx, tx: btx })
    }

    impl futures_util::Stream for Duplex {
        type Item = Result<Vec<u8>, String>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.rx.poll_recv(cx).map(|o| o.map(Ok))
        }
    }

    impl futures_util::Sink<Vec<u8>> for Duplex {
        type Error = String;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), String> {
            self.tx.send(item).map_err(|e| e.to_string())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
    }

    fn auth(secret: &str, me: NodeId) -> PeerAuth {
        let mut cfg = Config::default_local();
        cfg.secret = secret.into();
        PeerAuth::new(&cfg, me)
    }

    #[tokio::test]
    async fn handshake_succeeds_with_the_secret_and_fails_without() {
        let (good1, good2, bad1) = (auth("s3cret-s3cret", 1), auth("s3cret-s3cret", 2), auth("wrong-wrong", 1));

        let (mut a, mut b) = pair();
        let (x, y) = tokio::join!(dial_handshake(&mut a, &good1, 2), accept_handshake(&mut b, &good2));
        assert_eq!((x, y), (Ok(()), Ok(1)));

        // The dialer sees that an acceptor with another secret cannot prove it.
        let (a, mut b) = pair();
        let bad = &bad1;
        let dialer = async move {
            let mut a = a;
            // Hanging up at once spares the acceptor its timeout.
            dial_handshake(&mut a, bad, 2).await
        };
        let (x, _) = tokio::join!(dialer, accept_handshake(&mut b, &good2));
        assert!(x.unwrap_err().contains("failed to prove"));

        // A dialer with the wrong secret that goes on anyway is refused.
        let (mut a, mut b) = pair();
        let dialer = async {
            let hello = Handshake::Hello { cluster: "raftkv-local".into(), from: 1, to: 2, nonce: [7u8; 32] };
            a.send(hello.encode()).await.ok();
            let Ok(Handshake::Challenge { nonce, .. }) = recv_hs(&mut a).await else { panic!("no challenge") };
            a.send(Handshake::Proof { proof: bad1.prove("dial", &nonce, 1, 2) }.encode()).await.ok();
            a
        };
        let (_a, y) = tokio::join!(dialer, accept_handshake(&mut b, &good2));
        assert!(y.unwrap_err().contains("failed to prove the shared secret"));

        // Reflection: the acceptor's own proof over a nonce is no dialer proof.
        let (mut a, mut b) = pair();
        let dialer = async {
            let hello = Handshake::Hello { cluster: "raftkv-local".into(), from: 1, to: 2, nonce: [7u8; 32] };
            a.send(hello.encode()).await.ok();
            let Ok(Handshake::Challenge { nonce, .. }) = recv_hs(&mut a).await else { panic!("no challenge") };
            // What node 2 would answer if asked to accept a dialer with this nonce.
            a.send(Handshake::Proof { proof: good2.prove("accept", &nonce, 2, 1) }.encode()).await.ok();
            a
        };
        let (_a, y) = tokio::join!(dialer, accept_handshake(&mut b, &good2));
        assert!(y.is_err());

        // Wrong cluster, wrong recipient, unknown node.
        for (cluster, from, to) in [("other", 1, 2), ("raftkv-local", 1, 3), ("raftkv-local", 9, 2)] {
            let (mut a, mut b) = pair();
            let hello = Handshake::Hello { cluster: cluster.into(), from, to, nonce: [1u8; 32] };
            a.send(hello.encode()).await.ok();
            assert!(accept_handshake(&mut b, &good2).await.is_err());
        }
    }

    #[test]
    fn batches_roundtrip_and_garbage_is_refused() {
        use raft_core::Body;
        let msgs = vec![
            Message { from: 1, to: 2, term: 3, body: Body::VoteResp { granted: true } },
            Message { from: 1, to: 2, term: 3, body: Body::PreVoteResp { granted: false } },
        ];
        let f = encode_batch(&msgs);
        assert_eq!(decode_batch(&f, 1 << 20).unwrap(), msgs);
        assert!(decode_batch(&f[..f.len() - 1], 1 << 20).is_err());
        assert!(decode_batch(b"garbage!", 1 << 20).is_err());
        assert!(decode_batch(&f, 4).is_err());
    }
}
