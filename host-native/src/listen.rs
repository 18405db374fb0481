//! The node's listener: every connection an outsider can open goes through
//! here, and so do the limits on what it can make the node hold.
//!
//! * [`Gate`] — how many connections the node holds, in all and per remote
//!   address, fitted to the process's file-descriptor limit, with a reserve
//!   that client WebSockets cannot take (so peers and `/status` still get in).
//! * [`serve`] — the accept loop: admits a connection through the gate,
//!   gives it `handshake_timeout_ms` to send its HTTP request headers, and
//!   serves the router on it (upgrades included). An `accept` that fails
//!   (out of file descriptors) is logged and counted, never silent.
//! * [`Metered`] and [`IoStats`] — the connection's bytes read and written,
//!   which [`Watchdog`] reads to tell an idle WebSocket from one that is half
//!   way through a frame, and to know how much is owed to a peer that does
//!   not read.
//! * [`close`] — every close the node decides sends a Close frame with a
//!   code and a reason.
//!
//! Imports only [`crate::config`] and [`crate::metrics`]; the router is
//! handed in.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::metrics::{Counter, Metrics};

/// Bytes read from and written to one connection, below TLS and WebSocket.
#[derive(Debug, Default)]
pub struct IoStats {
    read: AtomicU64,
    written: AtomicU64,
}

impl IoStats {
    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// An I/O object that counts its bytes into an [`IoStats`].
#[derive(Debug)]
pub struct Metered<T> {
    inner: T,
    stats: Arc<IoStats>,
}

impl<T> Metered<T> {
    /// Wraps `inner`, counting into `stats`.
    pub fn new(inner: T, stats: Arc<IoStats>) -> Self {
        Metered { inner, stats }
    }
    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.stats.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The process's file-descriptor limit and how many it has open, read from
/// `/proc` (Linux); `None` elsewhere.
pub fn fd_usage() -> Option<(usize, usize)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    let soft: usize = if soft == "unlimited" { usize::MAX } else { soft.parse().ok()? };
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some((soft, open))
}

/// The node's connection limit: `max_connections`, or less when the
/// file-descriptor limit leaves less room (keeping `fd_headroom` for
/// everything else the process opens).
pub fn connection_limit(limits: &Limits, fds: Option<(usize, usize)>) -> usize {
    match fds {
        Some((soft, open)) => limits.max_connections.min(soft.saturating_sub(open + limits.fd_headroom)),
        None => limits.max_connections,
    }
}

#[derive(Debug, Default)]
struct GateState {
    open: usize,
    clients: usize,
    per_address: HashMap<IpAddr, usize>,
    refused_since_warning: u64,
    last_warning: Option<Instant>,
}

/// Counts a node's open connections against its limits.
#[derive(Debug)]
pub struct Gate {
    max: usize,
    per_address: usize,
    reserved: usize,
    state: Mutex<GateState>,
    metrics: Arc<Metrics>,
}

/// Why the gate refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds its limit of connections.
    Full,
    /// This address holds its limit.
    Address,
}

/// One admitted connection; the gate counts it until this is dropped.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

/// One admitted client WebSocket (on top of its connection's [`Slot`]).
#[derive(Debug)]
pub struct ClientSlot {
    gate: Arc<Gate>,
}

impl Gate {
    /// A gate holding at most `max` connections (see [`connection_limit`]).
    pub fn new(limits: &Limits, max: usize, metrics: Arc<Metrics>) -> Gate {
        Gate {
            max,
            per_address: limits.max_connections_per_address,
            reserved: limits.reserved_connections.min(max),
            state: Mutex::new(GateState::default()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most connections this gate admits.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits a connection from `ip`, or says why not. Refusals are counted
    /// and logged (at most once a second, with how many since).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut st = self.lock();
        let from_ip = st.per_address.get(&ip).copied().unwrap_or(0);
        let refusal = if st.open >= self.max {
            Some(Refusal::Full)
        } else if from_ip >= self.per_address {
            Some(Refusal::Address)
        } else {
            None
        };
        match refusal {
            None => {
                st.open += 1;
                st.per_address.insert(ip, from_ip + 1);
                Ok(Slot { gate: self.clone(), ip })
            }
            Some(r) => {
                let (counter, what) = match r {
                    Refusal::Full => (&self.metrics.conn_refused_limit_total, "the node's connection limit"),
                    Refusal::Address => (&self.metrics.conn_refused_address_total, "the per-address connection limit"),
                };
                counter.inc();
                st.refused_since_warning += 1;
                let now = Instant::now();
                if st.last_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    tracing::warn!(
                        %ip,
                        open = st.open,
                        limit = self.max,
                        per_address = self.per_address,
                        refused = st.refused_since_warning,
                        "refusing connections: {what} is reached (max_connections, fitted to the file-descriptor limit, \
                         or max_connections_per_address)"
                    );
                    st.last_warning = Some(now);
                    st.refused_since_warning = 0;
                }
                Err(r)
            }
        }
    }

    /// Admits a client WebSocket unless only the reserve is left.
    pub fn admit_client(self: &Arc<Self>) -> Option<ClientSlot> {
        let mut st = self.lock();
        if st.clients + self.reserved >= self.max {
            self.metrics.client_refused_reserve_total.inc();
            return None;
        }
        st.clients += 1;
        Some(ClientSlot { gate: self.clone() })
    }

    /// Connections open now (all kinds), and client WebSockets among them.
    pub fn open(&self) -> (usize, usize) {
        let st = self.lock();
        (st.open, st.clients)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.open = st.open.saturating_sub(1);
        if let Some(n) = st.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.per_address.remove(&self.ip);
            }
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.clients = st.clients.saturating_sub(1);
    }
}

