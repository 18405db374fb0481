//! `raftkv bench`: a closed-loop load generator.
//!
//! N clients, each with its own connection (and, against raftkv, its own
//! session), keep `depth` requests in flight each: a new request starts only
//! when an earlier one of the same client has been answered. The run lasts a
//! duration or a number of operations; keys are fixed-width zero-padded
//! numbers drawn uniformly from a key space, values a fixed size. At the end:
//! throughput and the latency distribution of the successful requests
//! (mean, p50, p90, p99, p99.9, max), as text or JSON.
//!
//! The same driver ([`Worker`]: what to send next, when to stop, how a
//! latency is recorded) runs against raftkv (binary client protocol over
//! WebSocket, writes pipelined on one session with `seq`/`ack` kept right)
//! and against etcd ([`crate::etcd_load`]), so the two are measured alike.
//!
//! Each raftkv client speaks the protocol itself rather than through
//! [`crate::Client`]: the library runs one call at a time per client, and the
//! pipeline needs several writes of one session in flight, acknowledged in
//! order. The library's retry logic is not needed for a measurement: a failed
//! request is counted as an error; a lost connection or leader change makes
//! the client reconnect (following the leader hint) and open a new session.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::ClientOptions;
use crate::etcd_load::{self, EtcdApi};
use crate::protocol::{decode_response, encode_request, ErrorCode, Op, Request, Success};

/// Which store is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A raftkv cluster (binary client protocol over WebSocket).
    Raftkv,
    /// An etcd v3 cluster (gRPC, or the JSON gateway).
    Etcd,
}

/// What the clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Writes only.
    Put,
    /// Linearizable reads only (of keys written before the clock starts).
    Get,
    /// Half writes, half reads.
    Mixed,
}

/// Whether every key is written once before the measured run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preload {
    /// For `get` and `mixed` only.
    Auto,
    /// Always.
    Yes,
    /// Never (the keys are already there).
    No,
    /// Only the preload, no measured run.
    Only,
}

/// A benchmark run's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Which store.
    pub target: Target,
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// Requests in flight per client (1: strictly one at a time).
    pub depth: usize,
    /// How long to measure, in seconds (when `ops` is not given).
    pub duration_secs: Option<f64>,
    /// How many operations to run (instead of a duration).
    pub ops: Option<u64>,
    /// What they do.
    pub workload: Workload,
    /// Size of the key space.
    pub keys: usize,
    /// Bytes per key (zero-padded decimal numbers).
    pub key_size: usize,
    /// Bytes per written value.
    pub value_size: usize,
    /// Whether the keys are written once first.
    pub preload: Preload,
    /// Against etcd: gRPC or the JSON gateway.
    pub etcd_api: EtcdApi,
    /// Against etcd: spread the clients over every endpoint instead of
    /// sending everything to the leader.
    pub etcd_spread: bool,
    /// Draw a progress bar on stderr (only if it is a terminal).
    #[serde(skip)]
    pub progress: bool,
}

