//! Shrinking a failing history to a small one that still fails, so a person
//! can read it.

use alloc::vec;
use alloc::vec::Vec;

use super::model::{malformed, Limits, Operation};
use super::search::check_history;

/// Shrink a non-linearizable history to a small sub-history that still
/// fails. Halving chunks are dropped first, then single operations, while
/// what is left still fails (a search that gives up counts as not failing),
/// until no single operation can be dropped. The result is in call order. A
/// malformed input reduces to its first malformed op; a linearizable (or
/// undecidable) input is returned unchanged.
pub fn minimize(ops: &[Operation], limits: &Limits) -> Vec<Operation> {
    if let Some(bad) = ops.iter().find(|o| malformed(o)) {
        return vec![bad.clone()];
    }
    let fails = |h: &[Operation]| matches!(check_history(h, limits), Err((_, _, false)));
    let mut cur = ops.to_vec();
    if !fails(&cur) {
        return cur;
    }
    let mut chunk = (cur.len() / 2).max(1);
    loop {
        let mut i = 0;
        while i < cur.len() {
            let end = (i + chunk).min(cur.len());
            let cand: Vec<Operation> = cur[..i].iter().chain(&cur[end..]).cloned().collect();
            if !cand.is_empty() && fails(&cand) {
                cur = cand;
            } else {
                i = end;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    cur.sort_by_key(|o| (o.call, o.ret, o.client));
    cur
}
