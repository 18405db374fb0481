//! The search for a linearization, guided by revisions.
//!
//! Every completed operation reports its revision: a write, the index of its
//! entry; a read, the revision it was answered at. A correct store's
//! linearization is the revision order (a write at `r`, then the reads at
//! `r`), so that order is the witness to check, and the only choices left
//! are where operations of unknown outcome took effect, if at all — and when
//! leases expired, which no operation reports.
//!
//! 1. **Revision order** (all keys at once). No two completed writes share a
//!    revision; an operation that returned before another was called has a
//!    lower revision (a read may share a revision with an earlier write or
//!    read). Each operation of unknown outcome gets a lower bound: it took
//!    effect, if at all, after every revision that returned before it was
//!    called. A lease is alive at every revision an operation proved it
//!    alive at (a grant, a keep-alive, a put attaching a key to it) and gone
//!    from the first that found it missing; both orders must agree.
//! 2. **Per key.** Every operation is cut into what it does to each key it
//!    touches, at its revision: a range read observes every key its page
//!    covers (present with its value and revisions, or absent), a
//!    transaction compares, writes and reads its keys, a revoke deletes the
//!    keys of its lease. A key's completed pieces are replayed in revision
//!    order against the sequential rules ([`crate::kv::spec`]); pieces of
//!    unknown outcome and lease expiries are placed between them by a
//!    depth-first search with memoisation, wherever the revisions leave room.
//!    Because the completed pieces of a multi-key operation all sit at one
//!    revision in every key's replay, a range read or a transaction that was
//!    not atomic fails here.
//! 3. **Counts.** A count is the sum over keys of their presence at its
//!    revision: checked on the witnesses the per-key searches found, and if
//!    they disagree, against the presences each key could have had there.
//!
//! What is not decided exactly (the checker only ever errs toward
//! "linearizable"): an operation of unknown outcome that touches several
//! keys is placed in each key independently; a failed transaction whose
//! comparisons name several keys is not checked for which comparison failed;
//! a revision that an unknown write is placed at is not checked against the
//! revisions other keys' writes hold; `deleted` counts of revokes are not
//! checked.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashMap;

use super::model::{malformed, KvOp, KvOutput, Limits, Operation, Outcome};
use crate::hash::FxBuild;
use crate::kv::{prefix_end, Compare, KeySpan, KeyValue, TxnOp, TxnResult};

/// A revision known to lie in `[.0, .1]`.
type RevRange = (u64, u64);

/// One key's state in a replay: absent, or its value and history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Rec {
    value: String,
    create: RevRange,
    modr: RevRange,
    version: u64,
    lease: u64,
}

type St = Option<Rec>;

/// What a key's piece of a read asserts.
#[derive(Clone, Copy, Debug)]
enum Obs<'a> {
    /// The key as it was read (absent: `None`).
    Kv(Option<&'a KeyValue>),
    /// Only whether it was present (a count, in its fallback).
    Presence(bool),
    /// Nothing: the witness notes the key's presence here (a count).
    Probe(usize),
}

/// What a key's piece of a write does.
#[derive(Clone, Debug)]
enum Act<'a> {
    Put {
        value: &'a str,
        lease: u64,
    },
    Append(&'a str),
    Delete {
        existed: Option<bool>,
    },
    Cas {
        expect: Option<&'a str>,
        value: &'a str,
        out: Option<(bool, Option<&'a str>)>,
    },
    /// A transaction's comparisons on this key (and whether they are all
    /// its comparisons), then the branch's operations on this key.
    Txn {
        compares: Vec<&'a Compare>,
        only_key: bool,
        branch: Branch<'a>,
    },
    /// The lease ends: the key goes if it is attached to it.
    LeaseEnd(u64),
}

#[derive(Clone, Debug)]
enum Branch<'a> {
    Known { succeeded: bool, ops: Vec<(&'a TxnOp, &'a TxnResult)> },
    Unknown { success: Vec<&'a TxnOp>, failure: Vec<&'a TxnOp> },
}

#[derive(Clone, Debug)]
enum Piece<'a> {
    Read(Obs<'a>),
    Write(Act<'a>),
}

/// A completed piece, at its revision.
#[derive(Clone, Debug)]
struct Item<'a> {
    rev: u64,
    piece: Piece<'a>,
    /// The history operation it comes from.
    op: usize,
}

impl Item<'_> {
    fn is_write(&self) -> bool {
        matches!(self.piece, Piece::Write(_))
    }
}

/// A piece that may or may not have happened, somewhere in `(lo, hi]`.
#[derive(Clone, Debug)]
struct Spont<'a> {
    lo: u64,
    hi: u64,
    /// It must have happened before any revision `>= by` (a lease found gone).
    by: Option<u64>,
    act: Act<'a>,
    expiry: bool,
    op: Option<usize>,
}

/// What the last step of a replay was, at the floor revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum After {
    Write,
    Read,
    /// A lease expiry, which comes before the command of its revision.
    Expiry,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Floor {
    rev: u64,
    after: After,
}

/// One key's problem.
struct KeyCase<'a> {
    items: Vec<Item<'a>>,
    sponts: Vec<Spont<'a>>,
}

/// The search gave up.
struct GaveUp;