impl BenchConfig {
    /// The defaults of the CLI for `target` (a 10 s put run of 32 clients).
    pub fn new(target: Target) -> BenchConfig {
        BenchConfig {
            target,
            clients: 32,
            depth: 1,
            duration_secs: Some(10.0),
            ops: None,
            workload: Workload::Put,
            keys: 10_000,
            key_size: 8,
            value_size: 256,
            preload: Preload::Auto,
            etcd_api: EtcdApi::Grpc,
            etcd_spread: false,
            progress: false,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.clients == 0 || self.depth == 0 || self.keys == 0 || self.key_size == 0 {
            return Err("--clients, --depth, --keys and --key-size must be positive".into());
        }
        if self.depth > MAX_DEPTH {
            // A session may have at most 128 writes between its ack and its newest seq.
            return Err(format!("--depth is at most {MAX_DEPTH} (writes outstanding per session)"));
        }
        if self.key_size < 20 && (self.keys as u128) > 10u128.pow(self.key_size as u32) {
            return Err(format!("{} keys do not fit in {}-digit keys", self.keys, self.key_size));
        }
        match (self.duration_secs, self.ops) {
            (_, Some(0)) => Err("--ops must be positive".into()),
            (_, Some(_)) => Ok(()),
            (Some(d), None) if d > 0.0 && d < 86_400.0 => Ok(()),
            _ => Err("--duration must be a positive number of seconds below a day".into()),
        }
    }

    fn preloads(&self) -> bool {
        match self.preload {
            Preload::Auto => self.workload != Workload::Put,
            Preload::Yes | Preload::Only => true,
            Preload::No => false,
        }
    }
}

/// Most requests in flight per client: a raftkv session accepts 128 writes
/// between its ack and its newest seq.
pub const MAX_DEPTH: usize = 128;

/// Latencies in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The parameters.
    pub config: BenchConfig,
    /// Seconds spent writing every key first (0: no preload).
    pub preload_seconds: f64,
    /// Requests answered successfully in the measured run.
    pub ops: u64,
    /// Requests that failed (refused, or lost with their connection).
    pub errors: u64,
    /// Seconds measured (from the moment every client was connected until
    /// the last answer).
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_sec: f64,
    /// Latency of successful requests.
    pub latency_ms: Latency,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let l = &self.latency_ms;
        let target = match c.target {
            Target::Raftkv => "raftkv".to_string(),
            Target::Etcd => format!("etcd ({:?})", c.etcd_api).to_lowercase(),
        };
        writeln!(
            f,
            "{target} {:?}: {} clients x depth {}, {} keys of {} bytes, {}-byte values, {:.1} s",
            c.workload, c.clients, c.depth, c.keys, c.key_size, c.value_size, self.seconds
        )?;
        if self.preload_seconds > 0.0 {
            writeln!(f, "  (preloaded {} keys in {:.1} s)", c.keys, self.preload_seconds)?;
        }
        writeln!(f, "  {} ops ({} errors): {:.0} ops/s", self.ops, self.errors, self.ops_per_sec)?;
        write!(
            f,
            "  latency ms: mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        )
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The epsilon keeps 99.9% of 1000 at rank 999 despite rounding.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

fn latency(sorted: &[u64]) -> Latency {
    if sorted.is_empty() {
        return Latency::default();
    }
    let sum: u128 = sorted.iter().map(|&x| x as u128).sum();
    Latency {
        mean: sum as f64 / sorted.len() as f64 / 1e6,
        p50: percentile(sorted, 50.0),
        p90: percentile(sorted, 90.0),
        p99: percentile(sorted, 99.0),
        p999: percentile(sorted, 99.9),
        max: sorted[sorted.len() - 1] as f64 / 1e6,
    }
}

/// The keys and the value, made once.
pub(crate) struct Workset {
    /// Key `i` is `i` zero-padded to the key size.
    pub keys: Vec<String>,
    /// The value every write carries.
    pub value: String,
}

impl Workset {
    fn new(cfg: &BenchConfig) -> Workset {
        let w = cfg.key_size;
        let keys = (0..cfg.keys).map(|k| format!("{k:0w$}")).collect();
        let value = (0..cfg.value_size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        Workset { keys, value }
    }
}

/// State shared by the clients of one phase.
struct Shared {
    /// Operations left to start (`--ops`), if bounded by count.
    budget: Option<AtomicU64>,
    /// Preload: the next key to write.
    next_key: AtomicUsize,
    /// Answered successfully (for the progress bar).
    done: AtomicU64,
    /// Failed (for the progress bar).
    errors: AtomicU64,
}

/// One client's share of the closed loop: decides whether another request
/// may start and what it is, and records how each one ended.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    end: Option<Instant>,
    rng: u64,
    workload: Workload,
    keys: usize,
    /// Preload: every key once, in order, shared among the clients.
    sequential: bool,
    /// Latencies of successful requests, in nanoseconds.
    lat: Vec<u64>,
    errors: u64,
}

impl Worker {
    /// The next request to start, `(is_write, key index)`, or `None` when
    /// the run is over for this client.
    pub fn next(&mut self) -> Option<(bool, usize)> {
        if self.sequential {
            let k = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
            return (k < self.keys).then_some((true, k));
        }
        if self.end.is_some_and(|end| Instant::now() >= end) {
            return None;
        }
        if let Some(b) = &self.shared.budget {
            if b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                return None;
            }
        }
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let write = match self.workload {
            Workload::Put => true,
            Workload::Get => false,
            Workload::Mixed => self.rng >> 63 == 1,
        };
        Some((write, (self.rng % self.keys as u64) as usize))
    }

    /// Records the end of a request started at `started`.
    pub fn finish(&mut self, started: Instant, ok: bool) {
        if ok {
            self.lat.push(started.elapsed().as_nanos() as u64);
            self.shared.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors += 1;
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a client tells the phase it is connected (or cannot be), and learns
/// when the clock starts.
pub(crate) struct StartLine {
    pub ready: mpsc::Sender<Result<(), String>>,
    pub go: watch::Receiver<Option<Instant>>,
    /// The measured run lasts this long from the start, if bounded by time.
    pub duration: Option<Duration>,
}

impl StartLine {
    /// Reports the client connected and waits for the start; sets the
    /// worker's end time. `false` if the phase was abandoned.
    pub async fn ready_and_wait(mut self, w: &mut Worker) -> bool {
        if self.ready.send(Ok(())).await.is_err() {
            return false;
        }
        let Ok(start) = self.go.wait_for(Option::is_some).await.map(|s| s.unwrap_or_else(Instant::now)) else {
            return false;
        };
        w.end = self.duration.map(|d| start + d);
        true
    }

    /// Reports that the client could not connect.
    pub async fn failed(self, why: String) {
        let _ = self.ready.send(Err(why)).await;
    }
}

struct PhaseResult {
    lat: Vec<u64>,
    errors: u64,
    seconds: f64,
}

/// Runs the benchmark: the preload if asked for, then the measured run.
pub async fn run(addrs: Vec<String>, cfg: BenchConfig, opts: ClientOptions) -> Result<BenchReport, String> {
    cfg.check()?;
    if addrs.is_empty() {
        return Err("no addresses to connect to".into());
    }
    let set = Arc::new(Workset::new(&cfg));
    let etcd = match cfg.target {
        Target::Etcd => Some(Arc::new(etcd_load::Setup::new(&addrs, cfg.etcd_api, cfg.etcd_spread, &set).await?)),
        Target::Raftkv => None,
    };
    let mut preload_seconds = 0.0;
    if cfg.preloads() {
        // Enough clients to write the key space quickly, whatever is measured.
        let clients = cfg.clients.max(32).min(cfg.keys);
        let p = phase(&cfg, &addrs, &set, etcd.as_ref(), &opts, true, clients).await?;
        if p.errors > 0 {
            return Err(format!("the preload failed: {} of {} writes were refused", p.errors, cfg.keys));
        }
        preload_seconds = p.seconds;
    }
    let p = if cfg.preload == Preload::Only {
        PhaseResult { lat: Vec::new(), errors: 0, seconds: 0.0 }
    } else {
        phase(&cfg, &addrs, &set, etcd.as_ref(), &opts, false, cfg.clients).await?
    };
    let mut lat = p.lat;
    lat.sort_unstable();
    let ops = lat.len() as u64;
    Ok(BenchReport {
        latency_ms: latency(&lat),
        config: cfg,
        preload_seconds,
        ops,
        errors: p.errors,
        seconds: p.seconds,
        ops_per_sec: if p.seconds > 0.0 { ops as f64 / p.seconds } else { 0.0 },
    })
}

/// One phase: connect every client, start them together, wait for them all.
async fn phase(
    cfg: &BenchConfig,
    addrs: &[String],
    set: &Arc<Workset>,
    etcd: Option<&Arc<etcd_load::Setup>>,
    opts: &ClientOptions,
    preload: bool,
    clients: usize,
) -> Result<PhaseResult, String> {
    let shared = Arc::new(Shared {
        budget: if preload { None } else { cfg.ops.map(AtomicU64::new) },
        next_key: AtomicUsize::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let duration = if preload || cfg.ops.is_some() { None } else { cfg.duration_secs.map(Duration::from_secs_f64) };
    let (ready_tx, mut ready_rx) = mpsc::channel(clients);
    let (go_tx, go_rx) = watch::channel(None);
    let addrs = Arc::new(addrs.to_vec());
    let mut handles = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        if preload {
            seed ^= 0x5555;
        }
        let worker = Worker {
            shared: shared.clone(),
            end: None,
            rng: seed | 1,
            workload: if preload { Workload::Put } else { cfg.workload },
            keys: cfg.keys,
            sequential: preload,
            lat: Vec::with_capacity(if preload { 0 } else { 1 << 14 }),
            errors: 0,
        };
        let start = StartLine { ready: ready_tx.clone(), go: go_rx.clone(), duration };
        let (opts, depth) = (opts.clone(), cfg.depth);
        handles.push(match etcd {
            Some(e) => tokio::spawn(etcd_load::client(c, e.clone(), worker, depth, opts, start)),
            None => tokio::spawn(raftkv_client(addrs.clone(), set.clone(), worker, depth, opts, start)),
        });
    }
    drop(ready_tx);
    for _ in 0..clients {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e),
            None => return Err("a client ended before it was ready".into()),
        }
    }
    let start = Instant::now();
    let _ = go_tx.send(Some(start));

    let bar = progress_bar(cfg, preload);
    let finished = Arc::new(AtomicBool::new(false));
    let ticker = bar.clone().map(|bar| {
        let (shared, finished) = (shared.clone(), finished.clone());
        let (budget, duration) = (if preload { Some(cfg.keys as u64) } else { cfg.ops }, duration);
        tokio::spawn(async move {
            while !finished.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let (done, errors) = (shared.done.load(Ordering::Relaxed), shared.errors.load(Ordering::Relaxed));
                let secs = start.elapsed().as_secs_f64();
                match (budget, duration) {
                    (Some(_), _) => bar.set_position(done + errors),
                    (None, Some(_)) => bar.set_position(start.elapsed().as_millis() as u64),
                    (None, None) => {}
                }
                bar.set_message(format!("{done} ops, {:.0} ops/s, {errors} errors", done as f64 / secs.max(1e-3)));
            }
        })
    });

    let mut lat = Vec::new();
    let mut errors = 0;
    for h in handles {
        let w = h.await.map_err(|e| format!("a client task failed: {e}"))?;
        if lat.is_empty() {
            lat = w.lat;
        } else {
            lat.extend_from_slice(&w.lat);
        }
        errors += w.errors;
    }
    let seconds = start.elapsed().as_secs_f64();
    finished.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.await;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(PhaseResult { lat, errors, seconds })
}

fn progress_bar(cfg: &BenchConfig, preload: bool) -> Option<indicatif::ProgressBar> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !cfg.progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let (len, prefix) = if preload {
        (cfg.keys as u64, "preload".to_string())
    } else if let Some(n) = cfg.ops {
        (n, format!("{:?}", cfg.workload).to_lowercase())
    } else {
        ((cfg.duration_secs.unwrap_or(0.0) * 1000.0) as u64, format!("{:?}", cfg.workload).to_lowercase())
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>7} [{bar:30}] {percent:>3}% {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    Some(bar)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to the cluster and opens a session on the leader, following
/// `not_leader` hints (reads must go to the leader too, so a read-only client
/// registers as well: that finds the leader and costs one log entry).
async fn open_session(addrs: &[String], mut target: String, opts: &ClientOptions) -> Result<(Ws, u64, String), String> {
    let deadline = Instant::now() + opts.timeout;
    let mut idx = addrs.iter().position(|a| *a == target).unwrap_or(0);
    let mut last = String::from("no attempt made");
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(opts.max_frame))
        .read_buffer_size(crate::server::CLIENT_READ_BUFFER);
    while Instant::now() < deadline {
        let url = format!("{target}/client");
        let attempt = async {
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(cfg), true)
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let frame = encode_request(&Request { id: 0, op: Op::Register });
            ws.send(WsMessage::binary(frame)).await.map_err(|e| format!("{url}: {e}"))?;
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(b))) => {
                        let r = decode_response(&b, opts.max_frame).map_err(|e| format!("{url}: {e}"))?;
                        return Ok((ws, r.result));
                    }
                    Some(Ok(WsMessage::Close(_))) | None => return Err(format!("{url}: connection closed")),
                    Some(Err(e)) => return Err(format!("{url}: {e}")),
                    Some(Ok(_)) => {}
                }
            }
        };
        match tokio::time::timeout(opts.attempt_timeout, attempt).await {
            Ok(Ok((ws, Ok(Success::Registered { session })))) => return Ok((ws, session, target)),
            Ok(Ok((_, Err(f)))) if f.error == ErrorCode::NotLeader && f.leader.is_some() => {
                if let Some(l) = f.leader {
                    target = l.addr;
                }
                continue;
            }
            Ok(Ok((_, r))) => last = format!("{target} answered {r:?}"),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{target}: no answer in time"),
        }
        idx = (idx + 1) % addrs.len();
        target = addrs[idx].clone();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("cannot open a session on the cluster: {last}"))
}

