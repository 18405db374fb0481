//! What a benchmark run is asked to do: the store, the load and its
//! shape, as `raftkv bench`'s options set them.

use serde::Serialize;

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
    /// Linearizable prefix reads of 100 keys each: the keys that share all
    /// but the last two digits of a key drawn at random.
    Range,
    /// Transactions: one comparison (the key's mod revision is below 2^53,
    /// which always holds) and one put.
    Txn,
    /// Watch fan-out: `--watchers` watches on one prefix, the clients
    /// writing keys under it; measures the events delivered per second.
    Watch,
}

impl Workload {
    /// Whether its requests are writes (else reads).
    pub fn writes(self) -> bool {
        matches!(self, Workload::Put | Workload::Txn | Workload::Watch)
    }
}

/// The prefix the watch workload writes under and watches.
pub const WATCH_PREFIX: &str = "w/";

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
    /// Spread the clients over every node instead of sending everything to
    /// the leader (etcd: every endpoint; raftkv: the get workload's clients,
    /// whose reads followers serve).
    pub etcd_spread: bool,
    /// The watch workload: watches opened on the prefix.
    pub watchers: usize,
    /// The watch workload: watches per connection (gRPC stream for etcd).
    pub watchers_per_conn: usize,
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
            watchers: 100,
            watchers_per_conn: 100,
            progress: false,
        }
    }

    /// Refuses parameters that make no run: zero counts, too deep a
    /// pipeline, more keys than the key size can number, no duration.
    pub fn check(&self) -> Result<(), String> {
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
        if self.workload == Workload::Range && (self.key_size < 3 || self.keys < 100) {
            return Err(
                "--workload range reads 100 keys per prefix: needs --keys of 100 or more, --key-size 3 or more".into(),
            );
        }
        if self.workload == Workload::Watch && (self.watchers == 0 || self.watchers_per_conn == 0) {
            return Err("--watchers and --watchers-per-conn must be positive".into());
        }
        match (self.duration_secs, self.ops) {
            (_, Some(0)) => Err("--ops must be positive".into()),
            (_, Some(_)) => Ok(()),
            (Some(d), None) if d > 0.0 && d < 86_400.0 => Ok(()),
            _ => Err("--duration must be a positive number of seconds below a day".into()),
        }
    }

    /// Whether the keys are written once before the measured run.
    pub fn preloads(&self) -> bool {
        match self.preload {
            Preload::Auto => !self.workload.writes(),
            Preload::Yes | Preload::Only => true,
            Preload::No => false,
        }
    }
}

/// Most requests in flight per client: a raftkv session accepts 128 writes
/// between its ack and its newest seq.
pub const MAX_DEPTH: usize = 128;

/// How the load client talks to etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EtcdApi {
    /// gRPC over HTTP/2 (etcd's own protocol, what etcdctl uses).
    Grpc,
    /// The JSON gateway over HTTP/1.1.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let cfg = BenchConfig { keys: 10_000, key_size: 8, value_size: 5, ..BenchConfig::new(Target::Raftkv) };
        cfg.check().unwrap();
        let too_many = BenchConfig { keys: 1001, key_size: 3, ..cfg.clone() };
        assert!(too_many.check().is_err());
        assert!(BenchConfig { depth: 129, ..cfg.clone() }.check().is_err());
        assert!(BenchConfig { ops: Some(0), ..cfg.clone() }.check().is_err());
        assert!(BenchConfig { duration_secs: None, ops: Some(5), ..cfg.clone() }.check().is_ok());
        assert!(!cfg.preloads(), "a put run needs no preload");
        assert!(BenchConfig { workload: Workload::Mixed, ..cfg }.preloads());
    }
}
