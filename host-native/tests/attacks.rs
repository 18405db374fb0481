//! Process-level attacks on real `raftkv node`s (issue #13): what an outsider
//! on the same host can make a node hold, and that every limit closes it on
//! time. Each attack prints a `MEMORY` line — the node's resident memory
//! (`VmRSS` of `/proc/PID/status`, KiB) before, at the height of, and after
//! the attack — run with `--nocapture` to see them.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Timeouts low enough for a test, the queue bound at its smallest.
const TIGHT: &str = "[limits]\n\
    max_client_frame = 2162688\n\
    max_queued_bytes = 2228224\n\
    handshake_timeout_ms = 1000\n\
    idle_timeout_ms = 1000\n\
    frame_timeout_ms = 1000\n";

/// Slack on top of a 1 s limit: the check runs every 250 ms, and the machine is shared.
const SLACK: Duration = Duration::from_millis(1500);

fn memory(attack: &str, before: u64, during: u64, after: u64) {
    eprintln!("MEMORY attack={attack:<24} before={before:>7} KiB  during={during:>7} KiB  after={after:>7} KiB");
}

fn addr(c: &Cluster, id: u64) -> String {
    c.url(id).trim_start_matches("ws://").to_string()
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8).
async fn tcp_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{from}:0").parse().unwrap())?;
    s.connect(to.parse().unwrap()).await
}

/// A raw TCP stream that has finished a WebSocket upgrade to `path`.
async fn raw_ws(from: &str, to: &str, path: &str) -> Result<TcpStream, String> {
    let tcp = tcp_from(from, to).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{to}{path}"), tcp).await.map_err(|e| e.to_string())?;
    Ok(ws.into_inner())
}

/// Reads until the server closes; returns the close code of a Close frame
/// among what it sent, if any (`None`: closed without one).
async fn close_code(s: &mut TcpStream, within: Duration) -> Result<Option<u16>, &'static str> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return Err("not closed in time"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    // Walk the server's (unmasked) frames for a Close.
    let mut i = 0;
    while i + 2 <= buf.len() {
        let op = buf[i] & 0x0f;
        let mut len = (buf[i + 1] & 0x7f) as usize;
        let mut at = i + 2;
        if len == 126 && at + 2 <= buf.len() {
            len = u16::from_be_bytes([buf[at], buf[at + 1]]) as usize;
            at += 2;
        } else if len == 127 && at + 8 <= buf.len() {
            len = u64::from_be_bytes(buf[at..at + 8].try_into().unwrap()) as usize;
            at += 8;
        }
        if op == 8 && len >= 2 && at + 2 <= buf.len() {
            return Ok(Some(u16::from_be_bytes([buf[at], buf[at + 1]])));
        }
        i = at + len;
    }
    Ok(None)
}

/// Waits until `f` holds (bounded).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {WAIT:?}");
}

