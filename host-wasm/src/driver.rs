//! The driver: a simulator, the list of user actions that shaped its run, the
//! page's client and an event feed in plain words.
//!
//! Exact replay. Every action is stamped with the number of events the
//! simulator had processed and its clock at that moment. A replay builds a
//! fresh simulator from the same options and walks it forward, stopping at
//! each stamp to apply the action. Time moves only in [`Driver::run_until`]
//! and [`Driver::step`], both of which apply due actions first, and client
//! replies are handled right after the event that delivered them, so the same
//! options and actions always give the same run, whatever the frame rate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft_core::client::{ClientReply, ClientRequest};
use raft_core::membership::Membership;
use raft_core::raft::Event;
use raft_core::sim::clients::ClientConfig;
use raft_core::sim::Sim;
use raft_core::{Index, NodeId, Role};
use serde::Serialize;

use crate::action::{Action, ClientOp, Op};
use crate::client::{Answer, HandClient, Pending, Purpose, Write};
use crate::committed::CommittedTerms;
use crate::journal_view::JournalCache;
use crate::options::{Options, OptionsError};
use crate::words;

/// One line of the event feed.
#[derive(Clone, Debug, Serialize)]
pub struct FeedItem {
    /// Increasing id (to fetch only new lines).
    pub id: u64,
    /// Simulated time, µs.
    pub t: u64,
    /// The node concerned (0: none or the client).
    pub node: NodeId,
    /// A short category: election, leader, commit, crash, restart, network, client, snapshot, violation, …
    pub kind: &'static str,
    /// The sentence.
    pub text: String,
    /// Whether it matters to someone watching (minor lines are hidden by default).
    pub major: bool,
    /// The first line of the run this line continues (0: none). A run of
    /// commit events with nothing else between them is one line, rewritten as
    /// it grows: each rewrite has a new id and names the run's first line, so
    /// a reader removes whichever line of that run it showed before.
    #[serde(skip_serializing_if = "is_zero")]
    pub replaces: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

const FEED_LIMIT: usize = 1_000;

/// A run of commit events longer than this (simulated time) starts a new line,
/// so that a busy cluster still shows when things happened.
const COMMIT_RUN_US: u64 = 1_000_000;

/// Commit events since the feed's last other line, shown as one line: who
/// led and how far it committed, and how far each follower has learned.
#[derive(Default)]
struct CommitRun {
    /// Feed id of the line that shows it now.
    id: u64,
    /// Feed id of its first line.
    first: u64,
    /// Time of its first event.
    since: u64,
    /// The leader, the index it reached and how many times it advanced.
    leader: Option<(NodeId, Index, u32)>,
    /// Followers that learned of commits, and how far.
    learned: BTreeMap<NodeId, Index>,
}

impl CommitRun {
    fn text(&self) -> (String, bool) {
        let mut by_index: BTreeMap<core::cmp::Reverse<Index>, Vec<NodeId>> = BTreeMap::new();
        for (&n, &i) in &self.learned {
            by_index.entry(core::cmp::Reverse(i)).or_default().push(n);
        }
        let hi = self.leader.map(|(_, i, _)| i);
        let learned: Vec<String> = by_index
            .iter()
            .enumerate()
            .map(|(k, (core::cmp::Reverse(i), ids))| {
                let who =
                    if ids.len() == 1 { format!("node {}", ids[0]) } else { format!("nodes {}", words::ids(ids)) };
                match (k, hi) {
                    (_, Some(h)) if *i == h => format!("{who} learned it"),
                    (0, Some(_)) => format!("{who} learned up to {i}"),
                    (0, None) => format!("{who} learned that entries up to {i} are committed"),
                    _ => format!("{who} up to {i}"),
                }
            })
            .collect();
        match self.leader {
            Some((l, i, n)) => {
                let times =
                    if n > 1 { format!(" ({n} commits since {})", words::dur(self.since)) } else { String::new() };
                let mut text = format!("node {l} (leader) committed entries up to {i}{times}: a majority stores them");
                if !learned.is_empty() {
                    text += "; ";
                    text += &learned.join(", ");
                }
                (text, true)
            }
            None => (learned.join(", "), false),
        }
    }
}

/// A simulated cluster driven by the page.
pub struct Driver {
    pub(crate) opts: Options,
    pub(crate) sim: Sim,
    /// Actions applied so far, in order.
    pub(crate) done: Vec<Action>,
    /// Actions of a replayed trace not reached yet, in order.
    pub(crate) future: VecDeque<Action>,
    pub(crate) client: HandClient,
    pub(crate) feed: VecDeque<FeedItem>,
    next_feed: u64,
    violations_seen: usize,
    /// Last role seen per node (for wording), index id-1.
    pub(crate) roles: Vec<Option<Role>>,
    pub(crate) journals: Vec<JournalCache>,
    /// Simulated clients were started.
    pub(crate) load: bool,
    /// The commit events the feed's last line shows, if it is a commit line.
    commit_run: Option<CommitRun>,
    /// The term of each committed entry, as first reported.
    pub(crate) committed: CommittedTerms,
    /// When the simulator first reported a safety violation.
    first_violation: Option<u64>,
    /// Learners the feed has said caught up (forgotten when they stop being learners).
    pub(crate) announced: BTreeSet<NodeId>,
    /// Learners added with `voter`: promoted once they have caught up.
    pub(crate) auto_promote: BTreeSet<NodeId>,
    /// The configuration each node used last, index id-1 (to word a change).
    pub(crate) confs: Vec<Membership>,
}

/// Why an action was refused: it changed nothing in the cluster (it is still
/// recorded, so a replay refuses it at the same point and says so again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Driver {
    /// A fresh cluster.
    pub fn new(opts: Options) -> Result<Driver, OptionsError> {
        opts.validate()?;
        let sim = Sim::new(opts.sim_config());
        let n = opts.nodes;
        let mut d = Driver {
            opts,
            sim,
            done: Vec::new(),
            future: VecDeque::new(),
            client: HandClient::new(),
            feed: VecDeque::new(),
            next_feed: 1,
            violations_seen: 0,
            roles: vec![Some(Role::Follower); n],
            journals: (0..n).map(|_| JournalCache::default()).collect(),
            load: false,
            commit_run: None,
            committed: CommittedTerms::default(),
            first_violation: None,
            announced: BTreeSet::new(),
            auto_promote: BTreeSet::new(),
            confs: vec![Membership::bootstrap(&(1..=n as NodeId).collect::<Vec<_>>()); n],
        };
        let text = format!(
            "a cluster of {n} nodes starts (seed {}); every node is a follower in term 0 with an empty log",
            d.opts.seed
        );
        d.say(0, "start", text, true);
        Ok(d)
    }

