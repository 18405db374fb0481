//! The key-value API of a config store (issue 14), against real `raftkv
//! node` processes: prefix and range reads page by page with revisions,
//! counts, transactions read from standard input, leases that end and take
//! their keys with them — from the CLI, the client library and the JSON
//! protocol.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, JsonConn, WAIT};
use raft_core::kv::{Cmp, Compare, Txn, TxnOp, TxnResult};
use serde_json::{json, Value};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_range_count_and_txn_from_the_cli_and_the_library() {
    let started = Instant::now();
    let c = Cluster::start("kvapi", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    for (k, v) in [("app/a", "1"), ("app/b", "2"), ("app/c", "3"), ("other", "x")] {
        let o = c.cli(&["put", k, v]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(stdout(&c.cli(&["get", "--prefix", "app/"])), "app/a=1\napp/b=2\napp/c=3");
    assert_eq!(stdout(&c.cli(&["get", "--prefix", "app/", "--limit", "2"])), "app/a=1\napp/b=2");
    assert_eq!(stdout(&c.cli(&["range", "app/b", "other"])), "app/b=2\napp/c=3");
    assert_eq!(stdout(&c.cli(&["count", "--prefix", "app/"])), "3");
    let lines = stdout(&c.cli(&["get", "--prefix", "app/", "--json"]));
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!((first["key"].as_str(), first["version"].as_u64()), (Some("app/a"), Some(1)), "{first}");
    assert!(first["create_revision"].as_u64().unwrap() >= 1);

    // Pages: each names its revision and where the next starts.
    let lib = c.client();
    let p1 = lib.prefix("app/", None, 2).await.unwrap();
    assert_eq!(p1.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["app/a", "app/b"]);
    assert_eq!(p1.next.as_deref(), Some("app/c"));
    lib.put("app/b", "22").await.unwrap();
    let p2 = lib.prefix("app/", p1.next.as_deref(), 2).await.unwrap();
    assert_eq!((p2.kvs.len(), p2.next.clone()), (1, None));
    assert!(p2.revision > p1.revision, "a later page reads at a later revision (not one snapshot)");
    let b = lib.get_kv("app/b").await.unwrap().unwrap();
    assert_eq!((b.version, b.create_revision < b.mod_revision), (2, true));

    // A transaction from standard input: the comparison holds the first time only.
    let txn = r#"{"compare":[{"key":"app/lock","exists":false}],
                  "success":[{"op":"put","key":"app/lock","value":"me"},{"op":"get","key":"app/a"}],
                  "failure":[{"op":"get","key":"app/lock"}]}"#;
    let o = c.cli_stdin(&["txn"], txn);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "SUCCEEDED\nOK\napp/a=1".to_string()), "{}", stderr(&o));
    let o = c.cli_stdin(&["txn"], txn);
    assert_eq!((o.status.code(), stdout(&o)), (Some(1), "FAILED\napp/lock=me".to_string()));
    let o = c.cli_stdin(&["txn"], r#"{"compare":[{"key":"k"}]}"#);
    assert!(!o.status.success() && stderr(&o).contains("exactly one"), "{}", stderr(&o));

    // The library: a transaction is one revision for all its writes.
    let out = lib
        .txn(Txn {
            compare: vec![Compare::Version { key: "app/a".into(), cmp: Cmp::Equal, version: 1 }],
            success: vec![
                TxnOp::Put { key: "app/a".into(), value: "10".into(), lease: 0 },
                TxnOp::Delete { key: "app/c".into() },
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(out.succeeded);
    assert_eq!(out.results, vec![TxnResult::Put, TxnResult::Deleted { existed: true }]);
    assert_eq!(lib.get_kv("app/a").await.unwrap().unwrap().mod_revision, out.revision);

    // The JSON protocol: a txn over a session, and the limits.
    let mut j = JsonConn::open(&c.url(leader)).await;
    let r = j.call(r#"{"id":1,"op":"register"}"#).await;
    let (s, k) = (r["session"].as_u64().unwrap(), r["secret"].as_str().unwrap().to_string());
    let t = json!({"id":2,"op":"txn","session":s,"secret":k,"seq":1,"ack":1,
        "compare":[{"key":"app/a","value":"10"}],"success":[{"op":"get","key":"app/a"}]});
    let r = j.call(&t.to_string()).await;
    assert_eq!((r["succeeded"].as_bool(), r["results"][0]["kv"]["value"].as_str()), (Some(true), Some("10")), "{r}");
    let many: Vec<Value> = (0..129).map(|i| json!({"op":"get","key":format!("k{i}")})).collect();
    let t = json!({"id":3,"op":"txn","session":s,"secret":k,"seq":2,"ack":2,"success":many});
    let r = j.call(&t.to_string()).await;
    assert_eq!(r["error"], "bad_request", "{r}");
    assert!(r["message"].as_str().unwrap().contains("more than 128"), "{r}");
    let r = j.call(r#"{"id":4,"op":"prefix","prefix":"app/","limit":1001}"#).await;
    assert_eq!(r["error"], "bad_request", "{r}");
    eprintln!("prefix_range_count_and_txn_from_the_cli_and_the_library: {:?}", started.elapsed());
}

/// A lock holder dies: nothing else is written, and its key goes within
/// the TTL plus a bound (a heartbeat before the leader's time entry, its
/// commit, and this test's polling: 1 s is generous on a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ends_in_an_idle_cluster_and_takes_its_keys() {
    let c = Cluster::start("leases", 3, "");
    c.wait_leader(&c.ids()).await;
    let o = c.cli(&["lease", "grant", "1.5"]);
    let text = stdout(&o);
    assert!(o.status.success() && text.starts_with("lease "), "{text} {}", stderr(&o));
    let id: u64 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let granted = Instant::now();
    let o = c.cli(&["put", "svc/lock", "holder-1", "--lease", &id.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&c.cli(&["get", "svc/lock"])), "holder-1");
    // Nobody writes; the reads below do not enter the log.
    let lib = c.client();
    let bound = Duration::from_millis(1_500 + 1_000);
    loop {
        if lib.get("svc/lock").await.unwrap().is_none() {
            break;
        }
        assert!(granted.elapsed() < bound, "the key outlived its lease by more than the bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(granted.elapsed() >= Duration::from_millis(1_400), "not before its TTL: {:?}", granted.elapsed());
    let o = c.cli(&["lease", "keepalive", &id.to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = c.cli(&["put", "svc/lock", "holder-2", "--lease", &id.to_string()]);
    assert_eq!(o.status.code(), Some(2), "a put on an ended lease is refused");
    // Keep-alive keeps; revoke deletes at once.
    let l = lib.lease_grant(Duration::from_millis(800)).await.unwrap();
    lib.put_lease("svc/b", "up", l.id).await.unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        lib.lease_keepalive(l.id).await.unwrap();
    }
    assert_eq!(lib.get("svc/b").await.unwrap().as_deref(), Some("up"), "kept alive past its TTL");
    assert_eq!(stdout(&c.cli(&["lease", "revoke", &l.id.to_string()])), "lease revoked; 1 keys deleted");
    assert_eq!(lib.get("svc/b").await.unwrap(), None);
    let _ = WAIT;
}
