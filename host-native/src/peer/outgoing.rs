//! The sending side of a peer link: dial the peer's `/raft`, run the
//! handshake, then send batches of whatever the node task queued for it.
//!
//! A link that fails for any reason drops what is queued (Raft resends what
//! matters) and reconnects with exponential back-off, forever.
//!
//! A link whose packets stop arriving without a reset (a partition, a
//! machine that vanished) would otherwise look alive for as long as the
//! kernel retransmits: small frames fit the socket buffer, so no write ever
//! blocks, and after a heal the connection may sit in retransmission
//! back-off for seconds. So the dialer pings ([`LinkConfig::dead_after`] / 4
//! apart) and declares the link dead when no pong came within `dead_after`;
//! the acceptor, which answers the pings, does the same when nothing at all
//! arrives (`peer::incoming`). The dialled socket also gets
//! `TCP_USER_TIMEOUT` and keepalive, and each TCP connect is bounded by half
//! of `dead_after`, so attempts during a partition fail fast and one soon
//! after the heal goes through (a SYN lost in the partition would be
//! retried by the kernel only a second later, then after 3 s, 7 s...).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raft_core::{Message, NodeId};

use crate::metrics::Metrics;
use crate::peer::batch::Sealer;
use crate::peer::handshake::{dial_handshake, PeerAuth, HANDSHAKE_TIMED_OUT};
use crate::tls::TcpTuning;

/// How long one frame may take to go out before the link is given up (where
/// `TCP_USER_TIMEOUT` is not there to fail a write into a dead link sooner).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait between reconnection attempts; the longest is a quarter of
/// `dead_after` (at most [`BACKOFF_MAX`]), so the first attempt after a
/// partition heals comes soon.
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
    /// Each step of the handshake (TLS, the WebSocket upgrade, each frame of
    /// the peer handshake) must be done within this (`handshake_timeout_ms`):
    /// a peer that accepts TCP but never answers does not hold the link.
    pub handshake_timeout: Duration,
    /// No pong for this long and the link is dead (`peer_dead_ms`).
    pub dead_after: Duration,
}

impl LinkConfig {
    /// Links with `limits`' sizes and timeouts and `tls`.
    pub fn new(limits: &crate::config::Limits, tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> LinkConfig {
        LinkConfig {
            batch_bytes: limits.peer_batch_bytes,
            max_frame: limits.max_transport_frame,
            tls,
            handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
            dead_after: Duration::from_millis(limits.peer_dead_ms),
        }
    }
}

/// Why an attempt to open a link failed.
enum DialError {
    /// Nothing answered in time.
    TimedOut(String),
    /// Anything else (refused, a failed proof, a bad certificate).
    Failed(String),
}

type Ws = tokio_tungstenite::WebSocketStream<crate::tls::Stream>;

/// Connects to `url` and runs the handshake: TCP within half of
/// `dead_after` (the election timeouts raftkv's defaults give assume round
/// trips far shorter), then each step within `handshake_timeout`.
async fn open(to: NodeId, url: &str, auth: &PeerAuth, link: &LinkConfig) -> Result<(Ws, Sealer, u64), DialError> {
    let tuning = TcpTuning {
        connect_timeout: Some(link.dead_after / 2),
        // Lenient: a peer that only reads slowly (its window shut while it
        // is busy) must not lose the link; the pings find a dead one.
        user_timeout: Some(link.dead_after * 4),
        keepalive: Some(link.dead_after),
        tls_timeout: Some(link.handshake_timeout),
    };
    let stream = crate::tls::dial_tuned(url, link.tls.as_ref(), &tuning).await.map_err(|e| {
        if e.timed_out {
            DialError::TimedOut(e.message)
        } else {
            DialError::Failed(e.message)
        }
    })?;
    let step = link.handshake_timeout;
    let upgrade = async {
        // Over TLS the peer's certificate must name the node we mean to reach.
        if link.tls.is_some() && !stream.server_cert.as_ref().is_some_and(|c| crate::tls::cert_names_node(c, to)) {
            return Err(format!("{url}: its TLS certificate does not name node {to}"));
        }
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config(link.max_frame)))
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| format!("cannot connect to {url}: {e}"))
    };
    let mut ws = match tokio::time::timeout(step, upgrade).await {
        Ok(r) => r.map_err(DialError::Failed)?,
        Err(_) => return Err(DialError::TimedOut(format!("{url}: no WebSocket upgrade within {step:?}"))),
    };
    let (key, inc) = dial_handshake(&mut binary_frames(&mut ws), auth, to, step).await.map_err(|e| {
        if e == HANDSHAKE_TIMED_OUT {
            DialError::TimedOut(e)
        } else {
            DialError::Failed(e)
        }
    })?;
    Ok((ws, Sealer::new(key), inc))
}

