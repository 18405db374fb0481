//! Watch events: every change the store makes, numbered `(revision, sub)`,
//! kept in a bounded window of recent events, and the cursor a watcher reads
//! that window with.
//!
//! A revision may hold several events — a transaction's writes, the keys of
//! leases that expired at that entry — numbered by `sub` in the order they
//! happened. A watcher receives one revision per frame, complete, in
//! revision order, each event once; it resumes from the last complete
//! revision + 1.
//!
//! The window is per node and not replicated: it holds the events of the
//! entries this node applied, as far back as [`WindowLimits`] allow, always
//! in whole revisions. Its *floor* is the oldest revision from which it holds
//! every event. A watcher whose next revision is below the floor — it
//! started too far back, fell too far behind, or this node installed a
//! snapshot that jumped past events it had not delivered — is answered
//! [`Poll::Compacted`] with the floor: the oldest revision it can resume
//! from. Nothing is ever skipped silently.
//!
//! Hosts own watchers (one per subscription) and poll each after every
//! batch of entries applies; a watcher that finds nothing for itself moves
//! its cursor up to the applied revision, so a quiet watch never falls
//! behind the window.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::record::{key_value, Record};
use super::text::Text;
use super::KeyValue;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Created or changed.
    Put,
    /// Deleted (by a delete, a transaction, or its lease ending).
    Delete,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// The revision of the entry that made it.
    pub revision: u64,
    /// Its position among the events of that revision, from 0.
    pub sub: u32,
    /// Put or delete.
    pub kind: EventKind,
    /// The key as the change left it. For a delete: the key, with the
    /// delete's revision as `mod_revision` and everything else empty.
    pub kv: KeyValue,
    /// The key as it was before (`None` if it did not exist); sent only to
    /// watchers that asked for it.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// Approximate bytes held, for the window's byte limit.
    pub fn bytes(&self) -> usize {
        let kv = |kv: &KeyValue| kv.key.len() + kv.value.len();
        96 + kv(&self.kv) + self.prev.as_ref().map_or(0, kv)
    }
}

/// [`EventLog::push`] refused an event the store could not have made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidEvent;

impl core::fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an event the store could not have made (its revisions or versions do not follow)")
    }
}

/// How much of the recent past a node keeps for watchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowLimits {
    /// Most events held (the newest revision is always held whole, even
    /// if it alone is larger).
    pub max_events: usize,
    /// Most bytes of events held (the same exception).
    pub max_bytes: usize,
}

impl Default for WindowLimits {
    fn default() -> Self {
        WindowLimits { max_events: 100_000, max_bytes: 64 << 20 }
    }
}

/// One change as the window holds it: the key and any long value are shared
/// with the store ([`Record`]), so recording a change copies no long bytes.
/// It becomes an [`Event`] only when a watcher takes it.
///
/// Compact, because the window holds 100,000 of these on every node and
/// walks them as a ring: the key is held once (not once per version), and the
/// new version keeps only what its revision and the previous version do not
/// already say — a put's `mod_revision` is the change's revision, and its
/// `create_revision` and `version` follow from the previous version (or are
/// the revision and 1 for a new key). 120 bytes on a 64-bit target instead of
/// 176 with two whole [`Record`]s, and two reference-count operations on the
/// key per put instead of six (`examples/closed_loop`, BENCHMARKS.md).
#[derive(Clone, Debug)]
pub(crate) struct Change {
    revision: u64,
    /// The key (the store's allocation).
    key: Arc<str>,
    /// The value the change left (`None`: deleted).
    value: Option<Text>,
    /// The lease the key is attached to after the change (0 for a delete).
    lease: u64,
    /// The key as it was before (`None`: it did not exist).
    prev: Option<Before>,
    sub: u32,
}

/// A key's version before a change, without the key (the change holds it).
#[derive(Clone, Debug)]
pub(crate) struct Before {
    value: Text,
    create: u64,
    modr: u64,
    version: u64,
    lease: u64,
}

impl Before {
    /// The version a record holds, its key handed back to the caller
    /// (moving the key saves the reference-count operations a clone and
    /// a drop would cost).
    pub(crate) fn split(r: Record) -> (Arc<str>, Before) {
        let Record { key, value, create, modr, version, lease } = r;
        (key, Before { value, create, modr, version, lease })
    }

    /// This version of `key` as the API shows it.
    fn kv(&self, key: &str) -> KeyValue {
        key_value(key, &self.value, [self.create, self.modr, self.version, self.lease])
    }

