//! The liveness check a randomised run ends with, once faults stop.
//!
//! Safety is checked after every event; liveness can only be judged when the
//! faults are over. Two properties, each with a stated bound:
//!
//! 1. **Everyone catches up.** Within `catch_up_us` of simulated time, there is
//!    a leader, it has committed its whole log (its own term's entry
//!    included), every member of its configuration follows it in its term
//!    and has committed, applied
//!    and made durable exactly that, with nothing held back, and the leader
//!    knows it, with no leadership transfer under way (nodes removed from
//!    the configuration are not waited for). A node that stays behind (a follower that never answers, a
//!    leader that keeps probing the wrong index) means the cluster has lost
//!    fault tolerance without anyone noticing — the bug this check was written
//!    for was a follower that never answered a probe inside its compacted log.
//! 2. **Quiet when idle.** Once every message sent before the faults stopped
//!    has landed (some take a long detour), over the next `idle_us`, with no client work, no
//!    node's commit moves, the term does not change, and no directed link
//!    carries more messages than the heartbeat rate allows (one heartbeat out,
//!    one answer back per heartbeat interval, plus two, plus one answer per
//!    message already on the wire towards the sender when the window opens). Idle heartbeats are
//!    identical messages too, so the check is on rate without progress: a pair
//!    of nodes bouncing rejects or probes at network speed fails it.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Sim;
use crate::types::{Index, NodeId};

/// How long the cluster may take to settle, and how long it is then watched.
#[derive(Clone, Copy, Debug)]
pub struct LivenessBounds {
    /// Every live node must match the leader's commit within this long.
    pub catch_up_us: u64,
    /// Then, with nothing to do, traffic is watched for this long.
    pub idle_us: u64,
}

impl LivenessBounds {
    /// The bound for `sim` as it is now: 5 s (a few elections of 300–600 ms
    /// each, a snapshot sent in small chunks) plus twice the time its
    /// replication pipeline needs to carry the backlog (the newest log's last
    /// index minus the oldest commit index) at its configured window — one
    /// window (`max_inflight_msgs × max_entries_per_msg` entries) per round
    /// trip of the slowest link and disk. Then 2 s of idle traffic.
    pub fn for_cluster(sim: &Sim) -> Self {
        let lives = || sim.ids().into_iter().filter_map(|id| sim.raft(id));
        let newest = lives().map(|r| r.log().last_index()).max().unwrap_or(0);
        let oldest = lives().map(|r| r.commit_index()).min().unwrap_or(0);
        let c = sim.config();
        let window = (c.raft.max_inflight_msgs * c.raft.max_entries_per_msg).max(1) as u64;
        let round_trip = 2 * c.latency_us.1 + c.disk_us.1 + c.tick_us;
        let pipeline = newest.saturating_sub(oldest).div_ceil(window) * round_trip;
        LivenessBounds { catch_up_us: 5_000_000 + 2 * pipeline, idle_us: 2_000_000 }
    }
}

