//! [`KvStore`]: the store itself — its keys and their records in key order,
//! the lease table, the store's revision and clock, and the window of recent
//! events. It implements [`spec`](super::spec) exactly (the tests below drive
//! both with the same random commands) and is built for speed: the hot
//! commands (put, append, get, delete, cas) are read in place from their
//! bytes without allocating, and a put of a short value on an existing key
//! allocates nothing (values of up to 22 bytes live inline: [`super::text`]).
//!
//! **Where the keys are** ([`super::keys`]). The records live in a slab; a
//! seeded hash table finds a key's record for the point reads and writes
//! every command makes, and a B-tree of the names gives the order ranges,
//! counts and snapshots need, each name carrying its record's place. The
//! first layout was a `BTreeMap` alone, chosen over a hash table with a
//! `BTreeSet` of its keys (which looked every key up again to walk in
//! order: ranges 2.6× and snapshots 4.5× slower; `cargo bench -p benches
//! --bench store_choice`). A put then searched the tree, a string
//! comparison at every step, and that search grew with the number of keys:
//! the largest part of what a write came to cost more as the closed-loop
//! bench added clients.
//! With the slab, puts and gets are about 1.8× as fast, ranges the same,
//! snapshots up to a fifth slower and the copy taken before a snapshot
//! 2.7× as fast (`examples/store_ops.rs`; BENCHMARKS.md, "Issue 16, item 6,
//! fourth session").

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Bound;
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use super::lease::Leases;
use super::op_ref::KvOpRef;
use super::record::Record;
use super::spec::page_with;
use super::text::Text;
use super::watch::{Before, Change, EventLog, WindowLimits};
use super::{prefix_end, KeyValue, KvOp, KvOutput, TxnOp, TxnResult};
use crate::codec;
use crate::state_machine::{FrozenState, RestoreError, StateMachine};
use crate::types::{Bytes, Index};
use crate::varint;

/// The store's limits. `max_leases` and `tick_ms` decide outputs, so they
/// must be the same on every replica; the window is each node's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    /// Most live leases; a grant beyond gets [`KvOutput::Refused`].
    pub max_leases: usize,
    /// The length of a tick of cluster time in milliseconds, to turn lease
    /// TTLs into ticks (the hosts' tick; 10 ms by default).
    pub tick_ms: u64,
    /// The window of recent events kept for watchers.
    pub window: WindowLimits,
    /// Keys that start with this (unless it is empty) are the host's own
    /// (raftkv's replicated address map): range, prefix and count reads
    /// skip them, so a read over everything shows only clients' keys. It
    /// changes no state, so replicas may differ in it.
    pub hidden: &'static str,
    /// Seeds the hash table the store finds keys in. It changes no output
    /// (nothing walks the table), so replicas may differ in it; a host
    /// whose clients are not trusted picks it at random, so that they
    /// cannot choose keys that all land in one bucket.
    pub hash_seed: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits { max_leases: 100_000, tick_ms: 10, window: WindowLimits::default(), hidden: "", hash_seed: 0 }
    }
}

/// The key-value store (see the [module](super) for what it does).
#[derive(Clone, Debug)]
pub struct KvStore {
    map: Keys,
    leases: Leases,
    /// Index of the last entry applied.
    revision: u64,
    /// Cluster time of the last entry applied.
    clock: u64,
    /// Bytes of keys and values held.
    bytes: usize,
    /// Events of the current revision so far.
    sub: u32,
    events: EventLog,
    limits: KvLimits,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::with_limits(KvLimits::default())
    }
}

impl PartialEq for KvStore {
    /// The replicated state: keys, leases, revision (not the window, which
    /// is each node's own).
    fn eq(&self, o: &Self) -> bool {
        self.map == o.map && self.leases == o.leases && self.revision == o.revision
    }
}
impl Eq for KvStore {}

/// What a write does to a key's lease.
#[derive(Clone, Copy)]
enum LeaseMode {
    /// Keep the key's lease (append).
    Keep,
    /// Attach to this lease (0: none).
    Set(u64),
}

/// A snapshot's rows: keys in order with their records, then the leases.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    revision: u64,
    clock: u64,
    #[serde(borrow)]
    keys: Vec<(&'a str, &'a str, u64, u64, u64, u64)>,
    leases: Vec<(u64, u64, u64, u64)>,
}

/// The snapshot bytes of a store: [`StateMachine::snapshot`] and a frozen
/// copy's [`FrozenState::encode`] both come here. They are postcard's bytes
/// for a [`Wire`] (a test checks), written by hand from the records (in key
/// order): through serde each row took about 400 instructions. `bytes` (of
/// keys and values) sizes the buffer so that it is not regrown while it fills.
fn encode_snapshot<'a>(
    map: impl ExactSizeIterator<Item = &'a Record>,
    leases: &[(u64, u64, u64, u64)],
    revision: u64,
    clock: u64,
    bytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 24 * map.len() + 40 * leases.len() + 32);
    varint::push(&mut out, revision);
    varint::push(&mut out, clock);
    varint::push(&mut out, map.len() as u64);
    for r in map {
        varint::push_bytes(&mut out, r.key.as_bytes());
        varint::push_bytes(&mut out, r.value.as_bytes());
        for n in [r.create, r.modr, r.version, r.lease] {
            varint::push(&mut out, n);
        }
    }
    varint::push(&mut out, leases.len() as u64);
    for &(a, b, c, d) in leases {
        for n in [a, b, c, d] {
            varint::push(&mut out, n);
        }
    }
    out
}

