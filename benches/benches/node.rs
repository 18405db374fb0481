//! Single-node and component costs (issue 7, item 3).
//!
//! * `follower/append_{1,64}`: a follower handling an AppendEntries of 1 and 64
//!   entries (16 B each), including its journal record and acknowledgement.
//! * `vote`: handling a RequestVote and answering it.
//! * `leader/read_round`: a ReadIndex round on a 3-node leader (read in, heartbeat
//!   out, one acknowledgement in, read answered).
//! * `codec/*`: encoding and decoding a 64-entry AppendEntries message and a
//!   64-entry journal record with its CRC (throughput in bytes).
//! * `journal/replay_1M`: scanning and replaying 1,000,000 journal records,
//!   payloads copied (`recover`) and left in the shared read buffer
//!   (`recover_shared`, what the native host does); beside them, reading the
//!   same bytes from a file in the page cache (the floor) and their CRC-32C
//!   alone (instruction and table).
//! * `checker/10k`: the linearizability checker on a 10,000-operation history.
//! * `sim/events`: simulator events per second (3 nodes, steady load).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raft_core::checker::{self, Limits};
use raft_core::journal::{self, Record};
use raft_core::kv::KvOp;
use raft_core::sim::workload::checked_run;
use raft_core::sim::{Sim, SimConfig};
use raft_core::{Body, ClientRequest, Config, DigestMachine, Entry, KvStore, Message, Payload, Raft};

fn entries(first: u64, n: usize, term: u64) -> Vec<Entry> {
    (0..n as u64)
        .map(|i| Entry { term, index: first + i, time: 0, payload: Payload::Command(vec![7; 16].into()) })
        .collect()
}

fn follower() -> Raft<DigestMachine> {
    let mut r = Raft::new(Config::new(2, vec![1, 2, 3]), DigestMachine::default()).unwrap();
    // Learn term 1 and leader 1.
    let hb = Message {
        from: 1,
        to: 2,
        term: 1,
        from_inc: 0,
        to_inc: 0,
        body: Body::Append { prev_index: 0, prev_term: 0, entries: vec![], commit: 0, round: 0, to_epoch: 0 },
    };
    r.step(hb).unwrap();
    let _ = r.take_ready();
    r
}

fn follower_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("follower");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    for n in [1usize, 64] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("append_{n}"), |b| {
            let mut r = follower();
            let mut next = 1u64;
            b.iter(|| {
                let m = Message {
                    from: 1,
                    to: 2,
                    term: 1,
                    from_inc: 0,
                    to_inc: 0,
                    body: Body::Append {
                        prev_index: next - 1,
                        prev_term: if next == 1 { 0 } else { 1 },
                        entries: entries(next, n, 1),
                        commit: next - 1,
                        round: 0,
                        to_epoch: 0,
                    },
                };
                next += n as u64;
                r.step(m).unwrap();
                let ready = r.take_ready();
                r.persisted(ready.records.last().map_or(0, |x| x.0));
                black_box(r.take_ready());
            });
        });
    }
    g.finish();
}

fn vote(c: &mut Criterion) {
    c.bench_function("vote", |b| {
        b.iter_batched(
            || Raft::new(Config::new(2, vec![1, 2, 3]), DigestMachine::default()).unwrap(),
            |mut r| {
                let m = Message {
                    from: 1,
                    to: 2,
                    term: 1,
                    from_inc: 0,
                    to_inc: 0,
                    body: Body::Vote { last_index: 0, last_term: 0, transfer: false },
                };
                r.step(m).unwrap();
                let ready = r.take_ready();
                r.persisted(ready.records.last().map_or(0, |x| x.0));
                black_box(r.take_ready())
            },
            BatchSize::SmallInput,
        );
    });
}

fn read_round(c: &mut Criterion) {
    c.bench_function("leader/read_round", |b| {
        let mut cl = benches::MemCluster::new(3, |_| KvStore::default());
        let req = ClientRequest::Read { query: KvOp::Get { key: "k".into() }.encode() };
        b.iter(|| {
            cl.submit(1, req.clone());
            cl.pump();
            black_box(cl.replies.pop())
        });
    });
}

