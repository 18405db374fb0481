//! The live view's feed: what a node streams at `/live` so the web page of
//! `raftkv cluster` can draw the real cluster with the simulator's ring and
//! log views.
//!
//! The node task owns a [`LiveFeed`]. Once per tick it asks whether anyone
//! listens ([`LiveHub::wanted`]); only then, and once per [`MIN_INTERVAL`]
//! slot of the wall clock (10 a second, lined up across the nodes so their
//! samples are taken together), it builds a [`LiveView`] from state the
//! core already holds (a few numbers, the last [`LOG_TAIL`] entries, the
//! leader's progress table), compares it with the last one published and, if
//! something changed (or [`HEARTBEAT`] passed, or a subscriber just joined),
//! serialises it once and puts it in a `tokio::sync::watch` channel. The
//! channel holds one value: a subscriber that is slow to read skips the
//! frames it missed and gets the newest, so nothing queues up per
//! subscriber. Messages are counted by kind as the node sends and receives
//! them (an array increment each); their rates are recomputed once a
//! second ([`RATE_WINDOW`]), so an idle cluster's heartbeats make about one
//! frame a second, not ten.
//!
//! Subscribers are bounded ([`LiveHub::subscribe`]: `limits.max_live_subscribers`);
//! the connection side is `routes::live_conn`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use raft_core::kv::KvOp;
use raft_core::progress::ProgressState;
use raft_core::{Body, Entry, KvStore, NodeId, Payload, Raft};

use crate::inbox::ConfigView;
use crate::metrics::Metrics;

/// A node looks at its state once per slot of this length of the wall
/// clock (the first tick in it), so it sends at most 10 frames a second.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A frame goes out at least this often, changed or not, so a page can tell
/// a quiet node from a stopped one.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Message rates are counted over windows of this length.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Log entries a frame carries (the newest ones).
pub const LOG_TAIL: u64 = 20;
/// The version of the frame's shape (its `v` field).
pub const FORMAT_VERSION: u32 = 1;

/// The message kinds counted, in the order of [`kind_index`]: raft-core's
/// names ([`Body::name`]), an empty `Append` counted as a `Heartbeat`.
pub const KINDS: [&str; 12] = [
    "PreVote",
    "PreVoteResp",
    "Vote",
    "VoteResp",
    "Heartbeat",
    "Append",
    "AppendResp",
    "InstallSnapshot",
    "InstallSnapshotResp",
    "TimeoutNow",
    "ReadIndex",
    "ReadIndexResp",
];

/// The slot of a message's kind in [`KINDS`]. Every variant is named, so a
/// new kind does not compile until it is given a slot.
pub fn kind_index(body: &Body) -> usize {
    match body {
        Body::PreVote { .. } => 0,
        Body::PreVoteResp { .. } => 1,
        Body::Vote { .. } => 2,
        Body::VoteResp { .. } => 3,
        Body::Append { entries, .. } if entries.is_empty() => 4,
        Body::Append { .. } => 5,
        Body::AppendResp { .. } => 6,
        Body::InstallSnapshot { .. } => 7,
        Body::InstallSnapshotResp { .. } => 8,
        Body::TimeoutNow => 9,
        Body::ReadIndex { .. } => 10,
        Body::ReadIndexResp { .. } => 11,
    }
}

/// What the node task and the `/live` connections share: the channel the
/// frames go through, and the count of subscribers against its limit.
#[derive(Debug)]
pub struct LiveHub {
    tx: watch::Sender<Option<Arc<str>>>,
    subscribers: AtomicUsize,
    max: usize,
    /// A subscriber joined since the last frame: send one even if nothing
    /// changed (it has seen nothing yet).
    joined: AtomicBool,
    /// Frames published (every subscriber sees a subsequence of them).
    published: AtomicU64,
}

