//! The closed-loop bench: CLIENTS clients, each with its own session and one
//! write outstanding (a put of 16 bytes to its own key), WRITES writes in all,
//! on a 3-node in-memory cluster; `scripts/compare-openraft.sh` runs it beside
//! openraft's (BENCHMARKS.md, "Closed-loop clients").
//!
//! ```text
//! closed_loop [CLIENTS [WRITES]] [--threads] [--capacity N]
//! ```
//!
//! By default the three engines run on one thread (`benches::MemCluster`),
//! a fixed amount of work whose instruction count does not depend on machine
//! load: `valgrind --tool=callgrind target/release/examples/closed_loop 64 50000`.
//! With `--threads` each node runs on an OS thread of its own, the clients on
//! the leader's, with inboxes of N messages (`benches::threaded`, default
//! 1024). Either way the run ends with a check that every replica applied
//! the same state, holding every client's key, and that the writes add up;
//! a run that fails it exits with status 1.

use std::process::ExitCode;

use raft_core::{KvStore, Raft};

fn main() -> ExitCode {
    let mut numbers = Vec::new();
    let mut threads = false;
    let mut capacity = benches::threaded::DEFAULT_CAPACITY;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = true,
            "--capacity" => match args.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0) {
                Some(n) => capacity = n,
                None => return usage("--capacity needs a positive number"),
            },
            _ => match a.parse::<u64>() {
                Ok(n) if n > 0 => numbers.push(n),
                _ => return usage(&format!("not a positive number: {a}")),
            },
        }
    }
    if numbers.len() > 2 {
        return usage("at most two numbers: CLIENTS and WRITES");
    }
    let clients = numbers.first().map_or(1024, |&n| n as usize);
    let total = numbers.get(1).copied().unwrap_or(200_000);
    let (mut cl, sessions) = benches::closed_loop_cluster(3, clients);
    let (t, checked) = if threads {
        let run = benches::threaded::run(cl, &sessions, total, capacity);
        let nodes: Vec<&Raft<KvStore>> = run.nodes.iter().collect();
        (run.elapsed, benches::closed_loop_check(&nodes, &run.writes, total))
    } else {
        let mut seqs = vec![0u64; clients];
        let t = benches::closed_loop_run(&mut cl, &sessions, &mut seqs, total);
        cl.settle();
        let nodes: Vec<&Raft<KvStore>> = (1..=3).map(|id| cl.node(id)).collect();
        (t, benches::closed_loop_check(&nodes, &seqs, total))
    };
    println!("{clients} clients: {total} writes in {t:.2?} = {:.0}/s", total as f64 / t.as_secs_f64());
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("closed_loop: the check failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("closed_loop: {why}\nusage: closed_loop [CLIENTS [WRITES]] [--threads] [--capacity N]");
    ExitCode::from(2)
}
