//! The sequential specification of the store: what every operation does to
//! a whole store, written for clarity rather than speed. [`KvStore`] must
//! give the same outputs and events for the same entries (a test drives both
//! with random commands); the linearizability checker judges histories with
//! the per-key rules below ([`written`], [`appended`], [`deleted_event`]);
//! the simulator replays committed logs through it to know which watch
//! events a watcher must receive.
//!
//! Per entry (index `i`, cluster time `t`): [`Spec::advance`] first (the
//! store's revision becomes `i`, the clock `max(clock, t)`, leases whose
//! deadline the clock reached expire and delete their keys), then
//! [`Spec::apply`] for a command or [`Spec::query`] for a read.
//!
//! [`KvStore`]: super::KvStore

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::watch::{Event, EventKind};
use super::{in_range, prefix_end, KeyValue, KvOp, KvOutput, TxnOp, TxnResult, MAX_PAGE_BYTES, MAX_PAGE_KEYS};

/// One lease in the specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecLease {
    /// TTL in milliseconds.
    pub ttl: u64,
    /// TTL in ticks (rounded up).
    pub ticks: u64,
    /// Cluster time at which it expires.
    pub deadline: u64,
}

/// The whole store, plainly: keys, leases, revision and clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Every key.
    pub keys: BTreeMap<String, KeyValue>,
    /// Every live lease, by id.
    pub leases: BTreeMap<u64, SpecLease>,
    /// Index of the last entry applied.
    pub revision: u64,
    /// Cluster time of the last entry applied.
    pub clock: u64,
    /// Most live leases; a grant beyond gets [`KvOutput::Refused`].
    pub max_leases: usize,
    /// Milliseconds per tick (lease TTLs are in milliseconds).
    pub tick_ms: u64,
    /// Events of the current revision so far (numbers the next one).
    sub: u32,
}

impl Default for Spec {
    fn default() -> Self {
        let l = super::KvLimits::default();
        Spec::new(l.max_leases, l.tick_ms)
    }
}

/// The record a write of `value` at `revision` leaves, given the key's
/// current record (version counts from 1 at creation; a write keeps the
/// creation revision).
pub fn written(cur: Option<&KeyValue>, key: &str, value: String, lease: u64, revision: u64) -> KeyValue {
    let (create_revision, version) = cur.map_or((revision, 1), |c| (c.create_revision, c.version + 1));
    KeyValue { key: String::from(key), value, create_revision, mod_revision: revision, version, lease }
}

/// The record an append of `fragment` at `revision` leaves (the key keeps
/// its lease).
pub fn appended(cur: Option<&KeyValue>, key: &str, fragment: &str, revision: u64) -> KeyValue {
    let mut value = cur.map_or_else(String::new, |c| c.value.clone());
    value.push_str(fragment);
    written(cur, key, value, cur.map_or(0, |c| c.lease), revision)
}

/// What a delete event carries as its key-value: the key, and the
/// revision of the delete as its `mod_revision`; nothing else.
pub fn deleted_event(key: &str, revision: u64) -> KeyValue {
    KeyValue::deleted(key, revision)
}

impl Spec {
    /// An empty store allowing `max_leases` leases, with ticks of `tick_ms`.
    pub fn new(max_leases: usize, tick_ms: u64) -> Self {
        Spec { keys: BTreeMap::new(), leases: BTreeMap::new(), revision: 0, clock: 0, max_leases, tick_ms, sub: 0 }
    }

    fn event(&mut self, kind: EventKind, kv: KeyValue, prev: Option<KeyValue>) -> Event {
        let e = Event { revision: self.revision, sub: self.sub, kind, kv, prev };
        self.sub += 1;
        e
    }

    fn put(&mut self, key: &str, kv: KeyValue, events: &mut Vec<Event>) {
        let prev = self.keys.insert(String::from(key), kv.clone());
        let e = self.event(EventKind::Put, kv, prev);
        events.push(e);
    }

