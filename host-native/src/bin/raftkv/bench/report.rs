//! The result of a run: throughput and the latency distribution of the
//! successful requests, as text or JSON.

use serde::Serialize;

use super::settings::{BenchConfig, Target};

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
    /// The watch workload: what the watchers received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchStats>,
}

/// What the watchers of the watch workload received.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WatchStats {
    /// Watches open on the prefix.
    pub watchers: usize,
    /// Connections (raftkv) or gRPC streams (etcd) they shared.
    pub connections: usize,
    /// Seconds it took to open them all.
    pub setup_seconds: f64,
    /// Events the watchers should get: successful writes x watchers.
    pub expected_events: u64,
    /// Events received while the writers ran.
    pub events_during: u64,
    /// `events_during / seconds`: events delivered per second under load.
    pub events_per_sec: f64,
    /// Events received in all (after waiting for the rest).
    pub events_total: u64,
    /// How long after the last write the last event came (seconds).
    pub drain_seconds: f64,
    /// Watches the server cancelled.
    pub canceled: u64,
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
        if let Some(w) = &self.watch {
            writeln!(
                f,
                "  {} watchers on {} connections (opened in {:.2} s): {:.0} events/s delivered while writing; \
                 {} of {} events in all, the last {:.2} s after the last write; {} cancelled",
                w.watchers,
                w.connections,
                w.setup_seconds,
                w.events_per_sec,
                w.events_total,
                w.expected_events,
                w.drain_seconds,
                w.canceled
            )?;
        }
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

/// The report of a run of `cfg`: `lat` holds the latency of every successful
/// request in nanoseconds, sorted.
pub fn report(cfg: BenchConfig, preload_seconds: f64, lat: &[u64], errors: u64, seconds: f64) -> BenchReport {
    let ops = lat.len() as u64;
    BenchReport {
        latency_ms: latency(lat),
        config: cfg,
        preload_seconds,
        ops,
        errors,
        seconds,
        ops_per_sec: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
        watch: None,
    }
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
    fn the_report_counts_and_divides() {
        let lat: Vec<u64> = (1..=4).map(|x| x * 1_000_000).collect();
        let r = report(BenchConfig::new(Target::Raftkv), 0.0, &lat, 1, 2.0);
        assert_eq!((r.ops, r.errors, r.ops_per_sec), (4, 1, 2.0));
        assert_eq!(r.latency_ms.max, 4.0);
        let text = r.to_string();
        assert!(text.starts_with("raftkv Put: 32 clients x depth 1"), "{text}");
        assert!(text.contains("4 ops (1 errors): 2 ops/s"), "{text}");
        assert_eq!(report(BenchConfig::new(Target::Etcd), 0.0, &[], 0, 0.0).ops_per_sec, 0.0);
    }
}