/// What ended an open link.
enum Ended {
    /// The node task dropped the queue: the link is no longer wanted.
    Unwanted,
    /// The link failed or was declared dead: dial again.
    Lost,
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
    let url = format!("{url}/raft");
    let backoff_max = (link.dead_after / 4).clamp(BACKOFF_MIN, BACKOFF_MAX);
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    loop {
        // One bound over everything: every step has its own, and this
        // catches a peer that answers each just in time.
        let limit = link.dead_after + link.handshake_timeout * 5;
        let result = match tokio::time::timeout(limit, open(to, &url, &auth, &link)).await {
            Ok(r) => r,
            Err(_) => Err(DialError::TimedOut(format!("{url}: the connection attempt took over {limit:?}"))),
        };
        let (ws, sealer, inc) = match result {
            Ok(l) => l,
            Err(e) => {
                metrics.peer_connects_failed_total.inc();
                let e = match e {
                    DialError::TimedOut(e) => {
                        metrics.peer_connects_timed_out_total.inc();
                        e
                    }
                    DialError::Failed(e) => e,
                };
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
                backoff = (backoff * 2).min(backoff_max);
                continue;
            }
        };
        tracing::info!(peer = to, incarnation = inc, "link to peer established");
        metrics.peer_handshakes_ok_total.inc();
        reported = false;
        backoff = BACKOFF_MIN;
        match send_until_lost(to, ws, sealer, &mut rx, &link, &metrics).await {
            Ended::Unwanted => return,
            Ended::Lost => {}
        }
    }
}

