//! The data model of a history: operations, outcomes, verdicts and limits;
//! which outputs fit which operations; and the plain-text form a failing
//! history is shown in.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::kv::{prefix_end, KeyValue, TxnOp, TxnResult, MAX_PAGE_KEYS};
pub use crate::kv::{KvOp, KvOutput};

/// How an operation ended, as far as the client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect exactly once, atomically, at some instant in
    /// `[call, ret]`, producing the given output (which names its revision).
    Ok(KvOutput),
    /// Definitely never took effect (e.g. rejected before being proposed).
    Failed,
    /// May have taken effect at any instant after `call` (even after every
    /// other operation), or never; `ret` is ignored.
    Unknown,
}

/// One client operation in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Client that issued the operation (only used for rendering).
    pub client: u64,
    /// What was asked.
    pub op: KvOp,
    /// Logical time of the invocation.
    pub call: u64,
    /// Logical time of the response; must be `>= call` for `Ok` outcomes.
    pub ret: u64,
    /// What the client heard back.
    pub outcome: Outcome,
}

impl Operation {
    /// The output, if the operation completed.
    pub fn output(&self) -> Option<&KvOutput> {
        match &self.outcome {
            Outcome::Ok(o) => Some(o),
            _ => None,
        }
    }

    /// The revision the operation took effect (or read) at, if it completed.
    pub fn revision(&self) -> Option<u64> {
        self.output().and_then(KvOutput::revision)
    }
}

/// Bounds on the work the checker may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of search steps (placements of operations of unknown
    /// outcome tried) per key before giving up with [`Verdict::Inconclusive`].
    pub max_steps: u64,
}

impl Default for Limits {
    /// Fifty million steps: seconds of work, far beyond what realistic
    /// histories need, but still a bound on pathological ones.
    fn default() -> Self {
        Limits { max_steps: 50_000_000 }
    }
}

/// Result of [`check`](super::check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The history has a linearization.
    Linearizable,
    /// The history has none. `key` names the key whose operations cannot be
    /// ordered (or, for a violation of revision order across keys, is
    /// empty); `ops` is a small failing sub-history (see
    /// [`minimize`](super::minimize)). For a malformed history (an `Ok` op
    /// with `ret < call`, or whose output does not fit its op) `ops` is just
    /// the first malformed op.
    Violation {
        /// The key whose sub-history fails (empty: the revision order).
        key: String,
        /// A small failing sub-history.
        ops: Vec<Operation>,
    },
    /// Search gave up (step limit) on `key`: neither proven nor refuted.
    Inconclusive {
        /// The first key (in sorted order) the search gave up on.
        key: String,
    },
}

/// True when `op` cannot be part of any well-formed history: an `Ok` op
/// that returned before it was called, or whose output does not fit its op
/// (the wrong kind, a key it did not ask for, a page out of order or beyond
/// its limit, a transaction's results that do not match its branch).
/// Failed/Unknown ops carry no output and their `ret` is ignored, so they
/// are never malformed.
pub(crate) fn malformed(op: &Operation) -> bool {
    let Outcome::Ok(out) = &op.outcome else { return false };
    if op.ret < op.call {
        return true;
    }
    let own = |kv: &Option<KeyValue>, key: &str| kv.as_ref().is_none_or(|kv| kv.key == key);
    let fits = match (&op.op, out) {
        (KvOp::Put { .. } | KvOp::Append { .. }, KvOutput::Written { .. }) => true,
        (KvOp::PutLease { lease, .. }, KvOutput::LeaseNotFound { id, .. }) => id == lease,
        (KvOp::PutLease { .. }, KvOutput::Written { .. }) => true,
        (KvOp::Get { key }, KvOutput::Value { kv, .. }) => own(kv, key),
        (KvOp::Delete { .. }, KvOutput::Deleted { .. }) => true,
        (
            KvOp::Cas { .. },
            KvOutput::Cas { swapped: false, .. } | KvOutput::Cas { swapped: true, current: None, .. },
        ) => true,
        (KvOp::Range { from, to, limit }, KvOutput::Range { kvs, next, .. }) => {
            page_fits(kvs, next, from, to.as_deref(), *limit)
        }
        (KvOp::Prefix { prefix, from, limit }, KvOutput::Range { kvs, next, .. }) => {
            let start = from.as_deref().filter(|f| *f > prefix.as_str()).unwrap_or(prefix);
            page_fits(kvs, next, start, prefix_end(prefix).as_deref(), *limit)
        }
        (KvOp::Count { .. }, KvOutput::Count { .. }) => true,
        (KvOp::Txn(_), KvOutput::LeaseNotFound { .. }) => true,
        (KvOp::Txn(t), KvOutput::Txn { succeeded, results, .. }) => {
            let ops = if *succeeded { &t.success } else { &t.failure };
            ops.len() == results.len()
                && ops.iter().zip(results).all(|(o, r)| match (o, r) {
                    (TxnOp::Put { .. }, TxnResult::Put) | (TxnOp::Delete { .. }, TxnResult::Deleted { .. }) => true,
                    (TxnOp::Get { key }, TxnResult::Value(kv)) => own(kv, key),
                    _ => false,
                })
        }
        (KvOp::LeaseGrant { ttl }, KvOutput::Lease { id, ttl: t, revision }) => id == revision && ttl == t,
        (KvOp::LeaseGrant { .. }, KvOutput::Refused { .. }) => true,
        (KvOp::LeaseKeepAlive { id }, KvOutput::Lease { id: i, .. } | KvOutput::LeaseNotFound { id: i, .. }) => id == i,
        (KvOp::LeaseRevoke { .. }, KvOutput::LeaseRevoked { .. }) => true,
        (KvOp::LeaseRevoke { id }, KvOutput::LeaseNotFound { id: i, .. }) => id == i,
        _ => false,
    };
    !fits
}