    /// The version a [`KeyValue`] describes (copies the bytes).
    fn of(kv: &KeyValue) -> Before {
        let (_, b) = Before::split(Record::of(kv));
        b
    }
}

impl Change {
    /// A put of `key` at `(revision, sub)`: it now holds `value` with
    /// `lease`; `prev` is the version it replaced (`None`: a new key).
    pub(crate) fn put(revision: u64, sub: u32, key: Arc<str>, value: Text, lease: u64, prev: Option<Before>) -> Self {
        Change { revision, key, value: Some(value), lease, prev, sub }
    }

    /// A delete of `key` at `(revision, sub)`; `prev` is the version deleted.
    pub(crate) fn delete(revision: u64, sub: u32, key: Arc<str>, prev: Before) -> Self {
        Change { revision, key, value: None, lease: 0, prev: Some(prev), sub }
    }

    fn kind(&self) -> EventKind {
        if self.value.is_some() {
            EventKind::Put
        } else {
            EventKind::Delete
        }
    }

    /// Approximate bytes held, for the window's byte limit: what
    /// [`Event::bytes`] says of the event it becomes (counting the shared
    /// bytes too: the window keeps them alive).
    fn bytes(&self) -> usize {
        let now = self.value.as_ref().map_or(0, |v| v.len());
        let prev = self.prev.as_ref().map_or(0, |p| self.key.len() + p.value.len());
        96 + self.key.len() + now + prev
    }

    /// The event a watcher receives (with the previous key-value if asked).
    fn event(&self, prev_kv: bool) -> Event {
        let kv = match &self.value {
            Some(v) => {
                let (create, version) = self.prev.as_ref().map_or((self.revision, 1), |p| (p.create, p.version + 1));
                key_value(&self.key, v, [create, self.revision, version, self.lease])
            }
            None => KeyValue::deleted(&self.key, self.revision),
        };
        let prev = if prev_kv { self.prev.as_ref().map(|p| p.kv(&self.key)) } else { None };
        Event { revision: self.revision, sub: self.sub, kind: self.kind(), kv, prev }
    }

    /// The change an [`Event`] describes (copies its bytes), or `None` if
    /// the store could not have made it: a put whose `mod_revision` is not
    /// its revision, or whose `create_revision` and `version` do not follow
    /// from its previous version; a delete without a previous version.
    fn of(e: &Event) -> Option<Change> {
        let key = Arc::from(e.kv.key.as_str());
        let prev = e.prev.as_ref().map(Before::of);
        let c = match e.kind {
            EventKind::Put => Change::put(e.revision, e.sub, key, Text::from(e.kv.value.as_str()), e.kv.lease, prev),
            EventKind::Delete => Change::delete(e.revision, e.sub, key, prev?),
        };
        // What the compact form can say back must be what the event said.
        (c.event(true) == *e).then_some(c)
    }
}

/// The window of recent events.
#[derive(Clone, Debug)]
pub struct EventLog {
    events: VecDeque<Change>,
    bytes: usize,
    floor: u64,
    limits: WindowLimits,
}

impl EventLog {
    /// An empty window that holds every event from revision 1.
    pub fn new(limits: WindowLimits) -> Self {
        EventLog { events: VecDeque::new(), bytes: 0, floor: 1, limits }
    }

    /// The oldest revision from which every event is held.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes of events held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The limits.
    pub fn limits(&self) -> WindowLimits {
        self.limits
    }

    /// Adds an event (events arrive in `(revision, sub)` order). The store
    /// records its own changes without copying (`EventLog::record`); this
    /// copies the event's bytes, for hosts' tests and tools.
    ///
    /// The event must be one the store could have made: a put's
    /// `mod_revision` is its revision, its `create_revision` and `version`
    /// those of its previous version (the revision and 1 for a new key), a
    /// delete has a previous version and an empty key-value otherwise (as
    /// [`KeyValue::deleted`]), a previous version is of the same key.
    /// Anything else is refused, and nothing is added.
    pub fn push(&mut self, e: Event) -> Result<(), InvalidEvent> {
        let c = Change::of(&e).ok_or(InvalidEvent)?;
        self.record(c);
        Ok(())
    }

    /// Adds a change (in `(revision, sub)` order).
    pub(crate) fn record(&mut self, c: Change) {
        debug_assert!(self.events.back().is_none_or(|b| (b.revision, b.sub) < (c.revision, c.sub)));
        self.bytes += c.bytes();
        self.events.push_back(c);
    }

