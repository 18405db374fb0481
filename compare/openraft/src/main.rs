//! openraft's side of `scripts/compare-openraft.sh`: the closed-loop bench of
//! raftkv's `benches/examples/closed_loop.rs`, on openraft.
//!
//! `openraft-closed-loop CLIENTS WRITES [--threads T]`: 3 nodes in one tokio
//! multi-thread runtime (T worker threads, default: the machine's cores),
//! in-memory log and key-value state machine, RPCs as direct calls on the
//! target's `Raft` handle. Node 1 is initialised and elected, then CLIENTS
//! tasks each put a 16-byte value to their own key, awaiting every
//! `client_write` (returned once the leader has applied the entry) before
//! sending the next, until WRITES writes are done. Prints the result the way
//! raftkv's example does, then the CPU time the timed part used.

#[cfg(test)]
mod conformance;
mod cpu_time;
mod kv_machine;
mod log_store;
mod network;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{Raft, ServerState};

use cpu_time::CpuTime;
use kv_machine::KvMachine;
use log_store::LogStore;
use network::Router;
use types::Put;

/// The node ids of the cluster; node 1 is initialised and becomes leader.
const NODES: [u64; 3] = [1, 2, 3];
/// The value size of raftkv's closed-loop bench.
const VALUE_BYTES: usize = 16;
/// How long setup and the final catch-up may take before the run is called stuck.
const SETTLE: Duration = Duration::from_secs(30);

/// What the command line asks for.
struct Args {
    clients: u64,
    writes: u64,
    threads: usize,
}

fn usage() -> String {
    "usage: openraft-closed-loop CLIENTS WRITES [--threads T]".to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--threads" {
            let t = args.next().ok_or_else(usage)?;
            threads = t.parse().map_err(|_| format!("--threads: not a number: {t}"))?;
        } else if a == "-h" || a == "--help" {
            return Err(usage());
        } else {
            positional.push(a);
        }
    }
    let [clients, writes] = positional.as_slice() else { return Err(usage()) };
    let clients: u64 = clients.parse().map_err(|_| format!("CLIENTS: not a number: {clients}"))?;
    let writes: u64 = writes.parse().map_err(|_| format!("WRITES: not a number: {writes}"))?;
    if clients == 0 || writes == 0 || threads == 0 {
        return Err("CLIENTS, WRITES and --threads must be at least 1".to_string());
    }
    Ok(Args { clients, writes, threads })
}

/// The running cluster: every node's handle and state machine by id.
struct Cluster {
    rafts: BTreeMap<u64, Raft<types::Config>>,
    machines: BTreeMap<u64, KvMachine>,
}

/// Builds the 3 nodes with openraft's benchmarks/minimal settings and elects node 1.
async fn start_cluster() -> Result<Cluster, String> {
    let config = openraft::Config {
        election_timeout_min: 200,
        election_timeout_max: 2000,
        purge_batch_size: 1024,
        max_payload_entries: 1024,
        ..Default::default()
    }
    .validate()
    .map_err(|e| format!("config: {e}"))?;
    let config = Arc::new(config);
    let router = Router::default();
    let mut rafts = BTreeMap::new();
    let mut machines = BTreeMap::new();
    for id in NODES {
        let machine = KvMachine::default();
        let raft = Raft::new(id, config.clone(), router.clone(), LogStore::default(), machine.clone())
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
        rafts.insert(id, raft);
        machines.insert(id, machine);
    }
    if !router.publish(rafts.clone()) {
        return Err("the router was published twice".to_string());
    }
    let leader = &rafts[&NODES[0]];
    let members: BTreeSet<u64> = NODES.into_iter().collect();
    leader.initialize(members).await.map_err(|e| format!("initialize: {e}"))?;
    for raft in rafts.values() {
        raft.wait(Some(SETTLE)).current_leader(NODES[0], "node 1 leads").await.map_err(|e| e.to_string())?;
    }
    leader.wait(Some(SETTLE)).state(ServerState::Leader, "node 1 leads").await.map_err(|e| e.to_string())?;
    Ok(Cluster { rafts, machines })
}

