//! Linearizability checker for histories of the key-value store.
//!
//! A history is a list of [`Operation`]s recorded by clients of the store:
//! what each client asked for, when it asked (`call`), when it heard back
//! (`ret`) and what it heard ([`Outcome`]). The checker decides whether the
//! history could have been produced by a single, atomic copy of the store —
//! the sequential specification [`crate::kv::spec`] — with gets, range and
//! prefix pages, counts, transactions and leases all taking effect at one
//! instant each.
//!
//! # How
//!
//! Every output names its revision (a write's is its log index; a read's,
//! the revision it read at), and a correct store's linearization is the
//! revision order. So the checker does not search over orders: it checks
//! that the revision order respects real time, then replays each key's
//! pieces of every operation in that order, searching only where operations
//! of unknown outcome (and lease expiries, which no operation reports) took
//! effect, if they did. The details, and what is not decided exactly, are on
//! [`search`].
//!
//! * **Equal timestamps.** An operation that returns at `t` and one that is
//!   called at `t` are concurrent: the checker never reports a violation that
//!   a finer clock could excuse.
//! * **Uncertain outcomes.** [`Outcome::Failed`] operations are dropped, and
//!   so are [`Outcome::Unknown`] reads. [`Outcome::Unknown`] writes may have
//!   taken effect at any revision after everything that returned before they
//!   were called, or never.
//!
//! # Cost
//!
//! Without unknown outcomes the replay is linear in the history. A generated
//! history of 10,000 operations over 10 keys from 8 clients with some
//! unknown outcomes (6% of them, a stress case) checks in about a second, most of it
//! spent on counts whose witnesses disagree (about 0.15 s without counts; the test
//! `perf_generated_10k_linearizable` prints it). [`Limits::max_steps`]
//! bounds the search for unknown outcomes; a search that hits it yields
//! [`Verdict::Inconclusive`], never a wrong verdict.
//!
//! The checker is `no_std` + `alloc` and never panics on input data:
//! malformed histories are reported as violations, exhausted budgets as
//! inconclusive.
//!
//! # Layout
//!
//! * [`model`] — what a history is ([`Operation`], [`Outcome`]), verdicts and
//!   limits, and how a history is printed ([`render`]);
//! * [`search`] — the revision-order checks and the per-key replay;
//! * [`minimise`] — shrinking a failing history to one a person can read
//!   ([`minimize`]);
//! * [`watch`] — the check of watch streams against the committed events;
//! * this file — [`check`].
//!
//! The checker is compiled only with the `checker` feature (which `sim`
//! turns on): a node in production has no use for it.

pub mod minimise;
pub mod model;
pub mod search;
pub mod watch;

use alloc::vec::Vec;

pub use minimise::minimize;
pub use model::{render, show_op, show_output, KvOp, KvOutput, Limits, Operation, Outcome, Verdict};

/// Checks a whole history. A violation names the key whose operations
/// cannot be ordered (empty for a violation of revision order across keys)
/// and a [`minimize`]d sub-history.
pub fn check(history: &[Operation], limits: &Limits) -> Verdict {
    match search::check_history(history, limits) {
        Ok(()) => Verdict::Linearizable,
        Err((key, _, true)) => Verdict::Inconclusive { key },
        Err((key, ops, false)) => {
            let sub: Vec<Operation> = ops.iter().filter_map(|&i| history.get(i).cloned()).collect();
            Verdict::Violation { key, ops: minimize(&sub, limits) }
        }
    }
}

#[cfg(test)]
mod tests;