    fn delete(&mut self, key: &str, events: &mut Vec<Event>) -> bool {
        match self.keys.remove(key) {
            Some(prev) => {
                let e = self.event(EventKind::Delete, deleted_event(key, self.revision), Some(prev));
                events.push(e);
                true
            }
            None => false,
        }
    }

    /// Deletes every key attached to `lease`, in key order.
    fn drop_lease_keys(&mut self, lease: u64, events: &mut Vec<Event>) -> u64 {
        let keys: Vec<String> = self.keys.values().filter(|kv| kv.lease == lease).map(|kv| kv.key.clone()).collect();
        for k in &keys {
            self.delete(k, events);
        }
        keys.len() as u64
    }

    /// Entry `index` at cluster time `time` is about to apply: the revision
    /// moves to it, the clock to `time`, and leases whose deadline the clock
    /// reached expire, earliest deadline first (ties by id), deleting their
    /// keys. Returns the expiry's events.
    pub fn advance(&mut self, index: u64, time: u64) -> Vec<Event> {
        self.revision = index;
        self.clock = self.clock.max(time);
        self.sub = 0;
        let mut due: Vec<(u64, u64)> =
            self.leases.iter().filter(|(_, l)| l.deadline <= self.clock).map(|(&id, l)| (l.deadline, id)).collect();
        due.sort_unstable();
        let mut events = Vec::new();
        for (_, id) in due {
            self.leases.remove(&id);
            self.drop_lease_keys(id, &mut events);
        }
        events
    }

    /// Applies a write at the current revision (after [`Spec::advance`]).
    pub fn apply(&mut self, op: &KvOp) -> (KvOutput, Vec<Event>) {
        let revision = self.revision;
        let mut events = Vec::new();
        let out = match op {
            KvOp::Put { key, value } => {
                let kv = written(self.keys.get(key), key, value.clone(), 0, revision);
                self.put(key, kv, &mut events);
                KvOutput::Written { revision }
            }
            KvOp::PutLease { key, value, lease } => {
                if !self.leases.contains_key(lease) {
                    return (KvOutput::LeaseNotFound { id: *lease, revision }, events);
                }
                let kv = written(self.keys.get(key), key, value.clone(), *lease, revision);
                self.put(key, kv, &mut events);
                KvOutput::Written { revision }
            }
            KvOp::Append { key, value } => {
                let kv = appended(self.keys.get(key), key, value, revision);
                self.put(key, kv, &mut events);
                KvOutput::Written { revision }
            }
            KvOp::Delete { key } => KvOutput::Deleted { existed: self.delete(key, &mut events), revision },
            KvOp::Cas { key, expect, value } => {
                let current = self.keys.get(key).map(|kv| kv.value.clone());
                if current != *expect {
                    return (KvOutput::Cas { swapped: false, current, revision }, events);
                }
                let kv = written(self.keys.get(key), key, value.clone(), 0, revision);
                self.put(key, kv, &mut events);
                KvOutput::Cas { swapped: true, current: None, revision }
            }
            KvOp::Txn(txn) => {
                let succeeded = txn.compare.iter().all(|c| c.holds(self.keys.get(c.key())));
                let ops = if succeeded { &txn.success } else { &txn.failure };
                let missing = ops.iter().find_map(|op| match op {
                    TxnOp::Put { lease, .. } if *lease != 0 && !self.leases.contains_key(lease) => Some(*lease),
                    _ => None,
                });
                if let Some(id) = missing {
                    return (KvOutput::LeaseNotFound { id, revision }, events);
                }
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(match op {
                        TxnOp::Put { key, value, lease } => {
                            let kv = written(self.keys.get(key), key, value.clone(), *lease, revision);
                            self.put(key, kv, &mut events);
                            TxnResult::Put
                        }
                        TxnOp::Delete { key } => TxnResult::Deleted { existed: self.delete(key, &mut events) },
                        TxnOp::Get { key } => TxnResult::Value(self.keys.get(key).cloned()),
                    });
                }
                KvOutput::Txn { succeeded, results, revision }
            }
            KvOp::LeaseGrant { ttl } => {
                if self.leases.len() >= self.max_leases {
                    return (KvOutput::Refused { reason: String::from("too many leases"), revision }, events);
                }
                let ticks = ttl.div_ceil(self.tick_ms.max(1));
                self.leases
                    .insert(revision, SpecLease { ttl: *ttl, ticks, deadline: self.clock.saturating_add(ticks) });
                KvOutput::Lease { id: revision, ttl: *ttl, revision }
            }
            KvOp::LeaseKeepAlive { id } => match self.leases.get_mut(id) {
                Some(l) => {
                    l.deadline = self.clock.saturating_add(l.ticks);
                    KvOutput::Lease { id: *id, ttl: l.ttl, revision }
                }
                None => KvOutput::LeaseNotFound { id: *id, revision },
            },
            KvOp::LeaseRevoke { id } => {
                if self.leases.remove(id).is_none() {
                    return (KvOutput::LeaseNotFound { id: *id, revision }, events);
                }
                let deleted = self.drop_lease_keys(*id, &mut events);
                KvOutput::LeaseRevoked { deleted, revision }
            }
            KvOp::Get { .. } | KvOp::Range { .. } | KvOp::Prefix { .. } | KvOp::Count { .. } => KvOutput::Invalid,
        };
        (out, events)
    }

    /// Answers a read at the current revision.
    pub fn query(&self, op: &KvOp) -> KvOutput {
        let revision = self.revision;
        match op {
            KvOp::Get { key } => KvOutput::Value { kv: self.keys.get(key).cloned(), revision },
            KvOp::Range { from, to, limit } => {
                let (kvs, next) = self.page(from, to.as_deref(), *limit);
                KvOutput::Range { kvs, next, revision }
            }
            KvOp::Prefix { prefix, from, limit } => {
                let start = from.as_ref().filter(|f| *f > prefix).unwrap_or(prefix);
                let end = prefix_end(prefix);
                let (kvs, next) = self.page(start, end.as_deref(), *limit);
                KvOutput::Range { kvs, next, revision }
            }
            KvOp::Count { from, to } => {
                KvOutput::Count { count: self.in_range(from, to.as_deref()).count() as u64, revision }
            }
            _ => KvOutput::Invalid,
        }
    }

    fn page(&self, from: &str, to: Option<&str>, limit: u64) -> (Vec<KeyValue>, Option<String>) {
        let rows = self.in_range(from, to).map(|kv| (kv.key.as_str(), kv));
        page_with(rows, limit, |kv| kv.value.len(), |_, kv| kv.clone())
    }

    fn in_range<'a>(&'a self, from: &'a str, to: Option<&'a str>) -> impl Iterator<Item = &'a KeyValue> + 'a {
        self.keys.values().filter(move |kv| in_range(&kv.key, from, to))
    }
}

