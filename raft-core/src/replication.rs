//! Log replication, commitment and apply (Raft §5.3, §5.4.2; dissertation §10.2).
//!
//! The leader streams AppendEntries to each follower under flow control (see
//! [`crate::progress`]). A follower accepts entries only if its log holds the
//! entry just before them (`prev_index`, `prev_term`); otherwise it rejects with
//! a hint — the largest index it holds whose term is at most `prev_term` — so the
//! leader skips a whole run of conflicting entries per round trip instead of one.
//!
//! An entry is committed when a majority holds it durably *and* it belongs to
//! the leader's current term (earlier-term entries commit indirectly, after a
//! current-term entry above them: the paper's Figure 8). The leader counts
//! itself only for entries it has persisted. Commit moves apply at once: both
//! leader and follower apply newly committed entries inside the step that moved
//! the commit index, in index order, one reply per entry.

use alloc::vec::Vec;

use crate::message::Body;
use crate::progress::ProgressState;
use crate::raft::{Event, Raft};
use crate::state_machine::StateMachine;
use crate::types::{Entry, Index, NodeId, Term};

impl<S: StateMachine> Raft<S> {
    /// Sends whatever each follower's flow control allows.
    pub(crate) fn broadcast_append(&mut self, heartbeat: bool) {
        for i in 0..self.progress.len() {
            self.send_append(i, heartbeat);
        }
    }

    /// A heartbeat round: every follower hears from us, and stalled pipelines
    /// (messages lost in the network) fall back to probing.
    pub(crate) fn heartbeat(&mut self) {
        for pr in self.progress.iter_mut() {
            let oldest = pr.inflight.front().map(|f| f.0);
            match pr.state {
                ProgressState::Replicate => {
                    if oldest.is_some() && oldest == pr.oldest_at_heartbeat {
                        pr.become_probe();
                    }
                }
                ProgressState::Probe => pr.probe_sent = false,
                ProgressState::Snapshot => {
                    // Resend the chunk the follower is waiting for (it may be lost).
                    if let Some(t) = pr.transfer.as_mut() {
                        t.in_flight = false;
                    }
                }
            }
            pr.oldest_at_heartbeat = pr.inflight.front().map(|f| f.0);
        }
        self.broadcast_append(true);
    }

