//! Membership from the page: adding nodes (as learners, promoted once they
//! have caught up), removing them, joint changes, leadership transfer and
//! wiped disks; the configuration as the page draws it; and the feed's
//! sentences about configuration changes.
//!
//! Every change goes to raft-core's engine as it would from an operator:
//! [`raft_core::Raft::propose_conf_change`] at the leader, whose refusals
//! (another change unfinished, no voter left, a learner too far behind, …)
//! come back to the page as [`Refused`] with the engine's reason.

use raft_core::membership::{Change, ConfChange, Membership};
use raft_core::sim::Sim;
use raft_core::{Index, NodeId, Role};
use serde::Serialize;

use crate::driver::{Driver, Refused};
use crate::journal_view::JournalCache;
use crate::words;

/// Most nodes a demo cluster holds (the page's ring and its 1–9 keys).
pub const MAX_NODES: usize = 9;

/// A configuration as the page draws it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfView {
    /// Voters of the configuration being moved to (the only voters outside a change).
    pub voters: Vec<NodeId>,
    /// Voters of the configuration being left: non-empty only while joint.
    pub outgoing: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
    /// Voters being demoted: still voters of `outgoing`, learners once the joint phase ends.
    pub learners_next: Vec<NodeId>,
    /// A joint configuration: every election and commit needs a majority of both halves.
    pub joint: bool,
    /// Its entry is committed (false: it is in force on this node, but may still be rolled back).
    pub committed: bool,
    /// The node whose configuration this is.
    pub from: NodeId,
}

impl ConfView {
    /// The configuration node `from` uses now.
    pub fn of(from: NodeId, m: &Membership, committed: &Membership) -> ConfView {
        let ids = |v: &[raft_core::membership::Member]| v.iter().map(|x| x.id).collect::<Vec<_>>();
        ConfView {
            voters: ids(&m.voters),
            outgoing: ids(&m.outgoing),
            learners: ids(&m.learners),
            learners_next: ids(&m.learners_next),
            joint: m.is_joint(),
            committed: m == committed,
            from,
        }
    }

    /// What `id` is in this configuration: `voter` (of both halves, or
    /// outside a change), `incoming` (of the new half only), `outgoing` (of
    /// the old half only), `learner`, or `none`.
    pub fn role_of(&self, id: NodeId) -> &'static str {
        let new = self.voters.contains(&id);
        let old = self.outgoing.contains(&id);
        match (new, old) {
            (true, true) => "voter",
            (true, false) if self.joint => "incoming",
            (true, false) => "voter",
            (false, true) => "outgoing",
            _ if self.learners.contains(&id) || self.learners_next.contains(&id) => "learner",
            _ => "none",
        }
    }
}

/// A majority of `n` voters.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn set(ids: &[NodeId]) -> String {
    format!("{{{}}}", ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
}

impl Driver {
    /// The configuration the cluster runs on, as the page draws it: the
    /// leader's, or with no leader that of the live node with the newest log.
    pub fn cluster_conf(&self) -> Option<ConfView> {
        let id = self.sim.leader().or_else(|| {
            self.sim
                .ids()
                .into_iter()
                .filter_map(|id| self.sim.raft(id).map(|r| ((r.term(), r.log().last_index()), id)))
                .max()
                .map(|(_, id)| id)
        })?;
        let r = self.sim.raft(id)?;
        Some(ConfView::of(id, r.membership(), r.committed_membership()))
    }

    /// The leader, if it could take a membership change now; otherwise why not
    /// (checked before a node is created for one, so that a refused "add"
    /// leaves no stray node behind).
    fn change_leader(&self) -> Result<NodeId, Refused> {
        let Some(l) = self.sim.leader() else {
            return Err(Refused("there is no leader to propose a change to: wait for an election".into()));
        };
        let Some(r) = self.sim.raft(l) else { return Err(Refused("the leader is down".into())) };
        if r.transfer_target().is_some() {
            return Err(Refused(format!("node {l} is handing its leadership over: try again once it is done")));
        }
        if r.membership().is_joint() {
            return Err(Refused(format!(
                "another membership change is unfinished: node {l} has not left the joint configuration yet"
            )));
        }
        if r.membership() != r.committed_membership() {
            return Err(Refused(format!(
                "another membership change is unfinished: node {l} has not committed the last one yet"
            )));
        }
        if r.log().term(r.commit_index()) != Some(r.term()) {
            return Err(Refused(format!(
                "node {l} has not yet committed an entry of its own term {}: a change now could be decided by a quorum that misses one an earlier leader made",
                r.term()
            )));
        }
        Ok(l)
    }