fn codec(c: &mut Criterion) {
    let m = Message {
        from: 1,
        to: 2,
        term: 3,
        from_inc: 0,
        to_inc: 0,
        body: Body::Append {
            prev_index: 9,
            prev_term: 3,
            entries: entries(10, 64, 3),
            commit: 9,
            round: 1,
            to_epoch: 0,
        },
    };
    let bytes = m.encode();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("message_encode_64", |b| b.iter(|| black_box(m.encode())));
    g.bench_function("message_decode_64", |b| b.iter(|| black_box(Message::decode(&bytes, 1 << 20).unwrap())));
    let rec = Record::Append { first_index: 10, entries: entries(10, 64, 3) };
    let mut frame = Vec::new();
    journal::write_segment_header(&mut frame);
    journal::encode_record(1, &rec, &mut frame);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("record_encode_64", |b| {
        let mut out = Vec::with_capacity(frame.len());
        b.iter(|| {
            out.clear();
            journal::encode_record(1, &rec, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("record_scan_64", |b| b.iter(|| black_box(journal::scan(&frame).unwrap())));
    g.finish();
}

fn replay(c: &mut Criterion) {
    // 1,000,000 records: one 16-byte entry each, as a busy leader writes them.
    let mut seg = Vec::new();
    journal::write_segment_header(&mut seg);
    for i in 1..=1_000_000u64 {
        let rec = Record::Append { first_index: i, entries: entries(i, 1, 1) };
        journal::encode_record(i, &rec, &mut seg);
    }
    let mut g = c.benchmark_group("journal");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(seg.len() as u64));
    g.bench_function("replay_1M_records", |b| {
        b.iter(|| {
            let (st, _) = journal::recover(&seg).unwrap();
            assert_eq!(st.log.last_index(), 1_000_000);
            black_box(st.last_seq)
        })
    });
    // As the native host replays: the segment in a shared read buffer, the
    // payloads decoded as ranges of it instead of copies.
    let shared = std::sync::Arc::new(seg.clone());
    g.bench_function("replay_1M_records_shared", |b| {
        b.iter(|| {
            let (st, _) = journal::recover_shared(&shared).unwrap();
            assert_eq!(st.log.last_index(), 1_000_000);
            black_box(st.last_seq)
        })
    });
    // The floor replay is measured against: the same bytes read back from a
    // file in the page cache (what `cat` costs), and checksummed alone.
    let path = std::env::temp_dir().join(format!("raftkv-replay-bench-{}.seg", std::process::id()));
    std::fs::write(&path, &seg).unwrap();
    g.bench_function("read_1M_records_from_page_cache", |b| b.iter(|| black_box(std::fs::read(&path).unwrap().len())));
    g.bench_function("crc32c_1M_records", |b| b.iter(|| black_box(raft_core::codec::crc32c(&seg))));
    g.bench_function("crc32c_table_1M_records", |b| b.iter(|| black_box(raft_core::crc::table(&seg))));
    g.finish();
    let _ = std::fs::remove_file(&path);
}

fn checker_10k(c: &mut Criterion) {
    // A real history: simulated clients under faults, the whole history of
    // one run of 400,000 events. How many operations that makes depends on
    // the workload's mix, which changes as the API grows (about 5,000
    // today, 10,000 once), so the throughput is counted in the history's own
    // operations. (The first 10,000 operations of a run twice as long took
    // over four minutes a check: not a bench, and left for the checker's
    // own work.)
    let history = checked_run(1, 400_000, raft_core::Bugs::default()).history;
    assert!(history.len() >= 1_000, "only {} ops: the bench would measure nothing", history.len());
    let mut g = c.benchmark_group("checker");
    g.sample_size(10);
    g.throughput(Throughput::Elements(history.len() as u64));
    g.bench_function("history_of_one_run", |b| b.iter(|| black_box(checker::check(&history, &Limits::default()))));
    g.finish();
}

fn sim_events(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.bench_function("events_1s_3_nodes_loaded", |b| {
        b.iter_batched(
            || {
                let mut sim = Sim::new(SimConfig { nodes: 3, seed: 1, ..SimConfig::default() });
                sim.run_for(1_000_000);
                sim
            },
            |mut sim| {
                let before = sim.stats.events;
                for _ in 0..100 {
                    if let Some(l) = sim.leader() {
                        let _ = sim.propose(l, vec![1; 16]);
                    }
                    sim.run_for(10_000);
                }
                black_box(sim.stats.events - before)
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, follower_append, vote, read_round, codec, replay, checker_10k, sim_events);
criterion_main!(benches);
