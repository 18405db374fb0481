//! Client sessions: exactly-once writes (Raft dissertation §6.3, LogCabin).
//!
//! A session is opened by a `Register` log entry and named by that entry's
//! index. Each write carries `(session, seq, ack)`. Everything here runs at
//! apply time, driven only by log entries and their cluster timestamps, so
//! every replica makes the same decisions at the same log position:
//!
//! * The session's `ack` becomes `max(old, new)`; cached replies below it are
//!   dropped (the client will never ask again).
//! * `seq < ack` → `StaleSeq`, never applied.
//! * A `seq` already applied gets its cached reply and is not applied again —
//!   this is what makes a retry after a leader crash safe.
//! * `ack > seq` → `BadRequest`; `seq >= ack + max_outstanding` → `Busy`;
//!   cached replies of `max_reply_bytes` or more → `Busy`.
//! * Before each entry, the clock advances to the entry's timestamp and
//!   sessions idle longer than the timeout expire, freeing their memory.
//!   A write on a missing session → `SessionExpired`.
//! * At most `max_sessions` sessions, and at most `max_per_owner` of one
//!   owner (the host's principal); a `Register` beyond either gets `Busy`, so
//!   one client cannot take the whole table.
//! * Every session has the hash of its secret (from its `Register` entry);
//!   a write or keep-alive whose hash differs is answered `SessionExpired`
//!   and changes nothing — not the ack, not the idle clock — so knowing a
//!   session's id (a log index) is not enough to use it.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::client::{ClientError, Owner, SecretHash};
use crate::hash::FxBuild;
use crate::types::Bytes;
use crate::types::Index;
use crate::varint;

/// Session limits. They must be the same on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// A session idle for longer than this (cluster time, ticks) expires.
    pub timeout_ticks: u64,
    /// Most open sessions.
    pub max_sessions: usize,
    /// Most writes a session may have between its ack and its newest seq.
    pub max_outstanding: u64,
    /// Most bytes of cached replies a session may hold: a new write on a
    /// session whose unacknowledged replies reach this gets `Busy` (it had no
    /// effect; acknowledging replies frees the room). One reply may take it
    /// past the bound, by at most the largest output.
    pub max_reply_bytes: usize,
    /// Most open sessions of one owner.
    pub max_per_owner: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            timeout_ticks: 6_000,
            max_sessions: 65_536,
            max_outstanding: 128,
            max_reply_bytes: 8 << 20,
            max_per_owner: 65_536,
        }
    }
}

/// One session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id (the index of its Register entry).
    pub id: u64,
    /// Whose it is.
    pub owner: Owner,
    /// Hash of its secret.
    pub secret_hash: SecretHash,
    /// Cluster time of its last activity.
    pub last_active: u64,
    /// Lowest seq the client still awaits.
    pub ack: u64,
    /// Replies of applied writes with seq >= ack, sorted by seq (at most
    /// `max_outstanding`; usually one or two, so a sorted deque beats a map).
    pub replies: VecDeque<(u64, Bytes)>,
}

/// The replicated session table.
///
/// Sessions live in a hash table (O(1) lookup per write); snapshots list them
/// sorted by id, so nothing depends on hash order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "SessionsWire")]
pub struct Sessions {
    limits: SessionLimits,
    /// Cluster time of the newest entry applied.
    clock: u64,
    table: hashbrown::HashMap<u64, Session, FxBuild>,
    /// (last_active, id), to find idle sessions without a scan.
    idle: BTreeSet<(u64, u64)>,
    /// Open sessions per owner (derived from `table`; not in snapshots).
    owners: hashbrown::HashMap<Owner, usize, FxBuild>,
    /// Test-only: skip duplicate detection (the `bugs` feature's `no_dedup`).
    pub(crate) no_dedup: bool,
}

/// How a session table is written in a snapshot: sorted by id.
#[derive(Clone, Serialize, Deserialize)]
struct SessionsWire {
    limits: SessionLimits,
    clock: u64,
    sessions: Vec<Session>,
}

/// [`SessionsWire`] as it is written, borrowing the table: the same bytes
/// (serde writes a `&Session` as the `Session`), without the copy of the whole
/// table, reply caches and indexes that `#[serde(into)]` would make.
#[derive(Serialize)]
struct SessionsWireRef<'a> {
    limits: SessionLimits,
    clock: u64,
    sessions: Vec<&'a Session>,
}