    /// Proposes `cc` at the leader; the engine's refusal is the page's.
    fn propose(&mut self, cc: ConfChange, what: &str) -> Result<(NodeId, Index), Refused> {
        let Some(l) = self.sim.leader() else {
            return Err(Refused(format!("there is no leader to {what}: wait for an election")));
        };
        match self.sim.propose_conf_change(l, cc, false) {
            Ok((index, _)) => Ok((l, index)),
            Err(e) => Err(Refused(format!("node {l} (leader) will not {what}: {e}"))),
        }
    }

    pub(crate) fn add_node(&mut self, voter: bool) -> Result<(), Refused> {
        if self.node_count() >= MAX_NODES {
            return Err(Refused(format!("the demo holds at most {MAX_NODES} nodes")));
        }
        let l = self.change_leader()?;
        let id = self.sim.add_node();
        self.roles.push(Some(Role::Follower));
        self.journals.push(JournalCache::default());
        let bootstrap: Vec<NodeId> = (1..=self.opts.nodes as NodeId).collect();
        self.confs.push(Membership::bootstrap(&bootstrap));
        // The operator names the disk it started, as `raftkv` does: a
        // learner bound to none could never grant a vote, and a joint
        // change whose new half needs it would be stuck if its leader fell
        // before the learner had the entry.
        let inc = self.incarnation_of(id);
        let cc = ConfChange::Begin { joint: false, changes: vec![Change::AddLearner { id, inc }] };
        match self.sim.propose_conf_change(l, cc, false) {
            Ok((index, _)) => {
                let then = if voter {
                    "; once it has caught up, it is promoted to voter"
                } else {
                    "; it stays a learner until you promote it"
                };
                let text = format!(
                    "node {id} starts with an empty disk and node {l} (leader) adds it as a learner (entry {index}): it receives the log but does not vote, so the majority needed stays the same while it catches up{then}"
                );
                self.say(id, "config", text, true);
                if voter {
                    self.auto_promote.insert(id);
                }
                Ok(())
            }
            Err(e) => Err(Refused(format!("node {id} started, but node {l} (leader) will not add it: {e}"))),
        }
    }

    pub(crate) fn add_learner(&mut self, node: NodeId) -> Result<(), Refused> {
        self.known(node)?;
        let inc = self.incarnation_of(node);
        let cc = ConfChange::Begin { joint: false, changes: vec![Change::AddLearner { id: node, inc }] };
        let (l, index) = self.propose(cc, &format!("add node {node} as a learner"))?;
        let text = format!(
            "node {l} (leader) adds node {node} back as a learner (entry {index}): it catches up without voting"
        );
        self.say(node, "config", text, true);
        Ok(())
    }

    pub(crate) fn promote(&mut self, node: NodeId) -> Result<(), Refused> {
        self.known(node)?;
        let conf = self.cluster_conf().unwrap_or_default();
        match conf.role_of(node) {
            "learner" => {
                let cc = ConfChange::Begin { joint: false, changes: vec![Change::AddVoter { id: node, inc: 0 }] };
                let (l, index) = self.propose(cc, &format!("promote node {node}"))?;
                let n = conf.voters.len();
                let text = format!(
                    "node {l} (leader) promotes learner {node} to voter (entry {index}): {n} voters become {}, a majority is now {} — one voter more is a direct change, since any majority of the old voters overlaps any majority of the new",
                    n + 1,
                    majority(n + 1)
                );
                self.say(node, "config", text, true);
                Ok(())
            }
            "none" => Err(Refused(format!("node {node} is not a member: add it as a learner first"))),
            _ if self.sim.unbound_voters().contains(&node) => {
                // Rebinding a voter to its new disk: the old half keeps the
                // lost disk, whose vote never comes; the new half names the
                // disk the leader hears from.
                let cc = ConfChange::Begin { joint: true, changes: vec![Change::AddVoter { id: node, inc: 0 }] };
                let (l, index) = self.propose(cc, &format!("readmit node {node}"))?;
                let text = format!(
                    "node {l} (leader) readmits node {node} with its new disk (entry {index}), through a joint configuration: the old half still names the lost disk, the new one names the disk node {node} has now"
                );
                self.say(node, "config", text, true);
                Ok(())
            }
            _ => Err(Refused(format!("node {node} is already a voter"))),
        }
    }

