//! Which ordered store for `kv.rs` (issue 14, item 1): a `BTreeMap` alone,
//! against the hash table the store used before with a `BTreeSet` of its keys
//! beside it. Both hold the same record per key (value, create and mod
//! revision, version, lease) for 100,000 keys of 12 bytes with 256-byte
//! values, and run what the store does:
//!
//! * `get`: one lookup of a random present key;
//! * `put`: overwrite a random present key (the common write);
//! * `insert_delete`: insert a new key and delete it again;
//! * `range100`: read 100 consecutive keys from a random start, cloning each
//!   value as a reply does;
//! * `snapshot`: encode the whole store in key order (postcard), as a
//!   snapshot does.
//!
//! `cargo bench -p benches --bench store_choice`. The figures are in
//! BENCHMARKS.md. The store first took the B-tree alone; since issue 16 it
//! keeps its records in a slab that a hash table and a B-tree of names
//! point into (`raft_core::kv` `keys.rs`): writes as the hash table's, and
//! ordered reads without a hash lookup per row (`examples/store_ops.rs`
//! times the store itself; BENCHMARKS.md, "The store's layout, again").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::ops::Bound;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use raft_core::hash::FxBuild;

#[derive(Clone)]
struct Rec {
    value: String,
    create: u64,
    modr: u64,
    version: u64,
    lease: u64,
}

const KEYS: u64 = 100_000;

fn key(i: u64) -> String {
    format!("key/{i:08}")
}

fn rec(i: u64) -> Rec {
    Rec { value: "v".repeat(256), create: i, modr: i, version: 1, lease: 0 }
}

/// The two layouts under test.
trait Layout {
    fn build() -> Self;
    fn get(&self, k: &str) -> Option<&Rec>;
    fn overwrite(&mut self, k: &str, v: &str, rev: u64);
    fn insert(&mut self, k: String, r: Rec);
    fn delete(&mut self, k: &str);
    fn range(&self, from: &str, n: usize) -> Vec<(String, String)>;
    fn snapshot(&self) -> Vec<u8>;
}

struct Tree(BTreeMap<String, Rec>);

impl Layout for Tree {
    fn build() -> Self {
        Tree((0..KEYS).map(|i| (key(i), rec(i))).collect())
    }
    fn get(&self, k: &str) -> Option<&Rec> {
        self.0.get(k)
    }
    fn overwrite(&mut self, k: &str, v: &str, rev: u64) {
        if let Some(r) = self.0.get_mut(k) {
            r.value.clear();
            r.value.push_str(v);
            r.modr = rev;
            r.version += 1;
        }
    }
    fn insert(&mut self, k: String, r: Rec) {
        self.0.insert(k, r);
    }
    fn delete(&mut self, k: &str) {
        self.0.remove(k);
    }
    fn range(&self, from: &str, n: usize) -> Vec<(String, String)> {
        self.0
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take(n)
            .map(|(k, r)| (k.clone(), r.value.clone()))
            .collect()
    }
    fn snapshot(&self) -> Vec<u8> {
        let rows: Vec<(&str, &str, u64, u64, u64, u64)> =
            self.0.iter().map(|(k, r)| (k.as_str(), r.value.as_str(), r.create, r.modr, r.version, r.lease)).collect();
        postcard_like(&rows)
    }
}

struct HashIndex {
    map: HashMap<String, Rec, FxBuild>,
    order: BTreeSet<String>,
}

impl Layout for HashIndex {
    fn build() -> Self {
        let mut h = HashIndex { map: HashMap::with_hasher(FxBuild { seed: 7 }), order: BTreeSet::new() };
        for i in 0..KEYS {
            h.insert(key(i), rec(i));
        }
        h
    }
    fn get(&self, k: &str) -> Option<&Rec> {
        self.map.get(k)
    }
    fn overwrite(&mut self, k: &str, v: &str, rev: u64) {
        if let Some(r) = self.map.get_mut(k) {
            r.value.clear();
            r.value.push_str(v);
            r.modr = rev;
            r.version += 1;
        }
    }
    fn insert(&mut self, k: String, r: Rec) {
        self.order.insert(k.clone());
        self.map.insert(k, r);
    }
    fn delete(&mut self, k: &str) {
        self.map.remove(k);
        self.order.remove(k);
    }
    fn range(&self, from: &str, n: usize) -> Vec<(String, String)> {
        self.order
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take(n)
            .filter_map(|k| self.map.get(k).map(|r| (k.clone(), r.value.clone())))
            .collect()
    }
    fn snapshot(&self) -> Vec<u8> {
        let rows: Vec<(&str, &str, u64, u64, u64, u64)> = self
            .order
            .iter()
            .filter_map(|k| {
                self.map.get(k).map(|r| (k.as_str(), r.value.as_str(), r.create, r.modr, r.version, r.lease))
            })
            .collect();
        postcard_like(&rows)
    }
}

/// The bytes a snapshot writes for each row (length-prefixed strings and
/// varints, as postcard does), without pulling postcard into this crate.
fn postcard_like(rows: &[(&str, &str, u64, u64, u64, u64)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::with_capacity(rows.len() * 300);
    varint(&mut out, rows.len() as u64);
    for &(k, v, a, b, c, d) in rows {
        varint(&mut out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        varint(&mut out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
        for x in [a, b, c, d] {
            varint(&mut out, x);
        }
    }
    out
}

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn run<L: Layout>(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group(format!("store/{name}"));
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300)).sample_size(20);
    let mut s = L::build();
    let mut rng = Lcg(1);
    g.bench_function("get", |b| b.iter(|| black_box(s.get(&key(rng.below(KEYS))).map(|r| r.version))));
    let v = "w".repeat(256);
    let mut rev = KEYS;
    g.bench_function("put", |b| {
        b.iter(|| {
            rev += 1;
            s.overwrite(&key(rng.below(KEYS)), &v, rev)
        })
    });
    g.bench_function("insert_delete", |b| {
        b.iter(|| {
            let k = format!("key/{:08}x", rng.below(KEYS));
            s.insert(k.clone(), rec(0));
            s.delete(&k);
        })
    });
    g.bench_function("range100", |b| b.iter(|| black_box(s.range(&key(rng.below(KEYS - 100)), 100).len())));
    g.bench_function("snapshot", |b| b.iter(|| black_box(s.snapshot().len())));
    g.finish();
}

fn choice(c: &mut Criterion) {
    run::<Tree>(c, "btree");
    run::<HashIndex>(c, "hash+index");
}

criterion_group!(benches, choice);
criterion_main!(benches);
