//! Issue #12 with real `raftkv` processes: growing and shrinking a cluster
//! under load, replacing a dead node by one that joins, leadership transfer
//! under load, a wiped data directory, backup and restore, and every
//! refusal of the member commands.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT};
use serde_json::Value;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `member list --json` as seen through the cluster.
fn members(c: &Cluster) -> Value {
    let out = c.cli(&["member", "list", "--json"]);
    assert!(out.status.success(), "member list: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn ids(v: &Value, key: &str) -> Vec<u64> {
    v[key].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

/// Runs a member command until it succeeds (a learner still catching up,
/// a change still finishing, are refused meanwhile), within WAIT.
fn until_ok(c: &Cluster, args: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let out = c.cli(args);
        if out.status.success() {
            return stdout(&out);
        }
        assert!(start.elapsed() < WAIT, "{args:?} kept failing: {}\n{}", stderr(&out), c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `pred` holds for the member list.
async fn wait_members(c: &Cluster, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = members(c);
        if pred(&v) {
            return v;
        }
        assert!(start.elapsed() < WAIT, "{what}: last member list {v}\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes keys `{prefix}{i}` until told to stop, recording each acknowledged
/// key and the time of each acknowledgement.
struct Writer {
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(urls: Vec<String>, prefix: &str) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s, prefix) = (acked.clone(), stop.clone(), prefix.to_string());
        let task = tokio::spawn(async move {
            let opts = raftkv::ClientOptions { timeout: Duration::from_secs(5), ..Default::default() };
            let client = raftkv::Client::new(urls, opts);
            let mut i = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("{prefix}{i}");
                if client.put(&key, "v").await.is_ok() {
                    a.lock().unwrap().push((key, Instant::now()));
                }
                i += 1;
            }
        });
        Writer { acked, stop, task }
    }

    async fn finish(self) -> Vec<(String, Instant)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::time::timeout(WAIT, self.task).await;
        self.acked.lock().unwrap().clone()
    }
}

/// Every acknowledged key reads back.
async fn check_all(urls: Vec<String>, acked: &[(String, Instant)]) {
    let client = raftkv::Client::new(urls, raftkv::ClientOptions::default());
    for (k, _) in acked {
        assert_eq!(client.get(k).await.unwrap().as_deref(), Some("v"), "acknowledged write {k} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_to_five_under_load_then_remove_two_one_the_leader() {
    let mut c = Cluster::start("grow", 3, "");
    c.wait_leader(&c.ids()).await;
    let w = Writer::start(c.urls(), "g");
    c.spawn_joined(4, 1);
    c.spawn_joined(5, 2);
    wait_members(&c, "4 and 5 join as learners", |v| {
        ids(v, "learners").contains(&4) && ids(v, "learners").contains(&5)
    })
    .await;
    until_ok(&c, &["member", "promote", "4"]);
    until_ok(&c, &["member", "promote", "5"]);
    let v = members(&c);
    assert_eq!(ids(&v, "voters"), vec![1, 2, 3, 4, 5], "{v}");
    assert!(v["members"].as_array().unwrap().iter().all(|m| m["incarnation"].as_u64().unwrap() > 0), "{v}");

    // Remove the leader, then another node.
    let leader = c.wait_leader(&c.ids()).await;
    let out = until_ok(&c, &["member", "remove", &leader.to_string()]);
    assert!(out.contains("configuration: voters"), "{out}");
    let rest: Vec<u64> = (1..=5).filter(|&i| i != leader).collect();
    let new_leader = c.wait_leader(&rest).await;
    let other = *rest.iter().find(|&&i| i != new_leader).unwrap();
    until_ok(&c, &["member", "remove", &other.to_string()]);
    let v = wait_members(&c, "three voters left", |v| ids(v, "voters").len() == 3 && v["joint"] == false).await;
    assert!(!ids(&v, "voters").contains(&leader) && !ids(&v, "voters").contains(&other), "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = w.finish().await;
    assert!(acked.len() > 20, "writes went on during the changes: {}", acked.len());
    // The client follows the membership: addresses from the member list.
    let lib = c.client();
    let urls = lib.refresh_addresses().await.unwrap();
    assert!(urls.contains(&c.url(4)) && urls.contains(&c.url(5)), "{urls:?}");
    check_all(urls, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_replaced_by_one_that_joins() {
    let mut c = Cluster::start("replace", 3, "");
    c.wait_leader(&c.ids()).await;
    let lib = c.client();
    for i in 0..20 {
        lib.put(&format!("r{i}"), "v").await.unwrap();
    }
    let leader = c.wait_leader(&c.ids()).await;
    let dead = if leader == 3 { 2 } else { 3 };
    c.kill(dead);
    let via = if leader == 1 { 2 } else { 1 };
    let via = if via == dead { leader } else { via };
    c.spawn_joined(4, via);
    wait_members(&c, "4 joins", |v| ids(v, "learners").contains(&4)).await;
    let out = until_ok(&c, &["member", "replace", &dead.to_string(), "4"]);
    assert!(out.contains("configuration: voters"), "{out}");
    let v = members(&c);
    let want: Vec<u64> = {
        let mut w: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != dead).collect();
        w.push(4);
        w
    };
    assert_eq!(ids(&v, "voters"), want, "{v}");
    // Node 4 now counts: with another old node down, 4 and the leader commit.
    let leader = c.wait_leader(&want).await;
    let third = *want.iter().find(|&&i| i != leader && i != 4).unwrap();
    c.kill(third);
    let lib = raftkv::Client::new(vec![c.url(leader), c.url(4)], raftkv::ClientOptions::default());
    lib.put("after", "replace").await.unwrap();
    assert_eq!(lib.get("r7").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_under_load_loses_nothing_and_stalls_briefly() {
    let c = Cluster::start("transfer", 3, "");
    let leader = c.wait_leader(&c.ids()).await;
    let writers: Vec<Writer> = (0..2).map(|i| Writer::start(c.urls(), &format!("t{i}-"))).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let target = if leader == 1 { 2 } else { 1 };
    let asked = Instant::now();
    let out = c.cli(&["transfer-leader", &target.to_string()]);
    let answered = Instant::now();
    assert!(out.status.success(), "{}\n{}", stderr(&out), c.logs());
    assert!(stdout(&out).contains(&format!("node {target} leads now")), "{}", stdout(&out));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.finish().await);
    }
    acked.sort_by_key(|(_, t)| *t);
    // The stall: the longest gap between acknowledgements around the transfer.
    let window: Vec<Instant> = acked
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t + Duration::from_secs(1) >= asked && *t <= answered + Duration::from_secs(1))
        .collect();
    let stall = window.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    eprintln!(
        "transfer-leader {leader} -> {target}: command took {:?}, longest write stall {:?} ({} writes acknowledged)",
        answered - asked,
        stall,
        acked.len()
    );
    // Election timeout: 30-60 ticks of 10 ms.
    assert!(stall < Duration::from_millis(600), "writes stalled {stall:?}");
    assert_eq!(c.wait_leader(&c.ids()).await, target);
    check_all(c.urls(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_directory_loses_nothing() {
    // A = 1, B = 2, C = 3.
    let mut c = Cluster::start("wiped", 3, "");
    c.wait_leader(&c.ids()).await;
    c.kill(2);
    let lib = c.client();
    for i in 0..200 {
        lib.put(&format!("w{i}"), "v").await.unwrap();
    }
    drop(lib);
    c.kill(3);
    std::fs::remove_dir_all(c.dir.join("node-3")).unwrap();
    c.kill(1);
    c.spawn(2);
    c.spawn(3);
    // B alone has not the writes and C has nothing: no leader, and C waits
    // to be told the cluster's configuration instead of bootstrapping.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.status(3).await.is_none(), "the wiped node serves only once it reached the cluster");
    c.spawn(1);
    c.wait_leader(&[1, 2]).await;
    let v = wait_members(&c, "C is seen to have lost its data", |v| {
        v["members"].as_array().unwrap().iter().any(|m| m["id"] == 3 && m["lost_data"] == true)
    })
    .await;
    assert_eq!(ids(&v, "voters"), vec![1, 2, 3]);
    assert!(
        c.log(1).contains("came back with a new incarnation") || c.log(2).contains("came back with a new incarnation")
    );
    let metric = c.metric(c.wait_leader(&[1, 2]).await, "members_lost_data").await;
    assert_eq!(metric, 1);
    let lib = c.client();
    for i in 0..200 {
        assert_eq!(lib.get(&format!("w{i}")).await.unwrap().as_deref(), Some("v"), "w{i} lost");
    }
    // Rebound to its new incarnation, it is an ordinary voter again.
    until_ok(&c, &["member", "replace", "3", "3"]);
    wait_members(&c, "C rebound", |v| {
        v["members"].as_array().unwrap().iter().all(|m| m["lost_data"] == false) && v["joint"] == false
    })
    .await;
    c.kill(1);
    let lib = raftkv::Client::new(vec![c.url(2), c.url(3)], raftkv::ClientOptions::default());
    lib.put("after", "rebind").await.unwrap();
    assert_eq!(lib.get("w199").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_save_restore_serves_the_same_data() {
    let c = Cluster::start("backup", 3, "");
    c.wait_leader(&c.ids()).await;
    let lib = c.client();
    for i in 0..50 {
        lib.put(&format!("b{i}"), &format!("v{i}")).await.unwrap();
    }
    let file = c.dir.join("backup.snap");
    let out = c.cli(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["snapshot", "inspect"])
        .arg(&file)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("keys       50") && text.contains("voters     [1@"), "{text}");
    let index: u64 = text.lines().find_map(|l| l.strip_prefix("index")).unwrap().trim().parse().unwrap();

    // A new cluster from the file: its own ports and UUID.
    let mut n = Cluster::configure("restored", 1, "");
    let dir = n.dir.join("node-1");
    std::fs::remove_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--id", "1", "--config"])
        .arg(&n.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(n.cluster_uuid(), c.cluster_uuid());
    n.spawn(1);
    n.wait_leader(&[1]).await;
    let lib = n.client();
    for i in 0..50 {
        assert_eq!(lib.get(&format!("b{i}")).await.unwrap(), Some(format!("v{i}")));
    }
    lib.put("new", "cluster").await.unwrap();
    let st = n.status(1).await.unwrap();
    assert!(st["last_index"].as_u64().unwrap() > index, "revisions go on after the snapshot: {st}");
    assert_eq!(st["sessions"], 1, "the old sessions were dropped: {st}");
    // A damaged file is refused.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["snapshot", "inspect"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success() && stderr(&out).contains("checksum"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_commands_refuse_with_reasons() {
    let mut c = Cluster::start("refuse", 3, "[limits]\nmax_promotion_lag = 5\n");
    let leader = c.wait_leader(&c.ids()).await;
    let follower = if leader == 1 { 2 } else { 1 };
    // Not the leader: the protocol says where it is (the CLI follows it).
    let mut conn = common::JsonConn::open(&c.url(follower)).await;
    let r = conn.call(r#"{"id":1,"op":"member_remove","node":3}"#).await;
    assert_eq!(r["error"], "not_leader", "{r}");
    assert_eq!(r["leader"]["addr"], c.url(leader).as_str(), "{r}");
    // A learner too far behind (node 9 never starts).
    let out = c.cli(&["member", "add", "9", "ws://127.0.0.1:1", "--learner"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lib = c.client();
    for i in 0..20 {
        lib.put(&format!("x{i}"), "v").await.unwrap();
    }
    // Issue #12: the address map (`\0raftkv/addr/9` now) is the cluster's:
    // no client read over everything shows it, no client write reaches it.
    let reserved = raftkv::protocol::addr_key(9);
    let all = lib.range("", None, 0).await.unwrap();
    assert_eq!(all.kvs.len(), 20, "{:?}", all.kvs.iter().map(|k| &k.key).collect::<Vec<_>>());
    assert_eq!(lib.prefix("", None, 0).await.unwrap().kvs.len(), 20);
    assert_eq!(lib.prefix("\0raft", None, 0).await.unwrap().kvs.len(), 0);
    assert_eq!(lib.count("", None).await.unwrap().0, 20);
    assert_eq!(lib.range("", None, 1).await.unwrap().next.as_deref(), Some("x1"), "the cursor skips it too");
    for e in [lib.get(&reserved).await.unwrap_err(), lib.put(&reserved, "ws://evil:1").await.unwrap_err()] {
        assert!(e.to_string().contains("reserved"), "{e}");
    }
    let out = c.cli(&["member", "promote", "9"]);
    assert_eq!(out.status.code(), Some(1));
    // (A learner that never answered is refused for that; one that answers
    // but lags, for its lag.)
    assert!(stderr(&out).contains("behind") || stderr(&out).contains("incarnation is unknown"), "{}", stderr(&out));
    // Adding a member twice; transferring to a learner.
    let out = c.cli(&["member", "add", "9", "ws://127.0.0.1:1", "--learner"]);
    assert!(stderr(&out).contains("already a member"), "{}", stderr(&out));
    let out = c.cli(&["transfer-leader", "9"]);
    assert!(stderr(&out).contains("not a voter"), "{}", stderr(&out));
    // A change while another is unfinished: two at once.
    let mut refused = false;
    for k in 0..5 {
        let mut a = common::JsonConn::open(&c.url(leader)).await;
        let mut b = common::JsonConn::open(&c.url(leader)).await;
        a.send_text(&format!(
            r#"{{"id":1,"op":"member_add","node":{},"url":"ws://127.0.0.1:1","learner":true}}"#,
            20 + 2 * k
        ))
        .await;
        b.send_text(&format!(
            r#"{{"id":1,"op":"member_add","node":{},"url":"ws://127.0.0.1:1","learner":true}}"#,
            21 + 2 * k
        ))
        .await;
        let (ra, rb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        if [ra, rb]
            .iter()
            .any(|r| r["error"] == "refused" && r["message"].as_str().unwrap_or("").contains("unfinished"))
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "a second change while one is unfinished is refused");
    // Removing a voter when the others left could not form a quorum.
    let down = (1..=3).find(|&i| i != leader && i != follower).unwrap();
    c.kill(down);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = c.cli(&["member", "remove", &follower.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("would lose the quorum"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("refused: refused"), "one prefix: {}", stderr(&out));
    // Bad input on the command line and in the protocol.
    let out = c.cli(&["member", "add", "7", "http://nope"]);
    assert!(!out.status.success() && stderr(&out).contains("ws://"), "{}", stderr(&out));
    let r = conn.call(r#"{"id":2,"op":"member_promote","node":"x"}"#).await;
    assert_eq!(r["error"], "bad_request", "{r}");
}

/// Issue #12: `raftkv node --join wss://ANY-MEMBER --ca CA --tls-dir DIR`
/// enters a TLS cluster with a TOML file of its own: it asks over TLS,
/// links to its peers over mutual TLS with its own certificate, catches up
/// as a learner, and keeps its own certificate paths for its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_a_tls_cluster_through_any_member() {
    let started = Instant::now();
    let mut c = Cluster::configure("tlsjoin", 3, "");
    let port4 = common::free_ports(1)[0];
    c.ports.push(port4);
    // One CA for the three members and the newcomer.
    let certs = c.dir.join("certs");
    let mut cfg = raftkv::Config::load(Some(&c.config)).unwrap();
    let mut with4 = cfg.clone();
    with4.nodes.push(raftkv::config::NodeConfig {
        id: 4,
        listen: format!("127.0.0.1:{port4}").parse().unwrap(),
        url: None,
    });
    raftkv::tls::write_dev_certs(&with4, &certs).unwrap();
    for n in &mut cfg.nodes {
        n.url = Some(format!("wss://{}", n.listen));
    }
    cfg.tls = Some(raftkv::config::TlsConfig { ca: certs.join("ca.pem"), dir: certs.clone() });
    std::fs::write(&c.config, cfg.to_toml()).unwrap();
    for id in 1..=3 {
        c.spawn(id);
    }
    let tls = raftkv::tls::client_config(&certs.join("ca.pem")).unwrap();
    let wss = |id: u64, c: &Cluster| format!("wss://127.0.0.1:{}", c.ports[id as usize - 1]);
    let status = |id: u64, c: &Cluster| {
        let (url, tls) = (wss(id, c), tls.clone());
        async move {
            let body = raftkv::http::get_with(&url, "/status", None, Some(&tls)).await.ok()?;
            serde_json::from_str::<Value>(&body).ok()
        }
    };
    let opts = raftkv::ClientOptions { tls: Some(tls.clone()), ..raftkv::ClientOptions::default() };
    let lib = raftkv::Client::new((1..=3).map(|i| wss(i, &c)).collect(), opts);
    for i in 0..10 {
        lib.put(&format!("k{i}"), "v").await.unwrap();
    }
    // Through a member that may well not be the leader (it points the way).
    let dir4 = c.dir.join("node-4");
    let (listen, url, via) = (format!("127.0.0.1:{port4}"), wss(4, &c), wss(2, &c));
    let (ca, tls_dir) = (certs.join("ca.pem").display().to_string(), certs.display().to_string());
    let args = ["--join", &via, "--listen", &listen, "--url", &url, "--ca", &ca, "--tls-dir", &tls_dir, "--data-dir"];
    let mut args: Vec<&str> = args.to_vec();
    let d4 = dir4.display().to_string();
    args.push(&d4);
    c.spawn_args(4, &args);
    let t = Instant::now();
    loop {
        let leader_commit = match status(1, &c).await {
            Some(s) => s["commit_index"].as_u64().unwrap_or(0),
            None => 0,
        };
        if let Some(s) = status(4, &c).await {
            if s["applied_index"].as_u64().unwrap_or(0) >= leader_commit.max(10) && s["leader"].as_u64().is_some() {
                break;
            }
        }
        assert!(t.elapsed() < common::WAIT, "node 4 did not join over TLS\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let members = lib.members().await.unwrap();
    let m4 = members.members.iter().find(|m| m.id == 4).expect("node 4 is a member");
    assert_eq!(m4.url, url, "its wss:// URL is in the address map");
    assert!(members.learners.contains(&4));
    assert!(c.log(4).contains("peers use mutual TLS"), "{}", c.log(4));
    // Its settings kept its own certificate paths: it starts again without --ca.
    let saved = raftkv::Config::load(Some(&dir4.join("cluster.toml"))).unwrap();
    assert_eq!(saved.tls.as_ref().map(|t| t.dir.clone()), Some(certs.canonicalize().unwrap()));
    c.kill(4);
    let d4 = dir4.display().to_string();
    c.spawn_args(4, &["--join", &via, "--listen", &listen, "--data-dir", &d4]);
    lib.put("after", "restart").await.unwrap();
    let mut commit = 0;
    for id in 1..=3 {
        commit = commit.max(status(id, &c).await.map_or(0, |s| s["commit_index"].as_u64().unwrap_or(0)));
    }
    let t = Instant::now();
    while status(4, &c).await.is_none_or(|s| s["applied_index"].as_u64().unwrap_or(0) < commit) {
        assert!(t.elapsed() < common::WAIT, "node 4 did not come back over TLS\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("a_node_joins_a_tls_cluster_through_any_member: {:?}", started.elapsed());
}

/// Issue #12: a learner that is up, answered the leader (its incarnation is
/// known) and then fell behind is refused promotion for its lag, with the
/// lag and the bound in the message; once it catches up the same command
/// succeeds. (The refusal of a learner that never answered is in
/// `member_commands_refuse_with_reasons`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_learner_that_lags_is_refused_until_it_catches_up() {
    let mut c = Cluster::start("lagging", 3, "[limits]\nmax_promotion_lag = 5\n");
    let leader = c.wait_leader(&c.ids()).await;
    let lib = c.client();
    lib.put("before", "v").await.unwrap();
    c.spawn_joined(4, leader);
    wait_members(&c, "4 joins as a learner", |v| ids(v, "learners").contains(&4)).await;
    // Wait until node 4 has answered (the leader knows its incarnation) and
    // applied what the leader has.
    wait_members(&c, "4's incarnation is known", |v| {
        v["members"].as_array().unwrap().iter().any(|m| m["id"] == 4 && m["incarnation"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    let target = c.status(leader).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(4, target).await;

    // Stall node 4's process: it keeps its sockets and its place, but it
    // stops answering while the cluster writes on.
    c.signal(4, "-STOP");
    for i in 0..30 {
        lib.put(&format!("lag{i}"), "v").await.unwrap();
    }
    let out = c.cli(&["member", "promote", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("node 4 is a learner") && err.contains("behind"), "{err}");
    assert!(err.contains("the bound is 5"), "the message names the bound: {err}");
    assert!(!err.contains("incarnation is unknown"), "refused for its lag, not as unknown: {err}");
    let lag: u64 = err
        .split("a learner ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a lag figure in: {err}"));
    assert!(lag >= 30, "at least the 30 writes it missed: {err}");
    let v = members(&c);
    assert!(ids(&v, "learners").contains(&4) && !ids(&v, "voters").contains(&4), "still a learner: {v}");

    // Resumed, it catches up and the same command succeeds.
    c.signal(4, "-CONT");
    until_ok(&c, &["member", "promote", "4"]);
    let v = wait_members(&c, "4 is a voter", |v| ids(v, "voters").contains(&4) && v["joint"] == false).await;
    assert_eq!(ids(&v, "voters"), vec![1, 2, 3, 4], "{v}");
    assert_eq!(lib.get("lag29").await.unwrap().as_deref(), Some("v"));
}