/// What a handler learns about the connection its request came on (a
/// request extension): the remote address, its byte counters, and the
/// connection's place in the gate (a WebSocket handler keeps it for as long
/// as the socket lives).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The remote address.
    pub remote: SocketAddr,
    /// The connection's bytes.
    pub io: Arc<IoStats>,
    /// Held while the connection (or the WebSocket it became) lives.
    pub slot: Arc<Slot>,
    /// The client certificate the remote presented over TLS (verified
    /// against the cluster's CA), if any: peers must present one.
    pub peer_cert: Option<Arc<tokio_rustls::rustls::pki_types::CertificateDer<'static>>>,
}

/// Accepts connections on `listener` and serves `app` on each, under
/// `gate`, until the process ends; over TLS when `tls` is given. A
/// connection that has not finished its TLS handshake and sent its request
/// headers within `handshake_timeout` is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    gate: Arc<Gate>,
    handshake_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
) {
    let mut last_error: Option<Instant> = None;
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                metrics.conn_accept_errors_total.inc();
                let now = Instant::now();
                if last_error.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    let (open, clients) = gate.open();
                    tracing::warn!(error = %e, open, clients, "cannot accept a connection (out of file descriptors?)");
                    last_error = Some(now);
                }
                // The error persists until something closes: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = gate.admit(remote.ip()) else {
            drop(tcp);
            continue;
        };
        metrics.conn_accepted_total.inc();
        // Small frames matter more than throughput here: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let io = Arc::new(IoStats::default());
        let mut info = ConnInfo { remote, io: io.clone(), slot: Arc::new(slot), peer_cert: None };
        let app = app.clone();
        let metrics = metrics.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = Metered::new(tcp, io);
            let Some(acceptor) = tls else {
                return serve_http(stream, app, info, handshake_timeout, &metrics).await;
            };
            let started = Instant::now();
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.conn_tls_failed_total.inc();
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.conn_handshake_timeouts_total.inc();
                    return;
                }
            };
            info.peer_cert =
                tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::new(c.clone().into_owned()));
            // The header deadline is what is left of the handshake's.
            let left = handshake_timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
            serve_http(tls, app, info, left, &metrics).await;
        });
    }
}

/// Serves HTTP/1.1 (with upgrades) on one accepted stream.
async fn serve_http<S>(stream: S, app: Router, info: ConnInfo, handshake_timeout: Duration, metrics: &Metrics)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        app.clone().oneshot(req)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(handshake_timeout);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades();
    if let Err(e) = conn.await {
        if e.is_timeout() {
            metrics.conn_handshake_timeouts_total.inc();
            tracing::debug!("closed a connection that sent no request headers in time");
        } else {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
}

/// Why the node closes a WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing received within `idle_timeout_ms`.
    Idle,
    /// A frame begun and not finished within `frame_timeout_ms`.
    FrameTimeout,
    /// A message over `max_transport_frame`.
    TooBig,
    /// More than `max_queued_bytes` owed to a peer that does not read.
    QueueFull,
    /// The peer failed its handshake or sent what a link must not carry.
    Policy,
}

impl Verdict {
    /// The close code (RFC 6455 §7.4.1).
    pub fn code(self) -> u16 {
        match self {
            Verdict::Idle => 1001,
            Verdict::TooBig => 1009,
            Verdict::FrameTimeout | Verdict::QueueFull | Verdict::Policy => 1008,
        }
    }

    /// The counter this close bumps (none for a policy close, counted where decided).
    pub fn counter(self, m: &Metrics) -> Option<&Counter> {
        match self {
            Verdict::Idle => Some(&m.ws_idle_closed_total),
            Verdict::FrameTimeout => Some(&m.ws_frame_timeouts_total),
            Verdict::TooBig => Some(&m.ws_frame_too_big_total),
            Verdict::QueueFull => Some(&m.ws_queue_overflow_total),
            Verdict::Policy => None,
        }
    }

    /// The reason sent in the Close frame.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Idle => "idle timeout",
            Verdict::FrameTimeout => "frame not finished in time",
            Verdict::TooBig => "message too big",
            Verdict::QueueFull => "not reading: too many bytes queued",
            Verdict::Policy => "refused",
        }
    }
}

/// The bytes a server frame with a `payload`-byte body takes on the wire.
pub fn frame_len(payload: usize) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