/// Sends what the node task queues over an open link, pinging when it is
/// quiet, until the link fails or is declared dead.
async fn send_until_lost(
    to: NodeId,
    mut ws: Ws,
    mut sealer: Sealer,
    rx: &mut mpsc::Receiver<Message>,
    link: &LinkConfig,
    metrics: &Metrics,
) -> Ended {
    let dead_after = link.dead_after;
    let period = dead_after / 4;
    let mut ping = tokio::time::interval(period);
    let mut last_tick = Instant::now();
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the peer was last heard from (a pong); the link was just proven.
    let mut heard = Instant::now();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return Ended::Unwanted };
                let mut bytes = m.size();
                batch.push(m);
                while bytes < link.batch_bytes {
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
                let started = Instant::now();
                // A peer that stops reading (paused, or its machine gone
                // without a reset) must not hold this link forever.
                let sent = match tokio::time::timeout(SEND_TIMEOUT, ws.send(WsMessage::binary(frame))).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("send timed out".to_string()),
                };
                if let Err(e) = sent {
                    tracing::info!(peer = to, error = %e, "link to peer lost");
                    metrics.peer_messages_dropped_total.add(n);
                    return Ended::Lost;
                }
                // No ping could go out while this frame was being written (a
                // big one over a slow link): that time is not the peer's
                // silence.
                heard = (heard + started.elapsed()).min(Instant::now());
                metrics.peer_frames_sent_total.inc();
            }
            _ = ping.tick() => {
                // A tick far late means this process did not run (a stall,
                // an overloaded machine): pongs may be waiting unread, and
                // the silence is ours, not the peer's.
                if std::mem::replace(&mut last_tick, Instant::now()).elapsed() > period * 2 {
                    heard = Instant::now();
                }
                if heard.elapsed() >= dead_after {
                    metrics.peer_links_dead_total.inc();
                    tracing::warn!(
                        peer = to,
                        silent_ms = heard.elapsed().as_millis() as u64,
                        "link to peer declared dead: no pong within peer_dead_ms; dialling again"
                    );
                    return Ended::Lost;
                }
                // Small enough to go out at once; if the socket's buffer is
                // full, the frames waiting there are the liveness test.
                match tokio::time::timeout(dead_after, ws.send(WsMessage::Ping(Vec::new().into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::info!(peer = to, error = %e, "link to peer lost");
                        return Ended::Lost;
                    }
                    Err(_) => {
                        metrics.peer_links_dead_total.inc();
                        tracing::warn!(peer = to, "link to peer declared dead: a ping could not be written");
                        return Ended::Lost;
                    }
                }
            }
            // The acceptor sends nothing but pongs after Welcome: anything
            // else is the connection ending.
            r = ws.next() => match r {
                Some(Ok(WsMessage::Pong(_))) => heard = Instant::now(),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Frame(_))) => {}
                _ => {
                    tracing::info!(peer = to, "link to peer closed");
                    return Ended::Lost;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::handshake::accept_handshake;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use tokio::net::TcpListener;

    fn link(handshake_ms: u64, dead_ms: u64) -> LinkConfig {
        LinkConfig {
            batch_bytes: 1 << 20,
            max_frame: 16 << 20,
            tls: None,
            handshake_timeout: Duration::from_millis(handshake_ms),
            dead_after: Duration::from_millis(dead_ms),
        }
    }

    fn auth(me: NodeId) -> PeerAuth {
        PeerAuth::for_cluster("c", "secret-secret", me, 10 + me)
    }

    async fn wait_for(what: &str, within: Duration, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Issue #13: a peer that accepts the TCP connection (and says nothing
    /// to a WebSocket upgrade or a TLS hello) or even the WebSocket upgrade
    /// (and never sends its Challenge) does not hold the dialer: the attempt
    /// gives up after `handshake_timeout_ms` and dials again.
    #[tokio::test]
    async fn a_peer_that_accepts_but_never_answers_does_not_hold_the_dialer() {
        let certs = std::env::temp_dir().join(format!("raftkv-silent-peer-{}", std::process::id()));
        crate::tls::write_dev_certs(&crate::Config::default_local(), &certs).unwrap();
        let tls = crate::tls::client_config(&certs.join("ca.pem")).unwrap();
        for (upgrade, over_tls) in [(false, false), (false, true), (true, false)] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let scheme = if over_tls { "wss" } else { "ws" };
            let url = format!("{scheme}://{}", l.local_addr().unwrap());
            let accepted = Arc::new(AtomicUsize::new(0));
            let count = accepted.clone();
            let server = tokio::spawn(async move {
                let (mut tcp, mut ws) = (Vec::new(), Vec::new());
                while let Ok((s, _)) = l.accept().await {
                    count.fetch_add(1, SeqCst);
                    if upgrade {
                        // Upgrades, then never sends its Challenge.
                        if let Ok(w) = tokio_tungstenite::accept_async(s).await {
                            ws.push(w);
                        }
                    } else {
                        tcp.push(s);
                    }
                }
            });
            let (tx, rx) = mpsc::channel(8);
            let metrics = Arc::new(Metrics::default());
            let started = Instant::now();
            let mut cfg = link(150, 200);
            cfg.tls = over_tls.then(|| tls.clone());
            let sender = tokio::spawn(run_sender(2, url, Arc::new(auth(1)), rx, cfg, metrics.clone()));
            wait_for("a third attempt", Duration::from_secs(5), || accepted.load(SeqCst) >= 3).await;
            let took = started.elapsed();
            assert!(metrics.peer_connects_timed_out_total.get() >= 2, "attempts counted as timed out");
            assert_eq!(metrics.peer_handshakes_ok_total.get(), 0);
            eprintln!("upgrade {upgrade}, TLS {over_tls}: three attempts in {took:?}");
            sender.abort();
            server.abort();
            drop(tx);
        }
        let _ = std::fs::remove_dir_all(&certs);
    }

    /// Issue #13 item 6: a link that stops answering (here: an acceptor that
    /// stops reading, so no pong comes back; in a partition, nothing does)
    /// is declared dead within about `peer_dead_ms` even though no message
    /// is queued, and the sender dials again; while pongs come, an idle
    /// link stays up.
    #[tokio::test]
    async fn a_link_that_goes_silent_is_declared_dead_and_dialled_again() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", l.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let (count, stop) = (accepted.clone(), stopped.clone());
        let server = tokio::spawn(async move {
            let acceptor = auth(2);
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                let n = count.fetch_add(1, SeqCst);
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else { continue };
                let Ok(a) = accept_handshake(&mut binary_frames(&mut ws), &acceptor, Duration::from_secs(2)).await
                else {
                    continue;
                };
                assert_eq!((a.peer, a.inc), (1, 11));
                if n == 0 {
                    // Reading answers the pings, for a second; then silence.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    *stop.lock().unwrap() = Some(Instant::now());
                }
                held.push(ws);
            }
        });
        let (tx, rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::default());
        let sender = tokio::spawn(run_sender(2, url, Arc::new(auth(1)), rx, link(1000, 200), metrics.clone()));
        wait_for("the pongs stop", Duration::from_secs(5), || stopped.lock().unwrap().is_some()).await;
        assert_eq!(metrics.peer_links_dead_total.get(), 0, "an idle link that answers pings stays up");
        assert_eq!(accepted.load(SeqCst), 1);
        wait_for("a second connection", Duration::from_secs(5), || accepted.load(SeqCst) >= 2).await;
        let since = stopped.lock().unwrap().map(|t| t.elapsed()).unwrap_or_default();
        assert_eq!(metrics.peer_links_dead_total.get(), 1);
        eprintln!("silent link noticed and dialled again {since:?} after the pongs stopped");
        assert!(since < Duration::from_millis(200 * 3), "declared dead within about peer_dead_ms: {since:?}");
        sender.abort();
        server.abort();
        drop(tx);
    }
}