/// Item 4: a ping flood from a client that never reads, and one that sends
/// requests and never reads the replies, are closed once they owe
/// `max_queued_bytes`; the leader keeps its leadership. Half-sent frames,
/// an oversize frame, slowloris headers, idle WebSockets and silent TCP
/// connections are each closed on time, with a Close frame where there is
/// a WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_cannot_make_a_node_hold_memory_or_connections() {
    let started = Instant::now();
    let c = Cluster::start("attack", 3, TIGHT);
    let leader = c.wait_leader(&c.ids()).await;
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();
    let a = addr(&c, leader);

    // 1. Ping flood: 125-byte pings as fast as the socket takes them, no reads.
    let before = c.rss_kib(leader);
    let mut s = raw_ws("127.0.0.1", &a, "/client").await.unwrap();
    let mut ping = Vec::new();
    for _ in 0..1000 {
        ping.extend_from_slice(&[0x89, 0x80 | 125, 0, 0, 0, 0]);
        ping.extend_from_slice(&[b'p'; 125]);
    }
    let t = Instant::now();
    let (mut sent, mut during) = (0u64, 0);
    while t.elapsed() < WAIT {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&ping)).await {
            Ok(Ok(())) => sent += 1000,
            _ => break,
        }
        if sent % 200_000 == 0 {
            during = during.max(c.rss_kib(leader));
        }
    }
    assert!(t.elapsed() < WAIT, "the ping flood was never cut off");
    drop(s);
    eventually("the queue overflow is counted", || async { c.metric(leader, "ws_queue_overflow_total").await >= 1 })
        .await;
    let after = c.rss_kib(leader);
    memory("ping flood (no reads)", before, during.max(after), after);
    eprintln!("  {sent} pings sent before the node closed the connection in {:?}", t.elapsed());
    assert!(during.max(after) < before + 64 * 1024, "the ping flood grew the node by more than 64 MiB");
    let st = c.status(leader).await.unwrap();
    assert_eq!((st["role"].as_str(), st["term"].as_u64()), (Some("leader"), Some(term)), "the leader kept its term");

    // 2. Requests whose replies are never read: 1 MiB values, asked for again and again.
    let lib = c.client();
    lib.put("big", &"v".repeat(1 << 20)).await.unwrap();
    let before = c.rss_kib(leader);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/client")).await.unwrap();
    let overflows = c.metric(leader, "ws_queue_overflow_total").await;
    let t = Instant::now();
    let mut during = 0;
    for id in 0..200u64 {
        use futures_util::SinkExt;
        let req = format!(r#"{{"id":{id},"op":"get","key":"big"}}"#);
        let r =
            tokio::time::timeout(Duration::from_secs(2), ws.send(tokio_tungstenite::tungstenite::Message::text(req)))
                .await;
        if !matches!(r, Ok(Ok(()))) {
            break;
        }
        if id % 20 == 0 {
            during = during.max(c.rss_kib(leader));
        }
    }
    eventually("the unread replies overflow", || async {
        c.metric(leader, "ws_queue_overflow_total").await > overflows
    })
    .await;
    drop(ws);
    let after = c.rss_kib(leader);
    memory("unread 1 MiB replies", before, during.max(after), after);
    assert!(during.max(after) < before + 64 * 1024, "unread replies grew the node by more than 64 MiB");
    eprintln!("  closed after {:?}", t.elapsed());

    // 3. Half-sent frames: 16 connections each announce a 2 MiB frame, send 1 MiB of it, and stop.
    let before = c.rss_kib(leader);
    let mut socks = Vec::new();
    for _ in 0..16 {
        let mut s = raw_ws("127.0.0.1", &a, "/client").await.unwrap();
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&(2u64 << 20).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(&vec![b'x'; 1 << 20]);
        s.write_all(&f).await.unwrap();
        socks.push(s);
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = c.rss_kib(leader);
    for s in &mut socks {
        assert_eq!(close_code(s, Duration::from_secs(1) + SLACK).await, Ok(Some(1008)), "half-sent frame");
    }
    eprintln!("  16 half-sent frames closed (1008) after {:?}", t.elapsed());
    drop(socks);
    let after = c.rss_kib(leader);
    memory("16 half-sent 2 MiB frames", before, during, after);
    assert!(c.metric(leader, "ws_frame_timeouts_total").await >= 16);

    // 4. A frame over the transport limit (16 MiB) gets Close 1009 at once.
    let mut s = raw_ws("127.0.0.1", &a, "/client").await.unwrap();
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(17u64 << 20).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3]);
    s.write_all(&f).await.unwrap();
    assert_eq!(close_code(&mut s, SLACK).await, Ok(Some(1009)), "oversize frame");
    assert!(c.metric(leader, "ws_frame_too_big_total").await >= 1);

    // 5. Slowloris: 50 connections trickle header lines and never end them.
    let before = c.rss_kib(leader);
    let mut socks = Vec::new();
    for _ in 0..50 {
        let mut s = tcp_from("127.0.0.1", &a).await.unwrap();
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        socks.push(s);
    }
    let t = Instant::now();
    let mut open = socks.len();
    while open > 0 && t.elapsed() < Duration::from_secs(1) + SLACK {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = 0;
        for s in &mut socks {
            if s.write_all(b"X-Slow: 1\r\n").await.is_ok() {
                let mut b = [0u8; 1];
                if !matches!(tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await, Ok(Ok(0) | Err(_))) {
                    open += 1;
                }
            }
        }
    }
    let during = c.rss_kib(leader);
    assert_eq!(open, 0, "slowloris connections still open after {:?}", t.elapsed());
    eprintln!("  50 slowloris connections closed after {:?}", t.elapsed());
    drop(socks);
    memory("50 slowloris HTTP", before, during, c.rss_kib(leader));
    assert!(c.metric(leader, "conn_handshake_timeouts_total").await >= 50);

    // 6. Idle WebSockets: 200 upgraded connections that say nothing get Close 1001.
    let before = c.rss_kib(leader);
    let mut socks = Vec::new();
    for _ in 0..200 {
        socks.push(raw_ws("127.0.0.1", &a, "/client").await.unwrap());
    }
    let t = Instant::now();
    let during = c.rss_kib(leader);
    for s in &mut socks {
        assert_eq!(close_code(s, Duration::from_secs(1) + SLACK).await, Ok(Some(1001)), "idle WebSocket");
    }
    eprintln!("  200 idle WebSockets closed (1001) after {:?}", t.elapsed());
    drop(socks);
    memory("200 idle WebSockets", before, during, c.rss_kib(leader));
    assert!(c.metric(leader, "ws_idle_closed_total").await >= 200);

    // 7. Silent TCP connections are closed after the handshake timeout.
    let mut socks = Vec::new();
    for _ in 0..20 {
        socks.push(tcp_from("127.0.0.1", &a).await.unwrap());
    }
    let t = Instant::now();
    for s in &mut socks {
        assert_eq!(close_code(s, Duration::from_secs(1) + SLACK).await, Ok(None), "silent TCP");
    }
    eprintln!("  20 silent TCP connections closed after {:?}", t.elapsed());

    // The cluster never noticed.
    let st = c.status(leader).await.unwrap();
    assert_eq!((st["role"].as_str(), st["term"].as_u64()), (Some("leader"), Some(term)), "{st}\n{}", c.logs());
    lib.put("after", "fine").await.unwrap();
    assert_eq!(lib.get("after").await.unwrap().as_deref(), Some("fine"));
    eprintln!("outsiders_cannot_make_a_node_hold_memory_or_connections: {:?}", started.elapsed());
}