/// The store's replicated state frozen by [`StateMachine::freeze`].
struct FrozenKv {
    /// The records in key order.
    map: Vec<Record>,
    leases: Vec<(u64, u64, u64, u64)>,
    revision: u64,
    clock: u64,
    bytes: usize,
}

impl FrozenState for FrozenKv {
    fn encode(&self) -> Vec<u8> {
        encode_snapshot(self.map.iter(), &self.leases, self.revision, self.clock, self.bytes)
    }
}

impl KvStore {
    /// An empty store with these limits.
    pub fn with_limits(limits: KvLimits) -> Self {
        KvStore {
            map: Keys::new(limits.hash_seed),
            leases: Leases::default(),
            revision: 0,
            clock: 0,
            bytes: 0,
            sub: 0,
            events: EventLog::new(limits.window),
            limits,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|r| &*r.value)
    }

    /// `key` with its revisions.
    pub fn kv(&self, key: &str) -> Option<KeyValue> {
        self.map.get(key).map(Record::kv)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|r| (&*r.key, &*r.value))
    }

    /// The store's revision: the index of the last entry applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The cluster time of the last entry applied.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The live leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The window of recent events.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The limits.
    pub fn limits(&self) -> KvLimits {
        self.limits
    }

    fn recording(&self) -> bool {
        self.events.limits().max_events > 0
    }

    /// Records a change in the window, numbered with the next `sub` of
    /// this revision.
    fn emit(&mut self, change: impl FnOnce(u64, u32) -> Change) {
        let c = change(self.revision, self.sub);
        self.sub += 1;
        self.events.record(c);
    }

    /// Writes `key` at the current revision: `value` replaces the value, or
    /// with `append` is added to it. One allocation for a new value longer
    /// than `INLINE_BYTES_MAX` and one for a new key, none otherwise; the window's
    /// event shares (or, inline, copies) both versions.
    fn set(&mut self, key: &str, value: &str, append: bool, lease: LeaseMode) {
        let revision = self.revision;
        let recording = self.recording();
        // What the window's change needs: the key (moved out of the old
        // version, not cloned), the new value and lease, the old version.
        let (old_lease, new_lease, change) = match self.map.get_mut(key) {
            Some(r) => {
                let value = if append {
                    let mut joined = String::with_capacity(r.value.len() + value.len());
                    joined.push_str(&r.value);
                    joined.push_str(value);
                    Text::from(joined)
                } else {
                    Text::from(value)
                };
                self.bytes = self.bytes - r.value.len() + value.len();
                let lease = match lease {
                    LeaseMode::Set(l) => l,
                    LeaseMode::Keep => r.lease,
                };
                let next = Record {
                    key: r.key.clone(),
                    value,
                    create: r.create,
                    modr: revision,
                    version: r.version + 1,
                    lease,
                };
                let old = core::mem::replace(r, next);
                let old_lease = old.lease;
                let change = recording.then(|| {
                    let (name, before) = Before::split(old);
                    (name, r.value.clone(), Some(before))
                });
                (old_lease, lease, change)
            }
            None => {
                let l = match lease {
                    LeaseMode::Set(l) => l,
                    LeaseMode::Keep => 0,
                };
                self.bytes += key.len() + value.len();
                let name: Arc<str> = Arc::from(key);
                let value = Text::from(value);
                let change = recording.then(|| (name.clone(), value.clone(), None));
                let r = Record { key: name, value, create: revision, modr: revision, version: 1, lease: l };
                let new = self.map.insert(r);
                debug_assert!(new, "the key was not held");
                (0, l, change)
            }
        };
        if old_lease != new_lease {
            if old_lease != 0 {
                self.leases.detach(old_lease, key);
            }
            if new_lease != 0 {
                self.leases.attach(new_lease, key);
            }
        }
        if let Some((name, value, prev)) = change {
            self.emit(|rev, sub| Change::put(rev, sub, name, value, new_lease, prev));
        }
    }

    /// Deletes `key` at the current revision; whether it existed.
    fn remove(&mut self, key: &str) -> bool {
        let Some(r) = self.map.remove(key) else { return false };
        self.bytes -= key.len() + r.value.len();
        if r.lease != 0 {
            self.leases.detach(r.lease, key);
        }
        if self.recording() {
            let (name, before) = Before::split(r);
            self.emit(|rev, sub| Change::delete(rev, sub, name, before));
        }
        true
    }

    /// The hot commands, read in place.
    fn execute_ref(&mut self, op: &KvOpRef<'_>) -> KvOutput {
        let revision = self.revision;
        match *op {
            KvOpRef::Put { key, value } => {
                self.set(key, value, false, LeaseMode::Set(0));
                KvOutput::Written { revision }
            }
            KvOpRef::Append { key, value } => {
                self.set(key, value, true, LeaseMode::Keep);
                KvOutput::Written { revision }
            }
            KvOpRef::Delete { key } => KvOutput::Deleted { existed: self.remove(key), revision },
            KvOpRef::Cas { key, expect, value } => {
                let current = self.get(key);
                if current != expect {
                    return KvOutput::Cas { swapped: false, current: current.map(String::from), revision };
                }
                self.set(key, value, false, LeaseMode::Set(0));
                KvOutput::Cas { swapped: true, current: None, revision }
            }
            KvOpRef::Get { .. } => KvOutput::Invalid,
        }
    }

    /// Applies a decoded write at the current revision.
    fn execute(&mut self, op: &KvOp) -> KvOutput {
        let revision = self.revision;
        match op {
            KvOp::Put { key, value } => {
                self.set(key, value, false, LeaseMode::Set(0));
                KvOutput::Written { revision }
            }
            KvOp::Append { key, value } => {
                self.set(key, value, true, LeaseMode::Keep);
                KvOutput::Written { revision }
            }
            KvOp::Delete { key } => KvOutput::Deleted { existed: self.remove(key), revision },
            KvOp::Cas { key, expect, value } => {
                let current = self.get(key);
                if current != expect.as_deref() {
                    return KvOutput::Cas { swapped: false, current: current.map(String::from), revision };
                }
                self.set(key, value, false, LeaseMode::Set(0));
                KvOutput::Cas { swapped: true, current: None, revision }
            }
            KvOp::PutLease { key, value, lease } => {
                if self.leases.get(*lease).is_none() {
                    return KvOutput::LeaseNotFound { id: *lease, revision };
                }
                self.set(key, value, false, LeaseMode::Set(*lease));
                KvOutput::Written { revision }
            }
            KvOp::Txn(txn) => {
                let succeeded = txn.compare.iter().all(|c| c.holds(self.kv(c.key()).as_ref()));
                let ops = if succeeded { &txn.success } else { &txn.failure };
                let missing = ops.iter().find_map(|op| match op {
                    TxnOp::Put { lease, .. } if *lease != 0 && self.leases.get(*lease).is_none() => Some(*lease),
                    _ => None,
                });
                if let Some(id) = missing {
                    return KvOutput::LeaseNotFound { id, revision };
                }
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(match op {
                        TxnOp::Put { key, value, lease } => {
                            self.set(key, value, false, LeaseMode::Set(*lease));
                            TxnResult::Put
                        }
                        TxnOp::Delete { key } => TxnResult::Deleted { existed: self.remove(key) },
                        TxnOp::Get { key } => TxnResult::Value(self.kv(key)),
                    });
                }
                KvOutput::Txn { succeeded, results, revision }
            }
            KvOp::LeaseGrant { ttl } => {
                if self.leases.len() >= self.limits.max_leases {
                    return KvOutput::Refused { reason: String::from("too many leases"), revision };
                }
                self.leases.grant(revision, *ttl, ttl.div_ceil(self.limits.tick_ms.max(1)), self.clock);
                KvOutput::Lease { id: revision, ttl: *ttl, revision }
            }
            KvOp::LeaseKeepAlive { id } => match self.leases.keep_alive(*id, self.clock) {
                Some(ttl) => KvOutput::Lease { id: *id, ttl, revision },
                None => KvOutput::LeaseNotFound { id: *id, revision },
            },
            KvOp::LeaseRevoke { id } => match self.leases.remove(*id) {
                Some(l) => {
                    let mut deleted = 0;
                    for k in &l.keys {
                        deleted += u64::from(self.remove(k));
                    }
                    KvOutput::LeaseRevoked { deleted, revision }
                }
                None => KvOutput::LeaseNotFound { id: *id, revision },
            },
            KvOp::Get { .. } | KvOp::Range { .. } | KvOp::Prefix { .. } | KvOp::Count { .. } => KvOutput::Invalid,
        }
    }

    fn range_page(&self, from: &str, to: Option<&str>, limit: u64) -> KvOutput {
        let end = to.map_or(Bound::Unbounded, Bound::Excluded);
        if to.is_some_and(|t| t <= from) {
            return KvOutput::Range { kvs: Vec::new(), next: None, revision: self.revision };
        }
        let rows = self.map.range(from, end).filter(|r| !self.is_hidden(&r.key)).map(|r| (&*r.key, r));
        let (kvs, next) = page_with(rows, limit, |r| r.value.len(), |_, r| r.kv());
        KvOutput::Range { kvs, next, revision: self.revision }
    }

    fn count(&self, from: &str, to: Option<&str>) -> u64 {
        if to.is_some_and(|t| t <= from) {
            return 0;
        }
        let end = to.map_or(Bound::Unbounded, Bound::Excluded);
        self.map.count(from, end, |k| !self.is_hidden(k)) as u64
    }

    /// Whether reads over ranges skip `key` ([`KvLimits::hidden`]).
    fn is_hidden(&self, key: &str) -> bool {
        !self.limits.hidden.is_empty() && key.starts_with(self.limits.hidden)
    }

    /// Answers a decoded read at the current revision.
    pub fn read(&self, op: &KvOp) -> KvOutput {
        let revision = self.revision;
        match op {
            KvOp::Get { key } => KvOutput::Value { kv: self.kv(key), revision },
            KvOp::Range { from, to, limit } => self.range_page(from, to.as_deref(), *limit),
            KvOp::Prefix { prefix, from, limit } => {
                let start = from.as_deref().filter(|f| *f > prefix.as_str()).unwrap_or(prefix);
                self.range_page(start, prefix_end(prefix).as_deref(), *limit)
            }
            KvOp::Count { from, to } => KvOutput::Count { count: self.count(from, to.as_deref()), revision },
            _ => KvOutput::Invalid,
        }
    }
}

