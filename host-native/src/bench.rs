//! `raftkv bench`: closed-loop load from N concurrent clients, each one
//! request at a time, reporting throughput and latency percentiles.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Client, ClientOptions};

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

/// A benchmark run's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// How long to measure, in seconds.
    pub duration_secs: f64,
    /// What they do.
    pub workload: Workload,
    /// Distinct keys.
    pub keys: usize,
    /// Bytes per written value.
    pub value_size: usize,
}

/// Latencies in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
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
    /// Requests answered successfully within the measured time.
    pub ops: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Seconds measured.
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
        writeln!(
            f,
            "{:?}: {} clients, {} keys, {}-byte values, {:.1} s",
            c.workload, c.clients, c.keys, c.value_size, self.seconds
        )?;
        writeln!(f, "  {} ops ({} errors): {:.0} ops/s", self.ops, self.errors, self.ops_per_sec)?;
        write!(
            f,
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank; the epsilon keeps 99.9% of 1000 at 999 despite rounding.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs the benchmark against the nodes at `addrs`.
pub async fn run(addrs: Vec<String>, cfg: BenchConfig, opts: ClientOptions) -> Result<BenchReport, String> {
    if cfg.clients == 0 || cfg.keys == 0 || !(cfg.duration_secs > 0.0 && cfg.duration_secs < 86_400.0) {
        return Err("--clients, --keys and --duration must be positive".into());
    }
    let value = "v".repeat(cfg.value_size);
    // Reads need something to read: write every key once, spread over clients.
    if cfg.workload != Workload::Put {
        let mut loaders = Vec::new();
        for w in 0..cfg.clients.min(cfg.keys) {
            let (addrs, opts, value, cfg) = (addrs.clone(), opts.clone(), value.clone(), cfg.clone());
            loaders.push(tokio::spawn(async move {
                let c = Client::new(addrs, opts);
                for k in (w..cfg.keys).step_by(cfg.clients) {
                    c.put(&format!("bench-{k}"), &value).await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            }));
        }
        for l in loaders {
            l.await.map_err(|e| e.to_string())??;
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cfg.duration_secs);
    let mut workers = Vec::new();
    for w in 0..cfg.clients {
        let (addrs, opts, value, cfg) = (addrs.clone(), opts.clone(), value.clone(), cfg.clone());
        workers.push(tokio::spawn(async move {
            let c = Client::new(addrs, opts);
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < end {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = format!("bench-{}", rng % cfg.keys as u64);
                let write = match cfg.workload {
                    Workload::Put => true,
                    Workload::Get => false,
                    Workload::Mixed => rng & (1 << 40) != 0,
                };
                let t = Instant::now();
                let ok = if write { c.put(&key, &value).await.is_ok() } else { c.get(&key).await.is_ok() };
                if ok {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.await.map_err(|e| e.to_string())?;
        all.extend(lat);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let ops = all.len() as u64;
    Ok(BenchReport {
        latency_ms: Latency {
            p50: percentile(&all, 50.0),
            p90: percentile(&all, 90.0),
            p99: percentile(&all, 99.0),
            p999: percentile(&all, 99.9),
            max: all.last().map_or(0.0, |&m| m as f64 / 1000.0),
        },
        config: cfg,
        ops,
        errors,
        seconds,
        ops_per_sec: ops as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