/// Item 4: connections per remote address and per node; the node's limit
/// fitted to a low file-descriptor limit, refusing with a logged warning
/// before it runs out; client WebSockets never take the reserve, so
/// `/status` answers and a restarted peer links up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_keep_a_reserve_for_peers_and_status() {
    let started = Instant::now();
    let extra = "[limits]\nmax_connections_per_address = 20\nreserved_connections = 8\nfd_headroom = 32\n\
                 handshake_timeout_ms = 1000\n";
    let mut c = Cluster::configure("limits", 3, extra);
    c.spawn_with(1, Some(160));
    c.spawn(2);
    c.spawn(3);
    let leader = c.wait_leader(&c.ids()).await;
    let a = addr(&c, 1);
    let log = c.log(1);
    assert!(log.contains("file-descriptor limit is low"), "the fitted limit is logged\n{log}");
    // The library's connection is made before the client slots fill up.
    let lib = c.client();
    lib.put("k", "v0").await.unwrap();

    // Per address: 127.0.0.2 gets 20 connections, the 21st is closed at once.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(raw_ws("127.0.0.2", &a, "/client").await.unwrap());
    }
    assert!(raw_ws("127.0.0.2", &a, "/client").await.is_err(), "the 21st from one address is refused");
    assert!(c.metric(1, "conn_refused_address_total").await >= 1);
    drop(held);

    // Client WebSockets from many addresses, until only the reserve is left.
    let before = c.rss_kib(1);
    let mut clients = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        match raw_ws(&format!("127.0.1.{}", 1 + i / 10), &a, "/client").await {
            Ok(s) => clients.push(s),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("client WebSockets are limited");
    assert!(refused.contains("503"), "refused with 503: {refused}");
    assert!(c.metric(1, "client_refused_reserve_total").await >= 1);
    eprintln!("  {} client WebSockets admitted before the reserve", clients.len());
    // The reserve: /status answers and a restarted peer links up again.
    assert!(c.status(1).await.is_some(), "/status answers with the client slots full");
    // A follower other than node 1 restarts and must link up through node 1's reserve.
    let other = c.ids().into_iter().find(|&i| i != leader && i != 1).unwrap();
    lib.put("k", "v1").await.unwrap();
    c.kill(other);
    c.spawn(other);
    lib.put("k", "v2").await.unwrap();
    let idx = c.status(1).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(other, idx).await;

    // Silent connections fill the rest: refused with a warning, before accept() fails.
    let mut silent = Vec::new();
    for i in 0..200 {
        let Ok(mut s) = tcp_from(&format!("127.0.2.{}", 1 + i / 10), &a).await else { break };
        let mut b = [0u8; 1];
        if matches!(tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await, Ok(Ok(0) | Err(_))) {
            break; // closed at once: refused
        }
        silent.push(s);
    }
    let during = c.rss_kib(1);
    assert!(c.metric(1, "conn_refused_limit_total").await >= 1 || c.status(1).await.is_none());
    assert!(c.log(1).contains("refusing connections"), "the refusal is logged\n{}", c.log(1));
    // Once the silent ones time out, /status answers again; accept() never failed.
    drop(silent);
    eventually("/status answers again", || async { c.status(1).await.is_some() }).await;
    assert_eq!(c.metric(1, "conn_accept_errors_total").await, 0, "refused before the fd limit");
    drop(clients);
    memory("client slots + silent fill", before, during, c.rss_kib(1));
    assert!(c.exited(1).is_none());
    eprintln!("connection_limits_keep_a_reserve_for_peers_and_status: {:?}", started.elapsed());
}