/// Facts about one lease from completed operations.
#[derive(Clone, Copy, Debug, Default)]
struct LeaseFacts {
    /// Highest revision an operation found it alive at (its grant included).
    alive: u64,
    alive_op: Option<usize>,
    /// Lowest revision after its grant an operation found it missing at.
    gone: Option<u64>,
    gone_op: Option<usize>,
    /// The revision a completed revoke ended it at.
    revoked: Option<u64>,
    granted: bool,
}

/// Checks a whole history.
pub(crate) fn check_history(history: &[Operation], limits: &Limits) -> Result<(), (String, Vec<usize>, bool)> {
    // (key, the operations to show, whether the search gave up)
    if let Some(bad) = history.iter().position(malformed) {
        return Err((first_key(&history[bad].op), vec![bad], false));
    }
    let live: Vec<usize> = (0..history.len())
        .filter(|&i| match &history[i].outcome {
            Outcome::Failed => false,
            Outcome::Unknown => !history[i].op.is_read(),
            Outcome::Ok(_) => true,
        })
        .collect();
    let min_rev = revision_order(history, &live)?;
    let leases = lease_facts(history, &live)?;
    let universe = key_universe(history, &live);
    let mut witnesses: BTreeMap<usize, Vec<(usize, bool)>> = BTreeMap::new();
    let mut gave_up: Option<String> = None;
    for key in &universe {
        let case = key_case(history, &live, &min_rev, &leases, key, None);
        match replay(&case, limits) {
            Ok(Some(probes)) => {
                witnesses.insert(universe_index(&universe, key), probes);
            }
            Ok(None) => {
                let ops: BTreeSet<usize> =
                    case.items.iter().map(|i| i.op).chain(case.sponts.iter().filter_map(|s| s.op)).collect();
                return Err((key.clone(), ops.into_iter().collect(), false));
            }
            Err(GaveUp) => {
                gave_up.get_or_insert_with(|| key.clone());
            }
        }
    }
    if gave_up.is_none() {
        check_counts(history, &live, &min_rev, &leases, &universe, &witnesses, limits)?;
    }
    match gave_up {
        Some(key) => Err((key, Vec::new(), true)),
        None => Ok(()),
    }
}

fn universe_index(universe: &[String], key: &str) -> usize {
    universe.binary_search_by(|k| k.as_str().cmp(key)).unwrap_or(0)
}

/// A key to name an operation by.
pub(crate) fn first_key(op: &KvOp) -> String {
    match op.span() {
        KeySpan::None => String::new(),
        KeySpan::Key(k) | KeySpan::Range(k, _) => String::from(k),
        KeySpan::Keys(ks) => ks.first().map_or_else(String::new, |k| String::from(*k)),
    }
}

/// Step 1: revisions of completed writes are distinct and every completed
/// operation's revision respects real time. Returns each live operation's
/// lower bound (the highest revision that returned before its call).
fn revision_order(h: &[Operation], live: &[usize]) -> Result<BTreeMap<usize, u64>, (String, Vec<usize>, bool)> {
    let ok: Vec<usize> = live.iter().copied().filter(|&i| h[i].revision().is_some()).collect();
    let mut writes: Vec<(u64, usize)> =
        ok.iter().filter(|&&i| !h[i].op.is_read()).filter_map(|&i| h[i].revision().map(|r| (r, i))).collect();
    writes.sort_unstable();
    for w in writes.windows(2) {
        if w[0].0 == w[1].0 {
            return Err((String::new(), vec![w[0].1, w[1].1], false));
        }
    }
    // Completed operations by return time, with the running maximum revision.
    let mut by_ret: Vec<(u64, u64, usize)> =
        ok.iter().filter_map(|&i| h[i].revision().map(|r| (h[i].ret, r, i))).collect();
    by_ret.sort_unstable();
    let mut best: Vec<(u64, usize)> = Vec::with_capacity(by_ret.len());
    for &(_, r, i) in &by_ret {
        let prev = best.last().copied().unwrap_or((0, usize::MAX));
        best.push(if r > prev.0 { (r, i) } else { prev });
    }
    let mut min_rev = BTreeMap::new();
    for &i in live {
        let before = by_ret.partition_point(|&(ret, _, _)| ret < h[i].call);
        let (m, by) = if before == 0 { (0, usize::MAX) } else { best[before - 1] };
        if let Some(r) = h[i].revision() {
            let late = if h[i].op.is_read() { r < m } else { r <= m };
            if late {
                let ops = if by == usize::MAX { vec![i] } else { vec![by, i] };
                return Err((String::new(), ops, false));
            }
        }
        min_rev.insert(i, m);
    }
    Ok(min_rev)
}