    /// Rebuilds a run from its options and actions, up to simulated time `upto`.
    /// Actions after `upto` stay queued and are applied when the run reaches them.
    pub fn replay(opts: Options, actions: Vec<Action>, upto: u64) -> Result<Driver, OptionsError> {
        let mut d = Driver::new(opts)?;
        d.future = actions.into();
        d.run_until(upto);
        Ok(d)
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The simulator (read-only).
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Simulated time, µs.
    pub fn now(&self) -> u64 {
        self.sim.now()
    }

    /// Events processed.
    pub fn events(&self) -> u64 {
        self.sim.stats.events
    }

    /// Actions applied so far.
    pub fn actions(&self) -> &[Action] {
        &self.done
    }

    /// Every action of the trace: applied ones, then those still ahead.
    pub fn trace(&self) -> Vec<Action> {
        self.done.iter().chain(self.future.iter()).cloned().collect()
    }

    /// Simulated time of the last action of the trace (0 if none).
    pub fn trace_end(&self) -> u64 {
        self.future.back().or(self.done.last()).map_or(0, |a| a.t)
    }

    /// Simulated time of the first safety violation, if any.
    pub fn first_violation(&self) -> Option<u64> {
        self.first_violation
    }

    /// The term committed at `index` (as first reported by any node), if known.
    pub fn committed_term(&self, index: Index) -> Option<raft_core::Term> {
        self.committed.term(index)
    }

    /// The feed lines with id above `since`.
    pub fn feed_since(&self, since: u64) -> Vec<FeedItem> {
        self.feed.iter().filter(|f| f.id > since).cloned().collect()
    }

    // ------------------------------------------------------------------
    // Moving time
    // ------------------------------------------------------------------

    /// Runs the simulation until simulated time `end` (never backwards).
    pub fn run_until(&mut self, end: u64) {
        self.run_to(end, false);
    }

    /// Like [`Driver::run_until`], but stops right after an event that made a
    /// safety check fail (the page pauses there). Returns whether it did.
    pub fn run_until_violation(&mut self, end: u64) -> bool {
        self.run_to(end, true)
    }

    fn run_to(&mut self, end: u64, stop_on_violation: bool) -> bool {
        loop {
            self.apply_due(end);
            let now = self.sim.now();
            if now > end {
                return false;
            }
            let target = self.future.front().map_or(u64::MAX, |a| a.at);
            let viol = self.sim.violations().len();
            // A learner catching up changes no event of its own, yet the
            // feed says so (and may promote it): stop right after the event
            // that made it so, as a replay will.
            let (announced, auto) = (&self.announced, &self.auto_promote);
            let stopped = self.sim.run_until(end - now, |s| {
                !s.log.is_empty()
                    || !s.inbox.is_empty()
                    || s.stats.events >= target
                    || s.violations().len() != viol
                    || Driver::learner_caught_up(s, announced, auto).is_some()
            });
            self.after_events();
            if stop_on_violation && self.sim.violations().len() != viol {
                return true;
            }
            if !stopped {
                return false;
            }
            if let Some(a) = self.future.front() {
                if a.at <= self.sim.stats.events && a.t > end {
                    // The recorded run moved past `end` without events before acting.
                    self.sim.run_until_time(end);
                    return false;
                }
            }
        }
    }

    /// Runs for `us` more simulated microseconds.
    pub fn advance(&mut self, us: u64) {
        let end = self.sim.now().saturating_add(us);
        self.run_until(end);
    }

    /// Processes exactly one event (after any action due before it). False if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        self.apply_due(u64::MAX);
        let ok = self.sim.step();
        self.after_events();
        ok
    }

