//! The node task's inbox: what the I/O tasks (peer links, client
//! connections, `/status`) send to the one task that owns the Raft core, and
//! the handle they send it with.
//!
//! This module sits below everything else of the server: the node task reads
//! these types, every I/O task writes them, and neither side needs to know
//! the other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use raft_core::snapshot::Snapshot;
use raft_core::{ClientReply, ClientRequest, ClientToken, Message, NodeId};

use crate::protocol::{AdminOp, Failure, MembersView, WatchSpec};
use crate::watches::WatchSink;

/// How long [`Inbox::status`] waits for the node task to answer. The task
/// answers between two inputs, so only a stalled process takes this long.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client reply goes: the connection's channel, tagged with the
/// request's token so the connection can find the request it answers. The
/// bytes of the replies in it are bounded: a connection whose client does not
/// read stops taking replies, and past `max` bytes further ones are dropped
/// and the connection told to close.
#[derive(Clone, Debug)]
pub struct ReplyRoute {
    tx: mpsc::Sender<(ClientToken, ClientReply)>,
    held: Arc<HeldReplies>,
}

/// The bytes of the replies waiting in one connection's channel.
#[derive(Debug)]
pub struct HeldReplies {
    bytes: AtomicU64,
    max: u64,
    overflowed: AtomicBool,
}

impl HeldReplies {
    /// The connection took `reply` out of the channel.
    pub fn taken(&self, reply: &ClientReply) {
        self.bytes.fetch_sub(reply_size(reply) as u64, Ordering::Relaxed);
    }
    /// Whether a reply was dropped for the byte bound (the connection must close).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// The bytes a reply takes (its output, or a few for the small ones).
pub fn reply_size(reply: &ClientReply) -> usize {
    match reply {
        ClientReply::Written { output } | ClientReply::Read { output } => output.len() + 16,
        _ => 16,
    }
}

impl ReplyRoute {
    /// A route holding at most `capacity` replies and `max_bytes` of them,
    /// and the connection's ends of it.
    pub fn channel(
        capacity: usize,
        max_bytes: usize,
    ) -> (ReplyRoute, mpsc::Receiver<(ClientToken, ClientReply)>, Arc<HeldReplies>) {
        let (tx, rx) = mpsc::channel(capacity);
        let held = Arc::new(HeldReplies {
            bytes: AtomicU64::new(0),
            max: max_bytes as u64,
            overflowed: AtomicBool::new(false),
        });
        (ReplyRoute { tx, held: held.clone() }, rx, held)
    }

