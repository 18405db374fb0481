//! The per-key search: Wing & Gong's backtracking with Lowe's memoisation
//! and the exact pruning rules described on the private `search` function and its helpers.

use crate::hash::{fmix64, FxBuild};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::hash::BuildHasher;
use hashbrown::{HashMap, HashTable};

use super::model::{malformed, observed_value, written_fragment, KvOp, KvOutput, Limits, Operation, Outcome};

/// Check one key's operations: `Ok(true)` if linearizable, `Ok(false)` if
/// not (or if any op is malformed, see [`Verdict::Violation`](super::Verdict::Violation)), `Err(())`
/// if the search hit `limits` (or its internal memory cap).
///
/// Intended for a single key; if `ops` mixes keys, each key is checked on
/// its own (compositionality) and the results are combined: any `false`
/// wins, then any give-up.
// The `()` error is part of the agreed API: the only failure is "gave up".
#[allow(clippy::result_unit_err)]
pub fn check_key(ops: &[Operation], limits: &Limits) -> Result<bool, ()> {
    let mut groups: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        if malformed(op) {
            return Ok(false);
        }
        match (&op.outcome, &op.op) {
            // Never took effect / took effect invisibly: irrelevant.
            (Outcome::Failed, _) | (Outcome::Unknown, KvOp::Get { .. }) => continue,
            _ => groups.entry(op.op.key()).or_default().push(op),
        }
    }
    let mut gave_up = false;
    for group in groups.values() {
        match search(group, limits) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(()) => gave_up = true,
        }
    }
    if gave_up {
        Err(())
    } else {
        Ok(true)
    }
}

/// Pseudo-random 64-bit tag of an op index; the bitset hash is the XOR of
/// the tags of its set bits, so it updates in O(1) per flip.
fn bit_tag(i: usize) -> u64 {
    fmix64((i as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

// ---------------------------------------------------------------------------
// Search internals
// ---------------------------------------------------------------------------

/// Interned id of the absent state.
const ABSENT: u32 = 0;
/// Interned id of the abstract *dirty* state (see [`search`]): present,
/// holding a string no op can observe.
const DIRTY: u32 = 1;
/// "No such entry" marker in the event list.
const NIL: usize = usize::MAX;
/// Cap on interned states: ids are `u32`.
const MAX_STATES: usize = (u32::MAX - 1) as usize;
/// Cap on memo storage (64-bit words, i.e. 1 GiB): a search that needs more
/// gives up instead of exhausting memory (allocation failure would abort).
const MAX_MEMO_WORDS: usize = 1 << 27;

/// What a CAS must have answered, pre-resolved to state ids.
#[derive(Clone, Copy)]
enum CasWant {
    /// Unknown outcome: either branch is acceptable.
    Any,
    /// Reported success.
    Swapped,
    /// Reported failure with this current state.
    NotSwapped(u32),
}

/// An operation compiled against the state interner, so that checking it
/// against a state is (except for appends) integer comparisons only.
#[derive(Clone, Copy)]
enum Kind<'a> {
    /// Get that must observe this state.
    Get(u32),
    /// Put producing this state.
    Put(u32),
    /// Delete with its reported `existed` (None when unknown).
    Delete(Option<bool>),
    /// Append of this fragment.
    Append(&'a str),
    /// CAS from `expect` to `to`.
    Cas { expect: u32, to: u32, want: CasWant },
}

/// Per-key states interned as dense `u32` ids, so memo keys and
/// comparisons never touch strings.
struct States {
    /// id -> state.
    list: Vec<Option<String>>,
    /// Hash index over `list` (stores ids).
    index: HashTable<u32>,
    /// (state, append op) -> resulting state, so each append result string
    /// is built and hashed once.
    appended: HashMap<(u32, u32), u32, FxBuild>,
}

impl States {
    fn new() -> Self {
        let mut s =
            States { list: Vec::new(), index: HashTable::new(), appended: HashMap::with_hasher(FxBuild::default()) };
        // Id 0 is the absent state, the initial state of every key.
        let absent = s.intern(None);
        debug_assert_eq!(absent, ABSENT);
        // DIRTY gets a placeholder entry that is not indexed, so no real
        // state is ever interned to it.
        s.list.push(None);
        s
    }

    fn intern(&mut self, state: Option<String>) -> u32 {
        let h = FxBuild::default().hash_one(&state);
        let list = &self.list;
        if let Some(&id) = self.index.find(h, |&id| list.get(id as usize) == Some(&state)) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(state);
        let list = &self.list;
        self.index.insert_unique(h, id, |&id| FxBuild::default().hash_one(list.get(id as usize).unwrap_or(&None)));
        id
    }

    /// Compile `op` with outcome `outcome`; `None` if they do not fit
    /// together (malformed, or an unknown read that should have been
    /// dropped).
    fn compile<'a>(&mut self, op: &'a KvOp, outcome: &Outcome) -> Option<Kind<'a>> {
        let out = match outcome {
            Outcome::Ok(o) => Some(o),
            Outcome::Unknown => None,
            Outcome::Failed => return None,
        };
        Some(match (op, out) {
            (KvOp::Get { .. }, Some(KvOutput::Value(v))) => Kind::Get(self.intern(v.clone())),
            (KvOp::Put { value, .. }, None | Some(KvOutput::Written)) => Kind::Put(self.intern(Some(value.clone()))),
            (KvOp::Append { value, .. }, None | Some(KvOutput::Written)) => Kind::Append(value),
            (KvOp::Delete { .. }, None) => Kind::Delete(None),
            (KvOp::Delete { .. }, Some(KvOutput::Deleted { existed })) => Kind::Delete(Some(*existed)),
            (KvOp::Cas { expect, value, .. }, out) => {
                let want = match out {
                    None => CasWant::Any,
                    Some(KvOutput::Cas { swapped: true, current: None }) => CasWant::Swapped,
                    Some(KvOutput::Cas { swapped: false, current }) => {
                        CasWant::NotSwapped(self.intern(current.clone()))
                    }
                    Some(_) => return None,
                };
                Kind::Cas { expect: self.intern(expect.clone()), to: self.intern(Some(value.clone())), want }
            }
            _ => return None,
        })
    }

    /// Apply op `i` (compiled as `kind`) to state `s`: the new state, or
    /// `None` if the op's reported output is impossible in state `s`.
    fn apply(&mut self, kind: Kind<'_>, i: usize, s: u32) -> Option<u32> {
        match kind {
            Kind::Get(want) => (s == want).then_some(s),
            Kind::Put(to) => Some(to),
            Kind::Delete(Some(existed)) if existed != (s != ABSENT) => None,
            Kind::Delete(_) => Some(ABSENT),
            Kind::Cas { expect, to, want } => match (s == expect, want) {
                (true, CasWant::NotSwapped(_)) | (false, CasWant::Swapped) => None,
                (true, _) => Some(to),
                (false, CasWant::NotSwapped(cur)) => (cur == s).then_some(s),
                (false, CasWant::Any) => Some(s),
            },
            Kind::Append(_) if s == DIRTY => Some(DIRTY),
            Kind::Append(frag) => {
                let key = (s, i as u32);
                if let Some(&to) = self.appended.get(&key) {
                    return Some(to);
                }
                let old = self.list.get(s as usize).and_then(|o| o.as_deref()).unwrap_or("");
                let mut new = String::with_capacity(old.len() + frag.len());
                new.push_str(old);
                new.push_str(frag);
                let to = self.intern(Some(new));
                self.appended.insert(key, to);
                Some(to)
            }
        }
    }
}

/// A bitset with an incrementally maintained hash (XOR of per-bit tags),
/// so hashing a configuration is O(1) instead of O(n/64).
struct Bits {
    words: Vec<u64>,
    hash: u64,
}

impl Bits {
    fn new(n: usize) -> Self {
        Bits { words: vec![0; n.div_ceil(64)], hash: 0 }
    }

    /// Toggle bit `i` (set when linearizing, clear when backtracking).
    fn flip(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w ^= 1u64 << (i % 64);
            self.hash ^= bit_tag(i);
        }
    }
}

