//! The store's own operations, timed one kind at a time: KEYS keys of 12
//! bytes (`key/00000042`) with 256-byte values, each operation repeated
//! until about half a second has passed, as the store runs them (encoded
//! commands through `StateMachine::apply` and `query`):
//!
//! * `put` — overwrite a random key (the common write);
//! * `get` — read a random key;
//! * `insert+delete` — a new key, then its delete (two entries);
//! * `range100` — a page of 100 keys from a random start;
//! * `freeze` — the copy taken on the event loop before a snapshot;
//! * `snapshot` — encoding the whole store.
//!
//! ```text
//! store_ops [KEYS]    (default 100000)
//! ```
//!
//! Used to weigh the store's layout (BENCHMARKS.md, "The store's layout");
//! wall-clock figures, so compare builds in alternating runs.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use raft_core::kv::KvOp;
use raft_core::rng::Rng;
use raft_core::{KvStore, StateMachine};

fn key(i: u64) -> String {
    format!("key/{i:08}")
}

/// Runs `f` until half a second has passed; prints and returns ns per call.
fn time(name: &str, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:>14}: {:>12.0} ns", ns);
    ns
}

fn main() -> ExitCode {
    let keys = match benches::number_arg(
        std::env::args().nth(1),
        100_000,
        100,
        "usage: store_ops [KEYS]  (a number above 100)",
    ) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let value = "v".repeat(256);
    let mut kv = KvStore::default();
    let mut index = 0u64;
    let mut apply = |kv: &mut KvStore, op: KvOp| {
        index += 1;
        kv.advance(index, index);
        kv.apply(index, index, &op.encode())
    };
    for i in 0..keys {
        apply(&mut kv, KvOp::Put { key: key(i), value: value.clone() });
    }
    let mut rng = Rng::new(1);
    time("put", || {
        let k = key(rng.below(keys));
        black_box(apply(&mut kv, KvOp::Put { key: k, value: value.clone() }));
    });
    let mut rng = Rng::new(2);
    time("get", || {
        black_box(kv.query(&KvOp::Get { key: key(rng.below(keys)) }.encode()));
    });
    let mut fresh = keys;
    time("insert+delete", || {
        fresh += 1;
        apply(&mut kv, KvOp::Put { key: key(fresh), value: value.clone() });
        black_box(apply(&mut kv, KvOp::Delete { key: key(fresh) }));
    });
    let mut rng = Rng::new(3);
    time("range100", || {
        let from = key(rng.below(keys - 100));
        black_box(kv.query(&KvOp::Range { from, to: None, limit: 100 }.encode()));
    });
    time("freeze", || {
        black_box(kv.freeze());
    });
    time("snapshot", || {
        black_box(kv.snapshot());
    });
    if kv.len() as u64 != keys {
        eprintln!("the store holds {} keys, not {keys}", kv.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