impl Serialize for Sessions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sessions: Vec<&Session> = self.table.values().collect();
        sessions.sort_unstable_by_key(|x| x.id);
        SessionsWireRef { limits: self.limits, clock: self.clock, sessions }.serialize(s)
    }
}

impl Sessions {
    /// Appends the table as a snapshot holds it: the bytes postcard writes
    /// for it ([`Serialize`] above; a test checks), written by hand. Through
    /// serde each session's secret hash went a byte at a time (32 calls) and
    /// the table took about 700 instructions a session; snapshots of 4,096
    /// sessions were a fifth of the closed-loop bench's instructions.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let l = &self.limits;
        for n in [l.timeout_ticks, l.max_sessions as u64, l.max_outstanding, l.max_reply_bytes as u64] {
            varint::push(out, n);
        }
        varint::push(out, l.max_per_owner as u64);
        varint::push(out, self.clock);
        let mut sessions: Vec<&Session> = self.table.values().collect();
        sessions.sort_unstable_by_key(|x| x.id);
        varint::push(out, sessions.len() as u64);
        for x in sessions {
            varint::push(out, x.id);
            varint::push(out, x.owner);
            out.extend_from_slice(&x.secret_hash);
            varint::push(out, x.last_active);
            varint::push(out, x.ack);
            varint::push(out, x.replies.len() as u64);
            for (seq, reply) in &x.replies {
                varint::push(out, *seq);
                varint::push_bytes(out, reply);
            }
        }
    }
}

/// The owned wire form (tests check the borrowed one writes the same bytes).
#[cfg(test)]
impl From<Sessions> for SessionsWire {
    fn from(s: Sessions) -> Self {
        let mut sessions: Vec<Session> = s.table.into_values().collect();
        sessions.sort_unstable_by_key(|x| x.id);
        SessionsWire { limits: s.limits, clock: s.clock, sessions }
    }
}

impl From<SessionsWire> for Sessions {
    fn from(w: SessionsWire) -> Self {
        let mut s = Sessions { limits: w.limits, clock: w.clock, ..Sessions::default() };
        for x in w.sessions {
            s.idle.insert((x.last_active, x.id));
            *s.owners.entry(x.owner).or_insert(0) += 1;
            s.table.insert(x.id, x);
        }
        s
    }
}

/// What applying a session entry produced.
pub type Outcome = Result<Bytes, ClientError>;

impl Sessions {
    /// An empty table with these limits.
    pub fn new(limits: SessionLimits) -> Self {
        Sessions { limits, ..Default::default() }
    }

    /// Replaces the limits (they come from the local config, not from a snapshot).
    pub fn set_limits(&mut self, limits: SessionLimits) {
        self.limits = limits;
    }

    /// The cluster clock (ticks).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A session, if open.
    pub fn get(&self, id: u64) -> Option<&Session> {
        self.table.get(&id)
    }