/// Restriction on the next op, set when the last linearized op was an
/// unknown one (see [`search`]). Part of the memo key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// No restriction.
    Free,
    /// Last op was unknown and the state before it was absent.
    UnknownFromAbsent,
    /// Last op was unknown and the state before it was present.
    UnknownFromPresent,
    /// Last op was an unknown op used for presence alone (rule 5 of
    /// [`search`]): only an Ok delete reporting `existed: true` may follow.
    PresenceOnly,
}

impl After {
    /// `self` restricts at least as much as `other`: then a failed search
    /// from `other` proves failure from `self` (same Ok set and state).
    fn at_least(self, other: After) -> bool {
        other == After::Free || other == self
    }
}

/// All explorations that started at one (Ok set, state) pair.
#[derive(Clone, Copy)]
struct Group {
    hash: u64,
    state: u32,
    /// Offset of the Ok bitset in [`Memo::ok_arena`] (in bitsets).
    ok_at: u32,
    /// Head of this group's variant list in [`Memo::variants`].
    first: u32,
}

/// One explored configuration of a group: which unknown ops were already
/// linearized, and the restriction in force.
#[derive(Clone, Copy)]
struct Variant {
    /// Offset of the unknown bitset in [`Memo::unk_arena`] (in bitsets).
    unk_at: u32,
    after: After,
    /// Next variant of the same group, or `u32::MAX`.
    next: u32,
}

/// Lowe's memo of explored configurations, with dominance on unknown ops.
///
/// A configuration is (Ok ops linearized, state, unknown ops linearized,
/// restriction). If one with the same Ok set and state, a *subset* of the
/// unknown ops and a weaker restriction was already explored (and failed,
/// or we would have stopped), the new one fails too: every continuation
/// from it is also a continuation from the old one, which may simply leave
/// the extra unknown ops out. Plain equality would treat each subset of
/// unknown ops separately and blow up exponentially in their number.
///
/// Bitsets live back to back in arenas: one allocation per arena, not per
/// entry.
struct Memo {
    groups: HashTable<Group>,
    variants: Vec<Variant>,
    ok_arena: Vec<u64>,
    ok_words: usize,
    unk_arena: Vec<u64>,
    unk_words: usize,
}

impl Memo {
    fn new(ok_words: usize, unk_words: usize) -> Self {
        Memo {
            groups: HashTable::new(),
            variants: Vec::new(),
            ok_arena: Vec::new(),
            ok_words,
            unk_arena: Vec::new(),
            unk_words,
        }
    }

