//! The node task's inbox: what the I/O tasks (peer links, client
//! connections, `/status`) send to the one task that owns the Raft core, and
//! the handle they send it with.
//!
//! This module sits below everything else of the server: the node task reads
//! these types, every I/O task writes them, and neither side needs to know
//! the other.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use raft_core::{ClientReply, ClientRequest, ClientToken, Message, NodeId};

/// How long [`Inbox::status`] waits for the node task to answer. The task
/// answers between two inputs, so only a stalled process takes this long.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client reply goes: the connection's channel, tagged with the
/// request's token so the connection can find the request it answers.
pub type ReplyRoute = mpsc::Sender<(ClientToken, ClientReply)>;

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