/// Watches one WebSocket for the limits of time and queued bytes.
#[derive(Debug)]
pub struct Watchdog {
    io: Arc<IoStats>,
    idle: Duration,
    frame: Duration,
    max_queued: u64,
    /// Bytes read when the last whole message came.
    read_at_message: u64,
    last_message: Instant,
    /// When bytes of an unfinished frame were first seen.
    partial_since: Option<Instant>,
    /// Bytes written before the socket was handed over (the HTTP upgrade).
    written_base: u64,
    /// Bytes of frames queued towards the peer since.
    queued: u64,
}

impl Watchdog {
    /// A watchdog over `io` with `limits`' timeouts and queue bound.
    pub fn new(io: Arc<IoStats>, limits: &Limits) -> Watchdog {
        let (read, written) = (io.read(), io.written());
        Watchdog {
            io,
            idle: Duration::from_millis(limits.idle_timeout_ms),
            frame: Duration::from_millis(limits.frame_timeout_ms),
            max_queued: limits.max_queued_bytes as u64,
            read_at_message: read,
            last_message: Instant::now(),
            partial_since: None,
            written_base: written,
            queued: 0,
        }
    }

    /// How often [`Watchdog::check`] should run.
    pub fn period(&self) -> Duration {
        (self.idle.min(self.frame) / 4).clamp(Duration::from_millis(10), Duration::from_millis(500))
    }

    /// A whole message arrived.
    pub fn received(&mut self) {
        self.read_at_message = self.io.read();
        self.last_message = Instant::now();
        self.partial_since = None;
    }

    /// A frame with a `payload`-byte body was queued towards the peer (a
    /// reply, or the pong the WebSocket layer answers a ping with).
    pub fn queued(&mut self, payload: usize) {
        self.queued += frame_len(payload);
    }

    /// Bytes queued towards the peer and not yet written to the socket or
    /// still in the kernel's buffers... as far as this side can tell: what
    /// was queued less what the socket accepted.
    pub fn owed(&self) -> u64 {
        (self.written_base + self.queued).saturating_sub(self.io.written())
    }

    /// Whether queueing a frame of `payload` bytes more would pass the bound.
    pub fn would_overflow(&self, payload: usize) -> bool {
        self.owed() + frame_len(payload) > self.max_queued
    }

    /// Whether the bound is already passed.
    pub fn overflowed(&self) -> bool {
        self.owed() > self.max_queued
    }

    /// The idle timeout (also bounds how long one write may block).
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// Whether a limit of time has run out. `busy`: the connection waits on
    /// answers of its own, so silence from the peer is not idleness.
    pub fn check(&mut self, busy: bool) -> Option<Verdict> {
        let now = Instant::now();
        if self.io.read() > self.read_at_message {
            let since = *self.partial_since.get_or_insert(now);
            if now.duration_since(since) >= self.frame {
                return Some(Verdict::FrameTimeout);
            }
            return None;
        }
        if self.overflowed() {
            return Some(Verdict::QueueFull);
        }
        if !busy && now.duration_since(self.last_message) >= self.idle {
            return Some(Verdict::Idle);
        }
        None
    }
}

/// Whether a WebSocket read error is a message over the size limit.
pub fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) = s.downcast_ref() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Closes `socket` with a Close frame carrying `code` and `reason`; gives
/// up after a second (a peer that does not read never takes it).
pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len(0), 2);
        assert_eq!(frame_len(125), 127);
        assert_eq!(frame_len(126), 130);
        assert_eq!(frame_len(70_000), 70_010);
    }

    #[test]
    fn the_connection_limit_fits_the_fd_limit() {
        let l = Limits::default();
        assert_eq!(connection_limit(&l, None), l.max_connections);
        assert_eq!(connection_limit(&l, Some((usize::MAX, 10))), l.max_connections);
        assert_eq!(connection_limit(&l, Some((200, 20))), 200 - 20 - l.fd_headroom);
        assert_eq!(connection_limit(&l, Some((50, 20))), 0);
        assert!(fd_usage().is_none_or(|(soft, open)| soft >= open && open > 0));
    }

    #[test]
    fn the_gate_counts_per_address_and_keeps_a_reserve() {
        let l = Limits { max_connections_per_address: 2, reserved_connections: 2, ..Limits::default() };
        let m = Arc::new(Metrics::default());
        let g = Arc::new(Gate::new(&l, 4, m.clone()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = g.admit(a).unwrap();
        let _s2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).unwrap_err(), Refusal::Address);
        let _s3 = g.admit(b).unwrap();
        let _s4 = g.admit(b).unwrap();
        assert_eq!(g.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Refusal::Full);
        drop(s1);
        assert!(g.admit(a).is_ok());
        assert_eq!((m.conn_refused_address_total.get(), m.conn_refused_limit_total.get()), (1, 1));
        let c1 = g.admit_client().unwrap();
        let _c2 = g.admit_client().unwrap();
        assert!(g.admit_client().is_none(), "the last two are kept for peers and /status");
        assert_eq!(m.client_refused_reserve_total.get(), 1);
        drop(c1);
        assert!(g.admit_client().is_some());
    }
}