/// What completed operations say about each lease, and whether it agrees.
fn lease_facts(h: &[Operation], live: &[usize]) -> Result<BTreeMap<u64, LeaseFacts>, (String, Vec<usize>, bool)> {
    let mut facts: BTreeMap<u64, LeaseFacts> = BTreeMap::new();
    let alive = |facts: &mut BTreeMap<u64, LeaseFacts>, id: u64, r: u64, i: usize| {
        let f = facts.entry(id).or_default();
        if r >= f.alive {
            f.alive = r;
            f.alive_op = Some(i);
        }
    };
    let mut gone = Vec::new();
    for &i in live {
        let Some(out) = h[i].output() else { continue };
        match (&h[i].op, out) {
            (KvOp::LeaseGrant { .. }, KvOutput::Lease { id, revision, .. }) => {
                alive(&mut facts, *id, *revision, i);
                facts.entry(*id).or_default().granted = true;
            }
            (KvOp::LeaseKeepAlive { .. }, KvOutput::Lease { id, revision, .. }) => alive(&mut facts, *id, *revision, i),
            (KvOp::PutLease { lease, .. }, KvOutput::Written { revision }) => alive(&mut facts, *lease, *revision, i),
            (KvOp::Txn(t), KvOutput::Txn { succeeded, revision, .. }) => {
                for op in if *succeeded { &t.success } else { &t.failure } {
                    if let TxnOp::Put { lease, .. } = op {
                        if *lease != 0 {
                            alive(&mut facts, *lease, *revision, i);
                        }
                    }
                }
            }
            (KvOp::LeaseRevoke { id }, KvOutput::LeaseRevoked { revision, .. }) => {
                let f = facts.entry(*id).or_default();
                if f.revoked.is_some() {
                    return Err((String::new(), vec![i], false));
                }
                f.revoked = Some(*revision);
                // The lease was alive right up to the revoke's own revision.
                alive(&mut facts, *id, revision.saturating_sub(1), i);
            }
            (_, KvOutput::LeaseNotFound { id, revision }) => gone.push((*id, *revision, i)),
            _ => {}
        }
    }
    for (id, r, i) in gone {
        let f = facts.entry(id).or_default();
        // Before its grant a lease id names nothing; only later absence counts.
        if r > id && f.gone.is_none_or(|g| r < g) {
            f.gone = Some(r);
            f.gone_op = Some(i);
        }
    }
    for f in facts.values_mut() {
        if let Some(r) = f.revoked {
            f.gone = Some(f.gone.map_or(r, |g| g.min(r)));
        }
        if let (Some(g), true) = (f.gone, f.granted) {
            if f.alive >= g {
                let ops = [f.alive_op, f.gone_op].into_iter().flatten().collect();
                return Err((String::new(), ops, false));
            }
        }
    }
    Ok(facts)
}

/// Every key some operation names or some read returned.
fn key_universe(h: &[Operation], live: &[usize]) -> Vec<String> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for &i in live {
        match h[i].op.span() {
            KeySpan::Key(k) => {
                keys.insert(String::from(k));
            }
            KeySpan::Keys(ks) => keys.extend(ks.into_iter().map(String::from)),
            KeySpan::Range(..) | KeySpan::None => {}
        }
        if let Some(KvOutput::Range { kvs, .. }) = h[i].output() {
            keys.extend(kvs.iter().map(|kv| kv.key.clone()));
        }
    }
    keys.into_iter().collect()
}

/// The range a page read observes in full: from its start to the key it
/// says comes next (or to the range's end).
fn page_span(op: &KvOp, next: &Option<String>) -> Option<(String, Option<String>)> {
    let (from, to) = match op {
        KvOp::Range { from, to, .. } => (from.clone(), to.clone()),
        KvOp::Prefix { prefix, from, .. } => {
            let start = from.as_ref().filter(|f| *f > prefix).unwrap_or(prefix).clone();
            (start, prefix_end(prefix))
        }
        _ => return None,
    };
    Some((from, next.clone().or(to)))
}