    /// Runs until a leader exists or `max_us` passes; returns the leader.
    pub fn run_until_leader(&mut self, max_us: u64) -> Option<NodeId> {
        let end = self.now() + max_us;
        while self.now() < end {
            if let Some(l) = self.sim.leader() {
                return Some(l);
            }
            self.advance(self.opts.tick_us);
        }
        self.sim.leader()
    }

    /// Applies the queued actions whose stamp has been reached, moving the
    /// clock to their time when the recorded run had idled up to it.
    fn apply_due(&mut self, end: u64) {
        while let Some(a) = self.future.front() {
            if a.at > self.sim.stats.events || a.t > end {
                return;
            }
            let a = self.future.pop_front().expect("front exists");
            if self.sim.now() < a.t {
                self.sim.run_until_time(a.t);
                self.after_events();
            }
            // A refusal is said in the feed, as when the action was first made.
            let _ = self.apply(a.op.clone());
            self.done.push(a);
        }
    }

    // ------------------------------------------------------------------
    // Acting
    // ------------------------------------------------------------------

    /// Carries out a user action now and records it. Actions of a replayed
    /// trace that were still ahead are discarded: the run branches here.
    pub fn act(&mut self, op: Op) {
        let _ = self.try_act(op);
    }

    /// Like [`Driver::act`], but says why an action that changed nothing
    /// was refused (a second membership change while one is unfinished,
    /// removing the last voter, a node that does not exist, …). The action
    /// is recorded either way, and the feed says it was refused.
    pub fn try_act(&mut self, op: Op) -> Result<(), Refused> {
        self.future.clear();
        let a = Action { at: self.sim.stats.events, t: self.sim.now(), op: op.clone() };
        let r = self.apply(op);
        self.done.push(a);
        r
    }

    /// Number of nodes, including those added since the start.
    pub fn node_count(&self) -> usize {
        self.sim.ids().len()
    }

    pub(crate) fn valid(&self, id: NodeId) -> bool {
        id >= 1 && id as usize <= self.node_count()
    }

    fn apply(&mut self, op: Op) -> Result<(), Refused> {
        let r = self.apply_op(op);
        if let Err(e) = &r {
            self.say(0, "refused", format!("refused: {e}"), true);
        }
        self.after_events();
        r
    }

