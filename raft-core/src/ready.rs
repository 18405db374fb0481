//! What the engine hands the host after every input: the [`Ready`] batch and
//! its persistence contract, the [`Applied`] entries and the [`Event`]s.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::client::{ClientReply, ClientToken};
use crate::journal::Record;
use crate::membership::Membership;
use crate::message::Message;
use crate::snapshot::{SnapshotJob, SnapshotOut};
use crate::types::{Bytes, Index, NodeId, Seq, Term};

/// A committed entry the engine applied. `output` is the state machine's
/// output for a raw [`Raft::propose`](crate::Raft::propose)d command (client requests get theirs in
/// [`Ready::replies`]), and empty otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Log index of the entry.
    pub index: Index,
    /// Its term (with the index, identifies the proposal the host made).
    pub term: Term,
    /// What the state machine returned (empty for no-ops).
    pub output: Bytes,
}

/// Notable things that happened, in plain terms, for logs and the web demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Became (or stayed, in a new term) a follower.
    BecameFollower {
        /// The term.
        term: Term,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Started a pre-vote for `term + 1`.
    BecamePreCandidate {
        /// Current term (unchanged).
        term: Term,
    },
    /// Started an election.
    BecameCandidate {
        /// The new term.
        term: Term,
    },
    /// Won an election.
    BecameLeader {
        /// The term.
        term: Term,
    },
    /// A read was answered under the leader's lease, without a round
    /// ([`crate::lease`]); the simulator checks no other leader existed.
    LeaseRead {
        /// The leader's term.
        term: Term,
        /// The commit index the read waits to be applied.
        index: Index,
    },
    /// A leader stepped down because a majority was silent for an election timeout.
    LostQuorum {
        /// The term.
        term: Term,
    },
    /// A snapshot was taken locally.
    SnapshotTaken {
        /// Index it covers.
        index: Index,
    },
    /// A snapshot from the leader was installed.
    SnapshotInstalled {
        /// Index it covers.
        index: Index,
    },
    /// The commit index moved.
    Committed {
        /// New commit index.
        index: Index,
    },
    /// A conflicting suffix was dropped.
    Truncated {
        /// First dropped index.
        from_index: Index,
    },
    /// The configuration in force changed: a change was appended (it takes
    /// effect now, before it commits), truncated, or installed with a
    /// snapshot. Hosts open links to new members at once
    /// ([`Raft::link_ids`](crate::Raft::link_ids)).
    ConfigChanged {
        /// The configuration now in force.
        membership: Membership,
    },
    /// The leader was removed from the configuration and stepped down once
    /// the change committed.
    RemovedSelf {
        /// The term it led.
        term: Term,
    },
    /// A leader saw a follower answer from a new start (a new epoch) or with
    /// a new incarnation (its storage was replaced): what it held may be gone,
    /// so its progress was reset. Hosts log it once and count it.
    FollowerRestarted {
        /// The follower.
        id: NodeId,
        /// Whether the incarnation changed (a wiped or replaced directory),
        /// not just the epoch.
        new_incarnation: bool,
    },
    /// This node, which had found lost records at recovery, has durably
    /// matched the leader up to its commit index: it votes and counts again
    /// (once this Ready's records are durable).
    RecoveredLostData {
        /// The leader's commit index it reached.
        index: Index,
    },
}