    /// Record a configuration: `Ok(true)` if it must be explored, `Ok(false)`
    /// if it is dominated by an explored one, `Err` past the memory cap.
    fn insert(&mut self, ok: &Bits, state: u32, unk: &[u64], after: After) -> Result<bool, ()> {
        let hash = fmix64(ok.hash ^ u64::from(state).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (ok_arena, ow) = (&self.ok_arena, self.ok_words);
        let found = self.groups.find(hash, |g| {
            g.hash == hash
                && g.state == state
                && ok_arena.get(g.ok_at as usize * ow..(g.ok_at as usize + 1) * ow) == Some(&ok.words[..])
        });
        let uw = self.unk_words;
        if let Some(g) = found {
            let mut v = g.first;
            while let Some(var) = self.variants.get(v as usize) {
                let start = var.unk_at as usize * uw;
                let subset = self
                    .unk_arena
                    .get(start..start + uw)
                    .is_some_and(|old| old.iter().zip(unk).all(|(o, c)| o & !c == 0));
                if subset && after.at_least(var.after) {
                    return Ok(false);
                }
                v = var.next;
            }
        }
        if self.ok_arena.len() + self.unk_arena.len() + ow + uw > MAX_MEMO_WORDS
            || self.variants.len() >= u32::MAX as usize
        {
            return Err(());
        }
        // Offsets count bitsets; zero-width bitsets all sit at 0.
        let unk_at = self.unk_arena.len().checked_div(uw).unwrap_or(0) as u32;
        self.unk_arena.extend_from_slice(unk);
        let id = self.variants.len() as u32;
        match self.groups.find_mut(hash, |g| {
            g.hash == hash && g.state == state && ok_arena_eq(&self.ok_arena, g.ok_at, ow, &ok.words)
        }) {
            Some(g) => {
                self.variants.push(Variant { unk_at, after, next: g.first });
                g.first = id;
            }
            None => {
                self.variants.push(Variant { unk_at, after, next: u32::MAX });
                let ok_at = self.ok_arena.len().checked_div(ow).unwrap_or(0) as u32;
                self.ok_arena.extend_from_slice(&ok.words);
                self.groups.insert_unique(hash, Group { hash, state, ok_at, first: id }, |g| g.hash);
            }
        }
        Ok(true)
    }
}

/// Whether the `at`-th stored Ok bitset equals `words`.
fn ok_arena_eq(arena: &[u64], at: u32, w: usize, words: &[u64]) -> bool {
    arena.get(at as usize * w..(at as usize + 1) * w) == Some(words)
}

/// Remove node `e` from its list (it keeps its own links, so [`relink`]
/// can put it back: "dancing links").
fn unlink(next: &mut [usize], prev: &mut [usize], e: usize) {
    let (p, n) = (prev[e], next[e]);
    next[p] = n;
    prev[n] = p;
}

/// Undo [`unlink`]; calls must mirror the unlinks in reverse order.
fn relink(next: &mut [usize], prev: &mut [usize], e: usize) {
    let (p, n) = (prev[e], next[e]);
    next[p] = e;
    prev[n] = e;
}

/// Aho–Corasick automaton over bytes: reports which of many patterns occur
/// in a text in one pass over it. Used to find which written strings occur
/// in which observed strings without a quadratic number of `contains`.
struct Matcher {
    /// Per node: children sorted by byte.
    children: Vec<Vec<(u8, u32)>>,
    /// Per node: longest proper suffix that is also a trie node.
    fail: Vec<u32>,
    /// Per node: the pattern that ends exactly here.
    out: Vec<Option<u32>>,
    /// Per node: nearest node on the fail chain with a pattern, or NONE.
    dict: Vec<u32>,
}

impl Matcher {
    const NONE: u32 = u32::MAX;

    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let c = self.children.get(node as usize)?;
        c.binary_search_by_key(&b, |&(k, _)| k).ok().map(|at| c[at].1)
    }

    /// Build for `patterns` (pattern ids are their indices).
    fn new(patterns: &[&str]) -> Self {
        let mut m = Matcher { children: vec![Vec::new()], fail: vec![0], out: vec![None], dict: vec![Self::NONE] };
        for (id, p) in patterns.iter().enumerate() {
            let mut node = 0u32;
            for &b in p.as_bytes() {
                node = match m.child(node, b) {
                    Some(c) => c,
                    None => {
                        let c = m.children.len() as u32;
                        m.children.push(Vec::new());
                        m.fail.push(0);
                        m.out.push(None);
                        m.dict.push(Self::NONE);
                        let kids = &mut m.children[node as usize];
                        let at = kids.partition_point(|&(k, _)| k < b);
                        kids.insert(at, (b, c));
                        c
                    }
                };
            }
            m.out[node as usize] = Some(id as u32);
        }
        // Breadth-first, so a node's fail target is finished before it.
        let mut queue: Vec<u32> = m.children[0].iter().map(|&(_, c)| c).collect();
        let mut head = 0;
        while let Some(&u) = queue.get(head) {
            head += 1;
            let kids = m.children[u as usize].clone();
            for (b, v) in kids {
                let mut f = m.fail[u as usize];
                let target = loop {
                    if let Some(t) = m.child(f, b) {
                        break t;
                    }
                    if f == 0 {
                        break 0;
                    }
                    f = m.fail[f as usize];
                };
                m.fail[v as usize] = target;
                m.dict[v as usize] = if m.out[target as usize].is_some() { target } else { m.dict[target as usize] };
                queue.push(v);
            }
        }
        m
    }

    /// Call `found` for every pattern occurrence in `text` (a pattern may
    /// be reported more than once).
    fn scan(&self, text: &str, mut found: impl FnMut(u32)) {
        let mut node = 0u32;
        for &b in text.as_bytes() {
            node = loop {
                if let Some(c) = self.child(node, b) {
                    break c;
                }
                if node == 0 {
                    break 0;
                }
                node = self.fail[node as usize];
            };
            if let Some(p) = self.out[node as usize] {
                found(p);
            }
            let mut d = self.dict[node as usize];
            while d != Self::NONE {
                if let Some(p) = self.out[d as usize] {
                    found(p);
                }
                d = self.dict[d as usize];
            }
        }
    }
}

/// Which written strings occur in which observable strings, for one key.
///
/// *Observable* strings are what some op can compare the state against:
/// values seen by Ok reads, current values of Ok failed CASes, expected
/// values of Ok successful CASes and of unknown CASes. A written string
/// (put value, CAS new value, appended fragment) occurring in none of them
/// can never be observed: see the dirty state in [`search`].
struct Visibility<'a> {
    /// Per op: id of its (non-empty) written string, if any.
    pattern: Vec<Option<usize>>,
    /// Per pattern: occurs in a string observed by an Ok op.
    seen: Vec<bool>,
    /// Per pattern: occurs in the expected value of an unknown CAS.
    in_unknown_expect: Vec<bool>,
    /// Per pattern: unknown CASes whose expected value it occurs in.
    expected_by: Vec<Vec<usize>>,
    /// Per string observed by an Ok op: the patterns occurring in it.
    contains: BTreeMap<&'a str, Vec<usize>>,
}