impl Sim {
    /// Checks both liveness properties (see the module docs) on a cluster
    /// whose faults have stopped: every node up and connected, the network
    /// clean, no client load. Returns what failed, in plain words.
    pub fn check_liveness(&mut self, bounds: LivenessBounds) -> Vec<String> {
        let mut failures = Vec::new();
        let faults_stopped = self.now;
        let caught_up = |s: &Sim| {
            let Some(l) = s.leader().and_then(|l| s.raft(l)) else { return false };
            let commit = l.commit_index();
            let (term, leader) = (l.term(), l.id());
            let settled = |r: &crate::raft::Raft<crate::kv::KvStore>| {
                r.term() == term
                    && r.leader() == Some(leader)
                    && r.commit_index() == commit
                    && r.applied_index() == commit
                    && r.durable_index() == commit
                    && r.held_messages() == 0
            };
            l.log().term(commit) == Some(l.term())
                && l.log().last_index() == commit
                && l.progress().iter().all(|p| p.match_index == commit)
                && l.transfer_target().is_none()
                && l.membership().member_ids().iter().all(|&id| s.raft(id).is_some_and(settled))
        };
        // Messages sent before the faults stopped may still be on a long
        // detour (a late TimeoutNow starts an election; any other draws an
        // answer). Let them land first, then wait for the cluster to settle.
        let detour = self.cfg.long_delay_us + self.cfg.latency_us.1;
        self.run_until(detour, |s| s.inflight.values().all(|f| f.sent_at >= faults_stopped));
        if !self.run_until(bounds.catch_up_us, caught_up) {
            let (leader, commit) = match self.leader().and_then(|l| self.raft(l)) {
                Some(r) => (Some(r.id()), r.commit_index()),
                None => (None, 0),
            };
            let mut line = format!(
                "liveness: {} ms after faults stopped, not every node has caught up (leader {leader:?} at commit {commit}):",
                bounds.catch_up_us / 1000
            );
            for id in self.ids() {
                if let Some(r) = self.raft(id) {
                    let seen = leader.and_then(|l| self.raft(l)).and_then(|l| {
                        l.progress().iter().find(|p| p.id == id).map(|p| (p.state, p.match_index, p.next_index))
                    });
                    line += &format!(
                        " [node {id}: {}{} term {} commit {} applied {} durable {} last {} (term {}) snapshot {}; voters {:?}; leader sees {seen:?}]",
                        r.role().name(),
                        if r.lost_data() { " lost_data" } else { "" },
                        r.term(),
                        r.commit_index(),
                        r.applied_index(),
                        r.durable_index(),
                        r.log().last_index(),
                        r.log().last_term(),
                        r.log().snapshot_index(),
                        r.membership().voters.iter().map(|m| (m.id, m.inc)).collect::<Vec<_>>()
                    );
                }
            }
            failures.push(line);
            return failures;
        }
        let before = self.stats.per_link.clone();
        // Each message on the wire when the window opens may draw one answer
        // inside it: the link back gets that much slack.
        let mut answers_owed: BTreeMap<(NodeId, NodeId), u64> = BTreeMap::new();
        for f in self.inflight.values() {
            *answers_owed.entry((f.msg.to, f.msg.from)).or_insert(0) += 1;
        }
        // Members of the configuration only: a node removed from it is let go.
        let members = self.leader().and_then(|l| self.raft(l)).map(|r| r.membership().member_ids()).unwrap_or_default();
        let state = |s: &Sim| -> Vec<(NodeId, u64, Index)> {
            members.iter().filter_map(|&id| s.raft(id).map(|r| (id, r.term(), r.commit_index()))).collect()
        };
        let start = state(self);
        self.run_for(bounds.idle_us);
        let end = state(self);
        if start != end {
            failures.push(format!("liveness: an idle, healthy cluster changed term or commit: {start:?} -> {end:?}"));
        }
        let heartbeat_us = self.cfg.raft.heartbeat_ticks as u64 * self.cfg.tick_us;
        let limit = bounds.idle_us / heartbeat_us.max(1) + 2;
        let mut by_link: BTreeMap<(NodeId, NodeId), (u64, String)> = BTreeMap::new();
        for (&(from, to, kind), &after) in &self.stats.per_link {
            let sent = after - before.get(&(from, to, kind)).copied().unwrap_or(0);
            if sent > 0 {
                let e = by_link.entry((from, to)).or_default();
                e.0 += sent;
                e.1 += &format!(" {sent} {kind}");
            }
        }
        for ((from, to), (sent, kinds)) in by_link {
            let limit = limit + answers_owed.get(&(from, to)).copied().unwrap_or(0);
            if sent > limit {
                failures.push(format!(
                    "liveness: link {from}->{to} carried {sent} messages ({kinds} ) in {} ms of idle time (heartbeat rate allows {limit})",
                    bounds.idle_us / 1000
                ));
            }
        }
        failures
    }
}