/// An output as the engine carries it. A write's output (its revision) is
/// a few bytes: encoding it on the stack and copying it once into its
/// [`Bytes`] saves the growing vector and the second copy that `Vec` →
/// `Bytes` makes (about 350 instructions per write on each replica).
fn output_bytes(out: &KvOutput) -> Bytes {
    if let KvOutput::Written { revision } = *out {
        return written_bytes(revision);
    }
    let mut buf = [0u8; 64];
    match postcard::to_slice(out, &mut buf) {
        Ok(used) => Bytes::from(&*used),
        Err(_) => Bytes::from(out.encode()),
    }
}

/// The encoding of [`KvOutput::Written`], the output of nearly every write,
/// written by hand: its variant number (0) and the revision as a varint, as
/// postcard writes them (a test checks), without serde's machinery.
fn written_bytes(revision: u64) -> Bytes {
    let mut buf = [0u8; 1 + varint::MAX_LEN];
    let mut number = [0u8; varint::MAX_LEN];
    let n = varint::put(revision, &mut number);
    buf[1..=n].copy_from_slice(&number[..n]);
    Bytes::from(&buf[..=n])
}

impl StateMachine for KvStore {
    fn advance(&mut self, index: Index, time: u64) {
        self.events.trim();
        self.revision = index;
        self.clock = self.clock.max(time);
        self.sub = 0;
        while let Some(lease) = self.leases.pop_expired(self.clock) {
            for k in &lease.keys {
                self.remove(k);
            }
        }
    }