/// Whether a page is in order, inside `[from, to)`, within its limit, and
/// ends before the key it says comes next.
fn page_fits(kvs: &[KeyValue], next: &Option<String>, from: &str, to: Option<&str>, limit: u64) -> bool {
    let max = if limit == 0 { MAX_PAGE_KEYS } else { limit } as usize;
    let inside = |k: &str| k >= from && to.is_none_or(|t| k < t);
    kvs.len() <= max
        && kvs.iter().all(|kv| inside(&kv.key))
        && kvs.windows(2).all(|w| w[0].key < w[1].key)
        && next.as_deref().is_none_or(|n| inside(n) && kvs.last().is_none_or(|l| l.key.as_str() < n))
}

/// Human-readable timeline, one line per op sorted by call time, e.g.
/// `client 3 [call 10, ret 14] append(k, "x") -> written @7`. Unknown ops
/// show `ret ?` because their return time carries no meaning; `@r` is the
/// revision the op took effect or read at.
pub fn render(ops: &[Operation]) -> String {
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.call, o.ret, o.client));
    let mut out = String::new();
    for o in sorted {
        let ret = match o.outcome {
            Outcome::Unknown => String::from("?"),
            _ => format!("{}", o.ret),
        };
        let result = match &o.outcome {
            Outcome::Failed => String::from("failed"),
            Outcome::Unknown => String::from("unknown"),
            Outcome::Ok(out) => show_output(out),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "client {} [call {}, ret {}] {} -> {}", o.client, o.call, ret, show_op(&o.op), result);
    }
    out
}

/// An operation as one short phrase.
pub fn show_op(op: &KvOp) -> String {
    let opt = |o: &Option<String>| o.as_deref().map_or_else(|| String::from("end"), |s| format!("{s:?}"));
    match op {
        KvOp::Put { key, value } => format!("put({key}, {value:?})"),
        KvOp::PutLease { key, value, lease } => format!("put({key}, {value:?}, lease {lease})"),
        KvOp::Append { key, value } => format!("append({key}, {value:?})"),
        KvOp::Get { key } => format!("get({key})"),
        KvOp::Delete { key } => format!("delete({key})"),
        KvOp::Cas { key, expect, value } => format!("cas({key}, {} -> {value:?})", show_state(expect)),
        KvOp::Range { from, to, limit } => format!("range({from:?}, {}, limit {limit})", opt(to)),
        KvOp::Prefix { prefix, from, limit } => format!("prefix({prefix:?}, from {}, limit {limit})", opt(from)),
        KvOp::Count { from, to } => format!("count({from:?}, {})", opt(to)),
        KvOp::Txn(t) => {
            let mut s = String::from("txn(if");
            for c in &t.compare {
                let _ = write!(s, " {c:?}");
            }
            let _ = write!(s, " then {:?} else {:?})", t.success, t.failure);
            s
        }
        KvOp::LeaseGrant { ttl } => format!("lease_grant({ttl})"),
        KvOp::LeaseKeepAlive { id } => format!("lease_keep_alive({id})"),
        KvOp::LeaseRevoke { id } => format!("lease_revoke({id})"),
    }
}

fn show_kv(kv: &Option<KeyValue>) -> String {
    match kv {
        None => String::from("absent"),
        Some(kv) => {
            format!("{:?} (c{} m{} v{} l{})", kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
        }
    }
}

/// An output as one short phrase.
pub fn show_output(out: &KvOutput) -> String {
    match out {
        KvOutput::Written { revision } => format!("written @{revision}"),
        KvOutput::Value { kv, revision } => format!("{} @{revision}", show_kv(kv)),
        KvOutput::Deleted { existed: true, revision } => format!("deleted (existed) @{revision}"),
        KvOutput::Deleted { existed: false, revision } => format!("deleted (was absent) @{revision}"),
        KvOutput::Cas { swapped: true, revision, .. } => format!("swapped @{revision}"),
        KvOutput::Cas { swapped: false, current, revision } => {
            format!("not swapped, current {} @{revision}", show_state(current))
        }
        KvOutput::Invalid => String::from("invalid command"),
        KvOutput::Range { kvs, next, revision } => {
            let mut s = String::from("[");
            for (i, kv) in kvs.iter().enumerate() {
                let sep = if i > 0 { ", " } else { "" };
                let _ = write!(s, "{sep}{}={}", kv.key, show_kv(&Some(kv.clone())));
            }
            let _ = write!(s, "] next {next:?} @{revision}");
            s
        }
        KvOutput::Count { count, revision } => format!("{count} keys @{revision}"),
        KvOutput::Txn { succeeded, results, revision } => format!("txn succeeded={succeeded} {results:?} @{revision}"),
        KvOutput::Lease { id, ttl, revision } => format!("lease {id} ttl {ttl} @{revision}"),
        KvOutput::LeaseRevoked { deleted, revision } => format!("revoked, {deleted} keys deleted @{revision}"),
        KvOutput::LeaseNotFound { id, revision } => format!("lease {id} not found @{revision}"),
        KvOutput::Refused { reason, revision } => format!("refused: {reason} @{revision}"),
    }
}

/// `absent` for a missing key, the quoted value otherwise.
fn show_state(s: &Option<String>) -> String {
    match s {
        None => String::from("absent"),
        Some(v) => format!("{v:?}"),
    }
}