/// A `/live` subscription: the newest frame as it changes. Dropping it frees
/// its place under the limit.
#[derive(Debug)]
pub struct Subscription {
    /// The frames (JSON text); `None` until the node published one.
    pub frames: watch::Receiver<Option<Arc<str>>>,
    hub: Arc<LiveHub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A subscription refused: the node already has `max` subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooMany {
    /// The limit (`limits.max_live_subscribers`).
    pub max: usize,
}

impl LiveHub {
    /// A hub admitting at most `max` subscribers at a time (0: the live
    /// view is off).
    pub fn new(max: usize) -> Arc<LiveHub> {
        let (tx, _) = watch::channel(None);
        Arc::new(LiveHub {
            tx,
            subscribers: AtomicUsize::new(0),
            max,
            joined: AtomicBool::new(false),
            published: AtomicU64::new(0),
        })
    }

    /// A new subscriber, unless the limit is reached. Its first frame comes
    /// at the start of the node's next slot (within [`MIN_INTERVAL`]).
    pub fn subscribe(self: &Arc<Self>) -> Result<Subscription, TooMany> {
        let taken =
            self.subscribers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1));
        if taken.is_err() {
            return Err(TooMany { max: self.max });
        }
        let mut frames = self.tx.subscribe();
        // The value in the channel may be old (nobody listened, so the node
        // stopped refreshing it): wait for the fresh one the node now sends.
        frames.mark_unchanged();
        self.joined.store(true, Ordering::Release);
        Ok(Subscription { frames, hub: self.clone() })
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Frames published since the node started.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Whether anyone listens (the node builds nothing otherwise).
    pub fn wanted(&self) -> bool {
        self.subscribers() > 0
    }

    fn publish(&self, frame: Arc<str>) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.tx.send_replace(Some(frame));
    }
}

/// Messages counted by kind ([`KINDS`]), each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages handed to peer links, by kind.
    pub sent: [u64; KINDS.len()],
    /// Messages received from peers, by kind.
    pub received: [u64; KINDS.len()],
}

/// The journal's counters (the node's [`Metrics`], which the journal thread
/// bumps), read by the node task at a tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalCounts {
    /// Records written since the process started.
    pub records: u64,
    /// Bytes written since the process started.
    pub bytes: u64,
    /// fsyncs since the process started (one per group-committed batch).
    pub syncs: u64,
}

impl JournalCounts {
    /// The counts `metrics` holds now.
    pub fn of(metrics: &Metrics) -> JournalCounts {
        JournalCounts {
            records: metrics.journal_records_total.get(),
            bytes: metrics.journal_bytes_total.get(),
            syncs: metrics.journal_syncs_total.get(),
        }
    }
}

/// What a frame says about the node's journal: what it wrote since the
/// process started, and at what rate over the last [`RATE_WINDOW`] — a
/// group commit shows as records a second well above fsyncs a second.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveJournal {
    /// Records written since start (as of the last window).
    pub records: u64,
    /// Bytes written since start (as of the last window).
    pub bytes: u64,
    /// fsyncs since start (as of the last window).
    pub syncs: u64,
    /// Records written a second.
    pub records_per_s: u64,
    /// Bytes written a second.
    pub bytes_per_s: u64,
    /// fsyncs a second.
    pub syncs_per_s: u64,
    /// Entries in the log not yet known durable (`last - durable`): what a
    /// crash now could lose of this node's log (never a committed entry a
    /// quorum holds).
    pub unsynced: u64,
}

/// One log entry of a frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveEntry {
    /// Index.
    pub i: u64,
    /// Term.
    pub t: u64,
    /// Kind: `noop`, `register`, `keepalive`, `conf`, `command` or `write`.
    pub k: &'static str,
    /// A few words: the operation and its key (never the value).
    pub s: String,
}

/// The leader's view of one follower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LivePeer {
    /// The follower.
    pub id: NodeId,
    /// Highest index known to match the leader's log.
    #[serde(rename = "match")]
    pub match_index: u64,
    /// Next index the leader sends it.
    #[serde(rename = "next")]
    pub next_index: u64,
    /// `probe`, `replicate` or `snapshot`. (Not whether it was heard from
    /// lately: the core resets that flag every election timeout, and a
    /// frame that showed it would change at every other sample.)
    pub state: &'static str,
}