impl<'a> Visibility<'a> {
    fn new(ops: &[&'a Operation]) -> Self {
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut patterns: Vec<&str> = Vec::new();
        let pattern = ops
            .iter()
            .map(|o| {
                let f = written_fragment(o).filter(|f| !f.is_empty())?;
                Some(*ids.entry(f).or_insert_with(|| {
                    patterns.push(f);
                    patterns.len() - 1
                }))
            })
            .collect();
        let matcher = Matcher::new(&patterns);
        let mut seen = vec![false; patterns.len()];
        let mut in_unknown_expect = vec![false; patterns.len()];
        let mut expected_by: Vec<Vec<usize>> = vec![Vec::new(); patterns.len()];
        let mut contains: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            if let Some(v) = observed_value(o) {
                if contains.contains_key(v) {
                    continue;
                }
                let mut found: Vec<usize> = Vec::new();
                matcher.scan(v, |p| found.push(p as usize));
                found.sort_unstable();
                found.dedup();
                for &p in &found {
                    seen[p] = true;
                }
                contains.insert(v, found);
            }
            if let (KvOp::Cas { expect: Some(e), .. }, Outcome::Unknown) = (&o.op, &o.outcome) {
                matcher.scan(e, |p| {
                    in_unknown_expect[p as usize] = true;
                    let by = &mut expected_by[p as usize];
                    if by.last() != Some(&i) {
                        by.push(i);
                    }
                });
            }
        }
        Visibility { pattern, seen, in_unknown_expect, expected_by, contains }
    }

    /// Whether op `i` writes a string no op can observe.
    fn dirties(&self, i: usize) -> bool {
        self.pattern.get(i).copied().flatten().is_some_and(|p| !self.seen[p] && !self.in_unknown_expect[p])
    }
}

