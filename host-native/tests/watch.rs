//! Watches over the wire (issue 14), against real `raftkv node` processes:
//! the JSON frames, the client library's stream (binary frames) and
//! `raftkv watch`. Every check compares what a watch delivered with the
//! revisions the writes were given.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, JsonConn, WAIT};
use futures_util::StreamExt;
use raft_core::kv::watch::EventKind;
use raft_core::kv::{Txn, TxnOp};
use raftkv::{KvOp, KvOutput, WatchOptions, WatchResponse};
use serde_json::{json, Value};

/// Puts `key` and returns the write's revision.
async fn put(lib: &raftkv::Client, key: &str, value: &str) -> u64 {
    match lib.execute(KvOp::Put { key: key.into(), value: value.into() }).await.unwrap() {
        KvOutput::Written { revision } => revision,
        other => panic!("{other:?}"),
    }
}

/// The next pushed frame of `conn` (replies are not expected here).
async fn push(conn: &mut JsonConn) -> Value {
    let v = conn.recv().await.expect("the connection stays open");
    assert!(v["push"].is_string(), "a pushed frame: {v}");
    v
}

/// Sends one request and returns its reply, passing over pushed frames.
async fn call(conn: &mut JsonConn, text: &str) -> Value {
    conn.send_text(text).await;
    loop {
        let v = conn.recv().await.expect("the connection stays open");
        if v.get("push").is_none() {
            return v;
        }
    }
}

/// Opens a watch on `conn` and returns its id.
async fn watch(conn: &mut JsonConn, id: u64, fields: Value) -> (u64, u64) {
    let mut req = json!({"id": id, "op": "watch"});
    for (k, v) in fields.as_object().unwrap() {
        req[k] = v.clone();
    }
    let r = call(conn, &req.to_string()).await;
    assert_eq!((r["id"].as_u64(), r["ok"].as_bool()), (Some(id), Some(true)), "{r}");
    (r["watch_id"].as_u64().unwrap(), r["revision"].as_u64().unwrap())
}