    /// Hands `reply` to the connection without waiting; `false` if it was
    /// dropped (the connection is gone, full, or over its byte bound).
    pub fn try_send(&self, token: ClientToken, reply: ClientReply) -> bool {
        let size = reply_size(&reply) as u64;
        let held = self.held.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if held > self.held.max {
            self.held.bytes.fetch_sub(size, Ordering::Relaxed);
            self.held.overflowed.store(true, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send((token, reply)).is_err() {
            self.held.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Something for the node task to do.
#[derive(Debug)]
pub enum Input {
    /// A message from an authenticated peer.
    Peer(Message),
    /// A client request; the reply goes to `reply` tagged with `token`.
    Client {
        /// Unique among the node's outstanding requests.
        token: ClientToken,
        /// The request.
        request: ClientRequest,
        /// The connection's reply channel.
        reply: ReplyRoute,
    },
    /// A request for the node's status.
    Status(oneshot::Sender<Status>),
    /// An operator command (from a client connection with the right role).
    Admin {
        /// The command.
        op: AdminOp,
        /// Where its one answer goes.
        reply: oneshot::Sender<Result<AdminAnswer, Failure>>,
    },
    /// A node that proved the shared secret at `/join` asks to enter as a
    /// learner (or, already a member, to be known by its new incarnation).
    Join {
        /// The node.
        id: NodeId,
        /// Its URL.
        url: String,
        /// Its data directory's incarnation.
        inc: u64,
        /// The answer.
        reply: oneshot::Sender<Result<MembersView, Failure>>,
    },
    /// A client connection opens a watch; its start (and then its frames)
    /// go to `sink`.
    Watch {
        /// The connection.
        conn: u64,
        /// The watch's id on that connection.
        watch_id: u64,
        /// What it follows.
        spec: WatchSpec,
        /// The connection's watch queue.
        sink: WatchSink,
    },
    /// A client connection ends one of its watches.
    CancelWatch {
        /// The connection.
        conn: u64,
        /// The watch.
        watch_id: u64,
    },
}

/// What an operator command produced.
#[derive(Debug)]
pub enum AdminAnswer {
    /// The configuration (after the change, for a change).
    Members(MembersView),
    /// The node that leads after a transfer.
    Transferred(NodeId),
    /// A snapshot of the applied state, for `snapshot_save` to stream.
    Snapshot(Arc<Snapshot>),
}

/// Where every node is: node id → base URL. Seeded from the TOML file,
/// kept up to date by the node task from the replicated address map;
/// read by the routes for leader hints. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<RwLock<BTreeMap<NodeId, String>>>);

impl AddressBook {
    /// Node `id`'s URL, if known.
    pub fn get(&self, id: NodeId) -> Option<String> {
        self.0.read().ok()?.get(&id).cloned()
    }
    /// Records node `id`'s URL; whether it changed.
    pub fn set(&self, id: NodeId, url: &str) -> bool {
        match self.0.write() {
            Ok(mut m) => m.insert(id, url.to_string()).as_deref() != Some(url),
            Err(_) => false,
        }
    }
}

/// One peer's replication progress, as the leader sees it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Peer id.
    pub id: NodeId,
    /// Highest index known replicated on it.
    pub match_index: u64,
    /// Next index the leader will send it.
    pub next_index: u64,
}

/// What `/status` reports (as JSON, field by field).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node's id.
    pub id: NodeId,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader of the term, if known.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Highest index durable in this node's journal.
    pub durable_index: u64,
    /// Index covered by the latest snapshot (0: none yet).
    pub snapshot_index: u64,
    /// Leader only: each peer's match index.
    pub peers: Vec<PeerStatus>,
    /// Open client sessions.
    pub sessions: usize,
    /// Keys in the store.
    pub keys: usize,
    /// Leader only: reads waiting for a confirmation round.
    pub pending_reads: usize,
    /// Leader only: writes waiting to apply.
    pub pending_writes: usize,
    /// The configuration in force (the newest in the log).
    pub configuration: ConfigView,
    /// The newest committed configuration.
    pub committed_configuration: ConfigView,
    /// This directory's incarnation.
    pub incarnation: u64,
    /// The number of this start of the node (`DATA/epoch`): grows with
    /// every start, so a leader can tell a restarted follower's answers.
    pub epoch: u64,
    /// This node found its data lost (its journal cut or its directory
    /// wiped) and does not vote until it is rebound.
    pub lost_data: bool,
    /// Members known to have come back with another incarnation.
    pub members_lost_data: Vec<NodeId>,
}

/// A configuration in `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfigView {
    /// Voters (of the incoming half while joint).
    pub voters: Vec<NodeId>,
    /// Voters of the outgoing half (non-empty only while joint).
    pub outgoing: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
    /// Whether joint.
    pub joint: bool,
}

/// The node task is gone (the process is stopping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

/// The sending side of the node's inbox. Cheap to clone: every I/O task
/// holds one.
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: mpsc::Sender<Input>,
}

impl Inbox {
    /// A bounded inbox of `capacity` inputs and the node task's end of it.
    /// Bounded so a flood of requests waits in the I/O tasks (which stop
    /// reading their sockets) instead of growing memory here.
    pub fn channel(capacity: usize) -> (Inbox, mpsc::Receiver<Input>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Inbox { tx }, rx)
    }

    /// Hands `input` to the node task, waiting while the inbox is full.
    pub async fn send(&self, input: Input) -> Result<(), Closed> {
        self.tx.send(input).await.map_err(|_| Closed)
    }

    /// Asks the node task for its status; `None` if it is gone or does not
    /// answer in time.
    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Status(tx)).await.ok()?;
        tokio::time::timeout(STATUS_TIMEOUT, rx).await.ok()?.ok()
    }
}
