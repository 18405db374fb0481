//! The data model of a history: operations, outcomes, verdicts and limits;
//! the sequential specification an operation is judged against; and the
//! plain-text form a failing history is shown in.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

pub use crate::kv::{KvOp, KvOutput};

/// How an operation ended, as far as the client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect exactly once, atomically, at some instant in
    /// `[call, ret]`, producing the given output.
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

/// Bounds on the work the checker may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of search steps (candidate operations tried) per key
    /// before giving up with [`Verdict::Inconclusive`].
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
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// The history for `key` has no linearization. `ops` is the smallest
    /// failing sub-history found (see [`minimize`](super::minimize)). For a malformed history
    /// (an `Ok` op with `ret < call`, or whose output kind does not fit its
    /// op kind) `ops` is just the first malformed op of that key.
    Violation {
        /// The key whose sub-history fails.
        key: String,
        /// A small failing sub-history of that key.
        ops: Vec<Operation>,
    },
    /// Search gave up (step or memory limit) on `key`: neither proven nor
    /// refuted.
    Inconclusive {
        /// The first key (in sorted order) the search gave up on.
        key: String,
    },
}

// ---------------------------------------------------------------------------
// Sequential model
// ---------------------------------------------------------------------------

/// Apply `op` to the state of its key, returning the new state and the
/// output a correct store would give: [`crate::kv::step`], the store's own
/// sequential specification, in the shape the search wants.
pub fn step(state: &Option<String>, op: &KvOp) -> (Option<String>, KvOutput) {
    let (change, out) = crate::kv::step(state.as_deref(), op);
    (change.unwrap_or_else(|| state.clone()), out)
}

/// True when `op` cannot be part of any well-formed history: an `Ok` op
/// that returned before it was called, or whose output kind does not fit
/// its op kind (including a successful CAS that reports a current value,
/// which the model never produces). Failed/Unknown ops carry no output and
/// their `ret` is ignored, so they are never malformed.
pub(crate) fn malformed(op: &Operation) -> bool {
    let out = match &op.outcome {
        Outcome::Ok(out) => out,
        Outcome::Failed | Outcome::Unknown => return false,
    };
    if op.ret < op.call {
        return true;
    }
    let fits = matches!(
        (&op.op, out),
        (KvOp::Put { .. } | KvOp::Append { .. }, KvOutput::Written)
            | (KvOp::Get { .. }, KvOutput::Value(_))
            | (KvOp::Delete { .. }, KvOutput::Deleted { .. })
            | (KvOp::Cas { .. }, KvOutput::Cas { swapped: false, .. } | KvOutput::Cas { swapped: true, current: None })
    );
    !fits
}

/// Human-readable timeline, one line per op sorted by call time, e.g.
/// `client 3 [call 10, ret 14] append(k, "x") -> written`. Unknown ops show
/// `ret ?` because their return time carries no meaning.
pub fn render(ops: &[Operation]) -> String {
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.call, o.ret, o.client));
    let mut out = String::new();
    for o in sorted {
        let ret = match o.outcome {
            Outcome::Unknown => String::from("?"),
            _ => format!("{}", o.ret),
        };
        let what = match &o.op {
            KvOp::Put { key, value } => format!("put({key}, {value:?})"),
            KvOp::Append { key, value } => format!("append({key}, {value:?})"),
            KvOp::Get { key } => format!("get({key})"),
            KvOp::Delete { key } => format!("delete({key})"),
            KvOp::Cas { key, expect, value } => {
                format!("cas({key}, {} -> {value:?})", show_state(expect))
            }
        };
        let result = match &o.outcome {
            Outcome::Failed => String::from("failed"),
            Outcome::Unknown => String::from("unknown"),
            Outcome::Ok(KvOutput::Written) => String::from("written"),
            Outcome::Ok(KvOutput::Value(v)) => show_state(v),
            Outcome::Ok(KvOutput::Deleted { existed: true }) => String::from("deleted (existed)"),
            Outcome::Ok(KvOutput::Deleted { existed: false }) => String::from("deleted (was absent)"),
            Outcome::Ok(KvOutput::Cas { swapped: true, .. }) => String::from("swapped"),
            Outcome::Ok(KvOutput::Cas { swapped: false, current }) => {
                format!("not swapped, current {}", show_state(current))
            }
            Outcome::Ok(KvOutput::Invalid) => String::from("invalid command"),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "client {} [call {}, ret {}] {} -> {}", o.client, o.call, ret, what, result);
    }
    out
}

/// `absent` for a missing key, the quoted value otherwise.
fn show_state(s: &Option<String>) -> String {
    match s {
        None => String::from("absent"),
        Some(v) => format!("{v:?}"),
    }
}

// ---------------------------------------------------------------------------
// Hashing (deterministic: no randomness, no clocks)
// ---------------------------------------------------------------------------

/// The string a write puts into the state (whole value or appended
/// fragment), used by [`minimize`] to keep the source of an observed value.
pub(crate) fn written_fragment(op: &Operation) -> Option<&str> {
    match &op.op {
        KvOp::Put { value, .. } | KvOp::Append { value, .. } | KvOp::Cas { value, .. } => Some(value),
        KvOp::Get { .. } | KvOp::Delete { .. } => None,
    }
}

/// The present value an `Ok` op saw: a read's value, a failed CAS's
/// current value, or a successful CAS's expected value.
pub(crate) fn observed_value(op: &Operation) -> Option<&str> {
    match (&op.op, &op.outcome) {
        (_, Outcome::Ok(KvOutput::Value(Some(v))))
        | (_, Outcome::Ok(KvOutput::Cas { swapped: false, current: Some(v) }))
        | (KvOp::Cas { expect: Some(v), .. }, Outcome::Ok(KvOutput::Cas { swapped: true, .. })) => Some(v),
        _ => None,
    }
}

/// Whether an `Ok` op saw the key absent.
pub(crate) fn observed_absent(op: &Operation) -> bool {
    matches!(
        (&op.op, &op.outcome),
        (_, Outcome::Ok(KvOutput::Value(None)))
            | (_, Outcome::Ok(KvOutput::Deleted { existed: false }))
            | (_, Outcome::Ok(KvOutput::Cas { swapped: false, current: None }))
            | (KvOp::Cas { expect: None, .. }, Outcome::Ok(KvOutput::Cas { swapped: true, .. }))
    )
}
