//! Log replication (Raft §5.3, §5.4.2; dissertation §10.2): what a leader
//! sends each follower, what it learns from the answers, and what a follower
//! does with an AppendEntries.
//!
//! The leader streams AppendEntries to each follower under flow control (see
//! [`crate::progress`]). A follower accepts entries only if its log holds the
//! entry just before them (`prev_index`, `prev_term`); otherwise it rejects with
//! a hint — the largest index it holds whose term is at most `prev_term` — so the
//! leader skips a whole run of conflicting entries per round trip instead of one.
//!
//! A follower always answers an AppendEntries of its leader: a silent follower
//! leaves a leader in Probe re-sending the same probe forever, and, since the
//! follower's election timer was just reset by that very message, neither side
//! ever moves on. Every path through `accept` ends in an accept or a reject.
//!
//! Each function borrows only what it reads: the log, one follower's
//! [`Progress`], or the `Storage` a follower writes to. Commit and apply are
//! the engine's ([`crate::raft`]): they need the quorum and the state machine.

use alloc::vec::Vec;

use crate::config::Config;
use crate::entry::Entry;
use crate::log::Log;
use crate::message::Body;
use crate::progress::{Progress, ProgressState};
use crate::storage::Storage;
use crate::types::{Index, Term};

/// What every AppendEntries of a leader carries besides entries.
pub(crate) struct Leading<'a> {
    /// The leader's log.
    pub log: &'a Log,
    /// Batch and window limits.
    pub cfg: &'a Config,
    /// The leader's commit index.
    pub commit: Index,
    /// The leader's current confirmation round (ReadIndex).
    pub round: u64,
}

/// Sends `pr`'s follower whatever its flow control allows, through `send`.
/// With `heartbeat`, something goes even if there is nothing new. Returns
/// true if the follower needs entries that were compacted: the caller starts
/// a snapshot transfer instead.
pub(crate) fn send_appends(pr: &mut Progress, at: &Leading, heartbeat: bool, send: &mut impl FnMut(Body)) -> bool {
    let last = at.log.last_index();
    let mut sent_any = false;
    loop {
        let next = pr.next_index;
        let may_send = match pr.state {
            ProgressState::Probe => !pr.probe_sent,
            ProgressState::Replicate => {
                next <= last && pr.window_open(at.cfg.max_inflight_msgs, at.cfg.max_inflight_bytes)
            }
            ProgressState::Snapshot => false,
        };
        if !may_send {
            break;
        }
        let prev_index = next - 1;
        let Some(prev_term) = at.log.term(prev_index) else {
            return true;
        };
        let entries = at.log.slice(next, last, at.cfg.max_entries_per_msg, at.cfg.max_bytes_per_msg);
        let bytes: usize = entries.iter().map(Entry::size).sum();
        let sent_last = prev_index + entries.len() as u64;
        send(Body::Append { prev_index, prev_term, entries, commit: at.commit, round: at.round, to_epoch: pr.epoch });
        pr.sent(sent_last, bytes);
        sent_any = true;
        if pr.state != ProgressState::Replicate {
            break;
        }
    }
    if heartbeat && !sent_any {
        // Nothing new may go: a heartbeat anchored at the known match point,
        // which the follower always accepts.
        let prev_index = pr.match_index;
        if let Some(prev_term) = at.log.term(prev_index) {
            send(Body::Append {
                prev_index,
                prev_term,
                entries: Vec::new(),
                commit: at.commit,
                round: at.round,
                to_epoch: pr.epoch,
            });
        }
    }
    false
}

/// What a leader learnt from a follower's AppendResp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learnt {
    /// Nothing: a stale or confused answer.
    Nothing,
    /// The follower's progress changed; `advanced` if its match index rose
    /// (the commit point may move). Send it more.
    Progress {
        /// The match index rose.
        advanced: bool,
    },
}

/// Updates `pr` from an AppendResp; `log` is the leader's.
pub(crate) fn on_append_resp(
    pr: &mut Progress,
    log: &Log,
    index: Index,
    success: bool,
    hint_index: Index,
    hint_term: Term,
) -> Learnt {
    if success {
        if index > log.last_index() {
            return Learnt::Nothing; // cannot ack what we never sent: ignore a confused peer
        }
        let advanced = pr.ack(index);
        if pr.state == ProgressState::Probe && index >= pr.match_index {
            pr.become_replicate();
        }
        return Learnt::Progress { advanced };
    }
    let stale = match pr.state {
        ProgressState::Replicate => index <= pr.match_index,
        ProgressState::Probe => index + 1 != pr.next_index,
        ProgressState::Snapshot => true,
    };
    if stale {
        return Learnt::Nothing;
    }
    let next_probe = if hint_term > 0 { log.find_conflict_by_term(hint_index, hint_term) } else { hint_index };
    pr.become_probe();
    pr.next_index = (next_probe + 1).min(index).max(pr.match_index + 1);
    Learnt::Progress { advanced: false }
}

/// A follower's answer to an AppendEntries of its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The log matches the leader's up to `last`: acknowledge `last` once it is
    /// durable, and commit up to `min(leader's commit, last)`.
    Accept {
        /// The highest index this message proved to match.
        last: Index,
    },
    /// `prev_index` does not match; the hint lets the leader skip a term.
    Reject {
        /// The largest index held whose term is at most the leader's `prev_term`.
        hint_index: Index,
        /// Its term.
        hint_term: Term,
    },
    /// No answer at all: only with the `silent_compacted_append` bug.
    Silent,
}

/// A follower handles AppendEntries from the leader of its term: checks the
/// log matches at `prev`, drops a conflicting suffix (returned as the first
/// dropped index) and appends what it lacks. `commit` is the follower's.
pub(crate) fn accept(
    storage: &mut Storage,
    commit: Index,
    prev: (Index, Term),
    mut entries: Vec<Entry>,
    silent_bug: bool,
) -> (Verdict, Option<Index>) {
    let (mut prev_index, mut prev_term) = prev;
    // Entries at or below our commit index are committed, hence identical to
    // the leader's (Leader Completeness): skip them rather than compare.
    if prev_index < commit {
        let skip = ((commit - prev_index) as usize).min(entries.len());
        entries.drain(..skip);
        prev_index += skip as u64;
        prev_term = match storage.log().term(prev_index) {
            Some(t) => t,
            // Still below our snapshot: everything this message carries is
            // committed and compacted here. Say how far we match — our commit
            // index, which is at least the snapshot's — so the leader moves on
            // (the caller acknowledges it only once it is durable).
            None if silent_bug => return (Verdict::Silent, None),
            None => return (Verdict::Accept { last: commit }, None),
        };
    }
    let log = storage.log();
    if log.term(prev_index) != Some(prev_term) {
        let probe = prev_index.min(log.last_index());
        let hint_index = log.find_conflict_by_term(probe, prev_term);
        let hint_term = log.term(hint_index).unwrap_or(0);
        return (Verdict::Reject { hint_index, hint_term }, None);
    }
    let last = prev_index + entries.len() as u64;
    // Find the first entry we do not already hold; drop a conflicting suffix.
    let mut first_new = entries.len();
    let mut truncated = None;
    for (k, e) in entries.iter().enumerate() {
        match storage.log().term(e.index) {
            Some(t) if t == e.term => continue,
            Some(_) => {
                storage.truncate_from(e.index);
                truncated = Some(e.index);
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
        storage.append(entries);
    }
    (Verdict::Accept { last }, truncated)
}