/// Everything the host must carry out after an input: the host contract.
///
/// After every call into the engine (`tick`, `step`, `propose`, `submit`,
/// `persisted`), take the `Ready` with [`Raft::take_ready`](crate::Raft::take_ready) and:
///
/// 0. **Store `snapshot`**, if present, durably (write to a temporary name,
///    fsync, rename, fsync the directory) *before* persisting the records: one
///    of them is the `Snapshot` record that names it. After restart, hand its
///    bytes to [`Raft::recover`](crate::Raft::recover). Older snapshots may be deleted once a newer
///    `Snapshot` record is durable. With
///    [`Config::async_snapshots`](crate::Config::async_snapshots), start
///    building `snapshot_job` too (see [`crate::snapshot::SnapshotJob`]); it
///    holds nothing up.
/// 1. **Persist `records`** in order, appending them to the journal. They may be
///    written in one batch with one fsync (group commit). When records up to
///    sequence number `s` are durable, call [`Raft::persisted`](crate::Raft::persisted)`(s)`.
/// 2. **Send `messages`** now. Every message here may leave at once: the engine
///    holds back anything whose truth depends on records not yet durable (a
///    vote; an AppendEntries acknowledgement) and releases it in the `Ready` that
///    follows the `persisted` call covering it, dropping it instead if the
///    node's term changed or the acknowledged entries were truncated meanwhile.
///    A leader's own AppendEntries go out before its write is durable
///    (dissertation §10.2.1); it counts itself toward a commit majority only for
///    entries it has persisted, and a candidate counts its own vote only once
///    the HardState naming it is durable.
/// 3. **Deliver `replies`** to the clients named by their tokens. Write results
///    appear as each entry is applied (right after the commit index moved past
///    it), in order; reads once their confirmation round and apply allow.
///    `applied` lists every entry applied, for hosts that track progress.
///
/// Losing records that were never reported durable is fine (that is a crash);
/// reporting a record durable that is not breaks Raft's safety. A host that
/// splits its journal into segments begins each new one with
/// [`Raft::checkpoint`](crate::Raft::checkpoint)'s records, written when every issued record has been
/// written; older segments may be deleted once those are durable.
///
/// # A driving loop
///
/// ```
/// use raft_core::{Config, Raft, DigestMachine};
/// // A one-node cluster whose "disk" is instantaneous.
/// let mut node = Raft::new(Config::new(1, vec![1]), DigestMachine::default()).unwrap();
/// let mut journal = Vec::new();
/// for _ in 0..100 {
///     node.tick();
///     loop {
///         let ready = node.take_ready();
///         if ready.is_empty() { break; }
///         let last = ready.records.last().map(|(seq, _)| *seq);
///         journal.extend(ready.records);      // write + fsync in a real host
///         // send ready.messages to peers; reply to clients from ready.applied
///         if let Some(seq) = last { node.persisted(seq); }
///     }
/// }
/// assert!(node.is_leader());
/// let (index, _term) = node.propose(b"hello".to_vec()).unwrap();
/// let ready = node.take_ready();
/// node.persisted(ready.records.last().unwrap().0);
/// assert_eq!(node.take_ready().applied.last().unwrap().index, index);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// Journal records to make durable, in order, with their sequence numbers.
    pub records: Vec<(Seq, Record)>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Committed entries applied to the state machine, in index order.
    pub applied: Vec<Applied>,
    /// Replies to client requests, by the token given with the request.
    pub replies: Vec<(ClientToken, ClientReply)>,
    /// A snapshot to store durably *before* persisting `records` (they include
    /// the `Snapshot` record naming it): taken locally or installed from the leader.
    pub snapshot: Option<SnapshotOut>,
    /// With [`Config::async_snapshots`](crate::Config::async_snapshots): a
    /// snapshot to build and store off the event loop, then report with
    /// [`Raft::snapshot_stored`](crate::Raft::snapshot_stored) (or
    /// [`Raft::snapshot_failed`](crate::Raft::snapshot_failed)). Nothing else
    /// waits for it: the records of this `Ready` do not name it, and the
    /// engine takes no other snapshot by policy until it is reported.
    pub snapshot_job: Option<Arc<SnapshotJob>>,
    /// Things that happened, for logs and visualisation.
    pub events: Vec<Event>,
    /// Whether `records` hold anything that must be fsynced. When false they
    /// only note a role change (a HardState with the term and vote unchanged):
    /// the host may write them without an fsync of their own and report them
    /// with the next `persisted` call that a later fsync allows. A host that
    /// always fsyncs is also correct.
    pub must_sync: bool,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.messages.is_empty()
            && self.applied.is_empty()
            && self.replies.is_empty()
            && self.events.is_empty()
            && self.snapshot.is_none()
            && self.snapshot_job.is_none()
    }
}