    fn apply(&mut self, index: Index, time: u64, command: &[u8]) -> Bytes {
        if index != self.revision {
            // The engine always advances first; a direct caller may not have.
            self.advance(index, time);
        }
        let out = match KvOpRef::decode(command) {
            Some(KvOpRef::Get { .. }) => KvOutput::Invalid,
            Some(op) => self.execute_ref(&op),
            None => match KvOp::decode(command) {
                Ok(op) => self.execute(&op),
                Err(_) => KvOutput::Invalid,
            },
        };
        output_bytes(&out)
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        let out = match KvOpRef::decode(query) {
            Some(KvOpRef::Get { key }) => KvOutput::Value { kv: self.kv(key), revision: self.revision },
            Some(_) => KvOutput::Invalid,
            None => match KvOp::decode(query) {
                Ok(op) if op.is_read() => self.read(&op),
                _ => KvOutput::Invalid,
            },
        };
        out.encode()
    }

    fn validate_command(&self, command: &[u8]) -> Result<(), &'static str> {
        if let Some(op) = KvOpRef::decode(command) {
            return match op {
                KvOpRef::Get { .. } => Err("get is a read, not a write"),
                op => op.validate(),
            };
        }
        match KvOp::decode(command) {
            Ok(op) if op.is_read() => Err("a read is not a write"),
            Ok(op) => op.validate(),
            Err(_) => Err("command does not decode"),
        }
    }

    fn validate_query(&self, query: &[u8]) -> Result<(), &'static str> {
        match KvOp::decode(query) {
            Ok(op) if op.is_read() => op.validate(),
            Ok(_) => Err("only get, range, prefix and count are reads"),
            Err(_) => Err("query does not decode"),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        encode_snapshot(self.map.iter(), &self.leases.to_wire(), self.revision, self.clock, self.bytes)
    }

    /// A copy of the keys and leases (not the events window, which is not
    /// in snapshots): the records are copied on the event loop, in key
    /// order (keys are shared `Arc<str>`s and long values shared too, so
    /// not their bytes), but no encoding and no checksum, which the host
    /// does on a thread of its own.
    fn freeze(&self) -> Box<dyn FrozenState> {
        Box::new(FrozenKv {
            map: self.map.iter().cloned().collect(),
            leases: self.leases.to_wire(),
            revision: self.revision,
            clock: self.clock,
            bytes: self.bytes,
        })
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        let wire: Wire<'_> = match postcard::take_from_bytes(data) {
            Ok((w, [])) => w,
            _ => return Err(RestoreError("key-value snapshot does not decode")),
        };
        let mut leases = Leases::from_wire(wire.leases);
        let mut map = Keys::new(self.limits.hash_seed);
        let mut bytes = 0;
        for (k, v, create, modr, version, lease) in wire.keys {
            bytes += k.len() + v.len();
            if lease != 0 {
                if leases.get(lease).is_none() {
                    return Err(RestoreError("a key names a lease the snapshot does not hold"));
                }
                leases.attach(lease, k);
            }
            let r = Record { key: Arc::from(k), value: Text::from(v), create, modr, version, lease };
            if !map.insert(r) {
                return Err(RestoreError("a key appears twice in the snapshot"));
            }
        }
        self.map = map;
        self.leases = leases;
        self.bytes = bytes;
        self.revision = wire.revision;
        self.clock = wire.clock;
        self.sub = 0;
        self.events.reset(wire.revision);
        Ok(())
    }

    fn next_deadline(&self) -> Option<u64> {
        self.leases.next_deadline()
    }
}

