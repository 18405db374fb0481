//! The closed-loop driver both load clients share: what to send next, when
//! to stop, how a latency is recorded, and a common start line, so raftkv and
//! etcd are measured alike.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::settings::{BenchConfig, Workload};

/// The keys and the value, made once.
pub struct Workset {
    /// Key `i` is `i` zero-padded to the key size.
    pub keys: Vec<String>,
    /// The value every write carries.
    pub value: String,
}

impl Workset {
    /// The keys and value of `cfg`.
    pub fn new(cfg: &BenchConfig) -> Workset {
        let w = cfg.key_size;
        let keys = (0..cfg.keys).map(|k| format!("{k:0w$}")).collect();
        let value = (0..cfg.value_size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        Workset { keys, value }
    }
}

/// State shared by the clients of one phase.
#[derive(Debug, Default)]
pub struct Shared {
    /// Operations left to start (`--ops`), if bounded by count.
    pub budget: Option<AtomicU64>,
    /// Preload: the next key to write.
    pub next_key: AtomicUsize,
    /// Answered successfully (for the progress bar).
    pub done: AtomicU64,
    /// Failed (for the progress bar).
    pub errors: AtomicU64,
}

/// One client's share of the closed loop: decides whether another request
/// may start and what it is, and records how each one ended.
pub struct Worker {
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
    /// One client's worker: draws `workload` requests over `keys` keys from
    /// `seed` (or, if `sequential`, takes every key once in order, shared
    /// with the other workers of `shared`).
    pub fn new(shared: Arc<Shared>, seed: u64, workload: Workload, keys: usize, sequential: bool) -> Worker {
        Worker {
            shared,
            end: None,
            // xorshift must not start at zero.
            rng: seed | 1,
            workload,
            keys,
            sequential,
            // A measured run records many latencies: skip the first regrowths.
            lat: Vec::with_capacity(if sequential { 0 } else { 1 << 14 }),
            errors: 0,
        }
    }

    /// What the worker measured: the latency of each successful request in
    /// nanoseconds (unsorted), and how many failed.
    pub fn results(self) -> (Vec<u64>, u64) {
        (self.lat, self.errors)
    }

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
            Workload::Mixed => self.rng >> 63 == 1,
            w => w.writes(),
        };
        Some((write, (self.rng % self.keys as u64) as usize))
    }

    /// What the worker's requests are.
    pub fn workload(&self) -> Workload {
        self.workload
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
pub struct StartLine {
    /// Where the client reports that it connected (or why it could not).
    pub ready: mpsc::Sender<Result<(), String>>,
    /// Set to the start time when every client is connected.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::settings::Target;

    #[test]
    fn keys_are_fixed_width() {
        let cfg = BenchConfig { keys: 10_000, key_size: 8, value_size: 5, ..BenchConfig::new(Target::Raftkv) };
        let set = Workset::new(&cfg);
        assert_eq!(set.keys[42], "00000042");
        assert!(set.keys.iter().all(|k| k.len() == 8));
        assert_eq!(set.value, "abcde");
    }

    #[test]
    fn worker_respects_budget_and_preload_order() {
        let shared = Arc::new(Shared { budget: Some(AtomicU64::new(3)), ..Shared::default() });
        let mut w = Worker::new(shared.clone(), 7, Workload::Mixed, 10, false);
        let ops: Vec<_> = std::iter::from_fn(|| w.next()).collect();
        assert_eq!(ops.len(), 3);
        assert!(ops.iter().all(|&(_, k)| k < 10));
        let mut w = Worker::new(shared, 7, Workload::Mixed, 10, true);
        let keys: Vec<_> = std::iter::from_fn(|| w.next()).map(|(wr, k)| (assert!(wr), k).1).collect();
        assert_eq!(keys, (0..10).collect::<Vec<_>>());
    }
}
