//! Process-level tests: real `raftkv` binaries on loopback, killed, paused,
//! restarted, fed bad input. Each test bounds its waits (see `common::WAIT`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, JsonConn, WAIT};
use serde_json::{json, Value};

/// A reply without its `revision`, and the revision (which every output
/// carries; its value depends on the log, so tests compare the rest).
fn strip(mut v: Value) -> (Value, u64) {
    let at = v.as_object_mut().and_then(|o| o.remove("revision")).and_then(|r| r.as_u64());
    (v, at.unwrap_or_else(|| panic!("no revision in the reply")))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Issue #5, test 7: the CLI and the library see the same data; the JSON
/// protocol is exactly DESIGN.md §6's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_library_and_json_protocol_agree() {
    let started = Instant::now();
    let c = Cluster::start("agree", 3, "");
    let leader = c.wait_leader(&c.ids()).await;

    let o = c.cli(&["put", "color", "blue"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "OK");
    let lib = c.client();
    assert_eq!(lib.get("color").await.unwrap().as_deref(), Some("blue"));
    lib.put("shape", "round").await.unwrap();
    lib.append("shape", "ish").await.unwrap();
    assert_eq!(stdout(&c.cli(&["get", "shape"])), "roundish");
    let o = c.cli(&["get", "missing"]);
    assert_eq!(o.status.code(), Some(1), "absent key exits 1");
    assert_eq!(stdout(&c.cli(&["append", "color", "_green"])), "OK");
    assert_eq!(stdout(&c.cli(&["cas", "color", "red", "--expect", "blue"])), "not swapped; current value: blue_green");
    assert_eq!(stdout(&c.cli(&["cas", "color", "red", "--expect", "blue_green"])), "swapped");
    assert_eq!(lib.get("color").await.unwrap().as_deref(), Some("red"));
    assert_eq!(stdout(&c.cli(&["delete", "color"])), "deleted");
    assert_eq!(lib.get("color").await.unwrap(), None);
    assert!(lib.cas("color", None, "new").await.unwrap().swapped);
    assert_eq!(stdout(&c.cli(&["get", "color"])), "new");
    let o = c.cli(&["status"]);
    assert!(o.status.success() && stdout(&o).contains("leader"), "{}", stdout(&o));

    // The wire format, request by request, against the leader.
    let mut j = JsonConn::open(&c.url(leader)).await;
    let r = j.call(r#"{"id":1,"op":"register"}"#).await;
    assert_eq!(r["ok"], true, "{r}");
    let s = r["session"].as_u64().unwrap();
    let k = r["secret"].as_str().unwrap().to_string();
    let call = |id: u64, body: Value| {
        let mut v = body;
        v["id"] = json!(id);
        v.to_string()
    };
    let put = call(2, json!({"op":"put","session":s,"secret":k,"seq":1,"ack":1,"key":"k","value":"v"}));
    assert_eq!(strip(j.call(&put).await).0, json!({"id":2,"ok":true}));
    let app = call(3, json!({"op":"append","session":s,"secret":k,"seq":2,"ack":2,"key":"k","value":"w"}));
    assert_eq!(strip(j.call(&app).await).0, json!({"id":3,"ok":true}));
    let cas = call(4, json!({"op":"cas","session":s,"secret":k,"seq":3,"ack":3,"key":"k","expect":"vw","value":"x"}));
    assert_eq!(strip(j.call(&cas).await).0, json!({"id":4,"ok":true,"swapped":true}));
    let cas = call(5, json!({"op":"cas","session":s,"secret":k,"seq":4,"ack":4,"key":"k","expect":null,"value":"y"}));
    assert_eq!(strip(j.call(&cas).await).0, json!({"id":5,"ok":true,"swapped":false,"current":"x"}));
    let del = call(6, json!({"op":"delete","session":s,"secret":k,"seq":5,"ack":5,"key":"k"}));
    assert_eq!(strip(j.call(&del).await).0, json!({"id":6,"ok":true,"existed":true}));
    let (r, at) = strip(j.call(r#"{"id":7,"op":"get","key":"k"}"#).await);
    assert_eq!(r, json!({"id":7,"ok":true,"value":null,"kv":null}));
    assert!(at >= 1, "a read names the revision it read at");
    let ka = call(8, json!({"op":"keepalive","session":s,"secret":k,"ack":6}));
    assert_eq!(j.call(&ka).await, json!({"id":8,"ok":true}));
    // A retry of an applied write gets its cached answer and is not applied again.
    let again = call(9, json!({"op":"append","session":s,"secret":k,"seq":6,"ack":6,"key":"e","value":"1"}));
    let (_, first) = strip(j.call(&again).await);
    let again = call(10, json!({"op":"append","session":s,"secret":k,"seq":6,"ack":6,"key":"e","value":"1"}));
    assert_eq!(strip(j.call(&again).await), (json!({"id":10,"ok":true}), first), "the first attempt's revision");
    assert_eq!(j.call(r#"{"id":11,"op":"get","key":"e"}"#).await["value"], "1");
    // Below the ack: stale.
    let stale = call(12, json!({"op":"put","session":s,"secret":k,"seq":2,"ack":2,"key":"k","value":"v"}));
    assert_eq!(j.call(&stale).await["error"], "stale_seq");
    // Unknown session.
    let gone = call(13, json!({"op":"put","session":999_999,"secret":k,"seq":1,"ack":1,"key":"k","value":"v"}));
    assert_eq!(j.call(&gone).await["error"], "session_expired");
    // Replies may come in any order, each with its id: pipeline a few.
    for id in 20..30 {
        j.send_text(&format!(r#"{{"id":{id},"op":"get","key":"e"}}"#)).await;
    }
    let mut ids = HashSet::new();
    for _ in 20..30 {
        ids.insert(j.recv().await.unwrap()["id"].as_u64().unwrap());
    }
    assert_eq!(ids, (20..30).collect());

    // A follower answers reads itself (follower reads: it asks the leader
    // for a read index) and a write with not_leader, the leader's id and address.
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let mut f = JsonConn::open(&c.url(follower)).await;
    let (r, _) = strip(f.call(r#"{"id":1,"op":"get","key":"shape"}"#).await);
    assert_eq!(r["value"], "roundish", "a follower read sees the acknowledged writes: {r}");
    let put = json!({"id":2,"op":"put","session":s,"secret":k,"seq":9,"ack":9,"key":"f","value":"v"});
    let r = f.call(&put.to_string()).await;
    assert_eq!(r, json!({"id":2,"ok":false,"error":"not_leader","leader":{"id":leader,"addr":c.url(leader)}}));

    // Binary frames carry the same types.
    use raftkv::protocol::{encode_request, Op, Request};
    use raftkv::KvOp;
    j.send_binary(encode_request(&Request { id: 40, op: Op::Read { op: KvOp::Get { key: "e".into() } } })).await;
    let r = j.recv().await.unwrap();
    assert_eq!(
        (r["id"].as_u64(), r["value"].as_str(), r["kv"]["version"].as_u64()),
        (Some(40), Some("1"), Some(1)),
        "{r}"
    );

    // /metrics speaks Prometheus text.
    let m = raftkv::http::get(&c.url(leader), "/metrics").await.unwrap();
    assert!(m.contains("# TYPE raftkv_commit_index gauge") && m.contains("raftkv_journal_syncs_total"), "{m}");
    eprintln!("cli_library_and_json_protocol_agree: {:?}", started.elapsed());
}

/// One writer: appends its own tokens to its own key through the library.
async fn writer(
    client: raftkv::Client,
    key: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut unsure) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let token = format!("{key}.{n}");
        n += 1;
        match client.append(&key, &format!("{token};")).await {
            Ok(()) => {
                ok.push(token);
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Timeout or expired session: this write may or may not be there.
            Err(_) => unsure.push(token),
        }
    }
    (ok, unsure)
}

/// Checks one key's value: acknowledged tokens all present, nothing twice,
/// nothing never sent, in order.
fn check_appends(key: &str, value: &str, ok: &[String], unsure: &[String]) {
    let tokens: Vec<&str> = value.split(';').filter(|t| !t.is_empty()).collect();
    let seen: HashSet<&str> = tokens.iter().copied().collect();
    assert_eq!(seen.len(), tokens.len(), "{key}: a write was applied twice: {value}");
    for t in ok {
        assert!(seen.contains(t.as_str()), "{key}: acknowledged {t} is missing from {value}");
    }
    let sent: HashSet<&str> = ok.iter().chain(unsure).map(String::as_str).collect();
    for t in &tokens {
        assert!(sent.contains(t), "{key}: {t} was never written");
    }
    let order: Vec<u64> = tokens.iter().map(|t| t.rsplit('.').next().unwrap().parse().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: out of order: {value}");
}

/// Issue #5, test 8: kill -9 the leader while clients write (twice); they
/// carry on, and after the restarts every acknowledged write is there exactly
/// once, and the restarted nodes catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_clients_write() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let started = Instant::now();
    let mut c = Cluster::start("kill", 3, "[limits]\nsnapshot_entries = 32");
    let leader = c.wait_leader(&c.ids()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> =
        (0..3).map(|w| tokio::spawn(writer(c.client(), format!("w{w}"), stop.clone(), acked.clone()))).collect();
    let deadline = Instant::now() + 2 * WAIT;
    let wait_acks = |n: usize| {
        let acked = acked.clone();
        async move {
            while acked.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked.load(Ordering::Relaxed) >= n
        }
    };
    // Two rounds: kill -9 the leader mid-stream, let the clients carry on
    // through the new one, then bring the dead node back.
    let mut leader = leader;
    let mut killed = Vec::new();
    for round in 0..2 {
        let base = acked.load(Ordering::Relaxed);
        assert!(wait_acks(base + 50).await, "round {round}: writes did not get going\n{}", c.logs());
        c.kill(leader);
        killed.push(leader);
        let others: Vec<u64> = c.ids().into_iter().filter(|&i| i != leader).collect();
        let new_leader = c.wait_leader(&others).await;
        let at_kill = acked.load(Ordering::Relaxed);
        assert!(wait_acks(at_kill + 50).await, "round {round}: clients did not carry on\n{}", c.logs());
        c.spawn(leader);
        leader = new_leader;
    }
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.unwrap());
    }
    let new_leader = c.wait_leader(&c.ids()).await;
    let check = c.client();
    for (w, (ok, unsure)) in results.iter().enumerate() {
        let key = format!("w{w}");
        let value = check.get(&key).await.unwrap().unwrap_or_default();
        check_appends(&key, &value, ok, unsure);
    }
    // The restarted node catches up with everything committed.
    let commit = c.status(new_leader).await.unwrap()["commit_index"].as_u64().unwrap();
    for id in killed {
        c.wait_applied(id, commit).await;
    }
    eprintln!(
        "leader_killed_while_clients_write: {} acknowledged, {} unsure, {:?}",
        results.iter().map(|r| r.0.len()).sum::<usize>(),
        results.iter().map(|r| r.1.len()).sum::<usize>(),
        started.elapsed()
    );
}

/// Issue #5, test 9: kill all three, restart: everything acknowledged is
/// there (a snapshot plus the journal's tail; small segments, deleted once a
/// newer segment's checkpoint holds everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_killed_and_restarted_keep_acknowledged_data() {
    let started = Instant::now();
    let mut c = Cluster::start("restart", 3, "[limits]\nsegment_bytes = 4096\nsnapshot_entries = 16");
    c.wait_leader(&c.ids()).await;
    let lib = c.client();
    for i in 0..40 {
        lib.put(&format!("key{i}"), &format!("value{i}-{}", "x".repeat(i * 7))).await.unwrap();
    }
    lib.append("log", "a").await.unwrap();
    lib.append("log", "b").await.unwrap();
    drop(lib);
    c.wait_applied(1, 40).await;
    let epoch = |s: &serde_json::Value| s["epoch"].as_u64().unwrap_or(0);
    let first = epoch(&c.status(1).await.expect("status"));
    assert_eq!(first, 1, "the first start is epoch 1");
    let snap_index = c.status(1).await.expect("status")["snapshot_index"].as_u64().unwrap_or(0);
    assert!(snap_index >= 16, "node 1 took snapshots (snapshot index {snap_index})");
    c.kill_all();
    let segs = common::read_all_segments(&c.journal_dir(1));
    assert!(segs.len() <= 2, "old segments are deleted once a checkpoint stands in for them: {segs:?}");
    let snaps = std::fs::read_dir(c.journal_dir(1).parent().unwrap().join("snapshots")).unwrap().count();
    assert_eq!(snaps, 1, "one snapshot file kept");
    for id in c.ids() {
        c.spawn(id);
    }
    c.wait_leader(&c.ids()).await;
    let lib = c.client();
    for i in 0..40 {
        assert_eq!(lib.get(&format!("key{i}")).await.unwrap(), Some(format!("value{i}-{}", "x".repeat(i * 7))));
    }
    assert_eq!(lib.get("log").await.unwrap().as_deref(), Some("ab"));
    // Issue #12: every start has a higher epoch (raft-core's Config::epoch),
    // kept in the data directory.
    assert_eq!(epoch(&c.status(1).await.expect("status")), 2, "a restart is epoch 2");
    c.kill(1);
    c.spawn(1);
    c.wait_applied(1, 40).await;
    assert_eq!(epoch(&c.status(1).await.expect("status")), 3);
    assert_eq!(std::fs::read_to_string(c.dir.join("node-1/epoch")).unwrap().trim(), "3");
    eprintln!("all_killed_and_restarted_keep_acknowledged_data: {:?}", started.elapsed());
}

/// Issue #5, test 10: a torn last record is cut and nothing acknowledged is
/// lost; a flipped byte in the middle refuses the start, naming the offset.
/// Also: a data directory of another node, a port in use, a bad config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_corrupt_journals_and_bad_starts() {
    let started = Instant::now();
    let mut c = Cluster::start("journal", 3, "");
    c.wait_leader(&c.ids()).await;
    let lib = c.client();
    for i in 0..10 {
        lib.put(&format!("k{i}"), &format!("v{i}")).await.unwrap();
    }
    drop(lib);
    // A used port: a second copy of node 1 cannot listen.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["node", "--id", "1", "--data-dir"])
        .arg(c.dir.join("elsewhere"))
        .arg("--config")
        .arg(&c.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("address already in use") || stderr(&out).contains("Address already in use"),
        "{}",
        stderr(&out)
    );

    c.kill_all();
    // Tear node 1's last record: write a prefix of a valid frame where the
    // next record goes (into the preallocated zeros), as a crash in the
    // middle of a write leaves it.
    let seg = common::read_all_segments(&c.journal_dir(1)).pop().unwrap();
    let written = std::fs::read(&seg).unwrap();
    let end = raft_core::journal::scan(&written).unwrap().valid_len;
    let bytes = written[..end].to_vec();
    let mut torn = written.clone();
    let first_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    // A copy of the first frame whose last byte did not make it to the disk
    // (changed, not just dropped: a dropped byte could read as the zero that
    // follows it in preallocated space).
    let mut partial = bytes[8..8 + 12 + first_len].to_vec();
    *partial.last_mut().unwrap() ^= 0xff;
    if torn.len() < end + partial.len() {
        torn.resize(end + partial.len(), 0);
    }
    torn[end..end + partial.len()].copy_from_slice(&partial);
    std::fs::write(&seg, &torn).unwrap();
    // Flip a byte inside node 2's first record.
    let seg2 = common::read_all_segments(&c.journal_dir(2)).remove(0);
    let mut bad = std::fs::read(&seg2).unwrap();
    bad[8 + 14] ^= 0x55;
    std::fs::write(&seg2, &bad).unwrap();

    c.spawn(1);
    c.spawn(2);
    c.spawn(3);
    // Node 2's damaged record lies before batch markers that survived: data
    // it had made durable is gone. It starts cut before the damage, flagged
    // (no vote until it caught up), and says so once, naming the file.
    c.wait_leader(&[1, 3]).await;
    let start = Instant::now();
    while !c.log(2).contains("are damaged") {
        assert!(start.elapsed() < WAIT, "node 2 should report the loss: {}", c.log(2));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.exited(2).is_none(), "node 2 starts and repairs from the cluster");
    let log2 = c.log(2);
    assert!(log2.contains("00000001.seg") && log2.contains("offset=8"), "{log2}");
    let lib = c.client();
    for i in 0..10 {
        assert_eq!(lib.get(&format!("k{i}")).await.unwrap(), Some(format!("v{i}")));
    }
    assert!(c.log(1).contains("cutting a torn record"), "{}", c.log(1));
    assert_eq!(std::fs::read(&seg).unwrap()[..bytes.len()], bytes[..], "the valid prefix is kept");

    // Node 3's data directory is not node 2's.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["node", "--id", "2", "--data-dir"])
        .arg(c.dir.join("node-3"))
        .arg("--config")
        .arg(&c.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("belongs to another cluster or node"), "{}", stderr(&out));
    // A bad config and an unknown node are refused with a reason.
    let badcfg = c.dir.join("bad.toml");
    std::fs::write(&badcfg, "cluster_id = \"x\"\nsecret = \"short\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["node", "--id", "1", "--config"])
        .arg(&badcfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad config"), "{}", stderr(&out));
    let out = c.cli(&["get", "k1", "--addr", "ws://127.0.0.1:1", "--timeout", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("cannot reach any node"), "{}", stderr(&out));
    eprintln!("torn_and_corrupt_journals_and_bad_starts: {:?}", started.elapsed());
}

/// Issue #5, test 11: bad input of every kind is answered or refused, and no
/// node crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_or_refused() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message as M;
    let started = Instant::now();
    let mut c = Cluster::start("bad", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    let url = c.url(leader);
    let addr = url.trim_start_matches("ws://").to_string();

    // Garbage bytes and half a WebSocket frame on the raw port.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"\x00\xff\x13garbage\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.expect("closed in time");
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}/client")).await.unwrap();
    let mut raw = ws.into_inner();
    // A binary frame header announcing 100 bytes, then 3 bytes, then silence.
    raw.write_all(&[0x82, 0x80 | 100, 1, 2, 3, 4, 9, 9, 9]).await.unwrap();
    drop(raw);

    // Peer links: garbage, an oversize first frame, and a wrong secret.
    let (mut p, _) = tokio_tungstenite::connect_async(format!("{url}/raft")).await.unwrap();
    p.send(M::binary(b"not a handshake".to_vec())).await.unwrap();
    assert!(matches!(tokio::time::timeout(WAIT, p.next()).await.unwrap(), None | Some(Err(_)) | Some(Ok(M::Close(_)))));
    let (mut p, _) = tokio_tungstenite::connect_async(format!("{url}/raft")).await.unwrap();
    p.send(M::binary(vec![7u8; 100_000])).await.unwrap();
    assert!(matches!(tokio::time::timeout(WAIT, p.next()).await.unwrap(), None | Some(Err(_)) | Some(Ok(M::Close(_)))));
    use raftkv::peer::handshake::Handshake;
    let (mut p, _) = tokio_tungstenite::connect_async(format!("{url}/raft")).await.unwrap();
    let other = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let hello = Handshake::Hello { cluster: c.cluster_uuid(), from: other, to: leader, nonce: [3; 32], inc: 1 };
    p.send(M::binary(hello.encode())).await.unwrap();
    match tokio::time::timeout(WAIT, p.next()).await.unwrap() {
        Some(Ok(M::Binary(b))) => assert!(matches!(Handshake::decode(&b), Ok(Handshake::Challenge { .. }))),
        other => panic!("expected a challenge, got {other:?}"),
    }
    p.send(M::binary(Handshake::Proof { proof: [0; 32] }.encode())).await.unwrap();
    assert!(matches!(tokio::time::timeout(WAIT, p.next()).await.unwrap(), None | Some(Err(_)) | Some(Ok(M::Close(_)))));
    // Issue #13: a node that proves one incarnation and then sends as
    // another is cut off, with a logged reason naming both.
    let auth = raftkv::peer::handshake::PeerAuth::for_cluster(&c.cluster_uuid(), common::SECRET, other, 4242);
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}/raft")).await.unwrap();
    let mut p = raftkv::peer::outgoing::binary_frames(ws);
    let (key, _) = raftkv::peer::handshake::dial_handshake(&mut p, &auth, leader, WAIT).await.expect("proven");
    let mut m = raft_core::Message::new(other, leader, 0, raft_core::Body::VoteResp { granted: false });
    m.from_inc = 4343;
    p.send(raftkv::peer::batch::Sealer::new(key).seal(&[m])).await.unwrap();
    assert!(matches!(tokio::time::timeout(WAIT, p.next()).await.unwrap(), None | Some(Err(_))));
    let t = Instant::now();
    while !c.log(leader).contains("proved incarnation 4242 at the handshake but a message names incarnation 4343") {
        assert!(t.elapsed() < WAIT, "the refusal is logged\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Client requests: each bad one gets bad_request and the connection goes on.
    let mut j = JsonConn::open(&url).await;
    let cases: &[(&str, &str)] = &[
        ("{not json", "malformed JSON"),
        ("[1,2]", "object"),
        (r#"{"op":"get","key":"k"}"#, "id"),
        (r#"{"id":1,"op":"launch"}"#, "unknown op"),
        (
            r#"{"id":2,"op":"put","session":1,"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","seq":1,"ack":1,"key":"k"}"#,
            "value",
        ),
        (r#"{"id":3,"op":"put","session":"one","seq":1,"ack":1,"key":"k","value":"v"}"#, "integer"),
        (r#"{"id":4,"op":"get","key":42}"#, "string"),
        (r#"{"id":5,"op":"get","key":"k","x":1}"#, "unknown field"),
        (r#"{"id":6,"op":"put","session":1,"seq":1,"ack":1,"key":"k","value":"v","seq2":-1}"#, "unknown field"),
        (
            r#"{"id":7,"op":"keepalive","session":1,"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ack":9007199254740993}"#,
            "integer",
        ),
        (
            r#"{"id":8,"op":"cas","session":1,"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","seq":1,"ack":1,"key":"k","value":"v"}"#,
            "expect",
        ),
    ];
    for (req, why) in cases {
        let r = j.call(req).await;
        assert_eq!(r["ok"], false, "{req} -> {r}");
        assert_eq!(r["error"], "bad_request", "{req} -> {r}");
        assert!(r["message"].as_str().unwrap().contains(why), "{req} -> {r}");
    }
    let big_key = format!(r#"{{"id":9,"op":"get","key":"{}"}}"#, "k".repeat(1025));
    assert!(j.call(&big_key).await["message"].as_str().unwrap().contains("key longer"));
    let r = j.call(r#"{"id":10,"op":"register"}"#).await;
    let s = r["session"].as_u64().unwrap();
    let k = r["secret"].as_str().unwrap().to_string();
    let big_value =
        json!({"id":11,"op":"put","session":s,"secret":k,"seq":1,"ack":1,"key":"k","value":"v".repeat((1 << 20) + 1)});
    assert!(j.call(&big_value.to_string()).await["message"].as_str().unwrap().contains("value longer"));
    let ok_value =
        json!({"id":12,"op":"put","session":s,"secret":k,"seq":1,"ack":1,"key":"big","value":"v".repeat(1 << 20)});
    assert_eq!(strip(j.call(&ok_value.to_string()).await).0, json!({"id":12,"ok":true}), "a 1 MiB value is fine");
    // ack > seq is the core's bad_request.
    let r = j
        .call(&json!({"id":13,"op":"put","session":s,"secret":k,"seq":2,"ack":3,"key":"k","value":"v"}).to_string())
        .await;
    assert_eq!(r["error"], "bad_request");
    // An oversize frame (over the 4 MiB client limit) is answered...
    let huge = format!(r#"{{"id":14,"op":"get","key":"{}"}}"#, "k".repeat(5 << 20));
    let r = j.call(&huge).await;
    assert!(r["message"].as_str().unwrap().contains("exceeds the limit"), "{r}");
    // ... and garbage binary frames too.
    j.send_binary(b"\x01\x02garbage".to_vec()).await;
    assert_eq!(j.recv().await.unwrap()["error"], "bad_request");
    assert_eq!(j.call(r#"{"id":15,"op":"get","key":"big"}"#).await["value"].as_str().unwrap().len(), 1 << 20);
    // A frame over the transport limit (16 MiB) closes that connection only.
    let mut j2 = JsonConn::open(&url).await;
    // (The node may close it before the client has finished sending.)
    if j2.try_send_binary(vec![0u8; 17 << 20]).await {
        assert!(j2.recv().await.is_none(), "the connection is closed");
    }

    // A page from another origin is refused; the demo's own origin is allowed.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{url}/client").into_client_request().unwrap();
    req.headers_mut().insert("Origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err().to_string();
    assert!(err.contains("403"), "{err}");
    let mut req = format!("{url}/client").into_client_request().unwrap();
    req.headers_mut().insert("Origin", "http://127.0.0.1:8080".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());

    // Every node is alive and the cluster still works.
    let lib = c.client();
    lib.put("after", "fine").await.unwrap();
    assert_eq!(lib.get("after").await.unwrap().as_deref(), Some("fine"));
    for id in c.ids() {
        assert!(c.exited(id).is_none(), "node {id} crashed\n{}", c.logs());
        assert!(c.status(id).await.is_some(), "node {id} answers /status");
    }
    let log = c.log(leader);
    assert!(log.contains("failed to prove the shared secret"), "the wrong secret is logged\n{log}");
    assert!(log.contains("refused a client connection"), "the origin refusal is logged");
    eprintln!("bad_input_is_answered_or_refused: {:?}", started.elapsed());
}

/// Issue #5, test 12: a deposed leader, paused and resumed, never serves a
/// stale read and never acknowledges a write that did not commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_leader_serves_no_stale_read() {
    deposed_leader_case("deposed", "").await;
}

/// The same with lease reads on: the old leader held a lease when it was
/// stopped (SIGSTOP), and its clock moved on while it was away, so on
/// resuming it finds the lease run out instead of answering from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_leader_serves_no_stale_read_with_leases() {
    let (c, old) = deposed_leader_case("deposed-lease", "lease_reads = true").await;
    // Leases were in use: the old leader answered reads on one before it was
    // stopped (the reads of the case's first put and get), or the new one did.
    let mut on_lease = 0;
    for id in c.ids() {
        on_lease += c.metric(id, "raft_lease_reads_total").await;
    }
    assert!(on_lease > 0, "no read was answered on a lease (old leader {old})");
}

async fn deposed_leader_case(name: &str, extra: &str) -> (Cluster, u64) {
    let started = Instant::now();
    let c = Cluster::start(name, 3, extra);
    let old = c.wait_leader(&c.ids()).await;
    let lib = c.client();
    lib.put("k", "old").await.unwrap();
    // A read at the old leader while it leads (on its lease, with leases on).
    assert_eq!(lib.get("k").await.unwrap().as_deref(), Some("old"));
    // A session and a connection at the old leader, ready for later.
    let mut j = JsonConn::open(&c.url(old)).await;
    let r = j.call(r#"{"id":1,"op":"register"}"#).await;
    let (s, k) = (r["session"].as_u64().unwrap(), r["secret"].as_str().unwrap().to_string());

    c.signal(old, "-STOP");
    let others: Vec<u64> = c.ids().into_iter().filter(|&i| i != old).collect();
    let new = c.wait_leader(&others).await;
    let lib2 = raftkv::Client::new(vec![c.url(new)], raftkv::ClientOptions::default());
    lib2.put("k", "new").await.unwrap();

    c.signal(old, "-CONT");
    // At once: a read and a write at the old leader.
    j.send_text(r#"{"id":2,"op":"get","key":"k"}"#).await;
    j.send_text(
        &json!({"id":3,"op":"put","session":s,"secret":k,"seq":1,"ack":1,"key":"dep","value":"from-old"}).to_string(),
    )
    .await;
    let (mut read, mut write) = (None, None);
    for _ in 0..2 {
        let r = j.recv().await.expect("the old leader answers");
        match r["id"].as_u64() {
            Some(2) => read = Some(r),
            Some(3) => write = Some(r),
            _ => panic!("unexpected reply {r}"),
        }
    }
    let read = read.unwrap();
    assert_ne!(read["value"], "old", "stale read from a deposed leader: {read}");
    assert!(read["error"] == "not_leader" || read["value"] == "new", "{read}");
    let write = write.unwrap();
    if write["ok"] == true {
        // Acknowledged: then it committed.
        assert_eq!(lib2.get("dep").await.unwrap().as_deref(), Some("from-old"), "acknowledged but not committed");
    } else {
        assert!(["not_leader", "unknown_outcome"].contains(&write["error"].as_str().unwrap()), "{write}");
    }
    assert_eq!(lib.get("k").await.unwrap().as_deref(), Some("new"));
    eprintln!("{name}: read {read}, write {write}, {:?}", started.elapsed());
    (c, old)
}

/// The library keeps idle sessions alive, and re-registers after its session
/// expired (transparently when no attempt of the write had been sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_kept_alive_or_reopened() {
    let started = Instant::now();
    let c = Cluster::start("sessions", 3, "session_timeout_ms = 1000");
    c.wait_leader(&c.ids()).await;
    let opts = |keepalive_ms| raftkv::ClientOptions {
        keepalive_after: Duration::from_millis(keepalive_ms),
        ..raftkv::ClientOptions::default()
    };
    let keeper = raftkv::Client::new(c.urls(), opts(200));
    let lazy = raftkv::Client::new(c.urls(), opts(3_600_000));
    let busy = c.client();
    keeper.put("a", "1").await.unwrap();
    lazy.put("b", "1").await.unwrap();
    let (ks, ls) = (keeper.session().await.unwrap(), lazy.session().await.unwrap());
    // Cluster time moves with entries: keep some coming for twice the timeout.
    let until = Instant::now() + Duration::from_millis(2_000);
    while Instant::now() < until {
        busy.append("clock", ".").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keeper.put("a", "2").await.unwrap();
    assert_eq!(keeper.session().await, Some(ks), "kept alive while idle");
    lazy.put("b", "2").await.unwrap();
    assert_ne!(lazy.session().await, Some(ls), "expired, so a new session was opened");
    assert_eq!(busy.get("b").await.unwrap().as_deref(), Some("2"));
    eprintln!("sessions_are_kept_alive_or_reopened: {:?}", started.elapsed());
}

/// The main job: `raftkv cluster` starts three nodes and the demo page, and
/// Ctrl-C stops them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_command_starts_serves_and_stops() {
    let started = Instant::now();
    let c = Cluster::configure("main", 3, "");
    let (mut child, demo) = c.start_cluster_command();
    c.wait_leader(&c.ids()).await;
    let page = raftkv::http::get(&demo, "/").await.unwrap();
    assert!(page.contains("raftkv"), "{page}");
    let all: Value = serde_json::from_str(&raftkv::http::get(&demo, "/api/status").await.unwrap()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert_eq!(stdout(&c.cli(&["put", "main", "job"])), "OK");
    assert_eq!(stdout(&c.cli(&["get", "main"])), "job");

    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let st = common::wait_exit(&mut child, WAIT).expect("cluster stops on Ctrl-C");
    assert!(st.success(), "{st}");
    for id in c.ids() {
        let start = Instant::now();
        while c.status(id).await.is_some() {
            assert!(start.elapsed() < WAIT, "node {id} still running after Ctrl-C");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("cluster_command_starts_serves_and_stops: {:?}", started.elapsed());
}

/// `raftkv bench` with several requests in flight per client: every write of
/// a pipelined session is accepted (seq and ack kept right), the operation
/// count is exact, and the report is JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_pipelines_requests_on_one_session() {
    let started = Instant::now();
    let c = Cluster::start("bench", 3, "");
    c.wait_leader(&c.ids()).await;
    for (workload, depth) in [("put", "8"), ("mixed", "4")] {
        let out = c.cli(&[
            "bench",
            "--workload",
            workload,
            "--clients",
            "3",
            "--depth",
            depth,
            "--ops",
            "600",
            "--keys",
            "50",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((r["ops"].as_u64(), r["errors"].as_u64()), (Some(600), Some(0)), "{r}");
        assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{r}");
    }
    // `mixed` wrote every key of the space first: 8-byte keys, 256-byte values.
    let lib = c.client();
    assert_eq!(lib.get("00000049").await.unwrap().map(|v| v.len()), Some(256));
    eprintln!("bench_pipelines_requests_on_one_session: {:?}", started.elapsed());
}
