//! `raftkv`: run a node or a local cluster, and talk to a cluster.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use raftkv::{Client, ClientOptions, Config};

#[derive(Parser, Debug)]
#[command(name = "raftkv", version, about = "A Raft key-value store: nodes, a local cluster, and a client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node of a cluster.
    Node {
        /// Cluster configuration (TOML). Without it, the embedded default: 3 nodes on 127.0.0.1:7001-7003.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Which node of the configuration this is.
        #[arg(long)]
        id: u64,
        /// Data directory (default: `data_dir/node-ID` from the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Threads running the node's tasks (the journal has a thread of its own). 1: everything on one
        /// thread, the default — the node task, connections and peer links hand work to each other without
        /// waking another thread; more helps only with many cores and many client connections.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Start a local 3-node cluster (child processes) and the web demo; Ctrl-C stops everything.
    Cluster {
        /// Where the nodes keep their data and logs.
        #[arg(long, default_value = "raftkv-data")]
        dir: PathBuf,
        /// Cluster configuration (default: the embedded 3-node one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address the web demo is served on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        demo: String,
        /// Directory of the web demo's files (default: `web-demo` here or beside the source tree).
        #[arg(long)]
        web: Option<PathBuf>,
    },
    /// Set a key.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Append to a key's value (creating it).
    Append {
        key: String,
        value: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Read a key (linearizable). Prints the value; exits 1 if the key is absent.
    Get {
        key: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Remove a key. Prints whether it existed.
    Delete {
        key: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Compare-and-swap: set KEY to VALUE if its value is --expect OLD (or, with --absent, if it has none).
    #[command(group(clap::ArgGroup::new("condition").required(true).args(["expect", "absent"])))]
    Cas {
        key: String,
        value: String,
        /// The value required for the swap.
        #[arg(long)]
        expect: Option<String>,
        /// Swap only if the key is absent.
        #[arg(long)]
        absent: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Measure throughput and latency: closed-loop clients against raftkv (or etcd, for comparison).
    Bench {
        /// Which store to load: raftkv (--addr/--config) or etcd (--endpoints).
        #[arg(long, value_enum, default_value = "raftkv")]
        target: raftkv::bench::Target,
        /// Concurrent clients, each with its own connection (and session).
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Requests in flight per client (1: each client waits for every answer; at most 128).
        #[arg(long, default_value_t = 1)]
        depth: usize,
        /// Seconds to measure.
        #[arg(long, default_value_t = 10.0, conflicts_with = "ops")]
        duration: f64,
        /// Run this many operations instead of a duration.
        #[arg(long)]
        ops: Option<u64>,
        /// put, get (linearizable) or mixed (half and half).
        #[arg(long, value_enum, default_value = "put")]
        workload: raftkv::bench::Workload,
        /// Size of the key space (keys drawn uniformly).
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Bytes per key (zero-padded numbers).
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        /// Bytes per written value.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// Write every key once first: auto (for get and mixed), yes, no, only (preload and stop).
        #[arg(long, value_enum, default_value = "auto")]
        preload: raftkv::bench::Preload,
        /// etcd client URLs (with --target etcd), e.g. http://127.0.0.1:2379 (repeat or separate with commas).
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
        endpoints: Vec<String>,
        /// How to talk to etcd: grpc (its own protocol) or json (the HTTP/JSON gateway).
        #[arg(long, value_enum, default_value = "grpc")]
        etcd_api: raftkv::etcd_load::EtcdApi,
        /// Spread etcd clients over every endpoint instead of sending to the leader.
        #[arg(long)]
        etcd_spread: bool,
        /// Threads running the clients (1: all of them on one thread, so the load generator takes as
        /// little CPU from the servers as it can on a small machine).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print the report as JSON (and no progress bar).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Show every node's status.
    Status {
        #[command(flatten)]
        c: ClientArgs,
        /// Print the raw JSON of each node.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// Cluster configuration to take node addresses from (default: the embedded one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Node URL(s), e.g. ws://127.0.0.1:7001 (repeat or separate with commas); overrides --config.
    #[arg(long, value_delimiter = ',')]
    addr: Vec<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

impl ClientArgs {
    fn addrs(&self) -> Result<Vec<String>, String> {
        if !self.addr.is_empty() {
            return Ok(self.addr.clone());
        }
        Ok(Config::load(self.config.as_deref()).map_err(|e| e.to_string())?.client_urls())
    }

    fn client(&self) -> Result<Client, String> {
        if !(self.timeout > 0.0 && self.timeout < 86_400.0) {
            return Err("--timeout must be a positive number of seconds".into());
        }
        let opts = ClientOptions { timeout: Duration::from_secs_f64(self.timeout), ..ClientOptions::default() };
        Ok(Client::new(self.addrs()?, opts))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_level(&cli.command))),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A node runs on the threads it is given (one by default: see `--threads`);
    // the other commands on one worker per core.
    let built = match &cli.command {
        Command::Node { threads: 0 | 1, .. } => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Command::Node { threads, .. } | Command::Bench { threads, .. } if *threads > 1 => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(*threads).enable_all().build()
        }
        Command::Bench { .. } => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftkv: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftkv: {e}");
            ExitCode::from(2)
        }
    }
}

fn default_log_level(c: &Command) -> &'static str {
    match c {
        Command::Node { .. } | Command::Cluster { .. } => "info",
        _ => "warn",
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Node { config, id, data_dir, threads: _ } => {
            let cfg = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
            let node = raftkv::node::run(cfg, id, data_dir);
            tokio::select! {
                r = node => r.map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string()),
                _ = stop_signal() => {
                    tracing::info!("interrupted; stopping (the journal is durable, nothing to flush)");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Cluster { dir, config, demo, web } => cluster::run(dir, config, demo, web).await,
        Command::Put { key, value, c } => {
            c.client()?.put(&key, &value).await.map_err(|e| e.to_string())?;
            println!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Append { key, value, c } => {
            c.client()?.append(&key, &value).await.map_err(|e| e.to_string())?;
            println!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { key, c } => match c.client()?.get(&key).await.map_err(|e| e.to_string())? {
            Some(v) => {
                println!("{v}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("(absent)");
                Ok(ExitCode::from(1))
            }
        },
        Command::Delete { key, c } => {
            let existed = c.client()?.delete(&key).await.map_err(|e| e.to_string())?;
            println!("{}", if existed { "deleted" } else { "absent" });
            Ok(ExitCode::SUCCESS)
        }
        Command::Cas { key, expect, value, absent, c } => {
            let expect = if absent { None } else { expect };
            let r = c.client()?.cas(&key, expect.as_deref(), &value).await.map_err(|e| e.to_string())?;
            if r.swapped {
                println!("swapped");
                Ok(ExitCode::SUCCESS)
            } else {
                match r.current {
                    Some(v) => println!("not swapped; current value: {v}"),
                    None => println!("not swapped; the key is absent"),
                }
                Ok(ExitCode::from(1))
            }
        }
        Command::Status { c, json } => status(&c.addrs()?, json).await,
        Command::Bench {
            target,
            clients,
            depth,
            duration,
            ops,
            workload,
            keys,
            key_size,
            value_size,
            preload,
            endpoints,
            etcd_api,
            etcd_spread,
            threads: _,
            json,
            c,
        } => {
            use raftkv::bench::{BenchConfig, Target};
            let cfg = BenchConfig {
                clients,
                depth,
                duration_secs: if ops.is_some() { None } else { Some(duration) },
                ops,
                workload,
                keys,
                key_size,
                value_size,
                preload,
                etcd_api,
                etcd_spread,
                progress: !json,
                ..BenchConfig::new(target)
            };
            if !(c.timeout > 0.0 && c.timeout < 86_400.0) {
                return Err("--timeout must be a positive number of seconds".into());
            }
            let opts = ClientOptions { timeout: Duration::from_secs_f64(c.timeout), ..ClientOptions::default() };
            let addrs = match target {
                Target::Raftkv => c.addrs()?,
                Target::Etcd => endpoints,
            };
            let report = raftkv::bench::run(addrs, cfg, opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                println!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn status(addrs: &[String], json: bool) -> Result<ExitCode, String> {
    let mut reachable = 0;
    for a in addrs {
        match raftkv::server::http_get(a, "/status").await {
            Ok(body) => {
                reachable += 1;
                if json {
                    println!("{body}");
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{a}: bad status: {e}"))?;
                println!(
                    "node {} {:<13} term {:<4} leader {:<4} commit {:<8} applied {:<8} last {:<8} sessions {}  ({a})",
                    v["id"],
                    v["role"].as_str().unwrap_or("?"),
                    v["term"],
                    v["leader"],
                    v["commit_index"],
                    v["applied_index"],
                    v["last_index"],
                    v["sessions"],
                );
            }
            Err(e) => println!("{a}: unreachable ({e})"),
        }
    }
    if reachable == 0 {
        return Err("no node of the cluster is reachable".into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C (SIGINT), SIGTERM or SIGHUP: a `cluster` killed any of
/// these ways still stops its nodes.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

mod cluster {
    //! `raftkv cluster`: three child node processes and the web demo.

    use super::*;
    use std::process::Stdio;
    use tokio::process::{Child, Command};

    pub async fn run(
        dir: PathBuf,
        config: Option<PathBuf>,
        demo: String,
        web: Option<PathBuf>,
    ) -> Result<ExitCode, String> {
        let mut cfg = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
        cfg.data_dir = dir.clone();
        let cfg_path = dir.join("cluster.toml");
        std::fs::write(&cfg_path, cfg.to_toml()).map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        // Fail early and clearly if a port is taken.
        for n in &cfg.nodes {
            if let Err(e) = std::net::TcpListener::bind(n.listen) {
                return Err(format!("cannot use {} for node {}: {e} (is a cluster already running?)", n.listen, n.id));
            }
        }
        let demo_listener = tokio::net::TcpListener::bind(&demo)
            .await
            .map_err(|e| format!("cannot serve the web demo on {demo}: {e}"))?;

        let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
        let mut children: Vec<(u64, Child)> = Vec::new();
        for n in &cfg.nodes {
            let log_path = dir.join(format!("node-{}.log", n.id));
            let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new(&exe)
                .args(["node", "--id", &n.id.to_string(), "--config"])
                .arg(&cfg_path)
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(err))
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start node {}: {e}", n.id))?;
            children.push((n.id, child));
        }
        let demo = demo_listener.local_addr().map(|a| a.to_string()).unwrap_or(demo);
        let web = web.or_else(find_web_demo);
        let urls: Vec<String> = cfg.client_urls();
        tokio::spawn(demo_server(demo_listener, web.clone(), urls.clone()));

        println!("raftkv cluster: {} nodes, data and logs in {}", cfg.nodes.len(), dir.display());
        for n in &cfg.nodes {
            println!(
                "  node {}: {}/client   status: http://{}/status   metrics: http://{}/metrics",
                n.id,
                n.url(),
                n.listen,
                n.listen
            );
        }
        match &web {
            Some(w) => println!("  web demo: http://{demo}/  (files from {})", w.display()),
            None => println!("  web demo: http://{demo}/  (built-in page; web-demo/ not found)"),
        }
        let me = exe.display();
        println!("  try: {me} put hello world && {me} get hello && {me} status");
        println!("Ctrl-C stops the cluster.");

        let code = loop {
            let exited = async {
                loop {
                    for (id, c) in children.iter_mut() {
                        if let Ok(Some(st)) = c.try_wait() {
                            return (*id, st);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            tokio::select! {
                _ = stop_signal() => break ExitCode::SUCCESS,
                (id, st) = exited => {
                    eprintln!("node {id} exited ({st}); its log: {}", dir.join(format!("node-{id}.log")).display());
                    let log = std::fs::read_to_string(dir.join(format!("node-{id}.log"))).unwrap_or_default();
                    for line in log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                        eprintln!("  | {line}");
                    }
                    children.retain(|(i, _)| *i != id);
                    if children.is_empty() {
                        break ExitCode::FAILURE;
                    }
                }
            }
        };
        println!("stopping the cluster");
        for (_, c) in children.iter_mut() {
            let _ = c.kill().await;
        }
        Ok(code)
    }

    fn find_web_demo() -> Option<PathBuf> {
        let mut candidates = vec![PathBuf::from("web-demo")];
        if let Ok(exe) = std::env::current_exe() {
            // target/{debug,release}/raftkv -> the workspace root.
            if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
                candidates.push(root.join("web-demo"));
            }
        }
        candidates.into_iter().find(|p| p.join("index.html").is_file())
    }

    async fn demo_server(listener: tokio::net::TcpListener, web: Option<PathBuf>, urls: Vec<String>) {
        use axum::routing::get;
        let status_urls = urls.clone();
        let mut app = axum::Router::new()
            .route(
                "/api/nodes",
                get(move || {
                    let urls = urls.clone();
                    async move { axum::Json(urls) }
                }),
            )
            .route(
                "/api/status",
                get(move || {
                    let urls = status_urls.clone();
                    async move {
                        let mut out = Vec::new();
                        for u in &urls {
                            let v = match raftkv::server::http_get(u, "/status").await {
                                Ok(b) => serde_json::from_str(&b).unwrap_or(serde_json::Value::Null),
                                Err(e) => serde_json::json!({"url": u, "error": e}),
                            };
                            out.push(v);
                        }
                        axum::Json(out)
                    }
                }),
            );
        app = match web {
            Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
            None => app.route("/", get(|| async { axum::response::Html(BUILTIN_PAGE) })),
        };
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("web demo server stopped: {e}");
        }
    }

    /// A small page for when `web-demo/` is not there: status of each node and
    /// a form that speaks the JSON client protocol.
    const BUILTIN_PAGE: &str = include_str!("demo.html");
}