    /// Every open session, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        let mut all: Vec<&Session> = self.table.values().collect();
        all.sort_unstable_by_key(|s| s.id);
        all.into_iter()
    }

    /// Advances the clock to an entry's timestamp and expires idle sessions.
    /// Called before every entry is applied.
    pub fn advance(&mut self, time: u64) {
        self.clock = self.clock.max(time);
        let limit = self.clock.saturating_sub(self.limits.timeout_ticks);
        while let Some(&(last, id)) = self.idle.first() {
            if last >= limit {
                break;
            }
            self.idle.pop_first();
            if let Some(s) = self.table.remove(&id) {
                self.release(s.owner);
            }
        }
    }

    fn release(&mut self, owner: Owner) {
        if let Some(n) = self.owners.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.owners.remove(&owner);
            }
        }
    }

    /// Open sessions of `owner`.
    pub fn of_owner(&self, owner: Owner) -> usize {
        self.owners.get(&owner).copied().unwrap_or(0)
    }

    fn touch(&mut self, id: u64) {
        if let Some(s) = self.table.get_mut(&id) {
            // Cluster time moves once per tick: most touches change nothing.
            if s.last_active != self.clock {
                self.idle.remove(&(s.last_active, id));
                s.last_active = self.clock;
                self.idle.insert((s.last_active, id));
            }
        }
    }

    /// Applies a `Register` entry at `index` for `owner`, whose secret hashes
    /// to `secret_hash`.
    pub fn register(&mut self, index: Index, owner: Owner, secret_hash: SecretHash) -> Result<u64, ClientError> {
        if self.table.len() >= self.limits.max_sessions || self.of_owner(owner) >= self.limits.max_per_owner {
            return Err(ClientError::Busy);
        }
        let s = Session { id: index, owner, secret_hash, last_active: self.clock, ack: 1, replies: VecDeque::new() };
        self.idle.insert((s.last_active, index));
        self.table.insert(index, s);
        *self.owners.entry(owner).or_insert(0) += 1;
        Ok(index)
    }

    /// The session `id`, if it is open and `secret_hash` is its secret's.
    fn owned(&self, id: u64, secret_hash: &SecretHash) -> Option<&Session> {
        self.table.get(&id).filter(|s| same_hash(&s.secret_hash, secret_hash))
    }

    /// Applies a write entry; `apply` runs the command if (and only if) it is new.
    pub fn write(
        &mut self,
        session: u64,
        secret_hash: &SecretHash,
        seq: u64,
        ack: u64,
        apply: impl FnOnce() -> Bytes,
    ) -> Outcome {
        check_seq(seq, ack)?;
        let clock = self.clock;
        // One lookup: the session, if open and the secret is its own.
        let Some(s) = self.table.get_mut(&session).filter(|s| same_hash(&s.secret_hash, secret_hash)) else {
            return Err(ClientError::SessionExpired);
        };
        if s.last_active != clock {
            self.idle.remove(&(s.last_active, session));
            s.last_active = clock;
            self.idle.insert((clock, session));
        }
        if ack > s.ack {
            s.ack = ack;
            // Drop replies the client promised never to ask for again.
            drop_below(&mut s.replies, ack);
        }
        if seq < s.ack {
            return Err(ClientError::StaleSeq);
        }
        // A client that acknowledges every reply (the usual one) leaves the
        // cache empty by now: no search, no sum, and the reply goes at the end.
        let slot = if s.replies.is_empty() { Err(0) } else { s.replies.binary_search_by_key(&seq, |r| r.0) };
        if let (Ok(at), false) = (slot, self.no_dedup) {
            return Ok(s.replies[at].1.clone());
        }
        if seq >= s.ack.saturating_add(self.limits.max_outstanding) {
            return Err(ClientError::Busy);
        }
        let cached: usize = if s.replies.is_empty() { 0 } else { s.replies.iter().map(|r| r.1.len()).sum() };
        if cached >= self.limits.max_reply_bytes {
            return Err(ClientError::Busy);
        }
        let out = apply();
        match slot {
            Ok(at) => s.replies[at].1 = out.clone(), // only with `no_dedup`
            Err(at) if at == s.replies.len() => s.replies.push_back((seq, out.clone())),
            Err(at) => s.replies.insert(at, (seq, out.clone())),
        }
        Ok(out)
    }

    /// Applies a keep-alive entry.
    pub fn keep_alive(&mut self, session: u64, secret_hash: &SecretHash, ack: u64) -> Result<(), ClientError> {
        if self.owned(session, secret_hash).is_none() {
            return Err(ClientError::SessionExpired);
        }
        self.touch(session);
        if let Some(s) = self.table.get_mut(&session) {
            if ack > s.ack {
                s.ack = ack;
                drop_below(&mut s.replies, ack);
            }
        }
        Ok(())
    }

    /// Whether a write could be accepted now, judged before queueing on the
    /// leader's applied state (the decision that counts is made at apply).
    pub fn precheck(&self, session: u64, secret_hash: &SecretHash, seq: u64, ack: u64) -> Result<(), ClientError> {
        check_seq(seq, ack)?;
        if self.table.contains_key(&session) && self.owned(session, secret_hash).is_none() {
            return Err(ClientError::SessionExpired);
        }
        if let Some(s) = self.table.get(&session) {
            if seq < s.ack {
                return Err(ClientError::StaleSeq);
            }
            if seq >= ack.max(s.ack).saturating_add(self.limits.max_outstanding) {
                return Err(ClientError::Busy);
            }
        }
        Ok(())
    }
}

/// Equal without an early exit (the time taken says nothing of where they
/// differ), eight bytes at a time: every write checks one, on every replica.
fn same_hash(a: &SecretHash, b: &SecretHash) -> bool {
    let word = |h: &SecretHash, i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    (0..4).fold(0u64, |acc, i| acc | (word(a, i) ^ word(b, i))) == 0
}