    pub(crate) fn remove(&mut self, node: NodeId) -> Result<(), Refused> {
        self.known(node)?;
        let cc = ConfChange::Begin { joint: false, changes: vec![Change::Remove { id: node }] };
        let (l, index) = self.propose(cc, &format!("remove node {node}"))?;
        let mut text = format!(
            "node {l} (leader) removes node {node} (entry {index}): the new configuration is in force on each node as soon as it has the entry, committed or not"
        );
        if node == l {
            text += &format!("; node {l} removes itself: it leads until the change commits, then steps down");
        }
        self.say(node, "config", text, true);
        Ok(())
    }

    pub(crate) fn joint(&mut self, add: &[NodeId], remove: &[NodeId]) -> Result<(), Refused> {
        for &id in add.iter().chain(remove) {
            self.known(id)?;
        }
        let changes: Vec<Change> = add
            .iter()
            .map(|&id| Change::AddVoter { id, inc: 0 })
            .chain(remove.iter().map(|&id| Change::Remove { id }))
            .collect();
        let cc = ConfChange::Begin { joint: true, changes };
        let (l, index) = self.propose(cc, "make that joint change")?;
        let mut what = Vec::new();
        if !add.is_empty() {
            what.push(format!("make {} voter{}", words::ids(add), if add.len() > 1 { "s" } else { "" }));
        }
        if !remove.is_empty() {
            what.push(format!("remove {}", words::ids(remove)));
        }
        let text = format!(
            "node {l} (leader) proposes one joint change (entry {index}): {}; the cluster passes through a joint configuration",
            what.join(" and ")
        );
        self.say(l, "config", text, true);
        Ok(())
    }

    pub(crate) fn transfer(&mut self, node: NodeId) -> Result<(), Refused> {
        self.known(node)?;
        let Some(l) = self.sim.leader() else {
            return Err(Refused("there is no leader to hand leadership over: wait for an election".into()));
        };
        match self.sim.transfer_leadership(l, Some(node)) {
            Ok(t) => {
                let text = format!(
                    "node {l} (leader) hands leadership to node {t}: it takes no writes meanwhile, brings node {t}'s log up to its own and then tells it to campaign at once (TimeoutNow)"
                );
                self.say(l, "leader", text, true);
                Ok(())
            }
            Err(e) => Err(Refused(format!("node {l} (leader) cannot hand leadership to node {node}: {e}"))),
        }
    }

    pub(crate) fn wipe(&mut self, node: NodeId) -> Result<(), Refused> {
        self.known(node)?;
        let voter = self.cluster_conf().is_some_and(|c| c.voters.contains(&node) || c.outgoing.contains(&node));
        self.sim.wipe(node);
        self.sim.restart(node);
        let k = (node - 1) as usize;
        self.journals[k] = JournalCache::default();
        self.roles[k] = self.sim.raft(node).map(|r| r.role());
        self.announced.remove(&node);
        let inc = self.sim.raft(node).map_or(0, |r| r.config().inc);
        let mut text = format!(
            "node {node}'s disk was wiped and it restarted with nothing: an empty log, no term, no vote, and a new storage identity (incarnation {inc:#x})"
        );
        if voter {
            text += ". The configuration names its old disk, so it may not vote or campaign: a vote from it could break a promise its lost disk made. It catches up from the leader; readmitting it (Promote) binds the configuration to its new disk";
        }
        self.say(node, "wipe", text, true);
        Ok(())
    }

    /// The storage incarnation of a live node's disk (0, unbound, while it is down).
    fn incarnation_of(&self, id: NodeId) -> u64 {
        self.sim.raft(id).map_or(0, |r| r.config().inc)
    }

    fn known(&self, id: NodeId) -> Result<(), Refused> {
        if self.valid(id) {
            Ok(())
        } else {
            Err(Refused(format!("there is no node {id}")))
        }
    }

