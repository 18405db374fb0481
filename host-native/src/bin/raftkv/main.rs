//! `raftkv`: run a node or a local cluster, talk to a cluster, measure one.
//!
//! This file parses the command line and hands each command to its module:
//! [`cluster`], [`status`], [`bench`](mod@bench) (the load generator, a part of the
//! binary only), [`kv`] (put, append, get, delete, cas), [`ops`] (member,
//! transfer-leader, snapshot, bootstrap), [`secure`] (tokens);
//! `node` is a few lines over the library.

mod bench;
mod client_args;
mod cluster;
mod kv;
mod ops;
mod secure;
mod signal;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use raftkv::Config;

use bench::settings::{BenchConfig, EtcdApi, Preload, Target, Workload};
use client_args::ClientArgs;

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
        /// Cluster configuration (TOML). Without it (and without --join), the embedded default: 3 nodes on
        /// 127.0.0.1:7001-7003.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Which node this is.
        #[arg(long)]
        id: u64,
        /// On an empty data directory, start a new one-voter cluster of this node (otherwise an empty node asks
        /// the cluster to admit it).
        #[arg(long)]
        bootstrap: bool,
        /// Join the cluster of this member (any member; e.g. ws://10.0.0.1:7001) as a learner. Without --config
        /// the cluster's settings come from the member and are kept in the data directory.
        #[arg(long)]
        join: Option<String>,
        /// With --join and no --config: the address to listen on.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// With --join and no --config: the URL others reach this node at (default ws://LISTEN; wss://LISTEN
        /// with --ca).
        #[arg(long)]
        url: Option<String>,
        /// With --join and no --config: a file holding the cluster's secret (or set RAFTKV_SECRET).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// With --join and no --config, into a TLS cluster: the cluster's CA certificate (PEM). Needs --tls-dir.
        #[arg(long, requires = "tls_dir")]
        ca: Option<PathBuf>,
        /// With --join and no --config, into a TLS cluster: the directory holding this node's certificate and
        /// key signed by that CA (node-ID.pem, node-ID-key.pem; `raftkv certs` writes them). Needs --ca.
        #[arg(long, requires = "ca")]
        tls_dir: Option<PathBuf>,
        /// Data directory (default: `data_dir/node-ID` from the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve plain ws:// on an address other than loopback (without [tls] a node refuses to).
        #[arg(long)]
        insecure: bool,
        /// Started by `raftkv cluster`: take its control commands (isolate, rejoin) as lines on stdin.
        #[arg(long, hide = true)]
        supervised: bool,
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
    #[command(flatten)]
    Kv(kv::KvCommand),
    /// Measure throughput and latency: closed-loop clients against raftkv (or etcd, for comparison).
    Bench {
        /// Which store to load: raftkv (--addr/--config) or etcd (--endpoints).
        #[arg(long, value_enum, default_value = "raftkv")]
        target: Target,
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
        /// put, get (linearizable), mixed (half and half), range (prefix reads of 100 keys), txn (a
        /// comparison and a put), or watch (--watchers watches on one prefix; the clients write under it).
        #[arg(long, value_enum, default_value = "put")]
        workload: Workload,
        /// With --workload watch: watches opened on the prefix.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// With --workload watch: watches per connection (etcd: per gRPC Watch stream).
        #[arg(long, default_value_t = 100)]
        watchers_per_conn: usize,
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
        preload: Preload,
        /// etcd client URLs (with --target etcd), e.g. http://127.0.0.1:2379 (repeat or separate with commas).
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
        endpoints: Vec<String>,
        /// How to talk to etcd: grpc (its own protocol) or json (the HTTP/JSON gateway).
        #[arg(long, value_enum, default_value = "grpc")]
        etcd_api: EtcdApi,
        /// Spread the clients over every node instead of sending to the leader: etcd clients over
        /// --endpoints; raftkv clients of the get workload over the cluster's nodes, whose
        /// followers serve linearizable reads (follower reads).
        #[arg(long, alias = "spread")]
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
    /// Write a development CA and a certificate per node into DIR, and turn TLS on in --config
    /// (created from the embedded default if missing: wss:// URLs, [tls] pointing at DIR).
    Certs {
        /// Where the PEM files go.
        #[arg(long)]
        dir: PathBuf,
        /// The configuration to turn TLS on in.
        #[arg(long)]
        config: PathBuf,
    },
    /// Make a client token: prints it, and adds its hash (with a name and a role) to --config.
    Token {
        /// Whose token: sessions are counted per name.
        #[arg(long)]
        name: String,
        /// read, write or admin.
        #[arg(long, value_enum, default_value = "write")]
        role: RoleArg,
        /// The configuration to add the token's hash to (otherwise the entry is printed).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Pre-create the data directory of every node of --config for a new cluster (one bound configuration).
    Bootstrap {
        /// The cluster configuration.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Membership: list, add, promote, remove, replace.
    Member {
        #[command(subcommand)]
        cmd: ops::MemberCommand,
    },
    /// Hand leadership to node ID (or to the most caught-up voter).
    TransferLeader {
        /// The node to lead next.
        id: Option<u64>,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Backups: save, inspect, restore.
    Snapshot {
        #[command(subcommand)]
        cmd: ops::SnapshotCommand,
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

/// A token's role on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RoleArg {
    Read,
    Write,
    Admin,
}

impl From<RoleArg> for raftkv::auth::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Read => raftkv::auth::Role::Read,
            RoleArg::Write => raftkv::auth::Role::Write,
            RoleArg::Admin => raftkv::auth::Role::Admin,
        }
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
        Command::Node {
            config,
            id,
            data_dir,
            insecure,
            supervised,
            threads: _,
            bootstrap,
            join,
            listen,
            url,
            secret_file,
            ca,
            tls_dir,
        } => {
            let cfg = match (&config, &join) {
                (None, Some(_)) => None,
                _ => Some(Config::load(config.as_deref()).map_err(|e| e.to_string())?),
            };
            let secret = match secret_file {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| format!("cannot read {}: {e}", f.display()))?
                        .trim()
                        .to_string(),
                ),
                None => std::env::var("RAFTKV_SECRET").ok(),
            };
            // Absolute, so the settings kept in the data directory still
            // find them from another working directory.
            let abs = |p: PathBuf| p.canonicalize().map_err(|e| format!("{}: {e}", p.display()));
            let tls = match (ca, tls_dir) {
                (Some(ca), Some(dir)) => Some(raftkv::config::TlsConfig { ca: abs(ca)?, dir: abs(dir)? }),
                _ => None,
            };
            let opts =
                raftkv::startup::StartOptions { bootstrap, join, secret, listen, url, insecure, tls, supervised };
            let node = raftkv::startup::run(cfg, id, data_dir, opts);
            tokio::select! {
                r = node => r.map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string()),
                _ = signal::stop() => {
                    tracing::info!("interrupted; stopping (the journal is durable, nothing to flush)");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Cluster { dir, config, demo, web } => cluster::run(dir, config, demo, web).await,
        Command::Kv(cmd) => kv::run(cmd).await,
        Command::Certs { dir, config } => secure::certs(&dir, &config),
        Command::Token { name, role, config } => secure::token(&name, role.into(), config.as_deref()),
        Command::Bootstrap { config } => ops::bootstrap(config.as_deref()),
        Command::Member { cmd } => ops::member(cmd).await,
        Command::TransferLeader { id, c } => ops::transfer(id, c).await,
        Command::Snapshot { cmd } => ops::snapshot(cmd).await,
        Command::Status { c, json } => status::run(&c.addrs()?, c.token.as_deref(), c.tls()?, json).await,
        Command::Bench {
            target,
            clients,
            depth,
            duration,
            ops,
            workload,
            watchers,
            watchers_per_conn,
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
                watchers,
                watchers_per_conn,
                progress: !json,
                ..BenchConfig::new(target)
            };
            let opts = c.options()?;
            let addrs = match target {
                Target::Raftkv => c.addrs()?,
                Target::Etcd => endpoints,
            };
            let report = bench::run(addrs, cfg, opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                println!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