/// One page of a range read over `rows` (keys in order, each with what
/// [`KeyValue`] is built from): at most `limit` keys (0: [`MAX_PAGE_KEYS`]),
/// ending early once [`MAX_PAGE_BYTES`] of keys and values are in it (but
/// never empty while keys remain), and the first key left out.
pub fn page_with<'a, T>(
    rows: impl Iterator<Item = (&'a str, T)>,
    limit: u64,
    value_len: impl Fn(&T) -> usize,
    build: impl Fn(&str, T) -> KeyValue,
) -> (Vec<KeyValue>, Option<String>) {
    let max = if limit == 0 { MAX_PAGE_KEYS } else { limit.min(MAX_PAGE_KEYS) } as usize;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (key, row) in rows {
        if out.len() == max || (bytes >= MAX_PAGE_BYTES && !out.is_empty()) {
            return (out, Some(String::from(key)));
        }
        bytes += key.len() + value_len(&row);
        out.push(build(key, row));
    }
    (out, None)
}

/// Runs one operation through `spec`: a read is answered at the current
/// revision; a write is the command of entry `index` at cluster time `time`
/// ([`Spec::advance`], then [`Spec::apply`]). The output a correct store gives.
pub fn step(spec: &mut Spec, index: u64, time: u64, op: &KvOp) -> KvOutput {
    if op.is_read() {
        return spec.query(op);
    }
    spec.advance(index, time);
    spec.apply(op).0
}
