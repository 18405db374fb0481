//! A harness that runs real `raftkv node` processes on loopback ports, in a
//! temporary directory, and kills them when dropped. Every wait is bounded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub const SECRET: &str = "test-secret-for-process-tests";

/// Picks `n` free loopback ports (held open together so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Writes a configuration for `n` nodes (with `extra` TOML before the
    /// nodes: top-level keys, a `[limits]` table) and starts every node.
    pub fn start(name: &str, n: usize, extra: &str) -> Cluster {
        let c = Cluster::configure(name, n, extra);
        let mut c = c;
        for id in 1..=n as u64 {
            c.spawn(id);
        }
        c
    }

    pub fn configure(name: &str, n: usize, extra: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("raftkv-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(n);
        let mut cfg = format!(
            "cluster_id = \"test-{name}\"\nsecret = \"{SECRET}\"\ndata_dir = {:?}\ntick_ms = 10\n\
             allowed_origins = [\"http://127.0.0.1:8080\"]\n",
            dir.display().to_string()
        );
        cfg.push_str(extra);
        cfg.push('\n');
        for (i, p) in ports.iter().enumerate() {
            cfg.push_str(&format!("\n[[nodes]]\nid = {}\nlisten = \"127.0.0.1:{p}\"\n", i + 1));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, cfg).unwrap();
        // One bound configuration for the whole cluster, as `raftkv cluster` makes.
        let out =
            Command::new(env!("CARGO_BIN_EXE_raftkv")).args(["bootstrap", "--config"]).arg(&config).output().unwrap();
        assert!(out.status.success(), "raftkv bootstrap: {}", String::from_utf8_lossy(&out.stderr));
        Cluster { dir, config, ports, children: (0..n).map(|_| None).collect() }
    }

    /// The cluster's UUID (what peer handshakes name), from node 1's identity.
    pub fn cluster_uuid(&self) -> String {
        raftkv::identity::Identity::load(&self.dir.join("node-1")).unwrap().unwrap().cluster_uuid
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    /// Starts node `id` (its output appended to its log file).
    pub fn spawn(&mut self, id: u64) {
        self.spawn_with(id, None)
    }

    /// Starts node `id` with at most `nofile` file descriptors (`ulimit -n`).
    pub fn spawn_with(&mut self, id: u64, nofile: Option<u64>) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).unwrap();
        let mut cmd = match nofile {
            None => Command::new(env!("CARGO_BIN_EXE_raftkv")),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_raftkv")]);
                c
            }
        };
        let child = cmd
            .args(["node", "--id", &id.to_string(), "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start raftkv node");
        self.children[id as usize - 1] = Some(child);
    }

    /// Starts node `id` with no TOML file of its own: `raftkv node --join`
    /// through node `via`, on a port of its own, in `DIR/node-ID`.
    pub fn spawn_joined(&mut self, id: u64, via: u64) {
        let idx = id as usize - 1;
        while self.ports.len() <= idx {
            self.ports.push(0);
            self.children.push(None);
        }
        if self.ports[idx] == 0 {
            self.ports[idx] = free_ports(1)[0];
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["node", "--id", &id.to_string(), "--join", &self.url(via), "--listen"])
            .arg(format!("127.0.0.1:{}", self.ports[idx]))
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")))
            .env("RAFTKV_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start raftkv node --join");
        self.children[idx] = Some(child);
    }

    /// Starts node `id` with `raftkv node --id ID` and `args` (nothing
    /// else), its secret in `RAFTKV_SECRET`, its output in its log file.
    pub fn spawn_args(&mut self, id: u64, args: &[&str]) {
        let idx = id as usize - 1;
        while self.children.len() <= idx {
            self.ports.push(0);
            self.children.push(None);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["node", "--id", &id.to_string()])
            .args(args)
            .env("RAFTKV_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start raftkv node");
        self.children[idx] = Some(child);
    }

    /// Runs `raftkv cluster --demo 127.0.0.1:0` on this cluster's config
    /// (data in `DIR/cluster`) and waits until it has printed its URLs:
    /// the process and the web page's `http://HOST:PORT`.
    pub fn start_cluster_command(&self) -> (Child, String) {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["cluster", "--demo", "127.0.0.1:0", "--dir"])
            .arg(self.dir.join("cluster"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start raftkv cluster");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut web = None;
        loop {
            let line = rx.recv_timeout(WAIT).expect("cluster prints its URLs");
            if let Some(rest) = line.trim().strip_prefix("web demo: http://") {
                web = rest.split('/').next().map(str::to_string);
            }
            if line.contains("Ctrl-C stops the cluster") {
                break;
            }
        }
        (child, format!("http://{}", web.expect("the web port is printed")))
    }

    /// Whether node `id` has a process (started and not killed).
    pub fn running(&self, id: u64) -> bool {
        self.children.get(id as usize - 1).is_some_and(|c| c.is_some())
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children[id as usize - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for id in 1..=self.children.len() as u64 {
            self.kill(id);
        }
    }

    pub fn signal(&self, id: u64, sig: &str) {
        let pid = self.children[id as usize - 1].as_ref().expect("node running").id();
        let st = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// Node `id`'s process id.
    pub fn pid(&self, id: u64) -> u32 {
        self.children[id as usize - 1].as_ref().expect("node running").id()
    }

    /// Node `id`'s resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self, id: u64) -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{}/status", self.pid(id))).unwrap_or_default();
        st.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// One counter or gauge of node `id`'s `/metrics` (`raftkv_` prefix omitted).
    pub async fn metric(&self, id: u64, name: &str) -> u64 {
        let page = raftkv::http::get(&self.url(id), "/metrics").await.unwrap_or_default();
        let prefix = format!("raftkv_{name}{{");
        page.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// [`Cluster::metric`] of a TLS node.
    pub async fn metric_tls(
        &self,
        id: u64,
        tls: &std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
        name: &str,
    ) -> u64 {
        let url = format!("wss://127.0.0.1:{}", self.ports[id as usize - 1]);
        let page = raftkv::http::get_with(&url, "/metrics", None, Some(tls)).await.unwrap_or_default();
        let prefix = format!("raftkv_{name}{{");
        page.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether node `id`'s process has exited (and its status).
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        self.children[id as usize - 1].as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn url(&self, id: u64) -> String {
        format!("ws://127.0.0.1:{}", self.ports[id as usize - 1])
    }

    pub fn urls(&self) -> Vec<String> {
        (1..=self.ports.len() as u64).map(|i| self.url(i)).collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        (1..=self.ports.len() as u64).collect()
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn journal_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}")).join("journal")
    }

    pub async fn status(&self, id: u64) -> Option<Value> {
        let body = raftkv::http::get(&self.url(id), "/status").await.ok()?;
        serde_json::from_str(&body).ok()
    }

    /// Waits until one of `among` is leader and every other node of `among`
    /// that answers agrees; returns its id.
    pub async fn wait_leader(&self, among: &[u64]) -> u64 {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            for &id in among {
                if let Some(s) = self.status(id).await {
                    if s["role"] == "leader" {
                        return id;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader among {among:?} within {WAIT:?}\n{}", self.logs());
    }

    /// Waits until node `id`'s applied index reaches `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Some(s) = self.status(id).await {
                if s["applied_index"].as_u64().unwrap_or(0) >= index {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {id} did not apply up to {index} within {WAIT:?}\n{}", self.logs());
    }

    pub fn client(&self) -> raftkv::Client {
        raftkv::Client::new(self.urls(), raftkv::ClientOptions::default())
    }

    /// Runs the CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run raftkv");
        out
    }

    /// Runs the CLI against this cluster with `input` on its standard input.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run raftkv");
        child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("raftkv ends")
    }

    /// The tail of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for id in self.ids() {
            let log = self.log(id);
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- node {id} (last 30 lines)\n"));
            for l in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            // A paused node must be resumed to die promptly under some kernels.
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).stderr(Stdio::null()).status();
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits (bounded) for a process to exit; returns its status.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A raw JSON-protocol connection, for checking the wire format itself.
pub struct JsonConn {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl JsonConn {
    pub async fn open(url: &str) -> JsonConn {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(format!("{url}/client")))
            .await
            .expect("connect in time")
            .expect("connect");
        JsonConn { ws }
    }

    /// A connection whose socket receives into a small buffer (no kernel
    /// autotuning): a client that does not read makes the node's side back
    /// up after a few MB instead of tens.
    pub async fn open_small_buffer(url: &str) -> JsonConn {
        let port: u16 = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a url with a port");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.expect("connect");
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(format!("{url}/client"), tokio_tungstenite::MaybeTlsStream::Plain(tcp)),
        )
        .await
        .expect("upgrade in time")
        .expect("upgrade");
        JsonConn { ws }
    }

    /// The next text frame within `d`, parsed; `None` if none came.
    pub async fn recv_within(&mut self, d: Duration) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(d, self.ws.next()).await.ok()?? {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("replies are JSON"))
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::text(text.to_string())).await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        use futures_util::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::binary(bytes)).await.expect("send");
    }

    /// Sends a binary frame; false if the node closed the connection meanwhile.
    pub async fn try_send_binary(&mut self, bytes: Vec<u8>) -> bool {
        use futures_util::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::binary(bytes)).await.is_ok()
    }

    /// The next text frame, parsed; `None` if the connection ended.
    pub async fn recv(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("a reply in time")? {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("replies are JSON"))
                }
                Ok(tokio_tungstenite::tungstenite::Message::Binary(b)) => {
                    let r = raftkv::protocol::decode_response(&b, 1 << 20).expect("binary reply decodes");
                    return Some(serde_json::from_str(&raftkv::protocol::response_to_json(&r)).unwrap());
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends one request and returns its reply.
    pub async fn call(&mut self, text: &str) -> Value {
        self.send_text(text).await;
        self.recv().await.expect("connection stays open")
    }
}

pub fn read_all_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}