    fn apply_op(&mut self, op: Op) -> Result<(), Refused> {
        match op {
            Op::Crash { node } if self.valid(node) => self.crash(node),
            Op::Restart { node } if self.valid(node) => self.restart(node),
            Op::Timeout { node } if self.valid(node) && self.sim.is_up(node) => {
                let how = if self.opts.pre_vote { "asks for a pre-vote" } else { "starts an election" };
                self.say(node, "election", format!("you made node {node}'s election timer run out: it {how}"), true);
                self.sim.force_timeout(node);
            }
            Op::Snapshot { node } if self.valid(node) => self.sim.take_snapshot(node),
            Op::Cut { from, to, both } if self.valid(from) && self.valid(to) => {
                self.sim.cut_link(from, to);
                if both {
                    self.sim.cut_link(to, from);
                }
                let arrow = if both { "↔" } else { "→" };
                self.say(0, "network", format!("link {from} {arrow} {to} cut"), true);
            }
            Op::Restore { from, to, both } if self.valid(from) && self.valid(to) => {
                self.sim.restore_link(from, to);
                if both {
                    self.sim.restore_link(to, from);
                }
                let arrow = if both { "↔" } else { "→" };
                self.say(0, "network", format!("link {from} {arrow} {to} restored"), true);
            }
            Op::Isolate { node } if self.valid(node) => {
                self.sim.disconnect(node);
                self.say(node, "network", format!("node {node} is cut off from everyone"), true);
            }
            Op::Rejoin { node } if self.valid(node) => {
                self.sim.connect(node);
                self.say(node, "network", format!("node {node} is reconnected"), true);
            }
            Op::Partition { side } => {
                let side: Vec<NodeId> = side.into_iter().filter(|&n| self.valid(n)).collect();
                let other: Vec<NodeId> = self.sim.ids().into_iter().filter(|n| !side.contains(n)).collect();
                self.sim.partition(&side);
                let text = format!("the network splits: {{{}}} | {{{}}}", words::ids(&side), words::ids(&other));
                self.say(0, "network", text, true);
            }
            Op::Heal => {
                self.sim.heal();
                self.say(0, "network", "every link is restored".into(), true);
            }
            Op::Network { loss, duplicate, long_delay } => {
                let c = |p: f64| if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
                self.sim.set_network(c(loss), c(duplicate), c(long_delay));
                let text = format!(
                    "network: {:.0}% lost, {:.0}% duplicated, {:.0}% reordered",
                    c(loss) * 100.0,
                    c(duplicate) * 100.0,
                    c(long_delay) * 100.0
                );
                self.say(0, "network", text, true);
            }
            Op::Latency { lo, hi } => {
                self.sim.set_latency(lo, hi);
                let (lo, hi) = self.sim.config().latency_us;
                self.say(0, "network", format!("latency {}–{}", words::dur(lo), words::dur(hi)), true);
            }
            Op::Drop { id } => {
                if let Some(f) = self.sim.in_flight().get(&id) {
                    let text = format!("message #{id} ({} {} → {}) dropped", f.msg.body.name(), f.msg.from, f.msg.to);
                    self.sim.drop_message(id);
                    self.say(0, "network", text, true);
                }
            }
            Op::Hold { id } => {
                let done = self.sim.hold_message(id);
                self.say_if(done, format!("message #{id} held on the wire"));
            }
            Op::Release { id } => {
                let done = self.sim.release_message(id);
                self.say_if(done, format!("message #{id} released"));
            }
            Op::Client { node, req } => self.client_request(node, req),
            Op::Retry { seq, node } => self.client_retry(seq, node),
            Op::StartClients { count, keys } => {
                let count = count.clamp(1, 16);
                let keys = keys.clamp(1, 26);
                self.sim.start_clients(ClientConfig { clients: count, keys, ..ClientConfig::default() });
                self.load = true;
                self.say(0, "client", format!("{count} simulated clients start random reads and writes"), true);
            }
            Op::StopClients => {
                self.sim.stop_clients();
                self.say(0, "client", "the simulated clients stop issuing new operations".into(), true);
            }
            Op::AddNode { voter } => return self.add_node(voter),
            Op::AddLearner { node } => return self.add_learner(node),
            Op::Promote { node } => return self.promote(node),
            Op::Remove { node } => return self.remove(node),
            Op::Joint { add, remove } => return self.joint(&add, &remove),
            Op::Transfer { node } => return self.transfer(node),
            Op::Wipe { node } => return self.wipe(node),
            Op::Crash { node }
            | Op::Restart { node }
            | Op::Timeout { node }
            | Op::Snapshot { node }
            | Op::Isolate { node }
            | Op::Rejoin { node }
                if !self.valid(node) =>
            {
                return Err(Refused(format!("there is no node {node}")));
            }
            Op::Timeout { node } => return Err(Refused(format!("node {node} is down: it has no timer to run out"))),
            Op::Cut { from, to, .. } | Op::Restore { from, to, .. } => {
                return Err(Refused(format!("there is no link {from} → {to}")));
            }
            _ => {}
        }
        Ok(())
    }

