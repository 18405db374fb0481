//! Simulated watchers (DESIGN §12) and the reference they are judged by.
//!
//! A watcher follows a key or a prefix on one node, reading that node's
//! window of events after each batch of entries the node applies — never
//! before. When its node crashes or is stopped it resumes on the next live
//! node from its last complete revision + 1, as the client library does
//! after a reconnect. A `compacted` answer ends the watch (the application
//! is told); the simulated application then starts a new watch from the
//! oldest available revision.
//!
//! The reference is the committed history's events: for every index, the
//! events of the first node to apply it (the simulator checks elsewhere that
//! every node applies the same command at each index, so any would do).
//! [`Sim::watch_violations`] checks every watch against it with
//! [`crate::checker::watch::check_watch`].

use alloc::string::String;
use alloc::vec::Vec;

use super::Sim;
use crate::checker::watch::{check_watch, WatchLog};
use crate::kv::watch::{Event, Poll, Selector, Watcher};
use crate::types::NodeId;

/// Most frames one watch keeps (a bound on the simulator's memory; a run
/// that reaches it stops recording that watch, which stays checkable).
const MAX_FRAMES: usize = 200_000;

/// One simulated watcher: where it is connected and its cursor there.
#[derive(Clone, Debug)]
pub(crate) struct SimWatcher {
    node: NodeId,
    cursor: Watcher,
    /// Its log in [`Sim::watch_logs`].
    log: usize,
}

/// The reference history of events and how far it reaches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reference {
    events: Vec<Event>,
    /// The next index whose events it lacks.
    next: u64,
    /// Set if an index was first applied by a node that did not hold its
    /// events (it should never happen: the first node to apply an index
    /// does so from its log).
    gap: Option<u64>,
}

impl Sim {
    /// Adds a watcher on `node` following `selector` from revision `start`
    /// (0: from the node's current revision + 1, "now").
    pub fn add_watcher(&mut self, node: NodeId, selector: Selector, start: u64, prev_kv: bool) {
        if self.watch_ref.next == 0 {
            self.watch_ref.next = 1;
        }
        let start = match start {
            0 => self.raft(node).map_or(1, |r| r.state_machine().revision() + 1),
            s => s,
        };
        let log = self.watch_logs.len();
        self.watch_logs.push(WatchLog { selector: Some(selector.clone()), start, prev_kv, ..WatchLog::default() });
        self.watchers.push(SimWatcher { node, cursor: Watcher::new(selector, start, prev_kv), log });
    }

    /// Every watch's log.
    pub fn watch_logs(&self) -> &[WatchLog] {
        &self.watch_logs
    }

    /// Takes the events of newly applied entries on node slot `k` into the
    /// reference (those of indexes it does not hold yet).
    pub(super) fn watch_reference(&mut self, k: usize, applied: &[u64]) {
        if self.watchers.is_empty() {
            return;
        }
        let Some(raft) = self.nodes[k].raft.as_ref() else { return };
        let window = raft.state_machine().events();
        for &index in applied {
            if index < self.watch_ref.next {
                continue;
            }
            if index > self.watch_ref.next || index < window.floor() {
                self.watch_ref.gap.get_or_insert(index);
            }
            self.watch_ref.events.extend(window.from(index).take_while(|e| e.revision == index));
            self.watch_ref.next = index + 1;
        }
    }

    /// Lets every watcher read what its node has applied; moves watchers off
    /// nodes that are down.
    pub(super) fn poll_watchers(&mut self) {
        let skip = cfg!(feature = "bugs") && self.cfg.raft.bugs.watch_resume_skips;
        for w in 0..self.watchers.len() {
            let node = self.watchers[w].node;
            if self.raft(node).is_none() || self.stopped.contains(&node) {
                // Reconnect: the next live node, from the last complete revision + 1.
                let ids = self.ids();
                let at = ids.iter().position(|&i| i == node).unwrap_or(0);
                let Some(next) = (1..=ids.len())
                    .map(|d| ids[(at + d) % ids.len()])
                    .find(|&i| self.raft(i).is_some() && !self.stopped.contains(&i))
                else {
                    continue;
                };
                let log = &mut self.watch_logs[self.watchers[w].log];
                log.reconnects += 1;
                let resume = log.last_complete() + if skip { 2 } else { 1 };
                let sel = self.watchers[w].cursor.selector.clone();
                self.watchers[w].node = next;
                self.watchers[w].cursor = Watcher::new(sel, resume, log.prev_kv);
                continue;
            }
            let k = self.slot(node);
            let Some(raft) = self.nodes[k].raft.as_ref() else { continue };
            let sm = raft.state_machine();
            loop {
                match self.watchers[w].cursor.poll(sm.events(), sm.revision()) {
                    Poll::Pending => break,
                    Poll::Frame { revision, events } => {
                        let log = &mut self.watch_logs[self.watchers[w].log];
                        if log.frames.len() < MAX_FRAMES {
                            log.frames.push((revision, events));
                        }
                    }
                    Poll::Compacted { oldest } => {
                        // The watch ends; the application starts a new one.
                        let old = self.watchers[w].log;
                        self.watch_logs[old].compacted = Some(oldest);
                        let sel = self.watchers[w].cursor.selector.clone();
                        let prev_kv = self.watch_logs[old].prev_kv;
                        self.watch_logs.push(WatchLog {
                            selector: Some(sel.clone()),
                            start: oldest,
                            prev_kv,
                            ..WatchLog::default()
                        });
                        self.watchers[w].log = self.watch_logs.len() - 1;
                        self.watchers[w].cursor = Watcher::new(sel, oldest, prev_kv);
                        break;
                    }
                }
            }
        }
    }

    /// What is wrong with the watches: each against the reference.
    pub fn watch_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(i) = self.watch_ref.gap {
            out.push(alloc::format!("the reference history lacks the events of index {i}"));
        }
        for log in &self.watch_logs {
            if let Err(e) = check_watch(&self.watch_ref.events, log) {
                out.push(e);
            }
        }
        out
    }
}
