//! Whole-cluster throughput in one thread (issue 7, items 1 and 2): 3- and
//! 5-node clusters, messages passed in memory, no disk.
//!
//! * `commit/*`: committed entries per second for 16 B, 256 B and 4 KiB
//!   payloads (applied to a state machine that only counts), proposals arriving one at a time and in batches of 64 and 1024.
//! * `reads/*`: linearizable reads per second (ReadIndex, batched per round).
//! * `closed_loop/*`: N clients, each with one write outstanding on its own
//!   session, sending the next when the previous is applied — the shape of
//!   openraft's in-process benchmark.

use std::hint::black_box;
use std::time::Duration;

use benches::{MemCluster, NullMachine};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_core::kv::KvOp;
use raft_core::{ClientRequest, KvStore};

fn commit(c: &mut Criterion) {
    for nodes in [3usize, 5] {
        let mut g = c.benchmark_group(format!("commit/{nodes}-nodes"));
        g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(10);
        for size in [16usize, 256, 4096] {
            for batch in [1usize, 64, 1024] {
                g.throughput(Throughput::Elements(batch as u64 * 16));
                g.bench_with_input(
                    BenchmarkId::new(format!("{size}B"), format!("batch{batch}")),
                    &batch,
                    |b, &batch| {
                        let mut cl = MemCluster::new(nodes, |_| NullMachine::default());
                        b.iter(|| {
                            // 16 rounds per iteration so small batches are not dominated by timer noise.
                            for _ in 0..16 {
                                cl.propose_batch(batch, size);
                                cl.pump();
                            }
                            black_box(cl.leader().commit_index())
                        });
                    },
                );
            }
        }
        g.finish();
    }
}

fn get(key: &str) -> ClientRequest {
    ClientRequest::Read { query: KvOp::Get { key: key.into() }.encode() }
}

fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("reads/3-nodes");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(10);
    for batch in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("batch{batch}")), &batch, |b, &batch| {
            let mut cl = MemCluster::new(3, |_| KvStore::default());
            let req = get("k");
            b.iter(|| {
                for t in 0..batch {
                    cl.submit(t as u64, req.clone());
                }
                cl.pump();
                assert_eq!(cl.replies.len(), batch);
                cl.replies.clear();
            });
        });
    }
    g.finish();
}

fn closed_loop(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_loop/3-nodes");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500)).sample_size(10);
    for clients in [1usize, 64, 256, 1024] {
        let per_iter = (clients as u64 * 8).max(256);
        // (`per_iter` >= clients, so every client's first write counts.)
        g.throughput(Throughput::Elements(per_iter));
        g.bench_with_input(BenchmarkId::from_parameter(format!("{clients}-clients")), &clients, |b, &clients| {
            let (mut cl, sessions) = benches::closed_loop_cluster(3, clients);
            let mut seqs = vec![0u64; clients];
            b.iter_custom(|iters| {
                (0..iters).map(|_| benches::closed_loop_run(&mut cl, &sessions, &mut seqs, per_iter)).sum()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, commit, reads, closed_loop);
criterion_main!(benches);
