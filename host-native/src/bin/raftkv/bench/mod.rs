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
//! The same driver ([`driver`]: what to send next, when to stop, how a
//! latency is recorded) runs against raftkv ([`raftkv_load`]: binary client
//! protocol over WebSocket, writes pipelined on one session with `seq`/`ack`
//! kept right) and against etcd ([`etcd_load`]), so the two are measured
//! alike. [`settings`] holds what a run is asked to do, [`report`] what it
//! found; this file runs the phases.
//!
//! The load generator is part of the `raftkv` binary, not of the library: a
//! program using the client library does not carry an etcd client.

pub mod driver;
pub mod etcd_load;
pub mod raftkv_load;
pub mod report;
pub mod settings;
pub mod watch_load;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use raftkv::ClientOptions;

use driver::{Shared, StartLine, Worker, Workset};
use report::BenchReport;
use settings::{BenchConfig, Preload, Target, Workload, WATCH_PREFIX};

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
        Target::Etcd => {
            Some(Arc::new(etcd_load::Setup::new(&addrs, cfg.etcd_api, cfg.etcd_spread, &set, cfg.workload).await?))
        }
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
    if cfg.workload == Workload::Watch && cfg.preload != Preload::Only {
        return watch_run(addrs, cfg, opts, set, etcd, preload_seconds).await;
    }
    let p = if cfg.preload == Preload::Only {
        PhaseResult { lat: Vec::new(), errors: 0, seconds: 0.0 }
    } else {
        phase(&cfg, &addrs, &set, etcd.as_ref(), &opts, false, cfg.clients).await?
    };
    let mut lat = p.lat;
    lat.sort_unstable();
    Ok(report::report(cfg, preload_seconds, &lat, p.errors, p.seconds))
}

/// The watch workload: open the watchers, run the writers, count what the
/// watchers received while they wrote and after.
async fn watch_run(
    addrs: Vec<String>,
    cfg: BenchConfig,
    opts: ClientOptions,
    set: Arc<Workset>,
    etcd: Option<Arc<etcd_load::Setup>>,
    preload_seconds: f64,
) -> Result<BenchReport, String> {
    let counts = Arc::new(watch_load::Counts::default());
    let conns = cfg.watchers.div_ceil(cfg.watchers_per_conn);
    let (ready_tx, mut ready_rx) = mpsc::channel(conns);
    let opened = Instant::now();
    // The watchers' connections go to every node in turn (a watch needs no
    // leader; etcd serves watches on every member too).
    // raftkv's watches start after the revision a linearizable read sees
    // now: writes of an earlier run that a follower applies late are not
    // counted. (etcd's start at each member's current revision.)
    let from = match &etcd {
        Some(_) => 0,
        None => {
            let lib = raftkv::Client::new(addrs.clone(), opts.clone());
            lib.count(WATCH_PREFIX, None).await.map_err(|e| e.to_string())?.1 + 1
        }
    };
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let n = cfg.watchers_per_conn.min(cfg.watchers - c * cfg.watchers_per_conn);
        let addr = addrs[c % addrs.len()].clone();
        let (counts, ready) = (counts.clone(), ready_tx.clone());
        tasks.push(match &etcd {
            Some(_) => tokio::spawn(watch_load::etcd_watcher(etcd_load::authority(&addr), n, counts, ready)),
            None => tokio::spawn(watch_load::raftkv_watcher(addr, n, from, opts.clone(), counts, ready)),
        });
    }
    drop(ready_tx);
    for _ in 0..conns {
        match tokio::time::timeout(opts.timeout * 3, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("a watcher ended before its watches were open".into()),
            Err(_) => return Err("the watches did not open in time".into()),
        }
    }
    let setup_seconds = opened.elapsed().as_secs_f64();
    let p = phase(&cfg, &addrs, &set, etcd.as_ref(), &opts, false, cfg.clients).await?;
    let events_during = counts.events.load(std::sync::atomic::Ordering::Relaxed);
    let expected = p.lat.len() as u64 * cfg.watchers as u64;
    let drain = watch_load::drain(&counts, expected, Duration::from_secs(5)).await;
    for t in tasks {
        t.abort();
    }
    let mut lat = p.lat;
    lat.sort_unstable();
    let mut r = report::report(cfg.clone(), preload_seconds, &lat, p.errors, p.seconds);
    r.watch = Some(report::WatchStats {
        watchers: cfg.watchers,
        connections: conns,
        setup_seconds,
        expected_events: expected,
        events_during,
        events_per_sec: if p.seconds > 0.0 { events_during as f64 / p.seconds } else { 0.0 },
        events_total: counts.events.load(std::sync::atomic::Ordering::Relaxed),
        drain_seconds: drain.as_secs_f64(),
        canceled: counts.canceled.load(std::sync::atomic::Ordering::Relaxed),
    });
    Ok(r)
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
    let shared =
        Arc::new(Shared { budget: if preload { None } else { cfg.ops.map(AtomicU64::new) }, ..Shared::default() });
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
        let workload = if preload { Workload::Put } else { cfg.workload };
        let worker = Worker::new(shared.clone(), seed, workload, cfg.keys, preload);
        let start = StartLine { ready: ready_tx.clone(), go: go_rx.clone(), duration };
        let (opts, depth) = (opts.clone(), cfg.depth);
        handles.push(match etcd {
            Some(e) => tokio::spawn(etcd_load::client(c, e.clone(), worker, depth, opts, start)),
            None => {
                // Reads only: a client may stay on a follower (follower reads).
                let spread = (cfg.etcd_spread && workload == Workload::Get).then(|| addrs[c % addrs.len()].clone());
                tokio::spawn(raftkv_load::client(addrs.clone(), set.clone(), worker, depth, opts, start, spread))
            }
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
        let (w_lat, w_errors) = h.await.map_err(|e| format!("a client task failed: {e}"))?.results();
        if lat.is_empty() {
            lat = w_lat;
        } else {
            lat.extend_from_slice(&w_lat);
        }
        errors += w_errors;
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