fn keys(frame: &Value) -> Vec<String> {
    frame["events"].as_array().unwrap().iter().map(|e| e["kv"]["key"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_watch_on_a_follower_gets_each_revision_once_in_order() {
    let started = Instant::now();
    let c = Cluster::start("watch-order", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let lib = c.client();
    let mut j = JsonConn::open(&c.url(follower)).await;
    let (w, now) = watch(&mut j, 1, json!({"prefix": "w/"})).await;
    assert_eq!(w, 1);

    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put(&lib, &format!("w/{i}"), &i.to_string()).await);
        put(&lib, "other", "x").await; // not under the prefix: no frame
    }
    // One transaction: one revision, one frame with both of its events in order.
    let t = Txn {
        compare: vec![],
        success: vec![
            TxnOp::Put { key: "w/t1".into(), value: "a".into(), lease: 0 },
            TxnOp::Put { key: "elsewhere".into(), value: "b".into(), lease: 0 },
            TxnOp::Delete { key: "w/0".into() },
        ],
        failure: vec![],
    };
    let txn_rev = lib.txn(t).await.unwrap().revision;
    for (i, &r) in revs.iter().enumerate() {
        let f = push(&mut j).await;
        assert_eq!(
            (f["push"].as_str(), f["watch_id"].as_u64(), f["revision"].as_u64()),
            (Some("watch_events"), Some(w), Some(r)),
            "{f}"
        );
        assert!(r > now);
        assert_eq!(keys(&f), [format!("w/{i}")]);
        assert_eq!(f["events"][0]["type"], "put");
        assert_eq!(f["events"][0]["kv"]["value"], i.to_string());
        assert_eq!(f["events"][0]["kv"]["mod_revision"].as_u64(), Some(r));
    }
    let f = push(&mut j).await;
    assert_eq!(f["revision"].as_u64(), Some(txn_rev), "{f}");
    assert_eq!(keys(&f), ["w/t1", "w/0"]);
    assert_eq!((f["events"][0]["type"].as_str(), f["events"][1]["type"].as_str()), (Some("put"), Some("delete")));
    assert!(j.recv_within(Duration::from_millis(300)).await.is_none(), "nothing else, nothing twice");

    // A start in the past replays, with the values before on request.
    let (w2, _) = watch(&mut j, 2, json!({"prefix": "w/", "start_rev": revs[2], "prev_kv": true})).await;
    let mut replayed = Vec::new();
    for _ in 0..4 {
        let f = push(&mut j).await;
        assert_eq!(f["watch_id"].as_u64(), Some(w2));
        replayed.push(f["revision"].as_u64().unwrap());
        if f["revision"].as_u64() == Some(txn_rev) {
            let del = &f["events"][1];
            assert_eq!((del["type"].as_str(), del["prev_kv"]["value"].as_str()), (Some("delete"), Some("0")), "{f}");
        }
    }
    assert_eq!(replayed, [revs[2], revs[3], revs[4], txn_rev]);

    // A start beyond the applied revision waits for it: the writes before it are not sent.
    let from = txn_rev + 4;
    let (w3, _) = watch(&mut j, 3, json!({"key": "w/late", "start_rev": from})).await;
    let mut late = Vec::new();
    for i in 0..6 {
        late.push(put(&lib, "w/late", &i.to_string()).await);
    }
    let want: Vec<u64> = late.iter().copied().filter(|&r| r >= from).collect();
    assert!(!want.is_empty() && want.len() < late.len(), "{late:?} {from}");
    let mut got = Vec::new();
    while got.len() < want.len() {
        let f = push(&mut j).await;
        if f["watch_id"].as_u64() == Some(w3) {
            got.push(f["revision"].as_u64().unwrap());
        }
    }
    assert_eq!(got, want);

    // Cancelled: answered, and nothing of it follows.
    let r = call(&mut j, &json!({"id": 4, "op": "cancel_watch", "watch_id": w3}).to_string()).await;
    assert_eq!((r["id"].as_u64(), r["canceled"].as_bool()), (Some(4), Some(true)), "{r}");
    let r = call(&mut j, &json!({"id": 5, "op": "cancel_watch", "watch_id": w3}).to_string()).await;
    assert_eq!(r["error"], "bad_request", "{r}");

    // The library (binary frames) from the same revision sees the same revisions.
    let mut all = revs.clone();
    all.push(txn_rev);
    all.extend(late.iter().copied());
    let mut s = lib.watch("w/", WatchOptions { prefix: true, start_rev: Some(revs[0]), ..Default::default() }).await;
    let mut lib_revs = Vec::new();
    while lib_revs.len() < all.len() {
        match tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap().unwrap() {
            WatchResponse::Events { revision, .. } => lib_revs.push(revision),
            WatchResponse::Progress { .. } => {}
        }
    }
    assert_eq!(lib_revs, all);
    assert!(c.metric(follower, "watch_created_total").await >= 3);
    let mut created = 0;
    for id in c.ids() {
        created += c.metric(id, "watch_created_total").await;
    }
    assert_eq!(created, 4, "three JSON watches and the library's");
    eprintln!("a_prefix_watch_on_a_follower_gets_each_revision_once_in_order: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_starts_the_watch_limit_and_the_cli() {
    let limits = "[limits]\nwatch_window_events = 10\nmax_watches_per_connection = 3\nwatch_progress_ms = 200\n";
    let c = Cluster::start("watch-limits", 3, limits);
    let leader = c.wait_leader(&c.ids()).await;
    let lib = c.client();
    let mut last = 0;
    for i in 0..30 {
        last = put(&lib, &format!("c/{i}"), "v").await;
    }
    c.wait_applied(leader, last).await;

    // Before the window: compacted, with the oldest revision the node has.
    let mut j = JsonConn::open(&c.url(leader)).await;
    let (w, _) = watch(&mut j, 1, json!({"prefix": "c/", "start_rev": 1})).await;
    let f = push(&mut j).await;
    assert_eq!(
        (f["push"].as_str(), f["watch_id"].as_u64(), f["reason"].as_str()),
        (Some("watch_canceled"), Some(w), Some("compacted")),
        "{f}"
    );
    let floor = f["compact_revision"].as_u64().unwrap();
    assert!(floor > 1 && floor <= last, "floor {floor}, last {last}");
    // From the floor it works.
    let (w2, _) = watch(&mut j, 2, json!({"prefix": "c/", "start_rev": floor})).await;
    let f = push(&mut j).await;
    assert_eq!(f["watch_id"].as_u64(), Some(w2));
    assert!(f["revision"].as_u64().unwrap() >= floor);
    // The library turns it into an error item that ends the stream.
    let mut s = lib.watch("c/", WatchOptions { prefix: true, start_rev: Some(1), ..Default::default() }).await;
    let first = tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap();
    assert!(matches!(first, Err(raftkv::Error::Compacted { oldest }) if oldest >= floor), "{first:?}");
    assert!(tokio::time::timeout(WAIT, s.next()).await.unwrap().is_none());
    // So does the CLI (exit 2, naming the revision to use).
    let o = c.cli(&["watch", "c/", "--prefix", "--rev", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("compacted") && err.contains("--rev"), "{err}");

    // Three watches per connection: the fourth is refused, counted, and
    // possible again once one is cancelled. (w was cancelled by the node.)
    watch(&mut j, 3, json!({"key": "c/x"})).await;
    let (w4, _) = watch(&mut j, 4, json!({"key": "c/y", "progress_notify": true})).await;
    let r = call(&mut j, r#"{"id":5,"op":"watch","key":"c/z"}"#).await;
    assert_eq!((r["id"].as_u64(), r["error"].as_str()), (Some(5), Some("refused")), "{r}");
    assert!(r["message"].as_str().unwrap().contains("watch limit"), "{r}");
    assert_eq!(c.metric(leader, "watch_refused_limit_total").await, 1);
    // Progress: the watch of c/y has seen everything up to the applied revision.
    let f = loop {
        let f = push(&mut j).await;
        if f["push"] == "watch_progress" {
            break f;
        }
    };
    assert_eq!(f["watch_id"].as_u64(), Some(w4));
    assert!(f["revision"].as_u64().unwrap() >= last, "{f}");
    let r = call(&mut j, &json!({"id": 6, "op": "cancel_watch", "watch_id": w2}).to_string()).await;
    assert_eq!(r["canceled"], true, "{r}");
    let r = call(&mut j, r#"{"id":7,"op":"watch","key":"c/z"}"#).await;
    assert_eq!((r["id"].as_u64(), r["ok"].as_bool()), (Some(7), Some(true)), "{r}");
    let bad = call(&mut j, r#"{"id":8,"op":"watch","key":"a","prefix":"b"}"#).await;
    assert!(bad["message"].as_str().unwrap_or("").contains("exactly one"), "{bad}");

    // `raftkv watch` prints events as they come, from a revision.
    let from = put(&lib, "cli/0", "zero").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["watch", "cli/", "--prefix", "--prev-kv", "--max-events", "3", "--rev", &from.to_string(), "--config"])
        .arg(&c.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let r1 = put(&lib, "cli/0", "one").await;
    let r2 = match lib.execute(KvOp::Delete { key: "cli/0".into() }).await.unwrap() {
        KvOutput::Deleted { existed: true, revision } => revision,
        other => panic!("{other:?}"),
    };
    let _ = common::wait_exit(&mut child, WAIT).expect("raftkv watch ends after 3 events");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("[{from}] PUT cli/0=zero\n[{r1}] PUT cli/0=one (was zero)\n[{r2}] DELETE cli/0 (was one)\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = c.cli(&["watch", "cli/0", "--rev", &from.to_string(), "--max-events", "1", "--json"]);
    let line: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (line["revision"].as_u64(), line["type"].as_str(), line["kv"]["value"].as_str()),
        (Some(from), Some("put"), Some("zero"))
    );
}

/// A client that does not read: once the node holds `watch_queue_bytes`
/// of its frames and the next has waited `watch_slow_ms` for room, the
/// watch is cancelled as slow; what was delivered before is complete and
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_is_cancelled_as_slow() {
    let c = Cluster::start("watch-slow", 3, "[limits]\nwatch_queue_bytes = 262144\nwatch_slow_ms = 200\n");
    let leader = c.wait_leader(&c.ids()).await;
    let lib = c.client();
    let mut j = JsonConn::open_small_buffer(&c.url(leader)).await;
    let (w, _) = watch(&mut j, 1, json!({"prefix": "s/"})).await;
    // 10 MB of events: more than the kernel's socket buffers and the queue.
    let value = "x".repeat(64 << 10);
    let mut revs = Vec::new();
    for i in 0..160 {
        revs.push(put(&lib, &format!("s/{i}"), &value).await);
        if c.metric(leader, "watch_canceled_slow_total").await > 0 {
            break;
        }
    }
    let waited = Instant::now();
    while c.metric(leader, "watch_canceled_slow_total").await == 0 {
        assert!(waited.elapsed() < WAIT, "not cancelled after {} writes", revs.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.metric(leader, "watch_canceled_slow_total").await, 1);
    let mut got = Vec::new();
    let reason = loop {
        let f = push(&mut j).await;
        assert_eq!(f["watch_id"].as_u64(), Some(w));
        match f["push"].as_str() {
            Some("watch_events") => got.push(f["revision"].as_u64().unwrap()),
            Some("watch_canceled") => break f["reason"].as_str().unwrap().to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reason, "slow");
    assert!(!got.is_empty() && got.len() < revs.len(), "{} of {}", got.len(), revs.len());
    assert_eq!(got, revs[..got.len()], "a prefix of the writes, in order, each once");
    // The connection is still usable.
    let r = call(&mut j, r#"{"id":9,"op":"get","key":"s/0"}"#).await;
    assert_eq!(r["kv"]["key"], "s/0", "{}", r["id"]);
}

/// Leases that end delete their keys: the watch sees the deletes, with the
/// value before when asked; and a node without a leader cancels the
/// watches that asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_deletes_and_no_leader_cancels() {
    let mut c = Cluster::start("watch-lease", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    let lib = c.client();
    let mut s = lib.watch("svc/", WatchOptions { prefix: true, prev_kv: true, ..Default::default() }).await;
    // The stream is open once a write after it shows; wait for that first.
    let l = lib.lease_grant(Duration::from_millis(1_000)).await.unwrap();
    let mut put_rev = 0;
    let granted = Instant::now();
    let mut deleted = None;
    let mut open_writes = 0;
    while deleted.is_none() {
        let item = tokio::time::timeout(Duration::from_millis(300), s.next()).await;
        let Ok(Some(item)) = item else {
            if put_rev == 0 {
                open_writes += 1;
                put_rev = lib.put_lease("svc/lock", "me", l.id).await.unwrap();
            }
            assert!(granted.elapsed() < WAIT, "no delete event in time");
            continue;
        };
        match item.unwrap() {
            WatchResponse::Events { revision, events } => {
                if events[0].kind == EventKind::Put {
                    assert_eq!((revision, events[0].kv.value.as_str()), (put_rev, "me"));
                } else {
                    assert_eq!(events.len(), 1);
                    assert_eq!(events[0].kv.key, "svc/lock");
                    assert_eq!(events[0].prev.as_ref().map(|p| p.value.as_str()), Some("me"));
                    deleted = Some(revision);
                }
            }
            WatchResponse::Progress { .. } => {}
        }
    }
    assert!(deleted.unwrap() > put_rev && open_writes == 1);
    assert!(granted.elapsed() >= Duration::from_millis(900), "not before the TTL: {:?}", granted.elapsed());

    // No leader for an election timeout: the watch that asked ends; one that did not stays.
    let lone = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let mut j = JsonConn::open(&c.url(lone)).await;
    let (w1, _) = watch(&mut j, 1, json!({"prefix": "svc/", "no_leader_cancel": true})).await;
    let (_w2, _) = watch(&mut j, 2, json!({"prefix": "svc/"})).await;
    for id in c.ids() {
        if id != lone {
            c.kill(id);
        }
    }
    let f = push(&mut j).await;
    assert_eq!(
        (f["watch_id"].as_u64(), f["push"].as_str(), f["reason"].as_str()),
        (Some(w1), Some("watch_canceled"), Some("no_leader")),
        "{f}"
    );
    assert!(j.recv_within(Duration::from_millis(500)).await.is_none(), "the other watch stays open");
    assert_eq!(c.metric(lone, "watch_canceled_no_leader_total").await, 1);
}

/// Writes go on while the node the watch is on is killed (it was the
/// leader), comes back, and the next node is killed: the library's stream
/// resumes each time from the last complete revision + 1, and delivers
/// exactly the revisions of the writes, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_across_a_leader_change_and_a_restart_without_gap_or_double() {
    let mut c = Cluster::start("watch-resume", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    // The watch goes to the leader first, then to the nodes after it.
    let mut order = vec![c.url(leader)];
    order.extend(c.ids().into_iter().filter(|&i| i != leader).map(|i| c.url(i)));
    let wlib = raftkv::Client::new(order, raftkv::ClientOptions::default());
    let lib = c.client();
    let from = put(&lib, "r/start", "0").await;
    let mut s = wlib.watch("r/", WatchOptions { prefix: true, start_rev: Some(from), ..Default::default() }).await;
    let next_node = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let mut revs = vec![from];
    let n = 150;
    for i in 0..n {
        if i == 40 {
            c.kill(leader);
        }
        if i == 80 {
            c.spawn(leader);
        }
        if i == 110 {
            // The restarted node must be back in the quorum first.
            c.wait_applied(leader, *revs.last().unwrap()).await;
            c.kill(next_node);
        }
        revs.push(put(&lib, &format!("r/{i}"), &i.to_string()).await);
    }
    let mut got = Vec::new();
    while got.len() < revs.len() {
        match tokio::time::timeout(WAIT, s.next()).await.expect("events in time").expect("the stream goes on") {
            Ok(WatchResponse::Events { revision, events }) => {
                assert_eq!(events.len(), 1);
                got.push(revision);
            }
            Ok(WatchResponse::Progress { .. }) => {}
            Err(e) => panic!("the stream ended: {e}"),
        }
    }
    assert_eq!(got, revs, "every write once, in order");
    assert!(tokio::time::timeout(Duration::from_millis(300), s.next()).await.is_err(), "nothing more");
}

/// A follower that was away while the leader compacted its log catches up
/// by installing a snapshot: the events in between never reach its window,
/// so a watch on it that had not received them is cancelled as compacted,
/// with the snapshot's next revision as the oldest one, and the
/// application hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_install_past_undelivered_events_cancels_compacted() {
    let c = Cluster::start("watch-snap", 3, "[limits]\nsnapshot_entries = 20\n");
    let leader = c.wait_leader(&c.ids()).await;
    let away = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let lib = c.client();
    let first = put(&lib, "snap/0", "0").await;
    let wlib = raftkv::Client::new(vec![c.url(away)], raftkv::ClientOptions::default());
    let mut s = wlib.watch("snap/", WatchOptions { prefix: true, start_rev: Some(first), ..Default::default() }).await;
    match tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap().unwrap() {
        WatchResponse::Events { revision, .. } => assert_eq!(revision, first),
        other => panic!("{other:?}"),
    }
    c.signal(away, "-STOP");
    let mut writes = Vec::new();
    for i in 1..=120 {
        writes.push(put(&lib, &format!("snap/{i}"), "v").await);
    }
    let last = writes[writes.len() - 1];
    c.signal(away, "-CONT");
    // What its socket buffered while it was stopped still arrives as
    // entries (and events, in order); then the snapshot jumps.
    let mut delivered = first;
    let oldest = loop {
        match tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap() {
            Ok(WatchResponse::Events { revision, .. }) => {
                let next = writes.iter().copied().find(|&w| w > delivered);
                assert_eq!(Some(revision), next, "the next write: no gap");
                delivered = revision;
            }
            Ok(WatchResponse::Progress { .. }) => {}
            Err(raftkv::Error::Compacted { oldest }) => break oldest,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(oldest > delivered + 1 && oldest <= last + 1, "oldest {oldest}, delivered {delivered}, last {last}");
    assert!(tokio::time::timeout(WAIT, s.next()).await.unwrap().is_none(), "the stream ends");
    assert!(c.metric(away, "raft_snapshots_installed_total").await >= 1);
    assert_eq!(c.metric(away, "watch_canceled_compacted_total").await, 1);
}