/// What a closed-loop run did.
struct Outcome {
    /// From the first write sent to the last reply.
    elapsed: Duration,
    /// Writes each client completed (which client takes the next write from
    /// the budget is up to the scheduler).
    per_client: Vec<u64>,
}

/// Runs the closed loop: `clients` tasks share a budget of `writes`; each
/// takes one write from it, awaits it, and takes the next.
async fn closed_loop(leader: &Raft<types::Config>, clients: u64, writes: u64) -> Result<Outcome, String> {
    let budget = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let leader = leader.clone();
            let budget = budget.clone();
            let key = format!("k{i}");
            let value = "v".repeat(VALUE_BYTES);
            tokio::spawn(async move {
                let mut done = 0u64;
                while budget.fetch_add(1, Ordering::Relaxed) < writes {
                    let put = Put { key: key.clone(), value: value.clone() };
                    leader.client_write(put).await.map_err(|e| format!("client {i}: write failed: {e}"))?;
                    done += 1;
                }
                Ok::<u64, String>(done)
            })
        })
        .collect();
    let mut per_client = Vec::with_capacity(tasks.len());
    for t in tasks {
        per_client.push(t.await.map_err(|e| format!("a client task died: {e}"))??);
    }
    Ok(Outcome { elapsed: start.elapsed(), per_client })
}

/// Waits until every replica has applied what the leader has, then checks
/// that all hold the same map: a 16-byte value under the key of every client
/// that wrote, and nothing else.
async fn check_replicas(cluster: &Cluster, per_client: &[u64]) -> Result<(), String> {
    let leader = &cluster.rafts[&NODES[0]];
    let applied = leader.metrics().borrow().last_applied.map(|l| l.index);
    for (id, raft) in &cluster.rafts {
        raft.wait(Some(SETTLE))
            .applied_index_at_least(applied, "replica caught up")
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
    }
    let (_, reference) = cluster.machines[&NODES[0]].contents();
    let expected: BTreeSet<String> =
        per_client.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, _)| format!("k{i}")).collect();
    if !reference.keys().eq(expected.iter()) {
        return Err(format!(
            "node 1 holds {} keys, not the {} keys of the clients that wrote",
            reference.len(),
            expected.len()
        ));
    }
    if reference.values().any(|v| v.len() != VALUE_BYTES) {
        return Err("node 1 holds a value of the wrong size".to_string());
    }
    for (id, machine) in &cluster.machines {
        if machine.contents().1 != reference {
            return Err(format!("node {id}'s map differs from node 1's"));
        }
    }
    Ok(())
}

async fn run(args: &Args) -> Result<(), String> {
    let cluster = start_cluster().await?;
    let leader = &cluster.rafts[&NODES[0]];
    let cpu_before = CpuTime::now().ok_or("getrusage failed")?;
    let outcome = closed_loop(leader, args.clients, args.writes).await?;
    let elapsed = outcome.elapsed;
    let cpu = CpuTime::now().ok_or("getrusage failed")?.since(cpu_before);
    let (clients, total) = (args.clients, args.writes);
    println!("{clients} clients: {total} writes in {elapsed:.2?} = {:.0}/s", total as f64 / elapsed.as_secs_f64());
    println!(
        "cpu: {:.2}s (user {:.2}s, sys {:.2}s) in the timed run, {} runtime worker threads = {:.0} writes/cpu-s",
        cpu.total().as_secs_f64(),
        cpu.user.as_secs_f64(),
        cpu.system.as_secs_f64(),
        args.threads,
        total as f64 / cpu.total().as_secs_f64().max(1e-9),
    );
    let completed: u64 = outcome.per_client.iter().sum();
    if completed != args.writes {
        return Err(format!("{completed} writes completed, {} asked for", args.writes));
    }
    check_replicas(&cluster, &outcome.per_client).await?;
    for (id, raft) in &cluster.rafts {
        raft.shutdown().await.map_err(|e| format!("node {id} shutdown: {e}"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openraft-closed-loop: {e}");
            ExitCode::FAILURE
        }
    }
}