/// Wing & Gong / Lowe search over one key's well-formed ops (no Failed ops,
/// no Unknown reads).
///
/// Ok ops have call and return events in one time-ordered list; a call that
/// precedes the first remaining return is a candidate to linearize next
/// (the *window*). Unknown ops have no return: they sit in a second list
/// ordered by call time and may be linearized once called. Candidates are
/// tried Ok ops first, unknown ones second: unknown ops are rarely needed,
/// and the dominance memo (see [`Memo`]) prunes best when configurations
/// without them were explored first.
///
/// Plain Wing & Gong search blows up on two things real histories have
/// plenty of; everything below is exact (never changes the verdict).
///
/// **Dirty state.** A write whose string (put or CAS value, appended
/// fragment) occurs in no *observable* string (see [`Visibility`]) can
/// never be seen: while the state contains it, every read and CAS fails,
/// appends keep it, and only a put or delete gets rid of it. Such *dead*
/// writes, common for overwritten puts and for writes that never took
/// effect, all map the state to one abstract `DIRTY` state, so the many
/// orders of concurrent dead writes collapse in the memo.
///
/// **Unknown ops.** Each may be placed at any later point or left out. The
/// search only looks for *minimal* linearizations, from which no unknown
/// op can be removed; if any linearization exists, a minimal one does. In
/// a minimal linearization each unknown op u is *discharged*: some later
/// Ok op x succeeds but would fail had u been left out. Until then the
/// state with u and the state without it differ, and every op in between
/// succeeds on both. Hence:
/// 1. u changes the state.
/// 2. u is not directly followed by a *blind* op (a put, a dead write or
///    an unknown delete): afterwards both states would be equal.
/// 3. u is not directly followed by an Ok delete that would report the
///    same `existed` without u (same reason).
/// 4. Let R' be the pending Ok op, other than an append, with the earliest
///    return. An Ok op other than an append that succeeds on both states
///    makes them equal, so x comes no later than R': x is R' or an Ok op
///    called before R' returned. And x sees u's trace: it observes a
///    string containing u's written string, or one written by an unknown
///    CAS that expected u's (transitively); or x is an Ok delete reporting
///    `existed: true` while the state without u is absent (rule 5). Ops
///    writing no string (deletes, empty appends) only need some read, CAS
///    or delete there.
/// 5. Discharge by presence alone (u made an absent key present, an Ok
///    delete reports `existed: true`) must be direct: any op in between
///    either observes u's string or makes both states present. Any unknown
///    op creating the key does for this; a dead one has no other use, so
///    only the latest-called eligible dead one is tried.
/// 6. Unknown ops asking for exactly the same thing are interchangeable,
///    except that one called earlier can go in more places: only the
///    latest-called eligible one of each kind is tried.
///
/// **Lookahead.** Between resets (puts, deletes, successful CASes) only
/// appends change the state, so a node whose state can no longer be
/// extended into what the next checking op needs is abandoned at once
/// (see [`UnknownRules::feasible`]). This cuts the factorial number of
/// orders of concurrent appends down to those consistent with the next
/// read.
///
/// The remaining cost grows with the number of ops pending at once on the
/// key; the step limit bounds it.
fn search(ops: &[&Operation], limits: &Limits) -> Result<bool, ()> {
    let n = ops.len();
    // Op indices are stored as u32 in places; no real history gets near.
    if n >= (u32::MAX / 4) as usize {
        return Err(());
    }
    let mut states = States::new();
    let mut kinds = Vec::with_capacity(n);
    let mut unknown = Vec::with_capacity(n);
    // Index of each op among the Ok ops or among the unknown ops.
    let mut local = Vec::with_capacity(n);
    let (mut ok_total, mut unk_total) = (0usize, 0usize);
    let vis = Visibility::new(ops);
    for (i, op) in ops.iter().enumerate() {
        let Some(mut kind) = states.compile(&op.op, &op.outcome) else {
            return Ok(false);
        };
        // A write of a string no op can observe makes the state dirty.
        if vis.dirties(i) {
            kind = match kind {
                Kind::Cas { expect, want, .. } => Kind::Cas { expect, to: DIRTY, want },
                _ => Kind::Put(DIRTY),
            };
        }
        let unk = matches!(op.outcome, Outcome::Unknown);
        let counter = if unk { &mut unk_total } else { &mut ok_total };
        local.push(*counter);
        *counter += 1;
        kinds.push(kind);
        unknown.push(unk);
    }
    if ok_total == 0 {
        return Ok(true);
    }
    let rules = UnknownRules::new(ops, &kinds, &unknown, &vis);

    // Node layout: [0, m) Ok events sorted by (time, call-before-return,
    // op); [m, nodes) unknown calls sorted by (time, op); then the four
    // list sentinels.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ok_total);
    let mut unk_calls: Vec<(u64, usize)> = Vec::with_capacity(unk_total);
    for (i, op) in ops.iter().enumerate() {
        if unknown[i] {
            unk_calls.push((op.call, i));
        } else {
            events.push((op.call, false, i));
            events.push((op.ret, true, i));
        }
    }
    events.sort_unstable();
    unk_calls.sort_unstable();
    let m = events.len();
    let nodes = m + unk_total;
    let (ok_head, ok_tail, unk_head, unk_tail) = (nodes, nodes + 1, nodes + 2, nodes + 3);
    let mut node_op = vec![0usize; nodes];
    let mut node_time = vec![0u64; nodes];
    let mut node_ret = vec![false; nodes];
    let mut ret_node = vec![NIL; n];
    let mut unk_node = vec![NIL; n];
    for (pos, &(t, is_ret, i)) in events.iter().enumerate() {
        node_op[pos] = i;
        node_time[pos] = t;
        node_ret[pos] = is_ret;
        if is_ret {
            ret_node[i] = pos;
        }
    }
    for (k, &(t, i)) in unk_calls.iter().enumerate() {
        node_op[m + k] = i;
        node_time[m + k] = t;
        unk_node[i] = m + k;
    }
    let mut next = vec![NIL; nodes + 4];
    let mut prev = vec![NIL; nodes + 4];
    let ok_order = core::iter::once(ok_head).chain(0..m).chain(core::iter::once(ok_tail));
    let unk_order = core::iter::once(unk_head).chain(m..nodes).chain(core::iter::once(unk_tail));
    for order in [ok_order.collect::<Vec<_>>(), unk_order.collect()] {
        for w in order.windows(2) {
            next[w[0]] = w[1];
            prev[w[1]] = w[0];
        }
    }
    let lists = Lists {
        m,
        ok_head,
        unk_head,
        unk_tail,
        node_op: &node_op,
        node_time: &node_time,
        node_ret: &node_ret,
        unk_node: &unk_node,
    };

    let mut ok_bits = Bits::new(ok_total);
    let mut unk_bits = vec![0u64; unk_total.div_ceil(64)];
    let mut memo = Memo::new(ok_bits.words.len(), unk_bits.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut marks = Marks { gen: 0, of: vec![0; n], twin: vec![0; 2 * n] };
    // Unknown candidates at the current node (valid in the unknown pass).
    let mut cands: Vec<(usize, bool)> = Vec::new();
    let mut state = ABSENT;
    let mut after = After::Free;
    let mut ok_left = ok_total;
    let mut node = next[ok_head];
    let mut pass = Pass::Ok;
    let mut steps: u64 = 0;

    loop {
        steps += 1;
        if steps > limits.max_steps || states.list.len() >= MAX_STATES {
            return Err(());
        }
        // Pick the next candidate of the current pass, if any.
        let candidate = match pass {
            Pass::Ok if node < m && !node_ret[node] => Some((node, false)),
            Pass::Ok => {
                if next[unk_head] != unk_tail {
                    // Window exhausted: `node` is the first remaining
                    // return. Try the unknown ops that may go here.
                    rules.candidates(&lists, &next, node, state, &unk_bits, &local, &mut marks, &mut cands);
                    pass = Pass::Unknown(0);
                    continue;
                }
                None
            }
            Pass::Unknown(k) => cands.get(k).copied(),
            Pass::Dead => None,
        };
        let Some((cand, presence)) = candidate else {
            // No candidate left: backtrack.
            let Some(f) = stack.pop() else {
                return Ok(false);
            };
            let i = node_op[f.node];
            if unknown[i] {
                relink(&mut next, &mut prev, f.node);
                flip(&mut unk_bits, local[i]);
            } else {
                relink(&mut next, &mut prev, ret_node[i]);
                relink(&mut next, &mut prev, f.node);
                ok_bits.flip(local[i]);
                ok_left += 1;
            }
            state = f.state;
            after = f.after;
            pass = f.pass;
            match pass {
                Pass::Ok | Pass::Dead => node = next[f.node],
                Pass::Unknown(k) => {
                    // Deeper nodes reused `cands`: rebuild this node's list
                    // (same configuration, so the same list).
                    let mut r = next[ok_head];
                    while r < m && !node_ret[r] {
                        r = next[r];
                    }
                    rules.candidates(&lists, &next, r, state, &unk_bits, &local, &mut marks, &mut cands);
                    pass = Pass::Unknown(k + 1);
                }
            }
            continue;
        };
        // Move the cursor past this candidate, whatever happens to it.
        let here = pass;
        match pass {
            Pass::Ok => node = next[cand],
            Pass::Unknown(k) => pass = Pass::Unknown(k + 1),
            Pass::Dead => {}
        }
        let i = node_op[cand];
        let allowed = match after {
            After::Free => true,
            After::PresenceOnly => matches!(kinds[i], Kind::Delete(Some(true))),
            _ => match kinds[i] {
                Kind::Put(_) | Kind::Delete(None) => false,
                Kind::Delete(Some(_)) => (after == After::UnknownFromPresent) != (state != ABSENT),
                Kind::Get(_) | Kind::Append(_) | Kind::Cas { .. } => true,
            },
        } && !(presence && state != ABSENT);
        if !allowed {
            continue;
        }
        let Some(ns) = states.apply(kinds[i], i, state) else {
            continue;
        };
        if unknown[i] && ns == state {
            continue;
        }
        let next_after = match (unknown[i], presence, state == ABSENT) {
            (false, _, _) => After::Free,
            (true, true, _) => After::PresenceOnly,
            (true, false, true) => After::UnknownFromAbsent,
            (true, false, false) => After::UnknownFromPresent,
        };
        if unknown[i] {
            flip(&mut unk_bits, local[i]);
        } else {
            ok_bits.flip(local[i]);
        }
        if !memo.insert(&ok_bits, ns, &unk_bits, next_after)? {
            if unknown[i] {
                flip(&mut unk_bits, local[i]);
            } else {
                ok_bits.flip(local[i]);
            }
            continue;
        }
        stack.push(Frame { node: cand, state, after, pass: here });
        unlink(&mut next, &mut prev, cand);
        if !unknown[i] {
            unlink(&mut next, &mut prev, ret_node[i]);
            ok_left -= 1;
            if ok_left == 0 {
                return Ok(true);
            }
        }
        state = ns;
        after = next_after;
        node = next[ok_head];
        pass = if rules.feasible(&lists, &next, state, &states, &kinds, &unk_bits, &local) {
            Pass::Ok
        } else {
            Pass::Dead
        };
    }
}

/// Which candidates the search is going through at a node.
#[derive(Clone, Copy)]
enum Pass {
    /// Ok calls in the window, in list order.
    Ok,
    /// The node's unknown candidates (see [`UnknownRules::candidates`]),
    /// at this index.
    Unknown(usize),
    /// The node was shown to fail: backtrack at once.
    Dead,
}

/// Backtracking record: the node linearized and what to restore.
struct Frame {
    node: usize,
    state: u32,
    after: After,
    pass: Pass,
}

/// Read-only view of the event lists for [`UnknownRules::candidates`].
struct Lists<'a> {
    m: usize,
    ok_head: usize,
    unk_head: usize,
    unk_tail: usize,
    node_op: &'a [usize],
    node_time: &'a [u64],
    node_ret: &'a [bool],
    unk_node: &'a [usize],
}