/// A request in flight: when it started and, for a write, its seq.
struct InFlight {
    started: Instant,
    seq: Option<u64>,
}

/// One raftkv client: a connection, a session, up to `depth` requests in
/// flight. Writes are numbered 1, 2, 3... in the session; each carries as
/// `ack` the lowest seq still awaiting its answer.
async fn raftkv_client(
    addrs: Arc<Vec<String>>,
    set: Arc<Workset>,
    mut w: Worker,
    depth: usize,
    opts: ClientOptions,
    start: StartLine,
) -> Worker {
    let (mut ws, mut session, mut target) = match open_session(&addrs, addrs[0].clone(), &opts).await {
        Ok(x) => x,
        Err(e) => {
            start.failed(e).await;
            return w;
        }
    };
    if !start.ready_and_wait(&mut w).await {
        return w;
    }
    let mut next_seq = 1u64;
    let mut next_id = 1u64;
    let mut inflight: HashMap<u64, InFlight> = HashMap::with_capacity(depth * 2);
    // Seqs sent, in order, and whether each has been answered.
    let mut unacked: VecDeque<(u64, bool)> = VecDeque::with_capacity(depth);
    let mut more = true;
    loop {
        // Fill the pipeline, then flush once: several requests, one write.
        let mut broken: Option<String> = None;
        let mut queued = false;
        while more && inflight.len() < depth {
            let Some((write, k)) = w.next() else {
                more = false;
                break;
            };
            let id = next_id;
            next_id += 1;
            let key = set.keys[k].clone();
            let started = Instant::now();
            let (op, seq) = if write {
                let seq = next_seq;
                next_seq += 1;
                unacked.push_back((seq, false));
                let ack = unacked.front().map_or(seq, |u| u.0);
                (Op::Put { session, seq, ack, key, value: set.value.clone() }, Some(seq))
            } else {
                (Op::Get { key }, None)
            };
            inflight.insert(id, InFlight { started, seq });
            if let Err(e) = ws.feed(WsMessage::binary(encode_request(&Request { id, op }))).await {
                broken = Some(format!("send failed: {e}"));
                break;
            }
            queued = true;
        }
        if queued && broken.is_none() {
            if let Err(e) = ws.flush().await {
                broken = Some(format!("send failed: {e}"));
            }
        }
        if broken.is_none() {
            if inflight.is_empty() {
                break;
            }
            let frame = tokio::time::timeout(opts.timeout, ws.next()).await;
            match frame {
                Ok(Some(Ok(WsMessage::Binary(b)))) => match decode_response(&b, opts.max_frame) {
                    Ok(r) => {
                        let Some(f) = r.id.and_then(|id| inflight.remove(&id)) else { continue };
                        if let Some(seq) = f.seq {
                            if let Some(u) = unacked.iter_mut().find(|u| u.0 == seq) {
                                u.1 = true;
                            }
                            while unacked.front().is_some_and(|u| u.1) {
                                unacked.pop_front();
                            }
                        }
                        match r.result {
                            Ok(_) => w.finish(f.started, true),
                            Err(fail) => {
                                w.finish(f.started, false);
                                // The session or the leader is gone: start again where the hint points.
                                if matches!(
                                    fail.error,
                                    ErrorCode::NotLeader | ErrorCode::SessionExpired | ErrorCode::UnknownOutcome
                                ) {
                                    if let Some(l) = fail.leader {
                                        target = l.addr;
                                    }
                                    broken = Some(format!("{:?}", fail.error));
                                }
                            }
                        }
                    }
                    Err(e) => broken = Some(format!("unreadable reply: {e}")),
                },
                Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) => broken = Some("connection closed".into()),
                Ok(Some(Err(e))) => broken = Some(format!("connection error: {e}")),
                Ok(Some(Ok(_))) => {}
                Err(_) => broken = Some("no reply in time".into()),
            }
        }
        if let Some(why) = broken {
            tracing::debug!(%why, %target, "bench client reconnecting");
            for (_, f) in inflight.drain() {
                w.finish(f.started, false);
            }
            unacked.clear();
            if !more {
                break;
            }
            match open_session(&addrs, target.clone(), &opts).await {
                Ok((s, id, t)) => (ws, session, target) = (s, id, t),
                Err(e) => {
                    tracing::warn!(error = %e, "a bench client gave up");
                    break;
                }
            }
            next_seq = 1;
        }
    }
    let _ = ws.close(None).await;
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1_000_000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let l = latency(&v);
        assert_eq!((l.mean, l.max), (500.5, 1000.0));
    }

    #[test]
    fn keys_are_fixed_width_and_checked() {
        let cfg = BenchConfig { keys: 10_000, key_size: 8, value_size: 5, ..BenchConfig::new(Target::Raftkv) };
        let set = Workset::new(&cfg);
        assert_eq!(set.keys[42], "00000042");
        assert!(set.keys.iter().all(|k| k.len() == 8));
        assert_eq!(set.value, "abcde");
        cfg.check().unwrap();
        let too_many = BenchConfig { keys: 1001, key_size: 3, ..cfg.clone() };
        assert!(too_many.check().is_err());
        assert!(BenchConfig { depth: 129, ..cfg.clone() }.check().is_err());
        assert!(BenchConfig { ops: Some(0), ..cfg.clone() }.check().is_err());
        assert!(BenchConfig { duration_secs: None, ops: Some(5), ..cfg }.check().is_ok());
    }

    #[test]
    fn worker_respects_budget_and_preload_order() {
        let shared = Arc::new(Shared {
            budget: Some(AtomicU64::new(3)),
            next_key: AtomicUsize::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let mut w = Worker {
            shared: shared.clone(),
            end: None,
            rng: 7,
            workload: Workload::Mixed,
            keys: 10,
            sequential: false,
            lat: Vec::new(),
            errors: 0,
        };
        let ops: Vec<_> = std::iter::from_fn(|| w.next()).collect();
        assert_eq!(ops.len(), 3);
        assert!(ops.iter().all(|&(_, k)| k < 10));
        w.sequential = true;
        let keys: Vec<_> = std::iter::from_fn(|| w.next()).map(|(wr, k)| (assert!(wr), k).1).collect();
        assert_eq!(keys, (0..10).collect::<Vec<_>>());
    }
}
