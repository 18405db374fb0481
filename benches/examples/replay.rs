//! Replay under an instruction counter: RECORDS one-entry `Append` records
//! (16-byte commands, as the `journal` group of the `node` bench builds
//! them), recovered once with `journal::recover_shared`, the native host's
//! way (BENCHMARKS.md, "Item 4: replay").
//!
//! ```text
//! replay [RECORDS]    (default 200000)
//! ```
//!
//! Building the segment costs more than replaying it, so count only the
//! replay:
//!
//! ```text
//! valgrind --tool=callgrind --dump-instr=no \
//!   --toggle-collect='raft_core::journal::recover_shared*' target/release/examples/replay
//! ```
//!
//! It prints the replay's wall time and page faults too (the fresh memory
//! the log is built in). The run ends with a check that the log holds every record's entry; a run
//! that fails it exits with status 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use raft_core::entry::{Entry, Payload};
use raft_core::journal::{self, Record};

fn main() -> ExitCode {
    let records = match benches::number_arg(
        std::env::args().nth(1),
        200_000,
        0,
        "usage: replay [RECORDS]  (a positive number)",
    ) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let mut seg = Vec::new();
    journal::write_segment_header(&mut seg);
    for i in 1..=records {
        let entry = Entry { term: 1, index: i, time: 0, payload: Payload::Command(vec![7; 16].into()) };
        journal::encode_record(i, &Record::Append { first_index: i, entries: vec![entry] }, &mut seg);
    }
    let seg = Arc::new(seg);
    let faults = minor_faults();
    let started = Instant::now();
    let recovered = journal::recover_shared(&seg);
    let elapsed = started.elapsed();
    let faults = minor_faults().zip(faults).map(|(after, before)| after - before);
    let (state, scan) = match recovered {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replay failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let whole = scan.valid_len == seg.len() && state.log.last_index() == records && state.last_seq == records;
    println!("{records} records, {} bytes, log ends at {}", seg.len(), state.log.last_index());
    // Wall time and page faults of the replay alone (both noisy under
    // callgrind, which is for the instruction count).
    let faults = faults.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    println!("replay took {:.1} ms, {faults} minor page faults", elapsed.as_secs_f64() * 1e3);
    if whole {
        ExitCode::SUCCESS
    } else {
        eprintln!("replay did not reach the end: {scan:?}");
        ExitCode::FAILURE
    }
}

/// This process's minor page faults so far (the tenth field of
/// `/proc/self/stat`), where Linux says.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(7)?.parse().ok()
}