    /// After an entry's events are in: drops the oldest revisions, whole,
    /// while the window is over its limits, keeping the newest revision.
    pub fn trim(&mut self) {
        let Some(newest) = self.events.back().map(|e| e.revision) else { return };
        while self.events.len() > self.limits.max_events || self.bytes > self.limits.max_bytes {
            let Some(oldest) = self.events.front().map(|e| e.revision) else { break };
            if oldest == newest {
                break;
            }
            while self.events.front().is_some_and(|e| e.revision == oldest) {
                if let Some(e) = self.events.pop_front() {
                    self.bytes -= e.bytes();
                }
            }
            self.floor = oldest + 1;
        }
    }

    /// The state jumped to `index` (a snapshot was restored): nothing before
    /// `index + 1` can be delivered any more.
    pub fn reset(&mut self, index: u64) {
        self.events.clear();
        self.bytes = 0;
        self.floor = index + 1;
    }

    /// Events with revision `>= from`, in order, each with its previous
    /// key-value (built as they are taken).
    pub fn from(&self, from: u64) -> impl Iterator<Item = Event> + '_ {
        self.changes(from).map(|c| c.event(true))
    }

    /// The changes with revision `>= from`, in order.
    fn changes(&self, from: u64) -> impl Iterator<Item = &Change> {
        let at = self.events.partition_point(|e| e.revision < from);
        self.events.range(at..)
    }
}

/// Which keys a watch follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Selector {
    /// One key.
    Key(String),
    /// Every key starting with this.
    Prefix(String),
}

impl Selector {
    /// Whether the watch follows `key`.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Key(k) => k == key,
            Selector::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// What a watcher finds when polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing new for it.
    Pending,
    /// The events of one revision (all of them that match, in `sub` order).
    Frame {
        /// The revision.
        revision: u64,
        /// Its events.
        events: Vec<Event>,
    },
    /// Events it has not received are gone; `oldest` is the oldest revision
    /// it can resume from. The watch is over.
    Compacted {
        /// The window's floor.
        oldest: u64,
    },
}

/// A watcher's cursor over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watcher {
    /// What it follows.
    pub selector: Selector,
    /// The next revision it has not seen.
    pub next: u64,
    /// Whether its events carry the previous key-value.
    pub prev_kv: bool,
}

impl Watcher {
    /// A watcher that wants every matching event from revision `start` (at
    /// least 1). A start beyond the applied revision waits for it.
    pub fn new(selector: Selector, start: u64, prev_kv: bool) -> Self {
        Watcher { selector, next: start.max(1), prev_kv }
    }

