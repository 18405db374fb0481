//! The live view of a real cluster: each node's `/live` stream (coalesced,
//! bounded, behind the Origin check and the tokens) and the controls of the
//! `raftkv cluster` supervisor (crash, restart, pause, resume, isolate,
//! rejoin), on real processes.

mod common;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as M};

use common::{Cluster, WAIT};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/live` on `url` with these extra headers; the HTTP status of a
/// refusal (and its body) otherwise.
async fn open_live(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let mut req = format!("{url}/live").into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("an answer to the upgrade") {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(r)) => {
            let body = r.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((r.status().as_u16(), body))
        }
        Err(e) => Err((0, format!("upgrade of {url}/live failed: {e}"))),
    }
}

/// The next frame within `d` (JSON), skipping pings.
async fn next_frame(ws: &mut Ws, d: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(M::Text(t)))) => return Some(serde_json::from_str(&t).expect("a frame is JSON")),
            Ok(Some(Ok(M::Ping(_) | M::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// CPU seconds (user + system) process `pid` used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100 a second).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11] + f[12]) as f64 / 100.0
}

/// The stream of the leader and of a follower: what a frame says, at most
/// 10 frames a second under write load, message rates that show the load,
/// and a small cost to the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_shows_the_cluster_at_most_ten_frames_a_second() {
    let c = Cluster::start("live-stream", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();

    // The node's cost while nobody listens, then with four subscribers.
    let pid = c.pid(leader);
    let window = Duration::from_secs(3);
    let t0 = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let idle = (cpu_seconds(pid) - t0) / window.as_secs_f64();
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(open_live(&c.url(leader), &[]).await.expect("a subscription"));
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while next_frame(&mut ws, WAIT).await.is_some() {} }))
        .collect();
    let t1 = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let watched = (cpu_seconds(pid) - t1) / window.as_secs_f64();
    eprintln!(
        "leader CPU, idle cluster: {:.1}% of a core unwatched, {:.1}% with 4 live subscribers",
        idle * 100.0,
        watched * 100.0
    );
    assert!(watched - idle < 0.05, "4 subscribers cost the node {:.1}% of a core", (watched - idle) * 100.0);
    for r in readers {
        r.abort();
    }

    let mut ws = open_live(&c.url(leader), &[("origin", "http://127.0.0.1:8080")]).await.expect("the page's origin");
    let first = next_frame(&mut ws, Duration::from_secs(2)).await.expect("a first frame within 2 s");
    assert_eq!(first["v"], 1, "{first}");
    assert_eq!(first["id"], leader, "{first}");
    assert_eq!(first["role"], "leader", "{first}");
    assert_eq!(first["leader"], leader, "{first}");
    assert!(first["term"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["members"]["voters"].as_array().unwrap().len(), 3, "{first}");
    let peers = first["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "the leader lists its followers: {first}");
    assert!(peers.iter().all(|p| p["match"].is_u64() && p["next"].is_u64() && p["state"].is_string()), "{first}");

    // Writes for the whole window; frames counted over it.
    let client = c.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                client.put(&format!("live-{}", n % 50), "secret-value").await.expect("a write");
                n += 1;
            }
            n
        })
    };
    let window = Duration::from_secs(4);
    let start = Instant::now();
    let mut frames = Vec::new();
    while start.elapsed() < window {
        if let Some(f) = next_frame(&mut ws, window.saturating_sub(start.elapsed())).await {
            frames.push((Instant::now(), f));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = load.await.unwrap();
    let per_s = frames.len() as f64 / window.as_secs_f64();
    eprintln!("{} frames in {window:?} ({per_s:.1}/s) during {writes} writes", frames.len());
    assert!(frames.len() as f64 <= 10.0 * window.as_secs_f64() + 1.0, "{} frames in {window:?}", frames.len());
    assert!(frames.len() >= 20, "a node under load changes at every frame: only {} in {window:?}", frames.len());
    for w in frames.windows(2) {
        let gap = w[1].0.duration_since(w[0].0);
        // The node spaces them 100 ms apart; what arrives may bunch up a
        // little behind a busy scheduler, never to a burst.
        assert!(gap >= Duration::from_millis(40), "two frames {gap:?} apart");
        assert!(w[1].1["seq"].as_u64() > w[0].1["seq"].as_u64(), "seq grows");
    }
    let last = &frames.last().unwrap().1;
    assert!(last["commit"].as_u64().unwrap() > first["commit"].as_u64().unwrap(), "commits advance: {last}");
    let log = last["log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 20, "{last}");
    let e = log.last().unwrap();
    assert_eq!(e["i"], last["last"], "{last}");
    assert!(e["s"].as_str().unwrap().starts_with("put live-"), "the tail names the writes: {e}");
    assert!(!e["s"].as_str().unwrap().contains("secret"), "values stay out of the stream: {e}");
    let appends = last["msgs"]["sent"]["Append"].as_u64().unwrap_or(0);
    assert!(appends > 10, "the load shows as Append messages a second: {}", last["msgs"]);
    assert!(last["msgs"]["received"]["AppendResp"].as_u64().unwrap_or(0) > 10, "{}", last["msgs"]);

    // A follower's stream names the leader.
    let mut fw = open_live(&c.url(follower), &[]).await.expect("a follower's stream");
    let f = next_frame(&mut fw, Duration::from_secs(2)).await.expect("a follower's frame");
    assert_eq!((f["role"].as_str(), f["leader"].as_u64()), (Some("follower"), Some(leader)), "{f}");
    assert_eq!(f["peers"].as_array().map(Vec::len), Some(0), "{f}");

    // Quiet again: frames slow down to the heartbeat and rate changes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    let mut quiet = 0;
    while start.elapsed() < Duration::from_secs(4) {
        if next_frame(&mut ws, Duration::from_secs(4).saturating_sub(start.elapsed())).await.is_some() {
            quiet += 1;
        }
    }
    eprintln!("{quiet} frames in 4 s of an idle cluster");
    assert!((1..=8).contains(&quiet), "an idle node sends a frame when its rates change or every 2 s: {quiet} in 4 s");
    assert!(c.metric(leader, "live_frames_sent_total").await > 0);
}

/// `/live` is refused to a page of another origin, without a token when
/// tokens are configured, and past `max_live_subscribers`; a freed place
/// can be taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_are_checked_and_bounded() {
    let token = "live-test-token";
    let hash = raftkv::auth::hex(&raftkv::auth::token_hash(token));
    let extra = format!(
        "[limits]\nmax_live_subscribers = 2\n\n[[tokens]]\nname = \"viewer\"\nrole = \"read\"\nsha256 = \"{hash}\"\n"
    );
    let c = Cluster::start("live-limits", 1, &extra);
    let url = c.url(1);
    let bearer = format!("Bearer {token}");
    let page = "http://127.0.0.1:8080";
    // A browser's way of presenting its token: subprotocols.
    let protocols = format!("raftkv, bearer.{token}");

    // Wait for the node to serve (it may still be starting).
    let start = Instant::now();
    let mut a = loop {
        match tokio::time::timeout(Duration::from_secs(1), open_live(&url, &[("authorization", &bearer)])).await {
            Ok(Ok(ws)) => break ws,
            _ if start.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => panic!("node 1 does not serve /live\n{}", c.logs()),
        }
    };
    assert!(next_frame(&mut a, Duration::from_secs(2)).await.is_some(), "a frame for a token holder");

    let (status, body) = open_live(&url, &[]).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = open_live(&url, &[("authorization", "Bearer wrong")]).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 401, "an unknown token: {body}");
    let (status, body) = open_live(&url, &[("origin", "http://evil.example"), ("sec-websocket-protocol", &protocols)])
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status, 403, "another site's page: {body}");

    let mut b = open_live(&url, &[("origin", page), ("sec-websocket-protocol", &protocols)])
        .await
        .expect("the page's origin with its token as a subprotocol");
    assert!(next_frame(&mut b, Duration::from_secs(2)).await.is_some());
    let (status, body) = open_live(&url, &[("authorization", &bearer)]).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 503, "a third subscriber: {body}");
    assert!(body.contains("max_live_subscribers") && body.contains('2'), "the refusal says which limit: {body}");
    let metrics = raftkv::http::get_as(&url, "/metrics", Some(token)).await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("raftkv_live_refused_limit_total{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // The place a closed subscriber held is free again.
    drop(a);
    let start = Instant::now();
    loop {
        match open_live(&url, &[("authorization", &bearer)]).await {
            Ok(mut ws) => {
                assert!(next_frame(&mut ws, Duration::from_secs(2)).await.is_some());
                break;
            }
            Err((503, _)) if start.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e:?}"),
        }
    }
    // The others still stream (heartbeats at least every 2 s).
    assert!(next_frame(&mut b, Duration::from_secs(3)).await.is_some());

    // A subscriber has nothing to say: a message at the limit is ignored,
    // one byte over it closes the subscription (1009), and its place frees.
    let max = raftkv::routes::live_conn::MAX_INCOMING;
    b.send(M::Text("x".repeat(max).into())).await.expect("a message at the limit is sent");
    assert!(next_frame(&mut b, Duration::from_secs(3)).await.is_some(), "still streaming after {max} bytes");
    b.send(M::Text("x".repeat(max + 1).into())).await.expect("sent");
    let deadline = tokio::time::Instant::now() + WAIT;
    let code = loop {
        match tokio::time::timeout_at(deadline, b.next()).await.expect("closed in time") {
            Some(Ok(M::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(M::Close(None))) | None | Some(Err(_)) => panic!("closed without a code"),
            Some(Ok(_)) => continue,
        }
    };
    assert_eq!(code, 1009, "a message over MAX_INCOMING");
    let metrics = raftkv::http::get_as(&url, "/metrics", Some(token)).await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("raftkv_ws_frame_too_big_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // A subscriber that pings and never reads owes the node a pong for
    // each ping: once it owes more than MAX_OWED it is closed as slow.
    let start = Instant::now();
    let ws = loop {
        match open_live(&url, &[("authorization", &bearer)]).await {
            Ok(ws) => break ws,
            Err((503, _)) if start.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e:?}"),
        }
    };
    let mut tcp = ws.into_inner();
    let mut pings = Vec::new();
    for _ in 0..1000 {
        // Masked (as a client must) with a zero key: 125 bytes of 'p'.
        pings.extend_from_slice(&[0x89, 0x80 | 125, 0, 0, 0, 0]);
        pings.extend_from_slice(&[b'p'; 125]);
    }
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < WAIT {
        match tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&pings)).await {
            Ok(Ok(())) => sent += 1000,
            _ => break,
        }
    }
    assert!(t.elapsed() < WAIT, "the ping flood on /live was never cut off");
    drop(tcp);
    let slow = loop {
        let metrics = raftkv::http::get_as(&url, "/metrics", Some(token)).await.unwrap();
        let n = metrics
            .lines()
            .find(|l| l.starts_with("raftkv_live_dropped_slow_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if n >= 1 || t.elapsed() > WAIT * 2 {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(slow >= 1, "the subscriber that owed its pongs is counted as dropped slow");
    eprintln!("live ping flood: {sent} pings sent before the node closed the subscription in {:?}", t.elapsed());
}

/// A `raftkv cluster` run with tokens, its web port found on its output.
struct Supervised {
    c: Cluster,
    child: std::process::Child,
    web: String,
    admin: String,
    read: String,
}

impl Supervised {
    fn start(name: &str) -> Supervised {
        let (admin, read) = ("ops-token-for-tests".to_string(), "viewer-token-for-tests".to_string());
        let tok = |n: &str, role: &str, t: &str| {
            format!(
                "[[tokens]]\nname = \"{n}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
                raftkv::auth::hex(&raftkv::auth::token_hash(t))
            )
        };
        let extra = format!("{}{}", tok("ops", "admin", &admin), tok("viewer", "read", &read));
        let c = Cluster::configure(name, 3, &extra);
        let (child, web) = c.start_cluster_command();
        Supervised { c, child, web, admin, read }
    }

    async fn status(&self, id: u64) -> Option<Value> {
        let body = raftkv::http::get_as(&self.c.url(id), "/status", Some(&self.read)).await.ok()?;
        serde_json::from_str(&body).ok()
    }

    /// The leader all of `among` that answer agree on (and that says so itself).
    async fn wait_leader(&self, among: &[u64], not: Option<u64>) -> u64 {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            for &id in among {
                if let Some(s) = self.status(id).await {
                    let l = s["leader"].as_u64().unwrap_or(0);
                    if s["role"] == "leader" && Some(l) != not && l == id {
                        let mut agree = 0;
                        for &o in among {
                            if self.status(o).await.is_some_and(|s| s["leader"].as_u64() == Some(l)) {
                                agree += 1;
                            }
                        }
                        if agree == among.len() {
                            return l;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader among {among:?} (other than {not:?}) within {WAIT:?}\n{}", self.c.logs());
    }

    /// POSTs a control with the admin token from the page's origin.
    async fn act(&self, id: u64, action: &str) -> Value {
        let h = [("authorization", format!("Bearer {}", self.admin)), ("origin", self.web.clone())];
        let (status, body) = raftkv::http::post(&self.web, &format!("/api/nodes/{id}/{action}"), &h).await.unwrap();
        assert_eq!(status, 200, "{action} {id}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn refused(&self, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        raftkv::http::post(&self.web, path, headers).await.unwrap()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        if common::wait_exit(&mut self.child, WAIT).is_none() {
            let _ = self.child.kill();
        }
    }
}

/// The supervisor's controls: refused without an admin token, from another
/// origin or for another host name; crash (kill -9) of the leader gives a
/// new leader; restart, pause/resume and isolate/rejoin do what they say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_controls_crash_pause_and_isolate_real_nodes() {
    let s = Supervised::start("live-controls");
    let all = s.c.ids();
    let leader = s.wait_leader(&all, None).await;

    let listing: Value = serde_json::from_str(&raftkv::http::get(&s.web, "/cluster.json").await.unwrap()).unwrap();
    assert_eq!(listing["controls"], true, "{listing}");
    assert_eq!(listing["auth"], true, "{listing}");
    let nodes = listing["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{listing}");
    assert!(nodes.iter().all(|n| n["state"] == "running" && n["isolated"] == false), "{listing}");
    assert_eq!(nodes[0]["url"], s.c.url(1), "{listing}");

    // Refusals, none of which touches a node.
    let path = format!("/api/nodes/{leader}/crash");
    let admin = format!("Bearer {}", s.admin);
    let (st, body) = s.refused(&path, &[]).await;
    assert_eq!(st, 401, "{body}");
    let (st, body) = s.refused(&path, &[("authorization", format!("Bearer {}", s.read))]).await;
    assert_eq!(st, 403, "a read token: {body}");
    assert!(body.contains("admin"), "{body}");
    let (st, body) =
        s.refused(&path, &[("authorization", admin.clone()), ("origin", "http://evil.example".into())]).await;
    assert_eq!(st, 403, "another site's page: {body}");
    assert!(body.contains("origin"), "{body}");
    let (st, body) = s.refused(&path, &[("authorization", admin.clone()), ("host", "evil.example:8080".into())]).await;
    assert_eq!(st, 403, "a rebound host name: {body}");
    let (st, body) = s.refused(&format!("/api/nodes/{leader}/format"), &[("authorization", admin.clone())]).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = s.refused("/api/nodes/9/crash", &[("authorization", admin.clone())]).await;
    assert_eq!(st, 404, "{body}");
    assert!(s.status(leader).await.is_some(), "the leader still runs after the refusals");

    // kill -9 of the leader: the others elect a new one.
    let t = Instant::now();
    let info = s.act(leader, "crash").await;
    assert_eq!(info["state"], "down", "{info}");
    let rest: Vec<u64> = all.iter().copied().filter(|&i| i != leader).collect();
    let second = s.wait_leader(&rest, Some(leader)).await;
    eprintln!("crash of leader {leader}: node {second} leads after {:?}", t.elapsed());
    let (st, body) = s.refused(&path, &[("authorization", admin.clone())]).await;
    assert_eq!(st, 409, "crashing a node that is down: {body}");

    // Restarted, it follows the new leader.
    let info = s.act(leader, "restart").await;
    assert_eq!((info["state"].as_str(), info["starts"].as_u64()), (Some("running"), Some(2)), "{info}");
    s.wait_leader(&all, None).await;

    // A paused follower answers nothing until resumed.
    let l = s.wait_leader(&all, None).await;
    let f = *all.iter().find(|&&i| i != l).unwrap();
    assert_eq!(s.act(f, "pause").await["state"], "paused");
    assert!(s.status(f).await.is_none(), "a paused node answers nothing");
    let (st, body) = s.refused(&format!("/api/nodes/{f}/pause"), &[("authorization", admin.clone())]).await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(s.act(f, "resume").await["state"], "running");
    let start = Instant::now();
    while s.status(f).await.is_none() {
        assert!(start.elapsed() < WAIT, "node {f} does not answer after resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leader isolated: the others elect another; back, it follows.
    let info = s.act(l, "isolate").await;
    assert_eq!(info["isolated"], true, "{info}");
    let others: Vec<u64> = all.iter().copied().filter(|&i| i != l).collect();
    let third = s.wait_leader(&others, Some(l)).await;
    let listing: Value = serde_json::from_str(&raftkv::http::get(&s.web, "/cluster.json").await.unwrap()).unwrap();
    assert_eq!(listing["nodes"][(l - 1) as usize]["isolated"], true, "{listing}");
    let token = format!("Bearer {}", s.read);
    let mut ws = open_live(&s.c.url(l), &[("authorization", &token)]).await.expect("the isolated node's stream");
    let frame = next_frame(&mut ws, Duration::from_secs(3)).await.expect("a frame");
    assert_eq!(frame["isolated"], true, "{frame}");
    assert_eq!(s.act(l, "rejoin").await["isolated"], false);
    let start = Instant::now();
    loop {
        let st = s.status(l).await.unwrap_or_default();
        if st["role"] == "follower" && st["leader"].as_u64() == Some(third) {
            break;
        }
        assert!(start.elapsed() < WAIT, "node {l} does not follow {third} after rejoining: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.c.cli(&["put", "--token", &s.admin, "after", "rejoin"]).status.code(), Some(0));
}