/// Generation-stamped marks over ops: O(1) clearing between uses.
struct Marks {
    gen: u64,
    of: Vec<u64>,
    /// Per (twin class, presence flag), see [`UnknownRules::candidates`].
    twin: Vec<u64>,
}

/// Static facts about a key's ops for the pruning rules and the lookahead
/// of [`search`].
struct UnknownRules {
    /// Per op: Ok op that can be an observer (get, CAS, delete).
    observer: Vec<bool>,
    /// Lists of unknown ops whose written string occurs in one observed
    /// string.
    discharge_lists: Vec<Vec<usize>>,
    /// Per op: the list for the string it observed, if any.
    discharge_list: Vec<Option<usize>>,
    /// Unknown ops any observer may discharge (rule 4's weaker form).
    any_observer: Vec<usize>,
    /// Per op: dead unknown op (its string is unobservable), which only
    /// presence can discharge (rule 5).
    presence_only: Vec<bool>,
    /// Per op: unknown op whose written string some unknown CAS expects.
    chained: Vec<bool>,
    /// Per op: class of unknown ops asking for exactly the same thing.
    twin_class: Vec<usize>,
    /// Per op: Ok append.
    ok_append: Vec<bool>,
    /// Per op: unknown op that makes an absent key present.
    creates: Vec<bool>,
    /// Per op: Ok delete reporting `existed: true`.
    delete_existed: Vec<bool>,
    /// Per op: the state a put, delete or (successful) CAS sets, whatever
    /// the state was before.
    reset_to: Vec<Option<u32>>,
    /// Per op: for an Ok op that checks the state, the state it needs
    /// (`Some(ABSENT)` for absent) or `None` for "any present state".
    needs: Vec<Option<Option<u32>>>,
    /// Unknown puts, deletes and CASes that are not dead, by call
    /// time: the unknown ops that could reset the state.
    unknown_resetters: Vec<(u64, usize)>,
    /// Unknown appends that are not dead, by call time.
    unknown_appends: Vec<(u64, usize)>,
}