    /// The next frame for this watcher, if any. `applied` is the store's
    /// revision: having found nothing up to it, the cursor moves past it.
    pub fn poll(&mut self, log: &EventLog, applied: u64) -> Poll {
        if self.next < log.floor() {
            return Poll::Compacted { oldest: log.floor() };
        }
        let mut found: Option<u64> = None;
        let mut events = Vec::new();
        for c in log.changes(self.next) {
            if found.is_some_and(|r| c.revision != r) {
                break;
            }
            if self.selector.matches(&c.key) {
                found = Some(c.revision);
                events.push(c.event(self.prev_kv));
            }
        }
        match found {
            Some(revision) => {
                self.next = revision + 1;
                Poll::Frame { revision, events }
            }
            None => {
                self.next = self.next.max(applied + 1);
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn put(revision: u64, sub: u32, key: &str) -> Event {
        let kv = KeyValue {
            key: key.into(),
            value: "v".into(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        Event { revision, sub, kind: EventKind::Put, kv, prev: None }
    }

    #[test]
    fn one_revision_per_frame_in_order_each_once() {
        let mut log = EventLog::new(WindowLimits::default());
        log.push(put(2, 0, "a/1")).expect("an event the store could make");
        log.push(put(2, 1, "b")).expect("an event the store could make");
        log.push(put(2, 2, "a/2")).expect("an event the store could make");
        log.push(put(5, 0, "a/1")).expect("an event the store could make");
        let mut w = Watcher::new(Selector::Prefix("a/".into()), 1, false);
        match w.poll(&log, 5) {
            Poll::Frame { revision: 2, events } => {
                assert_eq!(events.iter().map(|e| e.sub).collect::<Vec<_>>(), vec![0, 2]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(w.poll(&log, 5), Poll::Frame { revision: 5, .. }));
        assert_eq!(w.poll(&log, 5), Poll::Pending);
        assert_eq!(w.next, 6);
        let mut future = Watcher::new(Selector::Key("b".into()), 9, false);
        assert_eq!(future.poll(&log, 5), Poll::Pending, "a start beyond the applied revision waits");
        assert_eq!(future.next, 9);
    }

    #[test]
    fn the_window_drops_whole_revisions_and_reports_compaction() {
        let mut log = EventLog::new(WindowLimits { max_events: 3, max_bytes: usize::MAX });
        let mut quiet = Watcher::new(Selector::Key("q".into()), 1, false);
        let mut slow = Watcher::new(Selector::Key("a".into()), 1, false);
        for r in 1..=4u64 {
            log.push(put(r, 0, "a")).expect("an event the store could make");
            log.push(put(r, 1, "b")).expect("an event the store could make");
            log.trim();
            assert_eq!(quiet.poll(&log, r), Poll::Pending, "a quiet watcher keeps up by itself");
        }
        assert_eq!(log.len(), 2, "three events allowed: revision 3 went whole, revision 4 stays");
        assert_eq!(log.floor(), 4);
        assert_eq!(slow.poll(&log, 4), Poll::Compacted { oldest: 4 });
        // The newest revision is never dropped, however large.
        let mut big = EventLog::new(WindowLimits { max_events: 1, max_bytes: 1 });
        big.push(put(7, 0, "x")).expect("an event the store could make");
        let delete = Event {
            revision: 7,
            sub: 1,
            kind: EventKind::Delete,
            kv: KeyValue::deleted("y", 7),
            prev: Some(put(5, 0, "y").kv),
        };
        big.push(delete).expect("an event the store could make");
        big.trim();
        assert_eq!((big.len(), big.floor()), (2, 1));
        big.reset(10);
        assert_eq!((big.len(), big.floor(), big.bytes()), (0, 11, 0));
    }

    #[test]
    fn a_change_is_compact_and_says_back_every_field() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(core::mem::size_of::<Change>(), 120, "the window holds 100,000 of these per node");
        let a = |rev: u64, version: u64, value: &str, lease: u64| KeyValue {
            key: "k".into(),
            value: value.into(),
            create_revision: 3,
            mod_revision: rev,
            version,
            lease,
        };
        let long = "a value longer than the inline limit of a Text";
        let events = [
            Event { revision: 3, sub: 0, kind: EventKind::Put, kv: a(3, 1, "one", 0), prev: None },
            Event { revision: 4, sub: 2, kind: EventKind::Put, kv: a(4, 2, long, 9), prev: Some(a(3, 1, "one", 0)) },
            Event { revision: 6, sub: 0, kind: EventKind::Put, kv: a(6, 3, "", 0), prev: Some(a(4, 2, long, 9)) },
            Event {
                revision: 8,
                sub: 1,
                kind: EventKind::Delete,
                kv: KeyValue::deleted("k", 8),
                prev: Some(a(6, 3, "", 0)),
            },
        ];
        let mut log = EventLog::new(WindowLimits::default());
        for e in &events {
            log.push(e.clone()).expect("an event the store could make");
        }
        assert_eq!(log.from(0).collect::<Vec<_>>(), events, "every field comes back, prev included");
        let mut w = Watcher::new(Selector::Key("k".into()), 4, false);
        match w.poll(&log, 8) {
            Poll::Frame { revision: 4, events: got } => assert_eq!(got[0].prev, None, "prev only when asked"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn push_refuses_an_event_the_store_could_not_have_made() {
        let good = put(5, 0, "k");
        let bad = [
            Event { kv: KeyValue { mod_revision: 4, ..good.kv.clone() }, ..good.clone() },
            Event { kv: KeyValue { version: 2, ..good.kv.clone() }, ..good.clone() },
            Event { kv: KeyValue { create_revision: 1, ..good.kv.clone() }, ..good.clone() },
            Event { prev: Some(put(3, 0, "k").kv), ..good.clone() },
            Event { kind: EventKind::Delete, kv: KeyValue::deleted("k", 5), ..good.clone() },
            Event { kind: EventKind::Delete, prev: Some(put(3, 0, "k").kv), ..good.clone() },
            // Numbers that follow, but the previous version is another key's.
            Event {
                kv: KeyValue { create_revision: 3, version: 2, ..good.kv.clone() },
                prev: Some(put(3, 0, "other").kv),
                ..good.clone()
            },
        ];
        let mut log = EventLog::new(WindowLimits::default());
        for e in bad {
            assert_eq!(log.push(e.clone()), Err(InvalidEvent), "{e:?}");
        }
        assert_eq!((log.len(), log.bytes()), (0, 0), "nothing added");
        log.push(good).expect("an event the store could make");
        assert_eq!(log.len(), 1);
    }
}