/// A man in the middle for one node's URL: passes every byte, and once
/// armed rewrites the term of every message in the peer batch frames that
/// dialers send after their handshake (the tag left as it was: the relay
/// cannot compute it).
mod relay {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use raft_core::codec::{decode_with_header, encode_with_header};
    use raft_core::Message;
    use raftkv::peer::batch::{BATCH_MAGIC, BATCH_VERSION, TAG_LEN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[derive(Default)]
    pub struct Relay {
        pub armed: AtomicBool,
        pub rewritten: AtomicU64,
    }

    pub async fn run(listener: TcpListener, upstream: String, relay: Arc<Relay>) {
        while let Ok((down, _)) = listener.accept().await {
            let Ok(up) = TcpStream::connect(&upstream).await else { continue };
            tokio::spawn(pipe(down, up, relay.clone()));
        }
    }

    fn rewrite(p: &[u8]) -> Option<Vec<u8>> {
        let (body, tag) = p.split_at(p.len().checked_sub(TAG_LEN)?);
        let (seq, mut msgs): (u64, Vec<Message>) =
            decode_with_header(&BATCH_MAGIC, BATCH_VERSION, body, 1 << 24).ok()?;
        for m in &mut msgs {
            m.term += 100;
        }
        let mut out = encode_with_header(&BATCH_MAGIC, BATCH_VERSION, &(seq, msgs));
        out.extend_from_slice(tag);
        Some(out)
    }

    async fn fill(r: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>, n: usize) -> Option<()> {
        let mut chunk = [0u8; 65536];
        while buf.len() < n {
            let k = r.read(&mut chunk).await.ok()?;
            if k == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        Some(())
    }

    async fn pipe(down: TcpStream, up: TcpStream, relay: Arc<Relay>) {
        let (mut dr, mut dw) = down.into_split();
        let (mut ur, mut uw) = up.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut ur, &mut dw).await;
        });
        // The HTTP upgrade request passes as it is.
        let mut buf = Vec::new();
        let head = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let want = buf.len() + 1;
            if fill(&mut dr, &mut buf, want).await.is_none() {
                return;
            }
        };
        if uw.write_all(&buf[..head]).await.is_err() {
            return;
        }
        buf.drain(..head);
        // Then the client's masked frames, one by one.
        let mut data_frames = 0;
        loop {
            if fill(&mut dr, &mut buf, 2).await.is_none() {
                return;
            }
            let (b0, len7) = (buf[0], (buf[1] & 0x7f) as usize);
            let (mut at, len) = match len7 {
                126 => {
                    fill(&mut dr, &mut buf, 4).await;
                    (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
                }
                127 => {
                    fill(&mut dr, &mut buf, 10).await;
                    (10, u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize)
                }
                n => (2, n),
            };
            if fill(&mut dr, &mut buf, at + 4 + len).await.is_none() {
                return;
            }
            let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            at += 4;
            let mut payload: Vec<u8> = buf[at..at + len].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            buf.drain(..at + len);
            if b0 & 0x0f == 2 {
                // Frames 0 and 1 are the dialer's Hello and Proof.
                if data_frames >= 2 && relay.armed.load(Ordering::Relaxed) {
                    if let Some(p) = rewrite(&payload) {
                        payload = p;
                        relay.rewritten.fetch_add(1, Ordering::Relaxed);
                    }
                }
                data_frames += 1;
            }
            let mut out = vec![b0];
            match payload.len() {
                n @ 0..=125 => out.push(0x80 | n as u8),
                n @ 126..=65535 => {
                    out.push(0x80 | 126);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    out.push(0x80 | 127);
                    out.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            if uw.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

/// Item 5: a relay placed in front of node 2 (its URL points at the relay)
/// passes the real handshake, then rewrites every batch's terms by +100.
/// Node 2 refuses each rewritten frame and closes the link; no node adopts
/// the forged term and the leader keeps its leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_rewrites_peer_frames_is_refused() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let started = Instant::now();
    let mut c = Cluster::configure("relay", 3, "");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let cfg = std::fs::read_to_string(&c.config).unwrap();
    let node2 = format!("id = 2\nlisten = \"127.0.0.1:{}\"\n", c.ports[1]);
    let cfg = cfg.replace(&node2, &format!("{node2}url = \"ws://127.0.0.1:{relay_port}\"\n"));
    std::fs::write(&c.config, cfg).unwrap();
    let r = Arc::new(relay::Relay::default());
    tokio::spawn(relay::run(listener, format!("127.0.0.1:{}", c.ports[1]), r.clone()));
    // Nodes 1 and 3 elect a leader; node 2 joins behind the relay.
    c.spawn(1);
    c.spawn(3);
    let leader = c.wait_leader(&[1, 3]).await;
    c.spawn(2);
    let lib = c.client();
    lib.put("k", "before").await.unwrap();
    let idx = c.status(leader).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(2, idx).await;
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();

    r.armed.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rewritten = r.rewritten.load(Ordering::Relaxed);
    assert!(rewritten > 0, "the relay rewrote frames");
    for id in c.ids() {
        let st = c.status(id).await.unwrap();
        assert_eq!(st["term"].as_u64(), Some(term), "node {id} kept the term\n{st}\n{}", c.logs());
    }
    assert_eq!(c.status(leader).await.unwrap()["role"], "leader");
    assert!(c.log(2).contains("a frame failed its check"), "{}", c.log(2));
    assert!(c.metric(2, "peer_frames_rejected_total").await >= 1);
    eprintln!("  the relay rewrote {rewritten} frames; every one was refused");

    // Disarmed, the link works again.
    r.armed.store(false, Ordering::Relaxed);
    lib.put("k", "after").await.unwrap();
    let idx = c.status(leader).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(2, idx).await;
    eprintln!("a_relay_that_rewrites_peer_frames_is_refused: {:?}", started.elapsed());
}

/// Item 2: with `[[tokens]]` in the configuration, no token and a wrong
/// token are refused (401) on `/client`, `/status` and `/metrics`; a
/// read-only token reads and cannot write; a write token writes; a browser's
/// token in the `bearer.` subprotocol works; the CLI takes `--token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tokens_and_roles() {
    use futures_util::{SinkExt, StreamExt};
    use raftkv::auth::{hex, token_hash};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as M;
    let started = Instant::now();
    let (ro, rw, admin) = ("read-token-0123456789", "write-token-0123456789", "admin-token-0123456789");
    let mut extra = String::new();
    for (name, role, t) in [("viewer", "read", ro), ("app", "write", rw), ("ops", "admin", admin)] {
        extra.push_str(&format!(
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hex(&token_hash(t))
        ));
    }
    // (Top-level keys go before the tables: the harness appends [[nodes]] after.)
    let c = Cluster::start("auth", 3, &extra);
    let base = c.url(1);
    let start = Instant::now();
    let leader = loop {
        let mut found = None;
        for id in c.ids() {
            if let Ok(b) = raftkv::http::get_as(&c.url(id), "/status", Some(ro)).await {
                let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                if v["role"] == "leader" {
                    found = Some(id);
                }
            }
        }
        if let Some(l) = found {
            break l;
        }
        assert!(start.elapsed() < WAIT, "no leader\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(c.log(1).contains("client authentication is on"), "{}", c.log(1));

    // No token, a wrong token: 401 everywhere.
    for path in ["/status", "/metrics"] {
        let e = raftkv::http::get(&base, path).await.unwrap_err();
        assert!(e.contains("401"), "{path} without a token: {e}");
        let e = raftkv::http::get_as(&base, path, Some("wrong")).await.unwrap_err();
        assert!(e.contains("401"), "{path} with a wrong token: {e}");
    }
    let e = tokio_tungstenite::connect_async(format!("{base}/client")).await.unwrap_err().to_string();
    assert!(e.contains("401"), "{e}");
    let mut req = format!("{base}/client").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer wrong".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.unwrap_err().to_string().contains("401"));
    assert!(raftkv::http::get_as(&base, "/metrics", Some(ro))
        .await
        .unwrap()
        .contains("raftkv_client_auth_failed_total"));

    // The library with a write token writes; with the read token it reads and cannot write.
    let opts = |t: &str| raftkv::ClientOptions { token: Some(t.into()), ..raftkv::ClientOptions::default() };
    let writer = raftkv::Client::new(c.urls(), opts(rw));
    writer.put("k", "v").await.unwrap();
    let reader = raftkv::Client::new(c.urls(), opts(ro));
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some("v"));
    match reader.put("k", "w").await {
        Err(raftkv::Error::Rejected { code: raftkv::protocol::ErrorCode::Forbidden, message }) => {
            assert!(message.unwrap_or_default().contains("role read"))
        }
        other => panic!("a read-only token wrote: {other:?}"),
    }
    assert_eq!(writer.get("k").await.unwrap().as_deref(), Some("v"), "nothing was written");
    let noauth = c.client();
    assert!(noauth.get("k").await.is_err(), "no token, no read");

    // A browser's way: the token as a subprotocol beside `raftkv`.
    let mut req = format!("{}/client", c.url(leader)).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", format!("raftkv, bearer.{ro}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "raftkv");
    ws.send(M::text(r#"{"id":1,"op":"get","key":"k"}"#)).await.unwrap();
    let r = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(r.contains(r#""value":"v""#), "{r}");
    ws.send(M::text(r#"{"id":2,"op":"register"}"#)).await.unwrap();
    let r = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(r.contains(r#""error":"forbidden""#), "{r}");

    // The CLI: --token (or RAFTKV_TOKEN).
    let o = c.cli(&["put", "cli", "yes", "--token", rw]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["status", "--config"])
        .arg(&c.config)
        .env("RAFTKV_TOKEN", ro)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("leader"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(!c.cli(&["put", "cli", "no"]).status.success(), "the CLI without a token is refused");
    assert!(raftkv::http::get_as(&base, "/metrics", Some(admin)).await.is_ok());
    eprintln!("client_tokens_and_roles: {:?}", started.elapsed());
}

/// `raftkv token` adds a token's hash to a configuration, and the node says
/// at start when authentication is off.
#[test]
fn the_token_command_writes_only_the_hash() {
    let dir = std::env::temp_dir().join(format!("raftkv-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, raftkv::config::DEFAULT_CONFIG).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["token", "--name", "alice", "--role", "read", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains(&token), "the token itself is not stored");
    let parsed = raftkv::Config::parse(&text).unwrap();
    assert_eq!(parsed.tokens.len(), 1);
    assert_eq!(parsed.tokens[0].sha256, raftkv::auth::hex(&raftkv::auth::token_hash(&token)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A JSON connection to `/client` from the loopback address `from`.
async fn json_from(
    from: &str,
    to: &str,
) -> (
    impl futures_util::Sink<tokio_tungstenite::tungstenite::Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    impl futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
) {
    use futures_util::StreamExt;
    let tcp = tcp_from(from, to).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{to}/client"), tcp).await.unwrap();
    ws.split()
}

async fn call(
    tx: &mut (impl futures_util::Sink<tokio_tungstenite::tungstenite::Message, Error = tokio_tungstenite::tungstenite::Error>
              + Unpin),
    rx: &mut (impl futures_util::Stream<
        Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    > + Unpin),
    req: serde_json::Value,
) -> serde_json::Value {
    use futures_util::{SinkExt, StreamExt};
    tx.send(tokio_tungstenite::tungstenite::Message::text(req.to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, rx.next()).await.expect("a reply in time") {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).unwrap()
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Item 3: session ids are log indexes and can be guessed, but a write or
/// keep-alive on another's session without its secret is refused and moves
/// nothing (the victim's next write succeeds); one address (or token) can
/// hold only `max_sessions_per_principal` sessions, and others still register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cannot_be_taken_or_exhausted() {
    use serde_json::json;
    let started = Instant::now();
    let c = Cluster::start("sessions", 3, "[limits]\nmax_sessions_per_principal = 40\n");
    let leader = c.wait_leader(&c.ids()).await;
    let a = addr(&c, leader);
    let before = c.rss_kib(leader);

    // The victim.
    let (mut vt, mut vr) = json_from("127.0.0.1", &a).await;
    let r = call(&mut vt, &mut vr, json!({"id":1,"op":"register"})).await;
    let (s, k) = (r["session"].as_u64().unwrap(), r["secret"].as_str().unwrap().to_string());
    assert_eq!(k.len(), 43, "{r}");
    let put = |id: u64, seq: u64, secret: &str| json!({"id":id,"op":"put","session":s,"secret":secret,"seq":seq,"ack":seq,"key":"v","value":format!("{seq}")});
    assert_eq!(call(&mut vt, &mut vr, put(2, 1, &k)).await["ok"], true);

    // The hijacker knows the session id (a log index) but not the secret.
    let (mut ht, mut hr) = json_from("127.0.0.2", &a).await;
    let guess = raftkv::protocol::secret_to_text(&[7; 32]);
    let r = call(&mut ht, &mut hr, put(1, 100, &guess)).await;
    assert_eq!(r["error"], "session_expired", "a wrong secret: {r}");
    let ka = json!({"id":2,"op":"keepalive","session":s,"secret":guess,"ack":100});
    assert_eq!(call(&mut ht, &mut hr, ka).await["error"], "session_expired");
    let no_secret = json!({"id":3,"op":"put","session":s,"seq":100,"ack":100,"key":"v","value":"x"});
    assert_eq!(call(&mut ht, &mut hr, no_secret).await["error"], "bad_request");
    // The victim carries on at seq 2: no stale_seq.
    let r = call(&mut vt, &mut vr, put(3, 2, &k)).await;
    assert!(r["ok"] == true && r["revision"].is_u64(), "{r}");
    assert_eq!(c.client().get("v").await.unwrap().as_deref(), Some("2"));

    // Exhaustion: one address registers until busy; another still gets a session.
    let (mut et, mut er) = json_from("127.0.0.3", &a).await;
    let mut opened = 0;
    let mut refusal = None;
    for id in 0..100 {
        let r = call(&mut et, &mut er, json!({"id":id,"op":"register"})).await;
        if r["ok"] == true {
            opened += 1;
        } else {
            refusal = Some(r);
            break;
        }
    }
    let refusal = refusal.expect("registers are bounded per address");
    assert_eq!(refusal["error"], "busy", "{refusal}");
    assert_eq!(opened, 40, "the quota is max_sessions_per_principal");
    let (mut ot, mut or) = json_from("127.0.0.4", &a).await;
    assert_eq!(call(&mut ot, &mut or, json!({"id":1,"op":"register"})).await["ok"], true, "others still register");
    let after = c.rss_kib(leader);
    memory("41 registers (quota 40)", before, after, after);
    eprintln!("sessions_cannot_be_taken_or_exhausted: {:?}", started.elapsed());
}

/// Item 1: `raftkv certs` turns TLS on in a configuration; the nodes serve
/// only TLS, link up over mutual TLS, and the library, the CLI and `/status`
/// speak `wss://` with the CA. A client with another CA and a plain `ws://`
/// client are refused; a peer whose certificate names another node is
/// refused; a node refuses a non-loopback address without TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_everywhere_and_the_wrong_ca_is_refused() {
    let started = Instant::now();
    let mut c = Cluster::configure("tls", 3, "");
    let certs = c.dir.join("certs");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["certs", "--dir"])
        .arg(&certs)
        .arg("--config")
        .arg(&c.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for id in c.ids() {
        c.spawn(id);
    }
    let tls = raftkv::tls::client_config(&certs.join("ca.pem")).unwrap();
    let wss = |id: u64| format!("wss://127.0.0.1:{}", c.ports[id as usize - 1]);
    let t = Instant::now();
    let leader = 'found: loop {
        for id in c.ids() {
            if let Ok(b) = raftkv::http::get_with(&wss(id), "/status", None, Some(&tls)).await {
                if serde_json::from_str::<serde_json::Value>(&b).unwrap()["role"] == "leader" {
                    break 'found id;
                }
            }
        }
        assert!(t.elapsed() < WAIT, "no leader over TLS\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(c.log(leader).contains("peers use mutual TLS"));
    let urls: Vec<String> = c.ids().into_iter().map(wss).collect();
    let opts = raftkv::ClientOptions { tls: Some(tls.clone()), ..raftkv::ClientOptions::default() };
    let lib = raftkv::Client::new(urls.clone(), opts);
    lib.put("k", "over tls").await.unwrap();
    assert_eq!(lib.get("k").await.unwrap().as_deref(), Some("over tls"));
    let o = c.cli(&["get", "k"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "over tls", "{}", String::from_utf8_lossy(&o.stderr));

    // Another CA: refused. Plain ws:// to a TLS port: refused.
    let other = c.dir.join("other-ca");
    raftkv::tls::write_dev_certs(&raftkv::Config::default_local(), &other).unwrap();
    let wrong = raftkv::tls::client_config(&other.join("ca.pem")).unwrap();
    let e = raftkv::http::get_with(&wss(leader), "/status", None, Some(&wrong)).await.unwrap_err();
    assert!(e.contains("TLS") || e.contains("certificate"), "{e}");
    let opts =
        raftkv::ClientOptions { tls: Some(wrong), timeout: Duration::from_secs(1), ..raftkv::ClientOptions::default() };
    assert!(raftkv::Client::new(urls.clone(), opts).get("k").await.is_err(), "the wrong CA reads nothing");
    let plain = format!("ws://127.0.0.1:{}", c.ports[leader as usize - 1]);
    assert!(raftkv::http::get(&plain, "/status").await.is_err(), "no plain HTTP on a TLS node");
    assert!(c.metric_tls(leader, &tls, "conn_tls_failed_total").await >= 2);

    // A node with another node's certificate: its links are refused.
    let victim = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let imposter = c.ids().into_iter().find(|&i| i != leader && i != victim).unwrap();
    c.kill(victim);
    for ext in ["pem", "key.pem"] {
        let from = if ext == "pem" { format!("node-{imposter}.pem") } else { format!("node-{imposter}-key.pem") };
        let to = if ext == "pem" { format!("node-{victim}.pem") } else { format!("node-{victim}-key.pem") };
        std::fs::copy(certs.join(from), certs.join(to)).unwrap();
    }
    c.spawn(victim);
    let want = format!("does not name node {victim}");
    eventually("the peer with another node's certificate is refused", || {
        let found = c.log(leader).contains(&want);
        async move { found }
    })
    .await;

    // Without [tls], a node will not listen on a non-loopback address.
    let mut p = Cluster::configure("insecure", 1, "");
    let cfg = std::fs::read_to_string(&p.config).unwrap().replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
    std::fs::write(&p.config, cfg).unwrap();
    p.spawn(1);
    let t = Instant::now();
    while p.exited(1).is_none() && t.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.log(1).contains("refusing to listen on 0.0.0.0"), "{}", p.log(1));
    eprintln!("tls_everywhere_and_the_wrong_ca_is_refused: {:?}", started.elapsed());
}