/// The rule every write's numbers must follow.
fn check_seq(seq: u64, ack: u64) -> Result<(), ClientError> {
    if seq == 0 || ack == 0 || ack > seq {
        return Err(ClientError::BadRequest(String::from("need 1 <= ack <= seq")));
    }
    Ok(())
}

/// Drops cached replies the client promised never to ask for again. (No
/// allocation, unlike `split_off`: usually at most one reply goes.)
fn drop_below(replies: &mut VecDeque<(u64, Bytes)>, ack: u64) {
    while replies.front().is_some_and(|r| r.0 < ack) {
        replies.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const K: SecretHash = [7; 32];

    fn limits() -> SessionLimits {
        SessionLimits { timeout_ticks: 100, max_sessions: 2, max_outstanding: 3, max_reply_bytes: 10, max_per_owner: 2 }
    }

    #[test]
    fn duplicates_are_answered_from_the_cache() {
        let mut t = Sessions::new(limits());
        let id = t.register(5, 1, K).unwrap();
        let applied = core::cell::Cell::new(0);
        let w = |t: &mut Sessions, seq, ack| {
            t.write(id, &K, seq, ack, || {
                applied.set(applied.get() + 1);
                Bytes::from(vec![seq as u8])
            })
        };
        let b = |x: u8| Ok(Bytes::from(vec![x]));
        assert_eq!(w(&mut t, 1, 1), b(1));
        assert_eq!(w(&mut t, 1, 1), b(1), "a retry gets the cached reply");
        assert_eq!(w(&mut t, 2, 1), b(2));
        assert_eq!(w(&mut t, 3, 3), b(3), "ack 3 drops the replies of 1 and 2");
        assert_eq!(w(&mut t, 1, 1), Err(ClientError::StaleSeq));
        assert_eq!(w(&mut t, 2, 3), Err(ClientError::BadRequest("need 1 <= ack <= seq".into())));
        assert_eq!(w(&mut t, 6, 3), Err(ClientError::Busy), "at most 3 outstanding");
        assert_eq!(applied.get(), 3);
        assert_eq!(t.get(id).unwrap().replies.len(), 1);
    }

    #[test]
    fn a_hash_differing_in_any_byte_is_another() {
        for at in 0..32 {
            for bit in [0x01, 0x80] {
                let mut other = K;
                other[at] ^= bit;
                assert!(!same_hash(&K, &other), "byte {at}");
                assert!(!same_hash(&other, &K));
            }
        }
        assert!(same_hash(&K, &[7; 32]));
    }

    #[test]
    fn replies_arriving_out_of_order_stay_sorted() {
        let mut t = Sessions::new(SessionLimits { max_outstanding: 10, max_reply_bytes: 100, ..limits() });
        let id = t.register(1, 1, K).unwrap();
        let out = |x: u8| move || Bytes::from(vec![x]);
        for seq in [4, 2, 3, 6] {
            assert_eq!(t.write(id, &K, seq, 1, out(seq as u8)), Ok(Bytes::from(vec![seq as u8])));
        }
        let seqs: Vec<u64> = t.get(id).unwrap().replies.iter().map(|r| r.0).collect();
        assert_eq!(seqs, [2, 3, 4, 6], "kept in seq order wherever each one went in");
        for seq in [2, 3, 4, 6] {
            assert_eq!(t.write(id, &K, seq, 1, out(0)), Ok(Bytes::from(vec![seq as u8])), "a retry of {seq}");
        }
        assert_eq!(t.write(id, &K, 7, 4, out(7)), Ok(Bytes::from(vec![7])));
        let seqs: Vec<u64> = t.get(id).unwrap().replies.iter().map(|r| r.0).collect();
        assert_eq!(seqs, [4, 6, 7], "ack 4 dropped 2 and 3");
    }

    #[test]
    fn cached_replies_are_bounded_in_bytes() {
        let mut t = Sessions::new(limits());
        let id = t.register(1, 1, K).unwrap();
        let big = |n: usize| move || Bytes::from(vec![7u8; n]);
        assert!(t.write(id, &K, 1, 1, big(6)).is_ok());
        assert!(t.write(id, &K, 2, 1, big(6)).is_ok(), "6 bytes cached, under 10: one more");
        assert_eq!(t.write(id, &K, 3, 1, big(1)), Err(ClientError::Busy), "12 bytes cached: full");
        assert_eq!(t.write(id, &K, 2, 1, big(1)).map(|b| b.len()), Ok(6), "a retry is still answered");
        assert!(t.write(id, &K, 3, 3, big(1)).is_ok(), "acknowledging frees the room");
    }

    #[test]
    fn idle_sessions_expire_and_free_memory() {
        let mut t = Sessions::new(limits());
        t.advance(10);
        let a = t.register(1, 1, K).unwrap();
        t.advance(50);
        let b = t.register(2, 2, K).unwrap();
        assert_eq!(t.register(3, 3, K), Err(ClientError::Busy), "session limit");
        t.advance(105);
        t.keep_alive(b, &K, 1).unwrap();
        t.advance(111);
        assert!(t.get(a).is_none(), "idle since 10, expired at 111");
        assert_eq!(t.of_owner(1), 0, "the owner's count follows");
        assert_eq!(t.write(a, &K, 1, 1, Bytes::default), Err(ClientError::SessionExpired));
        assert!(t.get(b).is_some(), "kept alive at 105");
        t.advance(1000);
        assert!(t.is_empty());
        assert!(t.idle.is_empty() && t.owners.is_empty());
    }

    #[test]
    fn a_session_is_used_only_with_its_secret() {
        let mut t = Sessions::new(SessionLimits { max_sessions: 10, ..limits() });
        let id = t.register(4, 1, K).unwrap();
        let wrong = [8; 32];
        assert_eq!(t.write(id, &K, 1, 1, || Bytes::from(vec![1])), Ok(Bytes::from(vec![1])));
        // The hijacker's write at seq 100 / ack 100 changes nothing.
        assert_eq!(t.write(id, &wrong, 100, 100, || Bytes::from(vec![9])), Err(ClientError::SessionExpired));
        assert_eq!(t.keep_alive(id, &wrong, 100), Err(ClientError::SessionExpired));
        assert_eq!(t.precheck(id, &wrong, 100, 100), Err(ClientError::SessionExpired));
        assert_eq!(t.get(id).unwrap().ack, 1, "the ack did not move");
        assert_eq!(t.write(id, &K, 2, 2, || Bytes::from(vec![2])), Ok(Bytes::from(vec![2])), "the owner goes on");
        // A snapshot keeps the hash and the owner counts.
        let wire: SessionsWire = t.clone().into();
        assert_eq!(
            postcard::to_allocvec(&t).unwrap(),
            postcard::to_allocvec(&wire).unwrap(),
            "the borrowed wire form writes the owned one's bytes"
        );
        let mut by_hand = Vec::new();
        t.encode_into(&mut by_hand);
        assert_eq!(by_hand, postcard::to_allocvec(&t).unwrap(), "the hand-written encoder writes postcard's bytes");
        let back: Sessions = wire.into();
        assert_eq!(back, t);
        assert_eq!(back.of_owner(1), 1);
    }

    #[test]
    fn the_hand_written_encoder_writes_postcards_bytes() {
        let lim = SessionLimits { max_sessions: 1000, max_outstanding: 300, max_reply_bytes: 1 << 20, ..limits() };
        let mut t = Sessions::new(lim);
        let mut empty = Vec::new();
        t.encode_into(&mut empty);
        assert_eq!(empty, postcard::to_allocvec(&t).unwrap(), "an empty table");
        t.advance(1 << 40);
        // Ids and owners of every varint length, replies short and long.
        for i in 0..200u64 {
            let id = i + i.pow(7); // increasing, so distinct; 1 to 8 varint bytes
            t.register(id, i * i * i, [i as u8; 32]).unwrap();
            for seq in 1..=(i % 4) {
                let len = (i * 37 + seq) % 300;
                t.write(id, &[i as u8; 32], seq, 1, || Bytes::from(vec![seq as u8; len as usize])).unwrap();
            }
        }
        let mut by_hand = Vec::new();
        t.encode_into(&mut by_hand);
        assert_eq!(by_hand, postcard::to_allocvec(&t).unwrap());
        let back: Sessions = postcard::from_bytes(&by_hand).unwrap();
        assert!(back == t, "the bytes decode to the same table");
    }

    #[test]
    fn one_owner_cannot_take_the_table() {
        let mut t = Sessions::new(SessionLimits { max_sessions: 10, ..limits() });
        assert!(t.register(1, 1, K).is_ok() && t.register(2, 1, K).is_ok());
        assert_eq!(t.register(3, 1, K), Err(ClientError::Busy), "owner 1's quota of 2");
        assert!(t.register(4, 2, K).is_ok(), "owner 2 still gets one");
    }
}