/// Message totals and rates (per second over the last [`RATE_WINDOW`]) by
/// kind, for the kinds seen at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveRates {
    /// Sent per second, by kind.
    pub sent: BTreeMap<&'static str, u64>,
    /// Received per second, by kind.
    pub received: BTreeMap<&'static str, u64>,
    /// Sent since start, by kind (as of the last window).
    pub sent_total: BTreeMap<&'static str, u64>,
    /// Received since start, by kind (as of the last window).
    pub received_total: BTreeMap<&'static str, u64>,
}

/// What one frame says about the node (see docs/ARCHITECTURE.md for the
/// shape on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveView {
    /// [`FORMAT_VERSION`].
    pub v: u32,
    /// The node.
    pub id: NodeId,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: &'static str,
    /// Current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Whom it voted for in this term.
    pub voted_for: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last: u64,
    /// Highest index synced to its journal.
    pub durable: u64,
    /// Index its snapshot covers (entries up to it are compacted).
    pub snapshot: u64,
    /// The newest entries (at most [`LOG_TAIL`]).
    pub log: Vec<LiveEntry>,
    /// A leader's followers; empty on other nodes.
    pub peers: Vec<LivePeer>,
    /// The configuration it follows.
    pub members: ConfigView,
    /// Keys in its store (reserved ones excluded).
    pub keys: usize,
    /// Open client sessions.
    pub sessions: usize,
    /// Cut off from its peers by the supervisor (`raftkv cluster`'s isolate).
    pub isolated: bool,
    /// Messages by kind.
    pub msgs: LiveRates,
    /// The journal's writes and fsyncs.
    pub journal: LiveJournal,
}

/// A frame on the wire: the view, numbered.
#[derive(Serialize)]
struct Frame<'a> {
    /// Frames this node published before this one (gaps: frames a slow
    /// reader skipped).
    seq: u64,
    #[serde(flatten)]
    view: &'a LiveView,
}

/// The node task's side of the live view: the hub, the message counters and
/// what it last published.
#[derive(Debug)]
pub struct LiveFeed {
    hub: Arc<LiveHub>,
    /// Counted as messages go by.
    pub counts: MessageCounts,
    last: Option<(Instant, LiveView)>,
    /// Start of the current rate window and the counts at its start.
    window: (Instant, MessageCounts, JournalCounts),
    rates: LiveRates,
    /// The journal's part of the frame, as of the last window (its
    /// `unsynced` is filled in per frame).
    journal: LiveJournal,
    /// The wall-clock slot of the last look ([`Self::due`]).
    slot: Option<u64>,
}

impl LiveFeed {
    /// The node task's feed into `hub`.
    pub fn new(hub: Arc<LiveHub>) -> LiveFeed {
        LiveFeed {
            hub,
            counts: MessageCounts::default(),
            last: None,
            window: (Instant::now(), MessageCounts::default(), JournalCounts::default()),
            rates: LiveRates::default(),
            journal: LiveJournal::default(),
            slot: None,
        }
    }

    /// Counts a message handed to a peer link.
    pub fn sent(&mut self, body: &Body) {
        self.counts.sent[kind_index(body)] += 1;
    }

    /// Counts a message received from a peer.
    pub fn received(&mut self, body: &Body) {
        self.counts.received[kind_index(body)] += 1;
    }

    /// Called once per tick with the journal's counters now, the monotonic
    /// time and the wall clock (ms since the Unix epoch): publishes a frame
    /// when someone listens, the tick is the first of a new wall-clock slot of
    /// [`MIN_INTERVAL`],
    /// and something changed (or a subscriber joined, or [`HEARTBEAT`]
    /// passed). Returns whether it did.
    pub fn tick(
        &mut self,
        raft: &Raft<KvStore>,
        isolated: bool,
        journal: JournalCounts,
        now: Instant,
        wall_ms: u64,
    ) -> bool {
        self.roll_rates(journal, now);
        if !self.hub.wanted() || !self.due(now, wall_ms) {
            return false;
        }
        let age = self.last.as_ref().map(|(at, _)| now.saturating_duration_since(*at));
        let view = build_view(raft, isolated, &self.rates, &self.journal);
        let joined = self.hub.joined.swap(false, Ordering::AcqRel);
        let same = self.last.as_ref().is_some_and(|(_, v)| *v == view);
        if same && !joined && age.is_some_and(|a| a < HEARTBEAT) {
            return false;
        }
        let frame = Frame { seq: self.hub.published(), view: &view };
        match serde_json::to_string(&frame) {
            Ok(text) => self.hub.publish(text.into()),
            Err(e) => {
                tracing::warn!(error = %e, "could not serialise the live view");
                return false;
            }
        }
        self.last = Some((now, view));
        true
    }