    fn crash(&mut self, id: NodeId) {
        if !self.sim.is_up(id) {
            return;
        }
        let before = self.sim.node(id).disk.bytes.len();
        let durable = self.sim.node(id).disk.durable_len;
        self.sim.crash(id);
        let after = self.sim.node(id).disk.bytes.len();
        let lost = before.saturating_sub(after);
        let mut text = format!("node {id} crashed: its role, votes, commit index and state machine are gone");
        if before > durable {
            text += &format!(
                "; {} bytes of journal were written but not yet synced, {lost} of them lost (a record cut short is torn)",
                before - durable
            );
        } else {
            text += "; its journal was fully synced";
        }
        self.roles[(id - 1) as usize] = None;
        self.say(id, "crash", text, true);
    }

    fn restart(&mut self, id: NodeId) {
        if self.sim.is_up(id) {
            return;
        }
        self.sim.restart(id);
        let k = (id - 1) as usize;
        let records = self.journals[k].refresh(&self.sim.node(id).disk);
        let text = match self.sim.raft(id) {
            Some(r) => {
                let snap = r.log().snapshot_index();
                format!(
                    "node {id} restarted and replayed its journal ({records} records): term {}, voted for {}, log up to {}{}; it starts as a follower, commit index {}",
                    r.term(),
                    r.voted_for().map_or_else(|| "nobody".to_string(), |v| v.to_string()),
                    r.log().last_index(),
                    if snap > 0 { format!(" (snapshot up to {snap})") } else { String::new() },
                    r.commit_index()
                )
            }
            None => format!("node {id} could not restart: its journal is damaged"),
        };
        self.roles[k] = self.sim.raft(id).map(|r| r.role());
        self.say(id, "restart", text, true);
    }

    // ------------------------------------------------------------------
    // The page's client
    // ------------------------------------------------------------------

    fn target(&self, node: NodeId) -> NodeId {
        if self.valid(node) {
            node
        } else {
            self.sim.leader().unwrap_or(1)
        }
    }

    fn client_request(&mut self, node: NodeId, req: ClientOp) {
        let node = self.target(node);
        if req.0.is_read() {
            let token = self.client.token();
            let text = words::kv_op(&req.0);
            self.client.pending.push(Pending { token, node, purpose: Purpose::Read, text, sent: self.now() });
            self.sim.submit(node, token, ClientRequest::Read { query: req.0.encode() });
            return;
        }
        if self.client.session.is_none() {
            self.client.waiting.push((node, req));
            if !self.client.registering() {
                let token = self.client.token();
                let text = "open a session".to_string();
                let p = Pending { token, node, purpose: Purpose::Register, text, sent: self.now() };
                self.client.pending.push(p);
                // The demo's one client owns its sessions; the page has no outsiders.
                self.sim.submit(node, token, ClientRequest::Register { owner: 1, secret_hash: [0; 32] });
            }
            return;
        }
        let seq = self.client.next_seq;
        self.client.next_seq += 1;
        self.client.writes.insert(seq, Write { seq, req, settled: false });
        self.send_write(seq, node);
    }

    fn send_write(&mut self, seq: u64, node: NodeId) {
        let (Some(session), Some(w)) = (self.client.session, self.client.writes.get(&seq)) else { return };
        let op = w.req.0.clone();
        let ack = self.client.ack().min(seq);
        let token = self.client.token();
        let text = format!("{} (seq {seq})", words::kv_op(&op));
        self.client.pending.push(Pending { token, node, purpose: Purpose::Write { seq }, text, sent: self.now() });
        self.sim.submit(
            node,
            token,
            ClientRequest::Write { session, secret_hash: [0; 32], seq, ack, command: op.encode().into() },
        );
    }

    fn client_retry(&mut self, seq: u64, node: NodeId) {
        let node = self.target(node);
        if let Some(w) = self.client.writes.get_mut(&seq) {
            w.settled = false;
            let text = format!("the client retries write seq {seq} at node {node} with the same session and seq");
            self.say(0, "client", text, true);
            self.send_write(seq, node);
        }
    }

