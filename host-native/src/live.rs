//! The live view's feed: what a node streams at `/live` so the web page of
//! `raftkv cluster` can draw the real cluster with the simulator's ring and
//! log views.
//!
//! The node task owns a [`LiveFeed`]. Once per tick it asks whether anyone
//! listens ([`LiveHub::wanted`]); only then, and at most every
//! [`MIN_INTERVAL`] (10 a second), it builds a [`LiveView`] from state the
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

/// The shortest time between two frames of one node: at most 10 a second.
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
    /// at the node's next tick (within [`MIN_INTERVAL`] of the last frame).
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
    window: (Instant, MessageCounts),
    rates: LiveRates,
}

impl LiveFeed {
    /// The node task's feed into `hub`.
    pub fn new(hub: Arc<LiveHub>) -> LiveFeed {
        LiveFeed {
            hub,
            counts: MessageCounts::default(),
            last: None,
            window: (Instant::now(), MessageCounts::default()),
            rates: LiveRates::default(),
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

    /// Called once per tick: publishes a frame when someone listens, the
    /// last one is at least [`MIN_INTERVAL`] old, and something changed (or
    /// a subscriber joined, or [`HEARTBEAT`] passed). Returns whether it did.
    pub fn tick(&mut self, raft: &Raft<KvStore>, isolated: bool, now: Instant) -> bool {
        self.roll_rates(now);
        if !self.hub.wanted() {
            return false;
        }
        let age = self.last.as_ref().map(|(at, _)| now.saturating_duration_since(*at));
        if age.is_some_and(|a| a < MIN_INTERVAL) {
            return false;
        }
        let view = build_view(raft, isolated, &self.rates);
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

    /// Starts a new rate window when the current one is over.
    fn roll_rates(&mut self, now: Instant) {
        let (start, base) = self.window;
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
        self.window = (now, self.counts);
    }
}

/// The node's view now: all of it read from the core, nothing computed per
/// entry but the tail's summaries.
fn build_view(raft: &Raft<KvStore>, isolated: bool, rates: &LiveRates) -> LiveView {
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