    /// Whether this tick may look at the node: the first tick of each
    /// [`MIN_INTERVAL`] slot of the wall clock, and never within
    /// [`MIN_INTERVAL`] of the last frame (a tick that comes a little early
    /// waits for the next tick of its slot). Slots of the wall clock, not of each node's own
    /// start, line the nodes' samples up: nodes on one machine (or on
    /// machines whose clocks agree) sample within a tick of each other, so
    /// the page's log table shows their tails side by side even under load
    /// (samples taken at random phases are up to 100 ms apart, more entries
    /// than a frame's tail holds at a few hundred writes a second). The
    /// spacing guard keeps a stepping wall clock from raising the rate
    /// above 10 a second.
    fn due(&mut self, now: Instant, wall_ms: u64) -> bool {
        let slot = wall_ms / MIN_INTERVAL.as_millis() as u64;
        if self.slot == Some(slot) {
            return false;
        }
        let recent = self.last.as_ref().is_some_and(|(at, _)| now.saturating_duration_since(*at) < MIN_INTERVAL);
        if recent {
            // Looked at again on a later tick of this slot.
            return false;
        }
        self.slot = Some(slot);
        true
    }

    /// Starts a new rate window when the current one is over.
    fn roll_rates(&mut self, journal: JournalCounts, now: Instant) {
        let (start, base, base_journal) = self.window;
        let span = now.saturating_duration_since(start);
        if span < RATE_WINDOW {
            return;
        }
        let ms = span.as_millis().max(1) as u64;
        let per_s = |now: u64, then: u64| (now.saturating_sub(then) * 1000 + ms / 2) / ms;
        let mut r = LiveRates::default();
        for (k, name) in KINDS.iter().enumerate() {
            let (s, rcv) = (self.counts.sent[k], self.counts.received[k]);
            if s > 0 {
                r.sent.insert(name, per_s(s, base.sent[k]));
                r.sent_total.insert(name, s);
            }
            if rcv > 0 {
                r.received.insert(name, per_s(rcv, base.received[k]));
                r.received_total.insert(name, rcv);
            }
        }
        self.rates = r;
        self.journal = LiveJournal {
            records: journal.records,
            bytes: journal.bytes,
            syncs: journal.syncs,
            records_per_s: per_s(journal.records, base_journal.records),
            bytes_per_s: per_s(journal.bytes, base_journal.bytes),
            syncs_per_s: per_s(journal.syncs, base_journal.syncs),
            unsynced: 0,
        };
        self.window = (now, self.counts, journal);
    }
}