    /// Sends AppendEntries to the follower at `progress[i]` as flow control allows.
    /// With `heartbeat`, something is sent even if there is nothing new.
    pub(crate) fn send_append(&mut self, i: usize, heartbeat: bool) {
        let last = self.log.last_index();
        let mut sent_any = false;
        if self.progress[i].state == ProgressState::Snapshot {
            return self.send_snapshot_chunk(i);
        }
        loop {
            let pr = &self.progress[i];
            let (to, next) = (pr.id, pr.next_index);
            let may_send = match pr.state {
                ProgressState::Probe => !pr.probe_sent,
                ProgressState::Replicate => {
                    next <= last && pr.window_open(self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes)
                }
                ProgressState::Snapshot => false,
            };
            if !may_send {
                break;
            }
            let prev_index = next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                // The entries this follower needs were compacted: send a snapshot.
                self.start_snapshot_transfer(i);
                return;
            };
            let entries = self.log.slice(next, last, self.cfg.max_entries_per_msg, self.cfg.max_bytes_per_msg);
            let bytes: usize = entries.iter().map(Entry::size).sum();
            let sent_last = prev_index + entries.len() as u64;
            let commit = self.commit;
            let round = self.round;
            self.send(to, Body::Append { prev_index, prev_term, entries, commit, round });
            self.progress[i].sent(sent_last, bytes);
            sent_any = true;
            if self.progress[i].state != ProgressState::Replicate {
                break;
            }
        }
        if heartbeat && !sent_any {
            // Nothing new may go: a heartbeat anchored at the known match point,
            // which the follower always accepts.
            let pr = &self.progress[i];
            let (to, prev_index) = (pr.id, pr.match_index);
            if let Some(prev_term) = self.log.term(prev_index) {
                let (commit, round) = (self.commit, self.round);
                self.send(to, Body::Append { prev_index, prev_term, entries: Vec::new(), commit, round });
            }
        }
    }

    /// Follower side of AppendEntries (the sender is the leader of our term).
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: Index,
        mut prev_term: Term,
        mut entries: Vec<Entry>,
        commit: Index,
        round: u64,
    ) {
        // Entries at or below our commit index are committed, hence identical to
        // the leader's (Leader Completeness): skip them rather than compare.
        if prev_index < self.commit {
            let skip = ((self.commit - prev_index) as usize).min(entries.len());
            entries.drain(..skip);
            prev_index += skip as u64;
            prev_term = match self.log.term(prev_index) {
                Some(t) => t,
                None => return, // below our snapshot: nothing to learn
            };
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let probe = prev_index.min(self.log.last_index());
            let hint_index = self.log.find_conflict_by_term(probe, prev_term);
            let hint_term = self.log.term(hint_index).unwrap_or(0);
            self.send(from, Body::AppendResp { index: prev_index, success: false, hint_index, hint_term, round });
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        // Find the first entry we do not already hold; drop a conflicting suffix.
        let mut first_new = entries.len();
        for (k, e) in entries.iter().enumerate() {
            match self.log.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    self.truncate_log(e.index);
                    first_new = k;
                    break;
                }
                None => {
                    first_new = k;
                    break;
                }
            }
        }
        if first_new < entries.len() {
            entries.drain(..first_new);
            self.append_entries(entries);
        }
        // Commit what the leader says is committed, but only as far as this
        // message proved our log matches the leader's.
        let new_commit = commit.min(last_new);
        if new_commit > self.commit {
            self.commit = new_commit;
            self.event(Event::Committed { index: new_commit });
            self.apply_committed();
        }
        let ack = Body::AppendResp { index: last_new, success: true, hint_index: 0, hint_term: 0, round };
        if last_new <= self.durable_index {
            self.send(from, ack);
        } else {
            let seq = self.next_seq - 1;
            self.send_after(seq, from, ack);
        }
    }

    /// Leader side: a follower answered an AppendEntries.
    pub(crate) fn handle_append_resp(
        &mut self,
        from: NodeId,
        index: Index,
        success: bool,
        hint_index: Index,
        hint_term: Term,
        round: u64,
    ) {
        let Some(i) = self.progress.iter().position(|p| p.id == from) else {
            return;
        };
        self.progress[i].recent_active = true;
        if round > self.progress[i].acked_round && round <= self.round {
            // Any answer in our term acknowledges our leadership as of `round`.
            self.progress[i].acked_round = round;
            self.on_round_ack();
        }
        if success {
            if index > self.log.last_index() {
                return; // cannot ack what we never sent: ignore a confused peer
            }
            let pr = &mut self.progress[i];
            let advanced = pr.ack(index);
            if pr.state == ProgressState::Probe && index >= pr.match_index {
                pr.become_replicate();
            }
            if advanced {
                self.maybe_commit();
            }
            self.send_append(i, false);
        } else {
            let pr = &mut self.progress[i];
            let stale = match pr.state {
                ProgressState::Replicate => index <= pr.match_index,
                ProgressState::Probe => index + 1 != pr.next_index,
                ProgressState::Snapshot => true,
            };
            if stale {
                return;
            }
            let next_probe =
                if hint_term > 0 { self.log.find_conflict_by_term(hint_index, hint_term) } else { hint_index };
            let pr = &mut self.progress[i];
            pr.become_probe();
            pr.next_index = (next_probe + 1).min(index).max(pr.match_index + 1);
            self.send_append(i, false);
        }
    }

    /// Moves the commit index to the highest index a majority holds durably,
    /// if that entry is of the current term, and applies at once.
    pub(crate) fn maybe_commit(&mut self) {
        let own = self.durable_index.min(self.log.last_index());
        let q = quorum_value(own, self.progress.iter().map(|p| p.match_index), self.quorum());
        if q <= self.commit {
            return;
        }
        let current_term = self.log.term(q) == Some(self.term);
        if !current_term && !self.bug(|b| b.commit_old_term) {
            return;
        }
        for i in self.commit + 1..=q {
            let size = self.log.entry(i).map_or(0, Entry::size);
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(size);
        }
        self.commit = q;
        self.event(Event::Committed { index: q });
        if current_term {
            self.on_term_commit();
        }
        self.apply_committed();
    }
}

/// The highest value that at least `quorum` of {`own`, `others`} reach: the
/// commit point of match indexes, or the confirmed round of acknowledged rounds.
/// Clusters of up to 16 voters sort on the stack; larger ones allocate.
pub(crate) fn quorum_value(own: u64, others: impl Iterator<Item = u64>, quorum: usize) -> u64 {
    let mut buf = [0u64; 16];
    let mut heap: Vec<u64> = Vec::new();
    let mut n = 0;
    for v in core::iter::once(own).chain(others) {
        if n < buf.len() {
            buf[n] = v;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&buf);
            }
            heap.push(v);
        }
        n += 1;
    }
    let vals: &mut [u64] = if heap.is_empty() { &mut buf[..n] } else { &mut heap };
    vals.sort_unstable_by(|a, b| b.cmp(a));
    vals.get(quorum.saturating_sub(1)).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::quorum_value;

    #[test]
    fn quorum_value_is_the_majority_point() {
        assert_eq!(quorum_value(5, [3, 9].into_iter(), 2), 5);
        assert_eq!(quorum_value(1, [7, 7, 2, 2].into_iter(), 3), 2);
        assert_eq!(quorum_value(4, core::iter::empty(), 1), 4);
        // More voters than fit on the stack.
        let others = (1..=20u64).map(|v| v * 10);
        assert_eq!(quorum_value(0, others, 11), 100);
    }
}