    /// A learner that has caught up with the leader (holds every committed
    /// entry) and that the feed has not announced yet, or that is waiting to
    /// be promoted, while no other change is unfinished. A function of the
    /// simulator alone, so the driver can stop the run right after the event
    /// that made it so, live and in a replay alike.
    pub(crate) fn learner_caught_up(
        sim: &Sim,
        announced: &std::collections::BTreeSet<NodeId>,
        auto: &std::collections::BTreeSet<NodeId>,
    ) -> Option<NodeId> {
        let l = sim.leader()?;
        let r = sim.raft(l)?;
        let m = r.membership();
        if m.is_joint() || m != r.committed_membership() {
            return None;
        }
        let commit = r.commit_index();
        r.progress()
            .iter()
            .filter(|p| m.is_learner(p.id) && p.match_index >= commit && sim.is_up(p.id))
            .find(|p| !announced.contains(&p.id) || auto.contains(&p.id))
            .map(|p| p.id)
    }

    /// After events: announces learners that caught up and promotes those
    /// added to become voters. Returns whether it proposed a promotion.
    pub(crate) fn after_membership(&mut self) -> bool {
        if let Some(conf) = self.cluster_conf() {
            self.announced.retain(|id| conf.role_of(*id) == "learner");
        }
        let mut proposed = false;
        for _ in 0..MAX_NODES {
            let Some(id) = Driver::learner_caught_up(&self.sim, &self.announced, &self.auto_promote) else { break };
            if self.announced.insert(id) {
                let text = format!(
                    "learner {id} has caught up: it holds every committed entry, so it could be promoted without slowing commits"
                );
                self.say(id, "config", text, true);
            }
            if self.auto_promote.remove(&id) {
                match self.promote(id) {
                    Ok(()) => proposed = true,
                    Err(e) => self.say(id, "refused", format!("node {id} was not promoted: {e}"), true),
                }
            }
        }
        proposed
    }

    /// The feed's sentence for node `node` taking up configuration `m`
    /// (major when the node leads: every node takes up each change).
    pub(crate) fn config_line(&mut self, node: NodeId, m: Membership, leader: bool) -> (String, bool) {
        let k = (node as usize).saturating_sub(1).min(self.confs.len().saturating_sub(1));
        let prev = std::mem::replace(&mut self.confs[k], m.clone());
        let who = if leader { format!("node {node} (leader)") } else { format!("node {node}") };
        let new: Vec<NodeId> = m.voters.iter().map(|x| x.id).collect();
        let old: Vec<NodeId> = m.outgoing.iter().map(|x| x.id).collect();
        let learners: Vec<NodeId> = m.learners.iter().chain(&m.learners_next).map(|x| x.id).collect();
        let learners = if learners.is_empty() { String::new() } else { format!(", learners {}", set(&learners)) };
        let text = if m.is_joint() && !prev.is_joint() {
            format!(
                "{who} enters a joint configuration: old voters {} and new voters {}{learners}. Until it is left, an election or a commit needs {} of the old AND {} of the new",
                set(&old),
                set(&new),
                majority(old.len()),
                majority(new.len())
            )
        } else if prev.is_joint() && !m.is_joint() {
            format!("{who} leaves the joint configuration: the voters are now {}{learners}", set(&new))
        } else if !m.is_voter(node) && prev.is_voter(node) && !m.is_learner(node) {
            format!("{who} takes up a configuration without itself: voters {}{learners}", set(&new))
        } else {
            let mut parts = Vec::new();
            for x in &m.learners {
                if !prev.contains(x.id) {
                    parts.push(format!("node {} joins as a learner", x.id));
                } else if prev.is_voter(x.id) {
                    parts.push(format!("node {} becomes a learner", x.id));
                }
            }
            for id in m.voter_ids() {
                if !prev.is_voter(id) {
                    parts.push(format!("node {id} becomes a voter"));
                }
            }
            for id in prev.member_ids() {
                if !m.contains(id) {
                    parts.push(format!("node {id} is removed"));
                }
            }
            let what = if parts.is_empty() { "a new configuration".to_string() } else { parts.join(", ") };
            format!(
                "{who} takes up the change ({what}): voters {}{learners}, a majority is {}",
                set(&new),
                majority(new.len())
            )
        };
        (text, leader)
    }
}