/// The node's view now: all of it read from the core, nothing computed per
/// entry but the tail's summaries.
fn build_view(raft: &Raft<KvStore>, isolated: bool, rates: &LiveRates, journal: &LiveJournal) -> LiveView {
    let log = raft.log();
    let last = log.last_index();
    let lo = last.saturating_sub(LOG_TAIL - 1).max(log.first_index());
    let tail = (lo..=last).filter_map(|i| log.entry(i)).map(live_entry).collect();
    let m = raft.membership();
    let peers = if raft.is_leader() {
        raft.progress()
            .iter()
            .map(|p| LivePeer {
                id: p.id,
                match_index: p.match_index,
                next_index: p.next_index,
                state: match p.state {
                    ProgressState::Probe => "probe",
                    ProgressState::Replicate => "replicate",
                    ProgressState::Snapshot => "snapshot",
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    LiveView {
        v: FORMAT_VERSION,
        id: raft.id(),
        role: raft.role().name(),
        term: raft.term(),
        leader: raft.leader(),
        voted_for: raft.voted_for(),
        commit: raft.commit_index(),
        applied: raft.applied_index(),
        last,
        durable: raft.durable_index(),
        snapshot: log.snapshot_index(),
        log: tail,
        peers,
        members: ConfigView {
            voters: m.voters.iter().map(|b| b.id).collect(),
            outgoing: m.outgoing.iter().map(|b| b.id).collect(),
            learners: m.learners.iter().chain(&m.learners_next).map(|b| b.id).collect(),
            joint: m.is_joint(),
        },
        keys: raft.state_machine().len(),
        sessions: raft.sessions().len(),
        isolated,
        msgs: rates.clone(),
        journal: LiveJournal { unsynced: last.saturating_sub(raft.durable_index()), ..journal.clone() },
    }
}

/// A log entry in a few words. Values are left out: the view is for
/// watching the protocol, and a key says enough about which write it is.
fn live_entry(e: &Entry) -> LiveEntry {
    let (k, s) = match &e.payload {
        Payload::Noop => ("noop", "no-op".to_string()),
        Payload::Register { .. } => ("register", "open session".to_string()),
        Payload::KeepAlive { session, .. } => ("keepalive", format!("keep-alive s{session}")),
        Payload::ConfChange(_) => ("conf", "config change".to_string()),
        Payload::Command(c) => ("command", op_words(c)),
        Payload::Write { session, seq, command, .. } => ("write", format!("{} (s{session}#{seq})", op_words(command))),
    };
    LiveEntry { i: e.index, t: e.term, k, s }
}

/// `put key`, `cas key`, … for a command's bytes; keys are cut at 24
/// characters and the cluster's reserved keys (the address map) named as such.
fn op_words(bytes: &[u8]) -> String {
    match KvOp::decode(bytes) {
        Ok(op) => {
            let key = op.key();
            if key.starts_with(crate::protocol::RESERVED_PREFIX) {
                return format!("{} (cluster key)", op.name());
            }
            let short: String = key.chars().take(24).collect();
            let cut = if short.len() < key.len() { "…" } else { "" };
            if key.is_empty() {
                op.name().to_string()
            } else {
                format!("{} {short}{cut}", op.name())
            }
        }
        Err(_) => format!("raw command ({} bytes)", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_name() {
        let bodies = [
            Body::TimeoutNow,
            Body::ReadIndex { id: 1 },
            Body::ReadIndexResp { id: 1, index: None },
            Body::VoteResp { granted: true },
        ];
        for b in bodies {
            assert_eq!(KINDS[kind_index(&b)], b.name());
        }
    }

    #[test]
    fn the_limit_holds_and_a_dropped_subscription_frees_its_place() {
        let hub = LiveHub::new(2);
        let a = hub.subscribe().unwrap();
        let _b = hub.subscribe().unwrap();
        assert_eq!(hub.subscribe().unwrap_err(), TooMany { max: 2 });
        assert_eq!(hub.subscribers(), 2);
        drop(a);
        assert!(hub.subscribe().is_ok());
        assert!(LiveHub::new(0).subscribe().is_err(), "0 turns the live view off");
    }

    #[test]
    fn a_new_subscriber_waits_for_a_fresh_frame() {
        let hub = LiveHub::new(4);
        hub.publish("old".into());
        let s = hub.subscribe().unwrap();
        assert!(!s.frames.has_changed().unwrap(), "the stale frame is not handed out");
        assert!(hub.joined.load(Ordering::Acquire));
        hub.publish("new".into());
        assert!(s.frames.has_changed().unwrap());
        assert_eq!(s.frames.borrow().as_deref(), Some("new"));
    }

    #[test]
    fn frames_are_sampled_once_per_wall_clock_slot() {
        let mut feed = LiveFeed::new(LiveHub::new(1));
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // Ticks every 10 ms from wall time 1_000_030: the first tick of a
        // slot looks, the other nine of it do not.
        let looks: Vec<u64> = (0..30u64).filter(|i| feed.due(t0 + ms(10 * i), 1_000_030 + 10 * i)).collect();
        assert_eq!(looks, vec![0, 7, 17, 27], "slots 10000, 10001, 10002, 10003");
        // Two nodes whose ticks are 3 ms and 8 ms past the slot boundary
        // look within a tick of each other, whenever each started.
        let mut a = LiveFeed::new(LiveHub::new(1));
        let mut b = LiveFeed::new(LiveHub::new(1));
        let la: Vec<u64> = (0..40u64).map(|i| 5_003 + 10 * i).filter(|w| a.due(t0 + ms(*w), *w)).collect();
        let lb: Vec<u64> = (0..40u64).map(|i| 5_008 + 10 * i).filter(|w| b.due(t0 + ms(*w), *w)).collect();
        assert_eq!(la, vec![5_003, 5_103, 5_203, 5_303]);
        assert_eq!(lb, vec![5_008, 5_108, 5_208, 5_308]);
    }

    #[test]
    fn a_stepping_wall_clock_cannot_raise_the_frame_rate() {
        let mut feed = LiveFeed::new(LiveHub::new(1));
        let t0 = Instant::now();
        let mut published = 0;
        // The wall clock jumps to a new slot at every 10 ms tick for a
        // second; a frame "sent" at each look.
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(10 * i);
            if feed.due(now, 7_000_000 + 1_000 * i) {
                published += 1;
                feed.last = Some((now, dummy_view()));
            }
        }
        assert!(published <= 10, "{published} frames in one second");
    }

    fn dummy_view() -> LiveView {
        LiveView {
            v: FORMAT_VERSION,
            id: 1,
            role: "follower",
            term: 0,
            leader: None,
            voted_for: None,
            commit: 0,
            applied: 0,
            last: 0,
            durable: 0,
            snapshot: 0,
            log: Vec::new(),
            peers: Vec::new(),
            members: ConfigView { voters: Vec::new(), outgoing: Vec::new(), learners: Vec::new(), joint: false },
            keys: 0,
            sessions: 0,
            isolated: false,
            msgs: LiveRates::default(),
            journal: LiveJournal::default(),
        }
    }

    #[test]
    fn journal_rates_are_counted_per_window() {
        let mut feed = LiveFeed::new(LiveHub::new(1));
        let t0 = Instant::now();
        feed.window.0 = t0;
        let counts = JournalCounts { records: 200, bytes: 20_000, syncs: 10 };
        feed.roll_rates(counts, t0 + RATE_WINDOW / 2);
        assert_eq!(feed.journal, LiveJournal::default(), "the window is not over yet");
        feed.roll_rates(counts, t0 + 2 * RATE_WINDOW);
        let expect = LiveJournal {
            records: 200,
            bytes: 20_000,
            syncs: 10,
            records_per_s: 100,
            bytes_per_s: 10_000,
            syncs_per_s: 5,
            unsynced: 0,
        };
        assert_eq!(feed.journal, expect);
        // The next window counts from the last one's end.
        let later = JournalCounts { records: 230, bytes: 23_000, syncs: 13 };
        feed.roll_rates(later, t0 + 3 * RATE_WINDOW);
        assert_eq!((feed.journal.records_per_s, feed.journal.syncs_per_s, feed.journal.records), (30, 3, 230));
    }

    #[test]
    fn commands_are_named_by_operation_and_key_only() {
        let put = KvOp::Put { key: "colour".into(), value: "secret value".into() }.encode();
        assert_eq!(op_words(&put), "put colour");
        let long = KvOp::Delete { key: "k".repeat(40) }.encode();
        assert_eq!(op_words(&long), format!("delete {}…", "k".repeat(24)));
        let hidden = KvOp::Put { key: crate::protocol::addr_key(2), value: "ws://x".into() }.encode();
        assert_eq!(op_words(&hidden), "put (cluster key)");
        assert_eq!(op_words(&[0xff, 0xff]), "raw command (2 bytes)");
    }
}