    fn client_reply(&mut self, token: u64, reply: ClientReply) {
        let Some(pos) = self.client.pending.iter().position(|p| p.token == token) else { return };
        let p = self.client.pending.remove(pos);
        let (ok, result) = words::reply(&reply);
        let now = self.now();
        match (&p.purpose, &reply) {
            (Purpose::Register, ClientReply::Registered { session }) => {
                self.client.session = Some(*session);
                self.client.next_seq = 1;
                for (node, req) in std::mem::take(&mut self.client.waiting) {
                    let seq = self.client.next_seq;
                    self.client.next_seq += 1;
                    self.client.writes.insert(seq, Write { seq, req, settled: false });
                    self.send_write(seq, node);
                }
            }
            (Purpose::Register, _) => {
                let n = self.client.waiting.len();
                self.client.waiting.clear();
                if n > 0 {
                    let text = format!("the client could not open a session ({result}); {n} write(s) not sent");
                    self.say(0, "client", text, true);
                }
            }
            (Purpose::Write { seq }, r) => {
                let settled = match r {
                    ClientReply::Written { .. } => true,
                    ClientReply::Rejected(e) => !matches!(e.code(), "unknown_outcome" | "session_expired"),
                    _ => false,
                };
                if let ClientReply::Rejected(raft_core::ClientError::SessionExpired) = r {
                    self.client.session = None;
                }
                if let Some(w) = self.client.writes.get_mut(seq) {
                    w.settled |= settled;
                }
                self.client.tidy();
            }
            (Purpose::Read, _) => {}
        }
        let took = words::dur(now.saturating_sub(p.sent));
        let text = format!("client: {} at node {} → {result} ({took})", p.text, p.node);
        self.say(p.node, "client", text, true);
        self.client.answered(Answer { node: p.node, text: p.text, result, ok, sent: p.sent, at: now });
    }

    // ------------------------------------------------------------------
    // After events: feed, replies, violations
    // ------------------------------------------------------------------

    fn after_events(&mut self) {
        loop {
            let events: Vec<_> = self.sim.log.drain(..).collect();
            for (t, node, e) in events {
                self.describe(t, node, e);
            }
            let inbox = std::mem::take(&mut self.sim.inbox);
            for (token, reply) in inbox {
                self.client_reply(token, reply);
            }
            // A promotion proposed here has events of its own: word them now.
            if !self.after_membership() {
                break;
            }
        }
        let v = self.sim.violations();
        if v.len() > self.violations_seen {
            let new: Vec<String> = v[self.violations_seen..].to_vec();
            self.violations_seen = v.len();
            self.first_violation.get_or_insert(self.sim.now());
            for text in new {
                self.say(0, "violation", format!("SAFETY VIOLATION: {text}"), true);
            }
        }
    }