/// The leases a key may ever be attached to.
fn key_leases(h: &[Operation], live: &[usize], key: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for &i in live {
        match &h[i].op {
            KvOp::PutLease { key: k, lease, .. } if k == key => {
                out.insert(*lease);
            }
            KvOp::Txn(t) => {
                for op in t.success.iter().chain(&t.failure) {
                    if let TxnOp::Put { key: k, lease, .. } = op {
                        if k == key && *lease != 0 {
                            out.insert(*lease);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Step 2's input for one key. `assume` turns one count's probe into an
/// assertion of presence (the counts' fallback).
fn key_case<'a>(
    h: &'a [Operation],
    live: &[usize],
    min_rev: &BTreeMap<usize, u64>,
    leases: &BTreeMap<u64, LeaseFacts>,
    key: &str,
    assume: Option<(usize, bool)>,
) -> KeyCase<'a> {
    let mut items = Vec::new();
    let mut sponts = Vec::new();
    let attached = key_leases(h, live, key);
    for &i in live {
        let o = &h[i];
        let lo = min_rev.get(&i).copied().unwrap_or(0);
        match o.output() {
            Some(out) => {
                let Some(rev) = out.revision() else { continue };
                let mut push = |piece| items.push(Item { rev, piece, op: i });
                match (&o.op, out) {
                    (KvOp::Get { key: k }, KvOutput::Value { kv, .. }) if k == key => {
                        push(Piece::Read(Obs::Kv(kv.as_ref())))
                    }
                    (KvOp::Range { .. } | KvOp::Prefix { .. }, KvOutput::Range { kvs, next, .. }) => {
                        if let Some((from, to)) = page_span(&o.op, next) {
                            if crate::kv::in_range(key, &from, to.as_deref()) {
                                let kv = kvs.iter().find(|kv| kv.key == key);
                                push(Piece::Read(Obs::Kv(kv)));
                            }
                        }
                    }
                    (KvOp::Count { from, to }, KvOutput::Count { .. })
                        if crate::kv::in_range(key, from, to.as_deref()) =>
                    {
                        let obs = match assume {
                            Some((c, p)) if c == i => Obs::Presence(p),
                            _ => Obs::Probe(i),
                        };
                        push(Piece::Read(obs));
                    }
                    (KvOp::LeaseRevoke { id }, KvOutput::LeaseRevoked { .. }) if attached.contains(id) => {
                        push(Piece::Write(Act::LeaseEnd(*id)))
                    }
                    (op, out) => {
                        if let Some(act) = write_act(op, Some(out), key) {
                            push(Piece::Write(act));
                        }
                    }
                }
            }
            None => {
                if let Some(act) = write_act(&o.op, None, key) {
                    sponts.push(Spont { lo, hi: u64::MAX, by: None, act, expiry: false, op: Some(i) });
                }
            }
        }
    }
    for &id in &attached {
        let f = leases.get(&id).copied().unwrap_or_default();
        if f.revoked.is_some() {
            continue; // its end is the revoke's item
        }
        sponts.push(Spont {
            lo: f.alive,
            hi: f.gone.unwrap_or(u64::MAX),
            by: f.gone,
            act: Act::LeaseEnd(id),
            expiry: true,
            op: None,
        });
    }
    // Revision order; at one revision the write before the reads.
    items.sort_by_key(|it| (it.rev, !it.is_write()));
    KeyCase { items, sponts }
}

/// What a write does to `key` (`out`: its output if known).
fn write_act<'a>(op: &'a KvOp, out: Option<&'a KvOutput>, key: &str) -> Option<Act<'a>> {
    Some(match (op, out) {
        (KvOp::Put { key: k, value }, _) if k == key => Act::Put { value, lease: 0 },
        (KvOp::PutLease { key: k, value, lease }, None | Some(KvOutput::Written { .. })) if k == key => {
            Act::Put { value, lease: *lease }
        }
        (KvOp::Append { key: k, value }, _) if k == key => Act::Append(value),
        (KvOp::Delete { key: k }, _) if k == key => Act::Delete {
            existed: match out {
                Some(KvOutput::Deleted { existed, .. }) => Some(*existed),
                _ => None,
            },
        },
        (KvOp::Cas { key: k, expect, value }, _) if k == key => Act::Cas {
            expect: expect.as_deref(),
            value,
            out: match out {
                Some(KvOutput::Cas { swapped, current, .. }) => Some((*swapped, current.as_deref())),
                _ => None,
            },
        },
        (KvOp::Txn(t), None | Some(KvOutput::Txn { .. })) if op.span().contains(key) => {
            let compares: Vec<&Compare> = t.compare.iter().filter(|c| c.key() == key).collect();
            let only_key = !t.compare.is_empty() && t.compare.iter().all(|c| c.key() == key);
            let here = |ops: &'a [TxnOp]| ops.iter().filter(|o| o.key() == key).collect::<Vec<_>>();
            let branch = match out {
                Some(KvOutput::Txn { succeeded, results, .. }) => {
                    let ops = if *succeeded { &t.success } else { &t.failure };
                    let ops = ops.iter().zip(results).filter(|(o, _)| o.key() == key).collect();
                    Branch::Known { succeeded: *succeeded, ops }
                }
                _ => Branch::Unknown { success: here(&t.success), failure: here(&t.failure) },
            };
            Act::Txn { compares, only_key, branch }
        }
        _ => return None,
    })
}

/// The record a write of `value` leaves at a revision in `rev`: the spec's
/// rule ([`crate::kv::spec::written`]) with a range for the revision.
fn write_rec(st: &St, value: String, lease: u64, rev: RevRange) -> Rec {
    match st {
        Some(r) => Rec { value, create: r.create, modr: rev, version: r.version + 1, lease },
        None => Rec { value, create: rev, modr: rev, version: 1, lease },
    }
}

/// Whether an observed revision fits a known range; the narrowed range.
fn fit(r: u64, range: RevRange) -> Option<RevRange> {
    (range.0 <= r && r <= range.1).then_some((r, r))
}

/// The state, narrowed, if it can be what a read saw.
fn observe(st: &St, kv: Option<&KeyValue>) -> Option<St> {
    match (st, kv) {
        (None, None) => Some(None),
        (Some(r), Some(kv)) => {
            if r.value != kv.value || r.version != kv.version || r.lease != kv.lease {
                return None;
            }
            let modr = fit(kv.mod_revision, r.modr)?;
            let create = fit(kv.create_revision, r.create)?;
            Some(Some(Rec { modr, create, ..r.clone() }))
        }
        _ => None,
    }
}

/// Whether a comparison holds (`None`: cannot tell, a revision not pinned).
fn holds(c: &Compare, st: &St) -> Option<bool> {
    if let (Compare::ModRevision { .. }, Some(r)) = (c, st) {
        if r.modr.0 != r.modr.1 {
            return None;
        }
    }
    let kv = st.as_ref().map(|r| KeyValue {
        key: String::new(),
        value: r.value.clone(),
        create_revision: r.create.0,
        mod_revision: r.modr.0,
        version: r.version,
        lease: r.lease,
    });
    Some(c.holds(kv.as_ref()))
}

/// Runs a branch's operations on this key; `None` if a result contradicts.
fn run_ops<'a>(
    st: &St,
    ops: impl Iterator<Item = (&'a TxnOp, Option<&'a TxnResult>)>,
    rev: RevRange,
    ended: &dyn Fn(u64) -> bool,
) -> Option<St> {
    let mut st = st.clone();
    for (op, res) in ops {
        match (op, res) {
            (TxnOp::Put { value, lease, .. }, _) => {
                if *lease != 0 && ended(*lease) {
                    return None; // the whole transaction would have found the lease gone
                }
                st = Some(write_rec(&st, value.clone(), *lease, rev));
            }
            (TxnOp::Delete { .. }, r) => {
                if let Some(TxnResult::Deleted { existed }) = r {
                    if *existed != st.is_some() {
                        return None;
                    }
                }
                st = None;
            }
            (TxnOp::Get { .. }, Some(TxnResult::Value(kv))) => st = observe(&st, kv.as_ref())?,
            (TxnOp::Get { .. }, _) => {}
        }
    }
    Some(st)
}

/// The states a write can leave (none: its output is impossible here).
fn apply(act: &Act<'_>, st: &St, rev: RevRange, ended: &dyn Fn(u64) -> bool) -> Vec<St> {
    match act {
        Act::Put { value, lease } => {
            if *lease != 0 && ended(*lease) {
                return Vec::new();
            }
            vec![Some(write_rec(st, String::from(*value), *lease, rev))]
        }
        Act::Append(frag) => {
            let mut v = st.as_ref().map_or_else(String::new, |r| r.value.clone());
            v.push_str(frag);
            let lease = st.as_ref().map_or(0, |r| r.lease);
            vec![Some(write_rec(st, v, lease, rev))]
        }
        Act::Delete { existed } => {
            if existed.is_some_and(|e| e != st.is_some()) {
                return Vec::new();
            }
            vec![None]
        }
        Act::Cas { expect, value, out } => {
            let current = st.as_ref().map(|r| r.value.as_str());
            let matches = current == *expect;
            match out {
                Some((true, _)) if !matches => Vec::new(),
                Some((false, seen)) if matches || *seen != current => Vec::new(),
                Some((false, _)) => vec![st.clone()],
                _ if matches => vec![Some(write_rec(st, String::from(*value), 0, rev))],
                _ => vec![st.clone()],
            }
        }
        Act::Txn { compares, only_key, branch } => {
            let results: Vec<Option<bool>> = compares.iter().map(|c| holds(c, st)).collect();
            let may_succeed = results.iter().all(|r| *r != Some(false));
            let may_fail = !*only_key || results.iter().any(|r| *r != Some(true));
            match branch {
                Branch::Known { succeeded, ops } => {
                    if (*succeeded && !may_succeed) || (!*succeeded && !may_fail) {
                        return Vec::new();
                    }
                    run_ops(st, ops.iter().map(|(o, r)| (*o, Some(*r))), rev, ended).into_iter().collect()
                }
                Branch::Unknown { success, failure } => {
                    let mut out = Vec::new();
                    if may_succeed {
                        out.extend(run_ops(st, success.iter().map(|o| (*o, None)), rev, ended));
                    }
                    if may_fail {
                        out.extend(run_ops(st, failure.iter().map(|o| (*o, None)), rev, ended));
                    }
                    out
                }
            }
        }
        Act::LeaseEnd(id) => match st {
            Some(r) if r.lease == *id => vec![None],
            _ => vec![st.clone()],
        },
    }
}

/// A small growable bitset of placed pieces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Mask(Vec<u64>);

impl Mask {
    fn new(n: usize) -> Self {
        Mask(vec![0; n.div_ceil(64)])
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn with(&self, i: usize) -> Mask {
        let mut m = self.clone();
        m.0[i / 64] |= 1 << (i % 64);
        m
    }
}

/// A node of the search.
#[derive(Clone, Debug)]
struct Node {
    i: usize,
    mask: Mask,
    floor: Floor,
    st: St,
}

/// What lies between each piece and the next read of the key: the
/// replay's forward check. A read pins the key's version and creation, so
/// a state that cannot reach them with the writes still to come is dropped
/// at once instead of being found out at the read.
struct Ahead {
    /// Per item: the index of the next piece that shows the key as it was
    /// (see [`observation`]), if any.
    next_read: Vec<Option<usize>>,
    /// Per item: completed writes that raise the version before that read.
    raises: Vec<u64>,
    /// Per item: whether a completed piece before that read deletes the key.
    deletes: Vec<bool>,
    /// Per item: whether a lease ends before that read (which deletes the
    /// key if it is attached).
    ends: Vec<bool>,
}

/// What a completed piece shows the key as, just before it takes effect:
/// a read's answer, or the answer of a transaction's get when that get is
/// the branch's first operation on the key (a get after the branch's own
/// writes shows those, not the key as it was). `None`: it shows nothing.
///
/// Every such piece is a fixed point for the forward check ([`Ahead`]) and
/// for the pins in [`expand`]: without the transactions' gets, a history
/// whose reads are mostly transactions left the search blind between plain
/// reads, trying every order of the pending unknown writes in a gap.
fn observation<'b>(piece: &'b Piece<'_>) -> Option<Option<&'b KeyValue>> {
    match piece {
        Piece::Read(Obs::Kv(want)) => Some(*want),
        Piece::Write(Act::Txn { branch: Branch::Known { ops, .. }, .. }) => match ops.first() {
            Some((TxnOp::Get { .. }, TxnResult::Value(kv))) => Some(kv.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// How much a write may raise a key's version (most, over its branches),
/// and whether it may delete the key.
fn effect(act: &Act<'_>) -> (u64, bool) {
    fn count<'b>(ops: impl Iterator<Item = &'b TxnOp>) -> (u64, bool) {
        let (mut puts, mut dels) = (0, false);
        for o in ops {
            match o {
                TxnOp::Put { .. } => puts += 1,
                TxnOp::Delete { .. } => dels = true,
                TxnOp::Get { .. } => {}
            }
        }
        (puts, dels)
    }
    match act {
        Act::Put { .. } | Act::Append(_) | Act::Cas { .. } => (1, false),
        Act::Delete { .. } | Act::LeaseEnd(_) => (0, true),
        Act::Txn { branch: Branch::Known { ops, .. }, .. } => count(ops.iter().map(|o| o.0)),
        Act::Txn { branch: Branch::Unknown { success, failure }, .. } => {
            let (a, x) = count(success.iter().copied());
            let (b, y) = count(failure.iter().copied());
            (a.max(b), x || y)
        }
    }
}

impl Ahead {
    fn new(items: &[Item<'_>]) -> Self {
        let n = items.len();
        let mut a = Ahead {
            next_read: vec![None; n + 1],
            raises: vec![0; n + 1],
            deletes: vec![false; n + 1],
            ends: vec![false; n + 1],
        };
        for i in (0..n).rev() {
            if observation(&items[i].piece).is_some() {
                // Its own writes (a transaction's) come after what it saw.
                a.next_read[i] = Some(i);
                continue;
            }
            let (up, del, end) = match &items[i].piece {
                Piece::Read(_) => (0, false, false),
                Piece::Write(Act::LeaseEnd(_)) => (0, false, true),
                // A cas that did not swap changes nothing.
                Piece::Write(Act::Cas { out: Some((false, _)), .. }) => (0, false, false),
                Piece::Write(act) => {
                    let (up, del) = effect(act);
                    (up, del, false)
                }
            };
            a.next_read[i] = a.next_read[i + 1];
            a.raises[i] = a.raises[i + 1] + up;
            a.deletes[i] = a.deletes[i + 1] || del;
            a.ends[i] = a.ends[i + 1] || end;
        }
        a
    }

    /// The key as the next read at or after item `i` saw it, and that read's
    /// revision.
    fn wanted<'b>(&self, i: usize, items: &'b [Item<'_>]) -> Option<(Option<&'b KeyValue>, u64)> {
        let j = self.next_read[i]?;
        observation(&items[j].piece).map(|want| (want, items[j].rev))
    }

    /// Whether `n` can still meet the key's next read: a read pins the
    /// key's creation and version, so a state in the same life must reach
    /// that version with the writes still to come, and without a delete.
    fn feasible(&self, n: &Node, items: &[Item<'_>], sponts: &[Spont<'_>]) -> bool {
        let Some((want, by)) = self.wanted(n.i, items) else { return true };
        let (mut more, mut may_delete) = (0u64, false);
        for (k, s) in sponts.iter().enumerate() {
            if !n.mask.has(k) && s.lo < by {
                let (up, del) = effect(&s.act);
                more += up;
                may_delete |= del;
            }
        }
        let known = self.raises[n.i];
        match (&n.st, want) {
            (Some(r), Some(kv)) if r.create == (kv.create_revision, kv.create_revision) => {
                // The same life goes on to the read: nothing deletes it.
                if self.deletes[n.i] {
                    return false;
                }
                self.ends[n.i] || (r.version + known <= kv.version && kv.version <= r.version + known + more)
            }
            (Some(r), Some(kv)) if r.create.0 <= kv.create_revision && kv.create_revision <= r.create.1 => true,
            (Some(r), Some(kv)) => {
                // A new life must begin at the read's creation revision.
                kv.create_revision > r.create.0 && (self.deletes[n.i] || self.ends[n.i] || may_delete)
            }
            (Some(_), None) => self.deletes[n.i] || self.ends[n.i] || may_delete,
            (None, Some(kv)) => {
                self.deletes[n.i] || self.ends[n.i] || may_delete || (known <= kv.version && kv.version <= known + more)
            }
            (None, None) => known == 0 || self.deletes[n.i] || self.ends[n.i] || may_delete,
        }
    }
}

/// Step 2 for one key: a placement of its uncertain pieces under which
/// every completed piece holds. `Ok(Some(probes))`: found (with the key's
/// presence at each count's probe); `Ok(None)`: there is none.
fn replay(case: &KeyCase<'_>, limits: &Limits) -> Result<Option<Vec<(usize, bool)>>, GaveUp> {
    let items = &case.items;
    let sponts = &case.sponts;
    let start = Node { i: 0, mask: Mask::new(sponts.len()), floor: Floor { rev: 0, after: After::Read }, st: None };
    // Depth-first with an explicit stack: (node, children not yet tried).
    let mut stack: Vec<(Node, Vec<Node>)> = Vec::new();
    // (i, mask, state) -> the lowest floor it was reached with: a node
    // reached again with a floor no lower has no option the first lacked.
    let mut seen: HashMap<u64, (u64, u8), FxBuild> = HashMap::with_hasher(FxBuild::default());
    let mut steps = 0u64;
    let ahead = Ahead::new(items);
    let children = |n: &Node| -> Vec<Node> {
        let mut kids = expand(n, items, sponts, &ahead);
        kids.retain(|k| ahead.feasible(k, items, sponts));
        kids
    };
    let first = children(&start);
    stack.push((start, first));
    while let Some((node, kids)) = stack.last_mut() {
        if node.i == items.len() {
            // Every completed piece is placed: found. A probe's presence is
            // the state of the last node on the path still before it.
            let mut out: Vec<(usize, bool)> = Vec::new();
            for (k, (n, _)) in stack.iter().enumerate() {
                let last_here = stack.get(k + 1).is_none_or(|(m, _)| m.i != n.i);
                if let (true, Some(Item { piece: Piece::Read(Obs::Probe(c)), .. })) = (last_here, items.get(n.i)) {
                    out.push((*c, n.st.is_some()));
                }
            }
            return Ok(Some(out));
        }
        let Some(next) = kids.pop() else {
            stack.pop();
            continue;
        };
        steps += 1;
        if steps > limits.max_steps {
            return Err(GaveUp);
        }
        let grand = children(&next);
        if grand.len() > 1 || !next.mask.0.iter().all(|w| *w == 0) {
            let fp = FxBuild { seed: 0x5eed }.hash_one((next.i, &next.mask, &next.st));
            let floor = (next.floor.rev, u8::from(next.floor.after != After::Expiry));
            match seen.get_mut(&fp) {
                Some(best) if *best <= floor => continue,
                Some(best) => *best = floor,
                None => {
                    seen.insert(fp, floor);
                }
            }
        }
        stack.push((next, grand));
    }
    Ok(None)
}

/// The nodes one step from `n`: consume the next completed piece, or place
/// one uncertain piece before it. Returned in reverse preference (the last
/// is tried first): consuming comes last, so it is tried first.
fn expand(n: &Node, items: &[Item<'_>], sponts: &[Spont<'_>], ahead: &Ahead) -> Vec<Node> {
    let mut out = Vec::new();
    let next = items.get(n.i);
    let ended = |id: u64| {
        sponts
            .iter()
            .enumerate()
            .any(|(j, s)| s.expiry && n.mask.has(j) && matches!(s.act, Act::LeaseEnd(l) if l == id))
    };
    // Uncertain pieces that fit between the floor and the next piece.
    for (j, s) in sponts.iter().enumerate() {
        if n.mask.has(j) {
            continue;
        }
        let after_floor = if s.expiry && n.floor.after == After::Expiry {
            n.floor.rev
        } else if !s.expiry && n.floor.after == After::Expiry {
            n.floor.rev.max(1)
        } else {
            n.floor.rev + 1
        };
        let x = after_floor.max(s.lo + 1);
        let bound = match next {
            None => u64::MAX,
            Some(it) if it.is_write() && !s.expiry => it.rev - 1,
            Some(it) => it.rev,
        };
        let hi = bound.min(s.hi);
        if x > hi || x == 0 {
            continue;
        }
        // The next read names the key's last write and its creation: a change
        // placed after the former, or a deletion after the latter, would
        // have shown there.
        let pins = ahead.wanted(n.i, items).and_then(|(w, _)| w).map(|kv| (kv.mod_revision, kv.create_revision));
        let after = if s.expiry { After::Expiry } else { After::Write };
        // An obligation (a lease found gone) is met in the last gap before it.
        let obliged = s.by.is_some_and(|b| next.is_none_or(|it| it.rev >= b));
        for st in apply(&s.act, &n.st, (x, hi), &ended) {
            // Placing a piece that changes nothing only uses it up and
            // raises the floor: never better than leaving it, unless it must
            // happen by now.
            if st == n.st && !obliged {
                continue;
            }
            if let Some((last, born)) = pins {
                let changed = st != n.st;
                let ended =
                    n.st.is_some() && st.as_ref().is_none_or(|r| n.st.as_ref().is_some_and(|o| o.create != r.create));
                if (changed && x > last) || (ended && x > born) {
                    continue;
                }
            }
            out.push(Node { i: n.i, mask: n.mask.with(j), floor: Floor { rev: x, after }, st });
        }
    }
    if let Some(it) = next {
        // Every piece that had to happen before this revision has.
        let due = sponts.iter().enumerate().any(|(j, s)| !n.mask.has(j) && s.by.is_some_and(|b| it.rev >= b));
        let in_order = match (it.is_write(), n.floor.after) {
            (false, _) => it.rev >= n.floor.rev,
            (true, After::Expiry) => it.rev >= n.floor.rev,
            (true, _) => it.rev > n.floor.rev,
        };
        // A read says the key's life began at its creation revision: a
        // write there found the key absent.
        let creates_here = ahead.wanted(n.i, items).and_then(|(w, _)| w).is_some_and(|kv| kv.create_revision == it.rev);
        let born_ok = !(it.is_write() && creates_here && n.st.is_some());
        if !due && in_order && born_ok {
            let rev = (it.rev, it.rev);
            let (states, after) = match &it.piece {
                Piece::Read(Obs::Kv(kv)) => (observe(&n.st, *kv).into_iter().collect(), After::Read),
                Piece::Read(Obs::Presence(p)) => {
                    ((n.st.is_some() == *p).then(|| n.st.clone()).into_iter().collect(), After::Read)
                }
                Piece::Read(Obs::Probe(_)) => (vec![n.st.clone()], After::Read),
                Piece::Write(act @ Act::LeaseEnd(_)) => (apply(act, &n.st, rev, &ended), After::Expiry),
                Piece::Write(act) => (apply(act, &n.st, rev, &ended), After::Write),
            };
            for st in states {
                out.push(Node { i: n.i + 1, mask: n.mask.clone(), floor: Floor { rev: it.rev, after }, st });
            }
        }
    }
    out
}

/// Step 3: counts.
fn check_counts(
    h: &[Operation],
    live: &[usize],
    min_rev: &BTreeMap<usize, u64>,
    leases: &BTreeMap<u64, LeaseFacts>,
    universe: &[String],
    witnesses: &BTreeMap<usize, Vec<(usize, bool)>>,
    limits: &Limits,
) -> Result<(), (String, Vec<usize>, bool)> {
    let mut found: BTreeMap<usize, u64> = BTreeMap::new();
    for probes in witnesses.values() {
        for &(c, p) in probes {
            *found.entry(c).or_default() += u64::from(p);
        }
    }
    for &i in live {
        let (KvOp::Count { from, to }, Some(KvOutput::Count { count, .. })) = (&h[i].op, h[i].output()) else {
            continue;
        };
        if found.get(&i).copied().unwrap_or(0) == *count {
            continue;
        }
        // The witnesses disagree: what could each key have been there?
        let (mut least, mut most) = (0u64, 0u64);
        for key in universe.iter().filter(|k| crate::kv::in_range(k, from, to.as_deref())) {
            // A small budget: giving up counts as "could have been", which
            // only ever widens the bounds.
            let budget = Limits { max_steps: limits.max_steps.min(5_000) };
            let can = |p: bool| {
                let case = key_case(h, live, min_rev, leases, key, Some((i, p)));
                matches!(replay(&case, &budget), Ok(Some(_)) | Err(GaveUp))
            };
            // The witness already shows one presence possible.
            let seen =
                witnesses.get(&universe_index(universe, key)).and_then(|w| w.iter().find(|p| p.0 == i)).map(|p| p.1);
            let (yes, no) = match seen {
                Some(true) => (true, can(false)),
                Some(false) => (can(true), true),
                None => (can(true), can(false)),
            };
            least += u64::from(yes && !no);
            most += u64::from(yes);
        }
        if *count < least || *count > most {
            return Err((String::from("count"), vec![i], false));
        }
    }
    Ok(())
}

/// Test aid: walks one key's replay along the placement a generator knows
/// to be true (`applied`: the revision each operation took effect at;
/// `expired`: the revision each lease ended at) and says where the search's
/// rules refuse it.
#[cfg(test)]
pub(crate) fn explain(
    h: &[Operation],
    key: &str,
    applied: &BTreeMap<usize, u64>,
    expired: &BTreeMap<u64, u64>,
) -> Option<String> {
    use alloc::format;
    let live: Vec<usize> = (0..h.len())
        .filter(|&i| match &h[i].outcome {
            Outcome::Failed => false,
            Outcome::Unknown => !h[i].op.is_read(),
            Outcome::Ok(_) => true,
        })
        .collect();
    let min_rev = revision_order(h, &live).ok()?;
    let leases = lease_facts(h, &live).ok()?;
    let case = key_case(h, &live, &min_rev, &leases, key, None);
    let ahead = Ahead::new(&case.items);
    // The true sequence: sponts at their true revisions, interleaved.
    let mut plan: Vec<(u64, u8, Option<usize>)> = Vec::new(); // (rev, order, spont index)
    for (j, s) in case.sponts.iter().enumerate() {
        let rev = match (&s.act, s.op) {
            (Act::LeaseEnd(id), None) => expired.get(id).copied(),
            (_, Some(op)) => applied.get(&op).copied(),
            _ => None,
        };
        if let Some(r) = rev {
            plan.push((r, if s.expiry { 0 } else { 1 }, Some(j)));
        }
    }
    for it in &case.items {
        plan.push((it.rev, if it.is_write() { 1 } else { 2 }, None));
    }
    plan.sort_by_key(|p| (p.0, p.1));
    let mut n =
        Node { i: 0, mask: Mask::new(case.sponts.len()), floor: Floor { rev: 0, after: After::Read }, st: None };
    // No-op placements the search leaves for the last gap: deferred.
    let mut deferred: Vec<usize> = Vec::new();
    for (rev, _, sp) in plan {
        let kids = expand(&n, &case.items, &case.sponts, &ahead);
        if let Some(k) = kids.iter().find(|k| deferred.iter().any(|&j| k.i == n.i && k.mask.has(j) && !n.mask.has(j))) {
            n = k.clone();
        }
        deferred.retain(|&j| !n.mask.has(j));
        let kids = expand(&n, &case.items, &case.sponts, &ahead);
        let next = kids.into_iter().find(|k| match sp {
            Some(j) => k.i == n.i && k.mask.has(j) && !n.mask.has(j),
            None => k.i == n.i + 1,
        });
        match next {
            Some(k) if ahead.feasible(&k, &case.items, &case.sponts) => n = k,
            Some(_) => {
                return Some(format!(
                    "feasible() refuses step at rev {rev} ({sp:?}), item {}: {:?}, state {:?}",
                    n.i,
                    case.items.get(n.i),
                    n.st
                ))
            }
            None => {
                if let Some(j) = sp {
                    let noop = apply(&case.sponts[j].act, &n.st, (rev, rev), &|_| false).iter().all(|st| *st == n.st);
                    if noop {
                        deferred.push(j);
                        continue;
                    }
                }
                let what = match sp {
                    Some(j) => format!("spont {:?}", case.sponts[j]),
                    None => format!("item {:?}", case.items.get(n.i)),
                };
                return Some(format!(
                    "expand() has no step at rev {rev} for {what}; at item {} floor {:?} state {:?}",
                    n.i, n.floor, n.st
                ));
            }
        }
    }
    None
}