// Keep the decoder honest about which bytes it reads (the codec's limits are
// the transport's; a command's own size is bounded by validation).
const _: fn(&[u8]) -> Result<KvOp, codec::DecodeError> = KvOp::decode;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::spec::Spec;
    use crate::kv::watch::{Event, EventKind};
    use crate::kv::{Cmp, Compare, Txn, MAX_KEY_LEN, MAX_PAGE_KEYS};
    use crate::rng::Rng;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn write(kv: &mut KvStore, index: u64, op: &KvOp) -> KvOutput {
        kv.advance(index, index);
        KvOutput::decode(&kv.apply(index, index, &op.encode())).unwrap()
    }

    fn read(kv: &KvStore, op: &KvOp) -> KvOutput {
        KvOutput::decode(&kv.query(&op.encode())).unwrap()
    }

    #[test]
    fn revisions_versions_and_empty_values() {
        let mut kv = KvStore::default();
        assert_eq!(read(&kv, &KvOp::Get { key: s("k") }), KvOutput::Value { kv: None, revision: 0 });
        write(&mut kv, 1, &KvOp::Append { key: s("k"), value: s("a") });
        write(&mut kv, 2, &KvOp::Append { key: s("k"), value: s("b") });
        let got = kv.kv("k").unwrap();
        assert_eq!((got.value.as_str(), got.create_revision, got.mod_revision, got.version), ("ab", 1, 2, 2));
        let cas = |e: Option<&str>, v: &str| KvOp::Cas { key: s("k"), expect: e.map(s), value: s(v) };
        assert_eq!(
            write(&mut kv, 3, &cas(Some("x"), "c")),
            KvOutput::Cas { swapped: false, current: Some(s("ab")), revision: 3 }
        );
        assert_eq!(
            write(&mut kv, 4, &cas(Some("ab"), "c")),
            KvOutput::Cas { swapped: true, current: None, revision: 4 }
        );
        assert_eq!(write(&mut kv, 5, &KvOp::Delete { key: s("k") }), KvOutput::Deleted { existed: true, revision: 5 });
        assert_eq!(write(&mut kv, 6, &KvOp::Delete { key: s("k") }), KvOutput::Deleted { existed: false, revision: 6 });
        write(&mut kv, 7, &cas(None, ""));
        let got = kv.kv("k").unwrap();
        assert_eq!((got.value.as_str(), got.create_revision, got.version), ("", 7, 1), "re-created: a new life");
        assert_eq!(kv.bytes(), 1);
        assert_eq!(kv.revision(), 7);
    }

    #[test]
    fn pages_and_counts() {
        let mut kv = KvStore::default();
        for (i, k) in ["a", "b/1", "b/2", "b/3", "c"].iter().enumerate() {
            write(&mut kv, i as u64 + 1, &KvOp::Put { key: s(k), value: s("v") });
        }
        let keys = |out: &KvOutput| match out {
            KvOutput::Range { kvs, next, .. } => (kvs.iter().map(|k| k.key.clone()).collect::<Vec<_>>(), next.clone()),
            other => panic!("{other:?}"),
        };
        let prefix = |from: Option<&str>, limit| KvOp::Prefix { prefix: s("b/"), from: from.map(s), limit };
        assert_eq!(keys(&read(&kv, &prefix(None, 2))), (vec![s("b/1"), s("b/2")], Some(s("b/3"))));
        assert_eq!(keys(&read(&kv, &prefix(Some("b/3"), 2))), (vec![s("b/3")], None));
        assert_eq!(keys(&read(&kv, &prefix(Some("a"), 0))).0.len(), 3, "a continuation before the prefix starts at it");
        let range = KvOp::Range { from: s("a"), to: Some(s("b/2")), limit: 0 };
        assert_eq!(keys(&read(&kv, &range)), (vec![s("a"), s("b/1")], None));
        let backwards = KvOp::Range { from: s("c"), to: Some(s("a")), limit: 0 };
        assert_eq!(keys(&read(&kv, &backwards)).0.len(), 0);
        assert_eq!(read(&kv, &KvOp::Count { from: s("b"), to: None }), KvOutput::Count { count: 4, revision: 5 });
        assert_eq!(
            read(&kv, &KvOp::Count { from: s("z"), to: Some(s("a")) }),
            KvOutput::Count { count: 0, revision: 5 }
        );
    }

    #[test]
    fn range_reads_skip_the_hidden_keys() {
        let mut kv = KvStore::with_limits(KvLimits { hidden: "\0sys/", ..KvLimits::default() });
        for (i, k) in ["", "\0a", "\0sys/1", "\0sys/2", "b"].iter().enumerate() {
            write(&mut kv, i as u64 + 1, &KvOp::Put { key: s(k), value: s("v") });
        }
        let keys = |out: &KvOutput| match out {
            KvOutput::Range { kvs, next, .. } => (kvs.iter().map(|k| k.key.clone()).collect::<Vec<_>>(), next.clone()),
            other => panic!("{other:?}"),
        };
        let all = KvOp::Range { from: s(""), to: None, limit: 0 };
        assert_eq!(keys(&read(&kv, &all)).0, vec![s(""), s("\0a"), s("b")]);
        let page = KvOp::Range { from: s("\0a"), to: None, limit: 1 };
        assert_eq!(keys(&read(&kv, &page)), (vec![s("\0a")], Some(s("b"))), "the cursor skips them too");
        let prefix = KvOp::Prefix { prefix: s(""), from: None, limit: 0 };
        assert_eq!(keys(&read(&kv, &prefix)).0.len(), 3);
        assert_eq!(read(&kv, &KvOp::Count { from: s(""), to: None }), KvOutput::Count { count: 3, revision: 5 });
        assert_eq!(kv.get("\0sys/1"), Some("v"), "they are still there for the host");
    }

    #[test]
    fn a_page_stops_at_the_key_limit_and_the_byte_limit() {
        let mut kv = KvStore::default();
        for i in 0..MAX_PAGE_KEYS + 5 {
            write(&mut kv, i + 1, &KvOp::Put { key: format!("k{i:05}"), value: s("") });
        }
        let all = KvOp::Range { from: s(""), to: None, limit: 0 };
        match read(&kv, &all) {
            KvOutput::Range { kvs, next, .. } => {
                assert_eq!(kvs.len() as u64, MAX_PAGE_KEYS, "limit 0 is the default page");
                assert_eq!(next.as_deref(), Some("k01000"));
            }
            other => panic!("{other:?}"),
        }
        let mut big = KvStore::default();
        let mb = "x".repeat(crate::kv::MAX_VALUE_LEN);
        for i in 0..6u64 {
            write(&mut big, i + 1, &KvOp::Put { key: format!("b{i}"), value: mb.clone() });
        }
        match read(&big, &KvOp::Range { from: s(""), to: None, limit: 0 }) {
            KvOutput::Range { kvs, next, .. } => {
                assert_eq!(kvs.len(), 4, "4 MiB of values fill a page");
                assert_eq!(next.as_deref(), Some("b4"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leases_expire_in_order_at_apply() {
        let mut kv = KvStore::with_limits(KvLimits { max_leases: 2, ..KvLimits::default() });
        kv.advance(1, 10);
        let grant = |ttl| KvOp::LeaseGrant { ttl }.encode();
        // 45 ms are 5 ticks of 10 ms (rounded up).
        assert_eq!(
            KvOutput::decode(&kv.apply(1, 10, &grant(45))).unwrap(),
            KvOutput::Lease { id: 1, ttl: 45, revision: 1 }
        );
        write(&mut kv, 2, &KvOp::PutLease { key: s("lock"), value: s("me"), lease: 1 });
        assert_eq!(
            write(&mut kv, 3, &KvOp::PutLease { key: s("x"), value: s(""), lease: 9 }),
            KvOutput::LeaseNotFound { id: 9, revision: 3 }
        );
        write(&mut kv, 4, &KvOp::LeaseGrant { ttl: 100 });
        assert_eq!(
            write(&mut kv, 5, &KvOp::LeaseGrant { ttl: 100 }),
            KvOutput::Refused { reason: s("too many leases"), revision: 5 },
            "the lease limit"
        );
        assert_eq!(kv.next_deadline(), Some(15));
        // Entry 15 arrives at time 15: the lease ends before its command, so
        // a put on it finds it gone.
        kv.advance(15, 15);
        assert!(kv.get("lock").is_none());
        let out = KvOutput::decode(&kv.apply(
            15,
            15,
            &KvOp::PutLease { key: s("lock"), value: s("again"), lease: 1 }.encode(),
        ));
        assert_eq!(out.unwrap(), KvOutput::LeaseNotFound { id: 1, revision: 15 });
        let last: Vec<(u64, u32, EventKind)> = kv.events().from(15).map(|e| (e.revision, e.sub, e.kind)).collect();
        assert_eq!(last, vec![(15, 0, EventKind::Delete)]);
    }

    #[test]
    fn snapshot_roundtrip_keeps_revisions_and_leases() {
        let mut kv = KvStore::default();
        write(&mut kv, 1, &KvOp::Put { key: s("a"), value: s("1") });
        write(&mut kv, 2, &KvOp::LeaseGrant { ttl: 50 });
        write(&mut kv, 3, &KvOp::PutLease { key: s("b"), value: s("22"), lease: 2 });
        let mut other = KvStore::default();
        other.restore(&kv.snapshot()).unwrap();
        assert_eq!(other, kv);
        assert_eq!(other.kv("b"), kv.kv("b"));
        assert_eq!(other.events().floor(), 4, "the restored node's window starts after the snapshot");
        assert_eq!(other.leases().get(2).map(|l| l.keys.len()), Some(1));
        write(&mut other, 4, &KvOp::LeaseRevoke { id: 2 });
        assert!(other.get("b").is_none());
        assert!(other.restore(b"\xff\xff\xff").is_err());
        let big = KvOp::Put { key: "k".repeat(MAX_KEY_LEN + 1), value: s("") };
        assert!(kv.validate_command(&big.encode()).is_err());
        assert!(kv.validate_command(b"garbage").is_err());
        assert!(kv.validate_command(&KvOp::Get { key: s("a") }.encode()).is_err());
        assert!(kv.validate_command(&KvOp::Count { from: s("a"), to: None }.encode()).is_err());
        assert!(kv.validate_query(&KvOp::Get { key: s("a") }.encode()).is_ok());
        assert!(kv.validate_query(&KvOp::Delete { key: s("a") }.encode()).is_err());
    }

    #[test]
    fn a_frozen_copy_encodes_what_the_snapshot_said_when_frozen() {
        let mut kv = KvStore::default();
        write(&mut kv, 1, &KvOp::Put { key: s("a"), value: s("1") });
        write(&mut kv, 2, &KvOp::LeaseGrant { ttl: 50 });
        write(&mut kv, 3, &KvOp::PutLease { key: s("b"), value: s("22"), lease: 2 });
        let then = kv.snapshot();
        let frozen = kv.freeze();
        write(&mut kv, 4, &KvOp::Put { key: s("a"), value: s("changed") });
        write(&mut kv, 5, &KvOp::Delete { key: s("b") });
        write(&mut kv, 6, &KvOp::Put { key: s("c"), value: s("new") });
        assert_eq!(frozen.encode(), then, "later writes leaked into the frozen copy");
        assert_ne!(kv.snapshot(), then);
        // The streaming encoder writes what the row vector used to.
        let rows = kv.map.iter().map(|r| (&*r.key, &*r.value, r.create, r.modr, r.version, r.lease));
        let wire = Wire { revision: kv.revision, clock: kv.clock, keys: rows.collect(), leases: kv.leases.to_wire() };
        assert_eq!(postcard::to_allocvec(&wire).unwrap(), kv.snapshot());
    }

    #[test]
    fn the_hand_written_snapshot_is_postcards_wire() {
        let mut kv = KvStore::default();
        let mut index = 1u64;
        let grant = |kv: &mut KvStore, index: &mut u64| {
            *index += 1;
            write(kv, *index, &KvOp::LeaseGrant { ttl: 9_000_000_000 + *index });
            *index
        };
        let a = grant(&mut kv, &mut index);
        let b = grant(&mut kv, &mut index);
        for i in 0..300u64 {
            index += i * i;
            let key = format!("key/{i}/{}", "é".repeat((i % 70) as usize));
            let value = "v".repeat((i * 7 % 400) as usize);
            let op = match i % 3 {
                0 => KvOp::Put { key, value },
                1 => KvOp::PutLease { key, value, lease: a },
                _ => KvOp::PutLease { key, value, lease: b },
            };
            write(&mut kv, index, &op);
        }
        let rows = kv.map.iter().map(|r| (&*r.key, &*r.value, r.create, r.modr, r.version, r.lease));
        let wire = Wire { revision: kv.revision, clock: kv.clock, keys: rows.collect(), leases: kv.leases.to_wire() };
        assert_eq!(kv.snapshot(), postcard::to_allocvec(&wire).unwrap());
        let mut back = KvStore::default();
        back.restore(&kv.snapshot()).unwrap();
        assert_eq!(back, kv);
        let empty = KvStore::default();
        let none = Wire { revision: 0, clock: 0, keys: vec![], leases: vec![] };
        assert_eq!(empty.snapshot(), postcard::to_allocvec(&none).unwrap());
    }

    #[test]
    fn a_written_output_encodes_as_postcard_does() {
        for revision in crate::varint::edge_cases() {
            let out = KvOutput::Written { revision };
            assert_eq!(&*written_bytes(revision), &out.encode()[..], "{revision}");
            assert_eq!(&*output_bytes(&out), &out.encode()[..]);
        }
        let other = KvOutput::Deleted { existed: true, revision: 300 };
        assert_eq!(&*output_bytes(&other), &other.encode()[..]);
    }

    /// A random operation over a few keys and leases.
    fn random_op(rng: &mut Rng, leases: &[u64]) -> KvOp {
        let key = |rng: &mut Rng| format!("{}/{}", ["a", "b"][rng.below(2) as usize], rng.below(4));
        let value = |rng: &mut Rng| format!("v{}", rng.below(5));
        let lease = |rng: &mut Rng| match leases.len() {
            0 => 7,
            n => leases[rng.below(n as u64) as usize],
        };
        let cmp = |rng: &mut Rng| [Cmp::Equal, Cmp::NotEqual, Cmp::Less, Cmp::Greater][rng.below(4) as usize];
        let txn_op = |rng: &mut Rng| match rng.below(3) {
            0 => TxnOp::Put { key: key(rng), value: value(rng), lease: if rng.chance(0.3) { lease(rng) } else { 0 } },
            1 => TxnOp::Delete { key: key(rng) },
            _ => TxnOp::Get { key: key(rng) },
        };
        match rng.below(16) {
            0 | 1 => KvOp::Put { key: key(rng), value: value(rng) },
            2 => KvOp::Append { key: key(rng), value: value(rng) },
            3 => KvOp::Get { key: key(rng) },
            4 => KvOp::Delete { key: key(rng) },
            5 => KvOp::Cas { key: key(rng), expect: rng.chance(0.7).then(|| value(rng)), value: value(rng) },
            6 => KvOp::Range { from: key(rng), to: rng.chance(0.5).then(|| key(rng)), limit: rng.below(4) },
            7 => KvOp::Prefix {
                prefix: s(["a/", "b/", ""][rng.below(3) as usize]),
                from: rng.chance(0.3).then(|| key(rng)),
                limit: rng.below(3),
            },
            8 => KvOp::Count { from: key(rng), to: rng.chance(0.5).then(|| key(rng)) },
            9 | 10 => {
                let compare = (0..rng.below(3))
                    .map(|_| match rng.below(4) {
                        0 => Compare::Value { key: key(rng), cmp: cmp(rng), value: value(rng) },
                        1 => Compare::Version { key: key(rng), cmp: cmp(rng), version: rng.below(3) },
                        2 => Compare::ModRevision { key: key(rng), cmp: cmp(rng), revision: rng.below(40) },
                        _ => Compare::Exists { key: key(rng), exists: rng.chance(0.5) },
                    })
                    .collect();
                let success = (0..rng.below(4)).map(|_| txn_op(rng)).collect();
                let failure = (0..rng.below(3)).map(|_| txn_op(rng)).collect();
                KvOp::Txn(Txn { compare, success, failure })
            }
            11 => KvOp::PutLease { key: key(rng), value: value(rng), lease: lease(rng) },
            12 => KvOp::LeaseGrant { ttl: rng.range(1, 300) },
            13 => KvOp::LeaseKeepAlive { id: lease(rng) },
            14 => KvOp::LeaseRevoke { id: lease(rng) },
            _ => KvOp::Put { key: key(rng), value: value(rng) },
        }
    }

    #[test]
    fn the_store_follows_the_sequential_spec() {
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let limits = KvLimits { max_leases: 3, ..KvLimits::default() };
            let mut store = KvStore::with_limits(limits);
            let mut spec = Spec::new(limits.max_leases, limits.tick_ms);
            let mut spec_events = Vec::new();
            let (mut index, mut time) = (0u64, 0u64);
            let mut leases: Vec<u64> = Vec::new();
            for _ in 0..300 {
                let op = random_op(&mut rng, &leases);
                if op.is_read() {
                    let got = KvOutput::decode(&store.query(&op.encode())).unwrap();
                    assert_eq!(got, spec.query(&op), "seed {seed}: {op:?}");
                    continue;
                }
                index += 1 + rng.below(2);
                time += rng.below(4);
                store.advance(index, time);
                spec_events.extend(spec.advance(index, time));
                let got = KvOutput::decode(&store.apply(index, time, &op.encode())).unwrap();
                let (want, events) = spec.apply(&op);
                spec_events.extend(events);
                assert_eq!(got, want, "seed {seed}: {op:?}");
                if let KvOutput::Lease { id, .. } = want {
                    leases.push(id);
                }
                if rng.chance(0.05) {
                    let mut restored = KvStore::with_limits(limits);
                    restored.restore(&store.snapshot()).unwrap();
                    assert_eq!(restored, store);
                }
            }
            let held: Vec<KeyValue> = store.map.iter().map(Record::kv).collect();
            assert_eq!(held, spec.keys.values().cloned().collect::<Vec<_>>(), "seed {seed}");
            let events: Vec<Event> = store.events().from(0).collect();
            assert_eq!(events, spec_events, "seed {seed}: the same events in the same order");
            assert_eq!(store.leases().len(), spec.leases.len());
        }
    }
}