    fn describe(&mut self, t: u64, node: NodeId, e: Event) {
        let k = (node as usize).saturating_sub(1).min(self.roles.len() - 1);
        let before = self.roles[k];
        let role = self.sim.raft(node).map(|r| r.role());
        let (kind, text, major) = match e {
            Event::BecameFollower { term, leader } => {
                self.roles[k] = Some(Role::Follower);
                let was = match before {
                    Some(Role::Leader) => "stepped down from leader: ",
                    Some(Role::Candidate) | Some(Role::PreCandidate) => "gave up its campaign: ",
                    _ => "",
                };
                let text = match leader {
                    Some(l) => format!("node {node} {was}follows node {l} in term {term}"),
                    None => format!("node {node} {was}is a follower in term {term}"),
                };
                ("role", text, !was.is_empty())
            }
            Event::BecamePreCandidate { term } => {
                self.roles[k] = Some(Role::PreCandidate);
                let text = format!(
                    "node {node}'s election timer ran out: it asks the others (pre-vote) whether it could win term {}",
                    term + 1
                );
                ("election", text, true)
            }
            Event::BecameCandidate { term } => {
                self.roles[k] = Some(Role::Candidate);
                let text = if before == Some(Role::PreCandidate) {
                    format!("node {node} won its pre-vote and started an election for term {term}, voting for itself")
                } else {
                    format!("node {node} timed out and started an election for term {term}, voting for itself")
                };
                ("election", text, true)
            }
            Event::BecameLeader { term } => {
                self.roles[k] = Some(Role::Leader);
                // Granted votes are the live nodes that voted for it in this term.
                let votes: Vec<NodeId> = self
                    .sim
                    .ids()
                    .into_iter()
                    .filter(|&v| {
                        v == node || self.sim.raft(v).is_some_and(|r| r.term() == term && r.voted_for() == Some(node))
                    })
                    .collect();
                let text =
                    format!("node {node} won the election for term {term} with votes from {}", words::ids(&votes));
                ("leader", text, true)
            }
            Event::LostQuorum { term } => {
                let text = format!(
                    "node {node} stepped down: it has not heard from a majority for an election timeout (term {term})"
                );
                ("role", text, true)
            }
            Event::SnapshotTaken { index } => {
                ("snapshot", format!("node {node} took a snapshot of its state up to entry {index}"), true)
            }
            Event::SnapshotInstalled { index } => {
                ("snapshot", format!("node {node} installed the leader's snapshot up to entry {index}"), true)
            }
            Event::Committed { index } => {
                if let Some(r) = self.sim.raft(node) {
                    let log = r.log();
                    self.committed.extend(index, |i| log.term(i));
                }
                self.commit_line(t, node, index, role == Some(Role::Leader));
                return;
            }
            Event::Truncated { from_index } => {
                let mut text = format!("node {node} dropped its conflicting entries from {from_index} on");
                if let Some(term) = self.committed.term(from_index) {
                    text +=
                        &format!(" — but entry {from_index} (term {term}) was committed: a committed entry is lost");
                }
                ("truncate", text, true)
            }
            Event::ConfigChanged { membership } => {
                let (text, major) = self.config_line(node, membership, role == Some(Role::Leader));
                ("config", text, major)
            }
            Event::RemovedSelf { term } => {
                let text =
                    format!("node {node} was removed from the cluster and stepped down as leader of term {term}");
                ("role", text, true)
            }
            Event::FollowerRestarted { id, new_incarnation } => {
                let how = if new_incarnation { "with a new disk" } else { "after a restart" };
                let text =
                    format!("leader {node} saw node {id} answer {how}: it forgets what it matched and probes again");
                ("repl", text, false)
            }
            Event::RecoveredLostData { index } => {
                let text = format!("node {node} caught up to commit {index} after losing data: it may vote again");
                ("role", text, true)
            }
            Event::LeaseRead { term, index } => {
                let text = format!(
                    "leader {node} answered a read at commit {index} on its term-{term} lease, without asking anyone"
                );
                ("read", text, false)
            }
        };
        self.push(t, node, kind, text, major);
    }

    /// Adds a commit event to the feed's commit line, or starts one.
    fn commit_line(&mut self, t: u64, node: NodeId, index: Index, leader: bool) {
        let last = self.feed.back().map(|f| f.id);
        let go_on = self.commit_run.as_ref().is_some_and(|r| {
            Some(r.id) == last
                && t.saturating_sub(r.since) < COMMIT_RUN_US
                && (!leader || r.leader.is_none_or(|(l, ..)| l == node))
        });
        if !go_on {
            self.commit_run = Some(CommitRun { since: t, ..CommitRun::default() });
        }
        let run = self.commit_run.as_mut().expect("set above");
        if leader {
            let n = run.leader.map_or(0, |(_, _, n)| n);
            run.leader = Some((node, index, n + 1));
        } else {
            let e = run.learned.entry(node).or_insert(index);
            *e = (*e).max(index);
        }
        let (text, major) = run.text();
        let replaces = if go_on {
            self.feed.pop_back();
            run.first
        } else {
            0
        };
        let id = self.push(t, node, "commit", text, major);
        if let Some(f) = self.feed.back_mut() {
            f.replaces = replaces;
        }
        if let Some(r) = self.commit_run.as_mut() {
            r.id = id;
            if !go_on {
                r.first = id;
            }
        }
    }

    fn say_if(&mut self, cond: bool, text: String) {
        if cond {
            self.say(0, "network", text, true);
        }
    }

    pub(crate) fn say(&mut self, node: NodeId, kind: &'static str, text: String, major: bool) {
        let t = self.sim.now();
        self.push(t, node, kind, text, major);
    }

    fn push(&mut self, t: u64, node: NodeId, kind: &'static str, text: String, major: bool) -> u64 {
        if self.feed.len() >= FEED_LIMIT {
            self.feed.pop_front();
        }
        let id = self.next_feed;
        self.next_feed += 1;
        self.feed.push_back(FeedItem { id, t, node, kind, text, major, replaces: 0 });
        id
    }
}