impl UnknownRules {
    fn new(ops: &[&Operation], kinds: &[Kind<'_>], unknown: &[bool], vis: &Visibility<'_>) -> Self {
        let n = ops.len();
        // Unknown ops by the patterns whose observation can discharge
        // them: their own written string, and (transitively) the strings
        // written by unknown CASes that expect a value containing it, since
        // such a CAS can carry the trace on.
        let mut by_pattern: Vec<Vec<usize>> = vec![Vec::new(); vis.seen.len()];
        let mut any_observer = Vec::new();
        let mut presence_only = vec![false; n];
        let mut chained = vec![false; n];
        let mut reach: Vec<usize> = Vec::new();
        let mut in_reach = vec![false; vis.seen.len()];
        for u in (0..n).filter(|&u| unknown[u]) {
            let Some(p) = vis.pattern[u] else {
                any_observer.push(u);
                continue;
            };
            presence_only[u] = !vis.seen[p] && !vis.in_unknown_expect[p];
            chained[u] = vis.in_unknown_expect[p];
            reach.clear();
            reach.push(p);
            in_reach[p] = true;
            let mut k = 0;
            let mut untracked = false;
            while let Some(&q) = reach.get(k) {
                k += 1;
                for &c in &vis.expected_by[q] {
                    match vis.pattern[c] {
                        Some(t) if !in_reach[t] => {
                            in_reach[t] = true;
                            reach.push(t);
                        }
                        Some(_) => {}
                        // A CAS writing "" leaves no pattern to look for.
                        None => untracked = true,
                    }
                }
            }
            if untracked {
                any_observer.push(u);
            }
            for &q in &reach {
                by_pattern[q].push(u);
                in_reach[q] = false;
            }
        }
        // Per observed string: unknown ops it can discharge.
        let mut lists: Vec<Vec<usize>> = Vec::new();
        let mut list_of_text: BTreeMap<&str, usize> = BTreeMap::new();
        for (text, pats) in &vis.contains {
            let mut l: Vec<usize> = pats.iter().flat_map(|&p| by_pattern[p].iter().copied()).collect();
            l.sort_unstable();
            l.dedup();
            list_of_text.insert(text, lists.len());
            lists.push(l);
        }
        let discharge_list = ops
            .iter()
            .zip(unknown)
            .map(|(o, &u)| {
                if u {
                    return None;
                }
                observed_value(o).and_then(|v| list_of_text.get(v).copied())
            })
            .collect();
        UnknownRules {
            discharge_lists: lists,
            discharge_list,
            observer: (0..n)
                .map(|i| !unknown[i] && matches!(kinds[i], Kind::Get(_) | Kind::Cas { .. } | Kind::Delete(_)))
                .collect(),
            any_observer,
            creates: (0..n)
                .map(|u| {
                    unknown[u] && matches!(kinds[u], Kind::Put(_) | Kind::Append(_) | Kind::Cas { expect: ABSENT, .. })
                })
                .collect(),
            ok_append: (0..n).map(|i| !unknown[i] && matches!(kinds[i], Kind::Append(_))).collect(),
            delete_existed: (0..n).map(|i| !unknown[i] && matches!(kinds[i], Kind::Delete(Some(true)))).collect(),
            reset_to: (0..n)
                .map(|i| match (unknown[i], kinds[i]) {
                    (_, Kind::Put(to)) => Some(to),
                    (_, Kind::Delete(_)) => Some(ABSENT),
                    (false, Kind::Cas { to, want: CasWant::Swapped, .. }) | (true, Kind::Cas { to, .. }) => Some(to),
                    _ => None,
                })
                .collect(),
            needs: (0..n)
                .map(|i| match (unknown[i], kinds[i]) {
                    (true, _) => None,
                    (false, Kind::Get(v))
                    | (false, Kind::Cas { want: CasWant::NotSwapped(v), .. })
                    | (false, Kind::Cas { expect: v, want: CasWant::Swapped, .. }) => Some(Some(v)),
                    (false, Kind::Delete(Some(true))) => Some(None),
                    (false, Kind::Delete(Some(false))) => Some(Some(ABSENT)),
                    _ => None,
                })
                .collect(),
            unknown_resetters: {
                let mut v: Vec<(u64, usize)> = (0..n)
                    .filter(|&u| {
                        unknown[u]
                            && !presence_only[u]
                            && matches!(kinds[u], Kind::Put(_) | Kind::Delete(_) | Kind::Cas { .. })
                    })
                    .map(|u| (ops[u].call, u))
                    .collect();
                v.sort_unstable();
                v
            },
            unknown_appends: {
                let mut v: Vec<(u64, usize)> = (0..n)
                    .filter(|&u| unknown[u] && !presence_only[u] && matches!(kinds[u], Kind::Append(_)))
                    .map(|u| (ops[u].call, u))
                    .collect();
                v.sort_unstable();
                v
            },
            chained,
            twin_class: {
                let mut classes: BTreeMap<&KvOp, usize> = BTreeMap::new();
                ops.iter()
                    .map(|o| {
                        let next = classes.len();
                        *classes.entry(&o.op).or_insert(next)
                    })
                    .collect()
            },
            presence_only,
        }
    }

    /// Lookahead at a freshly entered node: false if some pending op can
    /// certainly not succeed. Let X be the pending Ok op that checks the
    /// state (get, CAS, delete) with the earliest return. Everything
    /// linearized before X was called before X returned, and between
    /// resets (puts, deletes, successful CASes) only appends change the
    /// state. So X can only see a state that extends, by appending, either
    /// the current state or the result of a reset called by then (from an
    /// absent key, appends must start with a fragment that begins it).
    #[allow(clippy::too_many_arguments)]
    fn feasible(
        &self,
        l: &Lists<'_>,
        next: &[usize],
        state: u32,
        states: &States,
        kinds: &[Kind<'_>],
        unk_bits: &[u64],
        local: &[usize],
    ) -> bool {
        let text = |id: u32| states.list.get(id as usize).and_then(|s| s.as_deref());
        let pending = |u: usize| unk_bits.get(local[u] / 64).is_some_and(|w| w & (1u64 << (local[u] % 64)) == 0);
        // Find X and the state it needs.
        let mut x_node = next[l.ok_head];
        let (need, limit) = loop {
            if x_node >= l.m {
                return true;
            }
            if l.node_ret[x_node] {
                if let Some(need) = self.needs[l.node_op[x_node]] {
                    break (need, l.node_time[x_node]);
                }
            }
            x_node = next[x_node];
        };
        // `None` needs "any present state": appends always give one.
        let Some(want) = need else {
            return true;
        };
        let want = text(want);
        // Whether appending to present `base` can give `want`.
        let extends = |base: &str| want.is_some_and(|w| w.starts_with(base));
        // From an absent key, appends build `want` only if some available
        // append's fragment begins it.
        let begins = |f: &str| want.is_some_and(|w| w.starts_with(f));
        let mut absent_base = false;
        let mut fragment_fits = false;
        let base = |to: u32, absent_base: &mut bool| match text(to) {
            // A dirty state is present and fails every check but deletes.
            _ if to == DIRTY => false,
            None => {
                *absent_base = true;
                false
            }
            Some(t) => extends(t),
        };
        if base(state, &mut absent_base) {
            return true;
        }
        // Ok ops called before X returned.
        let mut y_node = next[l.ok_head];
        while y_node != x_node && y_node < l.m {
            let y = l.node_op[y_node];
            if !l.node_ret[y_node] {
                if let Some(to) = self.reset_to[y] {
                    if base(to, &mut absent_base) {
                        return true;
                    }
                }
                if let Kind::Append(f) = kinds[y] {
                    fragment_fits |= begins(f);
                }
            }
            y_node = next[y_node];
        }
        // Pending unknown ops called by then.
        for &(call, u) in &self.unknown_resetters {
            if call > limit {
                break;
            }
            if pending(u) {
                if let Some(to) = self.reset_to[u] {
                    if base(to, &mut absent_base) {
                        return true;
                    }
                }
            }
        }
        if absent_base && !fragment_fits && want.is_some_and(|w| !w.is_empty()) {
            for &(call, u) in &self.unknown_appends {
                if call > limit {
                    break;
                }
                if let Kind::Append(f) = kinds[u] {
                    if pending(u) && begins(f) {
                        fragment_fits = true;
                        break;
                    }
                }
            }
        }
        absent_base && (want.is_none_or(|w| w.is_empty()) || fragment_fits)
    }

    /// Fill `out` with the unknown ops that may be linearized at a node
    /// whose first remaining return is node `r`, as (node, presence) pairs
    /// sorted by node; `presence` means "only as rule 5's pattern". Depends
    /// only on the node's configuration, so it can be rebuilt on backtrack.
    #[allow(clippy::too_many_arguments)]
    fn candidates(
        &self,
        l: &Lists<'_>,
        next: &[usize],
        r: usize,
        state: u32,
        unk_bits: &[u64],
        local: &[usize],
        marks: &mut Marks,
        out: &mut Vec<(usize, bool)>,
    ) {
        out.clear();
        let limit = if r < l.m { l.node_time[r] } else { u64::MAX };
        let pending = |u: usize| unk_bits.get(local[u] / 64).is_some_and(|w| w & (1u64 << (local[u] % 64)) == 0);
        marks.gen += 1;
        let gen = marks.gen;
        let (mut observer, mut delete_existed) = (false, false);
        // Walk Ok calls up to the return of the first pending non-append op
        // R', then R' itself (rule 4 of `search`): appends succeed on both
        // states, and R' comes after everything called
        // later than its return.
        let mut x_node = next[l.ok_head];
        let mut bounded = false;
        while x_node < l.m {
            let x = l.node_op[x_node];
            let is_bound = l.node_ret[x_node] && !self.ok_append[x];
            if !l.node_ret[x_node] || is_bound {
                observer |= self.observer[x];
                delete_existed |= self.delete_existed[x];
                let list = self.discharge_list[x].and_then(|k| self.discharge_lists.get(k));
                for &u in list.into_iter().flatten() {
                    if marks.of[u] != gen && pending(u) && l.node_time[l.unk_node[u]] <= limit {
                        marks.of[u] = gen;
                        out.push((l.unk_node[u], false));
                    }
                }
            }
            if is_bound {
                bounded = true;
                break;
            }
            x_node = next[x_node];
        }
        if !bounded {
            // Only appends remain pending: rule 4 does not apply.
            out.clear();
            let mut k = next[l.unk_head];
            while k != l.unk_tail && l.node_time[k] <= limit {
                let u = l.node_op[k];
                if !self.presence_only[u] {
                    marks.of[u] = gen;
                    out.push((k, false));
                }
                k = next[k];
            }
        } else if observer {
            for &u in &self.any_observer {
                if marks.of[u] != gen && pending(u) && l.node_time[l.unk_node[u]] <= limit {
                    marks.of[u] = gen;
                    out.push((l.unk_node[u], false));
                }
            }
        }
        if state == ABSENT && delete_existed {
            // Rule 5's pattern: any called op that creates the key will do,
            // and they differ only in what else they could be used for. A
            // dead op has no other use, and a later-called one is eligible
            // at fewer nodes, so the latest-called dead op is the only one
            // worth trying (swap any other into its place); ops with other
            // uses are tried only if there is none.
            let mut best = None;
            let first = out.len();
            let mut k = next[l.unk_head];
            while k != l.unk_tail && l.node_time[k] <= limit {
                let u = l.node_op[k];
                if self.creates[u] && marks.of[u] != gen {
                    if self.presence_only[u] {
                        best = Some(k);
                    } else {
                        // A chained op may hand its trace to an unknown CAS
                        // before the delete: no "directly followed" rule.
                        out.push((k, !self.chained[u]));
                    }
                }
                k = next[k];
            }
            if let Some(k) = best {
                out.truncate(first);
                out.push((k, true));
            }
        }
        out.sort_unstable();
        // Identical unknown ops are interchangeable except that one called
        // earlier is eligible at more nodes: try only the latest-called
        // eligible one of each kind (swap any other use into its place).
        marks.gen += 1;
        let gen = marks.gen;
        let mut keep = out.len();
        for at in (0..out.len()).rev() {
            let (k, presence) = out[at];
            let class = self.twin_class[l.node_op[k]];
            // Twin classes are op indices' range, so `marks.of` fits; the
            // presence flag splits a class in two.
            let slot = class * 2 + usize::from(presence);
            if marks.twin.get(slot).is_some_and(|&g| g == gen) {
                continue;
            }
            if let Some(g) = marks.twin.get_mut(slot) {
                *g = gen;
            }
            keep -= 1;
            out[keep] = (k, presence);
        }
        out.drain(..keep);
    }
}

/// Toggle bit `i` of a plain bitset.
fn flip(words: &mut [u64], i: usize) {
    if let Some(w) = words.get_mut(i / 64) {
        *w ^= 1u64 << (i % 64);
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------
