//! Shrinking a failing history to a small one that fails for the same
//! reason, so a person can read it.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use super::model::{
    malformed, observed_absent, observed_value, written_fragment, KvOp, KvOutput, Limits, Operation, Outcome,
};
use super::search::check_key;

/// Shrink a non-linearizable history to a small sub-history that still
/// fails, so a human can read it. The result is in call order.
///
/// 1. **Witness.** The history *as seen at time t* keeps the ops called by
///    t, with those still running at t as a client would see them then:
///    writes of unknown outcome, reads not yet answered (dropped). If a
///    history is linearizable, so is every such prefix, so a binary search
///    over return times finds the earliest t at which it fails. An op
///    returning at t whose answer makes the difference is the *witness*:
///    the op at which things went wrong. Everything called later is
///    dropped.
/// 2. **Greedy.** Repeatedly drop single ops (a first pass drops halving
///    chunks, only to go faster on long histories) while the rest still
///    fails *and* the rest minus the witness still passes, until no single
///    op can be dropped. The second condition keeps the report about the
///    witness: a drop that creates some other violation is refused.
///
/// Dropping a write can also change *why* the witness fails (a stale read
/// becomes a read of a value nobody wrote), so a drop is refused when it
/// leaves a remaining observation without a possible source it had before:
/// * a value (or appended fragment) seen by a read or CAS whose only
///   remaining writer would be dropped (a `Failed` write counts, so a
///   failed write that shows up in a read is kept);
/// * an Ok delete reporting `existed: true` with no write called before it
///   returned;
/// * an observation of absence after a completed Ok write, with no delete
///   called before it returned.
///
/// The ops reported are the original ones (with their real outcomes): they
/// constrain at least as much as their as-seen-at-t versions, so the result
/// still fails. Checks on which the search gives up count as "not failing"
/// for drops. A malformed input reduces to its first malformed op; a
/// linearizable (or undecidable) input is returned unchanged.
pub fn minimize(ops: &[Operation], limits: &Limits) -> Vec<Operation> {
    if let Some(bad) = ops.iter().find(|o| malformed(o)) {
        return vec![bad.clone()];
    }
    let fails = |h: &[Operation]| check_key(h, limits) == Ok(false);
    let passes = |h: &[Operation]| check_key(h, limits) == Ok(true);
    if !fails(ops) {
        return ops.to_vec();
    }
    let mut times: Vec<u64> = ops.iter().filter(|o| matches!(o.outcome, Outcome::Ok(_))).map(|o| o.ret).collect();
    times.sort_unstable();
    times.dedup();
    // The history as seen at `t`, with each op's index in `ops`.
    let seen_at = |t: u64| -> (Vec<Operation>, Vec<usize>) {
        let mut h = Vec::new();
        let mut idx = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            if o.call > t {
                continue;
            }
            if let Some(o) = running_at(o, t) {
                h.push(o);
                idx.push(i);
            }
        }
        (h, idx)
    };
    // Earliest failing time; the last one fails (it is the whole history
    // as far as Ok ops are concerned).
    let (mut lo, mut hi) = (0, times.len().saturating_sub(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(&seen_at(times[mid]).0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = times.get(hi).copied().unwrap_or(u64::MAX);
    let (base, base_idx) = seen_at(t);
    let originals = |idx: &[usize]| {
        let mut v: Vec<Operation> = idx.iter().filter_map(|&i| ops.get(i).cloned()).collect();
        v.sort_by_key(|o| (o.call, o.ret));
        v
    };
    // The witness: an op answered at `t` without whose answer it passes.
    let mut found = None;
    for (at, w) in base.iter().enumerate() {
        if w.ret != t || !matches!(w.outcome, Outcome::Ok(_)) {
            continue;
        }
        let unanswered = running_at(w, w.call);
        let mut rest: Vec<Operation> = Vec::with_capacity(base.len());
        let mut rest_idx: Vec<usize> = Vec::with_capacity(base.len());
        for (j, other) in base.iter().enumerate() {
            if j != at {
                rest.push(other.clone());
                rest_idx.push(base_idx[j]);
            }
        }
        rest.extend(unanswered.clone());
        if passes(&rest) {
            rest.truncate(rest_idx.len());
            found = Some((w.clone(), unanswered, base_idx[at], rest, rest_idx));
            break;
        }
    }
    let Some((witness, unanswered, witness_idx, mut cur, mut cur_idx)) = found else {
        // No single answer makes the difference: report the whole prefix.
        return originals(&base_idx);
    };
    // Whether `rest` fails with the witness's answer and passes without it.
    let culprit = |rest: &[Operation]| {
        let mut with = Vec::with_capacity(rest.len() + 1);
        with.extend_from_slice(rest);
        with.push(witness.clone());
        if !fails(&with) {
            return false;
        }
        with.pop();
        with.extend(unanswered.clone());
        passes(&with)
    };
    // Try dropping cur[start..end]; keep the drop if allowed.
    let try_drop = |cur: &mut Vec<Operation>, cur_idx: &mut Vec<usize>, start: usize, end: usize| -> bool {
        let mut cand = Vec::with_capacity(cur.len() - (end - start));
        cand.extend_from_slice(&cur[..start]);
        cand.extend_from_slice(&cur[end..]);
        if keeps_support(cur, &cand, start, end, &witness) && culprit(&cand) {
            *cur = cand;
            cur_idx.drain(start..end);
            true
        } else {
            false
        }
    };
    let mut chunk = cur.len() / 2;
    while chunk >= 2 {
        let mut start = 0;
        while start < cur.len() {
            let end = core::cmp::min(start + chunk, cur.len());
            if !try_drop(&mut cur, &mut cur_idx, start, end) {
                start = end;
            }
        }
        chunk /= 2;
    }
    // Dropping one op can make another droppable: repeat to a fixpoint.
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < cur.len() {
            if try_drop(&mut cur, &mut cur_idx, i, i + 1) {
                changed = true;
            } else {
                i += 1;
            }
        }
        if !changed {
            break;
        }
    }
    cur_idx.push(witness_idx);
    originals(&cur_idx)
}

/// `op` as a client sees it at time `t` (`op` called by then): unchanged
/// if answered by `t`; otherwise a write of unknown outcome, or nothing for
/// a read.
fn running_at(op: &Operation, t: u64) -> Option<Operation> {
    if op.ret <= t || !matches!(op.outcome, Outcome::Ok(_)) {
        return Some(op.clone());
    }
    match op.op {
        KvOp::Get { .. } => None,
        _ => Some(Operation { outcome: Outcome::Unknown, ..op.clone() }),
    }
}

/// Per op of `ops`: false for an observation of presence or absence that
/// has no possible source in `ops` (see [`minimize`]), true otherwise.
fn presence_supported(ops: &[Operation]) -> Vec<bool> {
    let is_write = |o: &Operation| written_fragment(o).is_some();
    let first_write_call = ops.iter().filter(|o| is_write(o)).map(|o| o.call).min();
    let first_ok_write_ret =
        ops.iter().filter(|o| is_write(o) && matches!(o.outcome, Outcome::Ok(_))).map(|o| o.ret).min();
    let first_delete_call = ops.iter().filter(|o| matches!(o.op, KvOp::Delete { .. })).map(|o| o.call).min();
    ops.iter()
        .map(|o| {
            if o.outcome == Outcome::Ok(KvOutput::Deleted { existed: true }) {
                first_write_call.is_some_and(|c| c <= o.ret)
            } else if observed_absent(o) && first_ok_write_ret.is_some_and(|r| r < o.call) {
                first_delete_call.is_some_and(|c| c <= o.ret)
            } else {
                true
            }
        })
        .collect()
}

/// Whether dropping `cur[start..end]` (leaving `cand`) keeps every
/// remaining observation, the witness's included, explainable as it was
/// (see [`minimize`]).
fn keeps_support(cur: &[Operation], cand: &[Operation], start: usize, end: usize, witness: &Operation) -> bool {
    let removed = &cur[start..end];
    let mut frags: Vec<&str> = removed.iter().filter_map(written_fragment).collect();
    if frags.is_empty() && !removed.iter().any(|o| matches!(o.op, KvOp::Delete { .. })) {
        // Only reads were dropped: nothing remaining loses its source.
        return true;
    }
    let with = |h: &[Operation]| {
        let mut v = h.to_vec();
        v.push(witness.clone());
        v
    };
    let (cur, cand) = (with(cur), with(cand));
    let before = presence_supported(&cur);
    let after = presence_supported(&cand);
    let width = end - start;
    for (j, ok_now) in after.iter().enumerate() {
        let was = if j < start { j } else { j + width };
        if !ok_now && before.get(was) == Some(&true) {
            return false;
        }
    }
    let still_written: BTreeSet<&str> = cand.iter().filter_map(written_fragment).collect();
    frags.retain(|f| !still_written.contains(f));
    if frags.is_empty() {
        return true;
    }
    frags.sort_unstable();
    frags.dedup();
    let seen: BTreeSet<&str> = cand.iter().filter_map(observed_value).collect();
    // An empty fragment is "observed" only by an empty value; otherwise any
    // value containing it (appends build values out of fragments).
    !frags.iter().any(|f| seen.iter().any(|v| if f.is_empty() { v.is_empty() } else { v.contains(f) }))
}
