//! Runs a simulated cluster and narrates it: elections, commits, a leader
//! crash, a partition that isolates the leader, and recovery. Deterministic:
//! the same seed prints the same story.
//!
//! ```text
//! cargo run -p raft-core --features sim --example simulate -- [SEED] [NODES]
//! ```

use raft_core::sim::{Sim, SimConfig};
use raft_core::Event;

const MS: u64 = 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let nodes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5).clamp(1, 9);
    println!("raftkv simulator: {nodes} nodes, seed {seed} (same seed, same run)\n");
    let mut sim = Sim::new(SimConfig { nodes, seed, ..SimConfig::default() });
    let mut shown = 0usize;
    let mut next_cmd = 1u64;

    let mut phase = |sim: &mut Sim, title: &str, ms: u64, shown: &mut usize| {
        println!("== {title}");
        let end = sim.now() + ms * MS;
        while sim.now() < end {
            if let Some(l) = sim.leader() {
                let _ = sim.propose(l, format!("set x={next_cmd}").into_bytes());
                next_cmd += 1;
            }
            sim.run_for(50 * MS);
        }
        narrate(sim, shown);
    };

    phase(&mut sim, "start: every node is a follower; the first to time out asks for votes", 1_500, &mut shown);
    if let Some(l) = sim.leader() {
        println!("-- crash the leader, node {l}: its volatile state and unsynced journal records are lost");
        sim.crash(l);
        phase(&mut sim, "the others notice the silence and elect a new leader", 1_500, &mut shown);
        println!("-- restart node {l}: it replays its journal and rejoins as a follower");
        sim.restart(l);
        phase(&mut sim, "node catches up", 1_000, &mut shown);
    }
    if let Some(l) = sim.leader() {
        println!("-- partition: the leader, node {l}, is cut off from everyone");
        sim.disconnect(l);
        phase(&mut sim, "the isolated leader cannot commit; the majority elects another", 1_500, &mut shown);
        println!("-- heal the partition");
        sim.heal();
        phase(&mut sim, "the old leader hears a higher term and steps down", 1_000, &mut shown);
    }
    println!();
    for id in sim.ids() {
        match sim.raft(id) {
            Some(r) => println!(
                "node {id}: {:<9} term {:>2}  commit {:>3}  applied {:>3}  last index {:>3}",
                r.role().name(),
                r.term(),
                r.commit_index(),
                r.applied_index(),
                r.log().last_index(),
            ),
            None => println!("node {id}: down"),
        }
    }
    println!(
        "\n{} events, {} messages, {} crashes; safety checks after every event: {} violations",
        sim.stats.events,
        sim.stats.messages,
        sim.stats.crashes,
        sim.violations().len()
    );
    for v in sim.violations() {
        println!("VIOLATION {v}");
    }
    if !sim.violations().is_empty() {
        std::process::exit(1);
    }
}

fn narrate(sim: &Sim, shown: &mut usize) {
    // Consecutive commit events are folded into one line: (first, last time, index).
    let mut commits: Option<(u64, u64, u64)> = None;
    let flush = |c: &mut Option<(u64, u64, u64)>| {
        if let Some((t0, t1, i)) = c.take() {
            println!(
                "  {:>7.1} ms  entries commit steadily: commit index {i} by {:.1} ms",
                t0 as f64 / 1000.0,
                t1 as f64 / 1000.0
            );
        }
    };
    for (t, id, e) in sim.log.iter().skip(*shown) {
        let line = match e {
            Event::BecamePreCandidate { term } => {
                format!("node {id} timed out and asks whether it could win term {}", term + 1)
            }
            Event::BecameCandidate { term } => format!("node {id} starts an election for term {term}"),
            Event::BecameLeader { term } => format!("node {id} won: leader of term {term}"),
            Event::BecameFollower { term, leader: Some(l) } => format!("node {id} follows node {l} in term {term}"),
            Event::BecameFollower { term, leader: None } => format!("node {id} is a follower in term {term}"),
            Event::LostQuorum { term } => {
                format!("node {id} lost contact with a majority and steps down (term {term})")
            }
            Event::SnapshotTaken { index } => format!("node {id} snapshots its state at index {index}"),
            Event::SnapshotInstalled { index } => {
                format!("node {id} installs the leader's snapshot at index {index}")
            }
            Event::Truncated { from_index } => format!("node {id} drops its conflicting entries from {from_index}"),
            Event::ConfigChanged { membership } => {
                format!("node {id} now uses the configuration with voters {:?}", membership.voter_ids())
            }
            Event::RemovedSelf { term } => format!("node {id} was removed and steps down (term {term})"),
            Event::FollowerRestarted { id: f, new_incarnation } => {
                let how = if *new_incarnation { "with a new disk" } else { "after a restart" };
                format!("leader {id} probes follower {f} afresh: it answered {how}")
            }
            Event::RecoveredLostData { index } => {
                format!("node {id} caught up to the leader's commit {index} after losing data: it votes again")
            }
            Event::LeaseRead { term, index } => {
                format!("leader {id} answers a read at commit {index} on its term-{term} lease")
            }
            Event::Committed { index } => {
                let _ = id;
                commits = Some(commits.map_or((*t, *t, *index), |(t0, _, i)| (t0, *t, i.max(*index))));
                continue;
            }
        };
        flush(&mut commits);
        println!("  {:>7.1} ms  {line}", *t as f64 / 1000.0);
    }
    flush(&mut commits);
    *shown = sim.log.len();
}
