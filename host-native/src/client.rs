//! The client library: talks to a raftkv cluster over the binary client
//! protocol and hides leader changes, reconnections and retries.
//!
//! * A fixed list of node URLs; the leader is found by following the
//!   `not_leader` hints (or trying the next node when there is none).
//! * A broken connection is reopened, to the next node if need be.
//! * Every request has an overall timeout; each attempt on one node has a
//!   shorter one, so a stalled node does not use up the whole budget.
//! * A write is retried with the *same* session and sequence number until a
//!   definite answer comes, so it takes effect exactly once even when a leader
//!   crashes between applying it and replying.
//! * While idle, the session is kept alive in the background.
//! * If the session expired after an attempt of a write was sent, whether that
//!   write happened is unknown: the call fails with [`Error::OutcomeUnknown`]
//!   and the next call registers a new session.
//! * [`Client::watch`] streams the changes of a key or prefix, resuming
//!   after a reconnection without losing or repeating a revision (see
//!   [`WatchStream`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftkv::Error> {
//! let client = raftkv::Client::new(vec!["ws://127.0.0.1:7001".into()], Default::default());
//! client.put("greeting", "hello").await?;
//! assert_eq!(client.get("greeting").await?.as_deref(), Some("hello"));
//! # Ok(()) }
//! ```

mod watch;

pub use watch::{WatchOptions, WatchResponse, WatchStream};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use raft_core::kv::{KeyValue, KvOp, KvOutput, Txn, TxnResult};

use crate::protocol::{
    decode_response, encode_request, AdminOp, ErrorCode, Failure, MembersView, Op, Request, Secret, Success,
};

/// Tuning of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The whole budget of one call, retries included.
    pub timeout: Duration,
    /// How long one attempt on one node may take before the client gives up
    /// on that node and tries another.
    pub attempt_timeout: Duration,
    /// Idle time after which the session is kept alive (sessions expire after
    /// 60 s of cluster time by default; a third of that is the design's rule).
    pub keepalive_after: Duration,
    /// Largest reply frame accepted.
    pub max_frame: usize,
    /// The bearer token sent in the WebSocket upgrade (needed when the
    /// cluster's configuration names `[[tokens]]`).
    pub token: Option<String>,
    /// For `wss://` nodes: the TLS client configuration trusting the
    /// cluster's CA ([`crate::tls::client_config`]).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(1),
            keepalive_after: Duration::from_secs(20),
            max_frame: 16 << 20,
            token: None,
            tls: None,
        }
    }
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No definite answer within the timeout. For a write, `outcome_unknown`
    /// says whether an attempt was sent that may have taken effect.
    Timeout {
        /// Whether a write may have happened.
        outcome_unknown: bool,
        /// The last problem seen.
        last: String,
    },
    /// The session expired after an attempt of this write was sent: it may or
    /// may not have happened. The next call opens a new session.
    OutcomeUnknown,
    /// The cluster refused the request (`bad_request`, `stale_seq`, ...).
    Rejected {
        /// The protocol's error code.
        code: ErrorCode,
        /// The node's explanation, if any.
        message: Option<String>,
    },
    /// Every node refused connections, round after round: the cluster is
    /// down or the addresses are wrong. Nothing was sent.
    Unreachable {
        /// The last connection error.
        last: String,
    },
    /// The client was given no addresses.
    NoAddresses,
    /// The lease named does not exist (never granted, revoked, or expired);
    /// the write had no effect.
    LeaseNotFound {
        /// The lease.
        id: u64,
    },
    /// A limit of the store refused the write (it had no effect).
    Refused {
        /// Which limit.
        reason: String,
    },
    /// A watch needs events the node no longer has (they left its window,
    /// or a snapshot install jumped past them): read the current state and
    /// watch again from `oldest` or later. The watch is over.
    Compacted {
        /// The oldest revision the node can still deliver from.
        oldest: u64,
    },
    /// The node ended a watch (`no_leader`, when asked for). The watch is
    /// over.
    WatchCanceled {
        /// The node's reason.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { outcome_unknown, last } => {
                write!(f, "no answer from the cluster in time (last problem: {last})")?;
                if *outcome_unknown {
                    write!(f, "; the write may or may not have happened")?;
                }
                Ok(())
            }
            Error::OutcomeUnknown => {
                write!(f, "the session expired during the write; it may or may not have happened")
            }
            Error::Rejected { code, message } => {
                // A `refused` answer says so itself: "refused: refused: ..."
                // would repeat it.
                match (code, message) {
                    (ErrorCode::Refused, Some(m)) => write!(f, "refused: {m}"),
                    (ErrorCode::Refused, None) => write!(f, "refused"),
                    (code, None) => write!(f, "refused: {}", code.as_str()),
                    (code, Some(m)) => write!(f, "refused: {}: {m}", code.as_str()),
                }
            }
            Error::Unreachable { last } => write!(f, "cannot reach any node of the cluster ({last})"),
            Error::NoAddresses => write!(f, "no node addresses given"),
            Error::LeaseNotFound { id } => write!(f, "lease {id} not found (expired or revoked)"),
            Error::Refused { reason } => write!(f, "refused: {reason}"),
            Error::Compacted { oldest } => {
                write!(f, "the watch's events are compacted: the oldest revision available is {oldest}")
            }
            Error::WatchCanceled { reason } => write!(f, "the node cancelled the watch: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasResult {
    /// Whether the value was replaced.
    pub swapped: bool,
    /// When not swapped: the value found (`None`: the key is absent).
    pub current: Option<String>,
}

/// One page of a range or prefix read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The keys, in order, with their revisions.
    pub kvs: Vec<KeyValue>,
    /// Where the next page starts (`None`: this page ends the range).
    pub next: Option<String>,
    /// The revision the page was read at. Each page is linearizable on its
    /// own; a read in several pages is not one snapshot.
    pub revision: u64,
}

/// A transaction's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether every comparison held (so `success` ran).
    pub succeeded: bool,
    /// One result per operation of the branch that ran.
    pub results: Vec<TxnResult>,
    /// The transaction's revision.
    pub revision: u64,
}

/// A lease granted or kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: u64,
    /// Its time to live.
    pub ttl: Duration,
}

type Ws = WebSocketStream<crate::tls::Stream>;

/// Why a connection could not be made.
enum ConnectError {
    Dial(String),
    Ws(tokio_tungstenite::tungstenite::Error),
}

/// A client of a raftkv cluster. Calls on one client run one at a time;
/// use several clients for concurrency.
pub struct Client {
    inner: Arc<Mutex<Inner>>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

struct Inner {
    addrs: Vec<String>,
    /// Index in `addrs` of the node last tried from the list.
    idx: usize,
    /// The node talked to now (from the list or from a leader hint).
    target: String,
    conn: Option<Ws>,
    next_id: u64,
    session: Option<u64>,
    /// The open session's secret.
    secret: Secret,
    next_seq: u64,
    last_used: Instant,
    opts: ClientOptions,
}

/// How one attempt ended.
enum Attempt {
    Reply(Result<Success, Failure>),
    /// The connection failed or the attempt timed out: the request may or may
    /// not have reached the node.
    Lost(String),
    /// No connection could be made: the request was not sent.
    Unreached(String),
}

impl Client {
    /// A client of the nodes at `addrs` (base URLs such as
    /// `ws://127.0.0.1:7001`). Connects lazily. Must be called inside a tokio
    /// runtime (it starts the keep-alive task).
    pub fn new(addrs: Vec<String>, opts: ClientOptions) -> Client {
        let addrs: Vec<String> = addrs.into_iter().map(|a| a.trim_end_matches('/').to_string()).collect();
        let keepalive_after = opts.keepalive_after;
        let inner = Arc::new(Mutex::new(Inner {
            target: addrs.first().cloned().unwrap_or_default(),
            addrs,
            idx: 0,
            conn: None,
            next_id: 1,
            session: None,
            secret: [0; 32],
            next_seq: 1,
            last_used: Instant::now(),
            opts,
        }));
        let weak = Arc::downgrade(&inner);
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(keepalive_after / 4).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut g = inner.lock().await;
                if g.session.is_some() && g.last_used.elapsed() >= keepalive_after {
                    if let Err(e) = g.keep_alive().await {
                        tracing::debug!(error = %e, "keep-alive failed");
                    }
                }
            }
        });
        Client { inner, keepalive }
    }

    /// Runs one key-value operation to a definite answer: a write on the
    /// client's session (opened if need be, retried with the same seq), or a
    /// linearizable read. The methods below are this with the answer read.
    pub async fn execute(&self, op: KvOp) -> Result<KvOutput, Error> {
        let mut g = self.inner.lock().await;
        if op.is_read() {
            g.read(op).await
        } else {
            g.write(op).await
        }
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: &str, value: &str) -> Result<(), Error> {
        self.execute(KvOp::Put { key: key.into(), value: value.into() }).await.map(|_| ())
    }

    /// Sets `key` to `value` attached to lease `lease` (the key is deleted
    /// when the lease ends); returns the write's revision.
    pub async fn put_lease(&self, key: &str, value: &str, lease: u64) -> Result<u64, Error> {
        match self.execute(KvOp::PutLease { key: key.into(), value: value.into(), lease }).await? {
            KvOutput::Written { revision } => Ok(revision),
            other => Err(refusal(other)),
        }
    }

    /// Reads `key` with its revisions (linearizable); `None` if it is absent.
    pub async fn get_kv(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        match self.execute(KvOp::Get { key: key.into() }).await? {
            KvOutput::Value { kv, .. } => Ok(kv),
            other => Err(unexpected(other)),
        }
    }

    /// One page of the keys in `[from, to)` (`to: None`: to the end), at
    /// most `limit` keys (0: the store's page size).
    pub async fn range(&self, from: &str, to: Option<&str>, limit: u64) -> Result<Page, Error> {
        page(self.execute(KvOp::Range { from: from.into(), to: to.map(String::from), limit }).await?)
    }

    /// One page of the keys starting with `prefix`, from `from` (a previous
    /// page's `next`) on.
    pub async fn prefix(&self, prefix: &str, from: Option<&str>, limit: u64) -> Result<Page, Error> {
        let op = KvOp::Prefix { prefix: prefix.into(), from: from.map(String::from), limit };
        page(self.execute(op).await?)
    }

    /// Every key starting with `prefix`, page by page, and the revision of
    /// the last page. The pages are each linearizable but together are not
    /// one snapshot: a write between pages shows in the later ones.
    pub async fn prefix_all(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), Error> {
        let mut all = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let p = self.prefix(prefix, from.as_deref(), 0).await?;
            all.extend(p.kvs);
            match p.next {
                Some(n) => from = Some(n),
                None => return Ok((all, p.revision)),
            }
        }
    }

    /// How many keys lie in `[from, to)`, and the revision counted at.
    pub async fn count(&self, from: &str, to: Option<&str>) -> Result<(u64, u64), Error> {
        match self.execute(KvOp::Count { from: from.into(), to: to.map(String::from) }).await? {
            KvOutput::Count { count, revision } => Ok((count, revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a transaction (exactly once, through the session).
    pub async fn txn(&self, txn: Txn) -> Result<TxnOutcome, Error> {
        match self.execute(KvOp::Txn(txn)).await? {
            KvOutput::Txn { succeeded, results, revision } => Ok(TxnOutcome { succeeded, results, revision }),
            other => Err(refusal(other)),
        }
    }

    /// Grants a lease of `ttl` (milliseconds of cluster time). A retried
    /// grant is the same write on the session: it makes no second lease.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<Lease, Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        lease(self.execute(KvOp::LeaseGrant { ttl: ms }).await?)
    }

    /// Restarts lease `id`'s TTL.
    pub async fn lease_keepalive(&self, id: u64) -> Result<Lease, Error> {
        lease(self.execute(KvOp::LeaseKeepAlive { id }).await?)
    }

    /// Ends lease `id` now; returns how many keys were deleted with it.
    pub async fn lease_revoke(&self, id: u64) -> Result<u64, Error> {
        match self.execute(KvOp::LeaseRevoke { id }).await? {
            KvOutput::LeaseRevoked { deleted, .. } => Ok(deleted),
            other => Err(refusal(other)),
        }
    }

    /// Appends `value` to the value of `key` (creating it).
    pub async fn append(&self, key: &str, value: &str) -> Result<(), Error> {
        self.execute(KvOp::Append { key: key.into(), value: value.into() }).await.map(|_| ())
    }

    /// Removes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        match self.execute(KvOp::Delete { key: key.into() }).await? {
            KvOutput::Deleted { existed, .. } => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    /// Sets `key` to `value` if its value is `expect` (`None`: if it is absent).
    pub async fn cas(&self, key: &str, expect: Option<&str>, value: &str) -> Result<CasResult, Error> {
        let op = KvOp::Cas { key: key.into(), expect: expect.map(str::to_string), value: value.into() };
        match self.execute(op).await? {
            KvOutput::Cas { swapped, current, .. } => Ok(CasResult { swapped, current }),
            other => Err(unexpected(other)),
        }
    }

    /// Reads `key` (linearizable); `None` if it is absent.
    pub async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        match self.execute(KvOp::Get { key: key.into() }).await? {
            KvOutput::Value { kv, .. } => Ok(kv.map(|kv| kv.value)),
            other => Err(unexpected(other)),
        }
    }

    /// Runs an operator command (membership, transfer; see
    /// [`AdminOp`]) at the leader, following hints. `member list` is answered
    /// by whichever node is reached. A `snapshot_save` returns its first
    /// piece only: use [`Client::snapshot_save`].
    pub async fn admin(&self, op: AdminOp) -> Result<Success, Error> {
        let mut g = self.inner.lock().await;
        let deadline = Instant::now() + g.opts.timeout;
        match g.call(Op::Admin(op), deadline, false).await? {
            (Ok(s), _) => Ok(s),
            (Err(f), _) => Err(rejected(f)),
        }
    }

    /// The members and configuration, as the node reached sees them (ask
    /// the leader, whose address it hints, for match and lag).
    pub async fn members(&self) -> Result<MembersView, Error> {
        match self.admin(AdminOp::MemberList).await? {
            Success::Members(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces the address list by the members' URLs (from `member list`),
    /// so the client follows a cluster whose membership changed.
    pub async fn refresh_addresses(&self) -> Result<Vec<String>, Error> {
        let view = self.members().await?;
        let urls: Vec<String> = view
            .members
            .iter()
            .filter(|m| !m.url.is_empty())
            .map(|m| m.url.trim_end_matches('/').to_string())
            .collect();
        if !urls.is_empty() {
            let mut g = self.inner.lock().await;
            g.addrs = urls.clone();
            g.idx = 0;
        }
        Ok(urls)
    }

    /// A consistent snapshot of the cluster at a committed index, streamed
    /// from the leader: `(index, term, bytes)`, the bytes checked against the
    /// CRC-32C the leader sent. At most `max_bytes` are accepted.
    pub async fn snapshot_save(&self, max_bytes: u64) -> Result<(u64, u64, Vec<u8>), Error> {
        let mut g = self.inner.lock().await;
        let deadline = Instant::now() + g.opts.timeout;
        let first = match g.call(Op::Admin(AdminOp::SnapshotSave), deadline, false).await? {
            (Ok(s), _) => s,
            (Err(f), _) => return Err(rejected(f)),
        };
        let Success::SnapshotChunk { index, term, size, offset: 0, crc32c, data } = first else {
            return Err(unexpected(first));
        };
        let broken = |m: String| Error::Rejected { code: ErrorCode::BadRequest, message: Some(m) };
        if size > max_bytes {
            g.conn = None;
            return Err(broken(format!("the snapshot is {size} bytes, more than the {max_bytes} accepted")));
        }
        let mut bytes = data;
        let id = g.next_id - 1;
        let max = g.opts.max_frame;
        while (bytes.len() as u64) < size {
            let Some(ws) = g.conn.as_mut() else { return Err(broken("connection lost".into())) };
            let until = tokio::time::Instant::from_std(deadline);
            let frame = match tokio::time::timeout_at(until, ws.next()).await {
                Ok(Some(Ok(WsMessage::Binary(b)))) => b,
                Ok(Some(Ok(_))) => continue,
                Ok(_) => return Err(broken("the connection closed during the snapshot".into())),
                Err(_) => {
                    return Err(Error::Timeout { outcome_unknown: false, last: "snapshot stream stalled".into() })
                }
            };
            let r = decode_response(&frame, max).map_err(|e| broken(format!("unreadable reply: {e}")))?;
            if r.id != Some(id) {
                continue;
            }
            match r.result {
                Ok(Success::SnapshotChunk { offset, data, index: i, .. })
                    if offset == bytes.len() as u64 && i == index =>
                {
                    if bytes.len() as u64 + data.len() as u64 > size {
                        return Err(broken("the snapshot stream ran past its size".into()));
                    }
                    bytes.extend_from_slice(&data);
                }
                Ok(other) => return Err(unexpected(other)),
                Err(f) => return Err(rejected(f)),
            }
        }
        if raft_core::codec::crc32c(&bytes) != crc32c {
            return Err(broken("the snapshot's checksum does not match: damaged in transit".into()));
        }
        Ok((index, term, bytes))
    }

    /// The current session, if one is open.
    pub async fn session(&self) -> Option<u64> {
        self.inner.lock().await.session
    }

    /// The node this client talks to now.
    pub async fn target(&self) -> String {
        self.inner.lock().await.target.clone()
    }
}

/// A reply of the wrong kind for the request: only a node that speaks
/// another version of the protocol would send one.
fn unexpected(reply: impl fmt::Debug) -> Error {
    Error::Rejected { code: ErrorCode::BadRequest, message: Some(format!("unexpected reply {reply:?}")) }
}

/// A store's refusal as an error (or an unexpected reply).
fn refusal(out: KvOutput) -> Error {
    match out {
        KvOutput::LeaseNotFound { id, .. } => Error::LeaseNotFound { id },
        KvOutput::Refused { reason, .. } => Error::Refused { reason },
        other => unexpected(other),
    }
}

fn page(out: KvOutput) -> Result<Page, Error> {
    match out {
        KvOutput::Range { kvs, next, revision } => Ok(Page { kvs, next, revision }),
        other => Err(unexpected(other)),
    }
}

fn lease(out: KvOutput) -> Result<Lease, Error> {
    match out {
        KvOutput::Lease { id, ttl, .. } => Ok(Lease { id, ttl: Duration::from_millis(ttl) }),
        other => Err(refusal(other)),
    }
}

/// The state machine's answer in a successful reply.
fn output(s: Success) -> Result<KvOutput, Error> {
    match s {
        Success::Output(out) => Ok(out),
        other => Err(unexpected(other)),
    }
}

fn rejected(f: Failure) -> Error {
    Error::Rejected { code: f.error, message: f.message }
}

impl Inner {
    /// Registers a session if there is none.
    async fn ensure_session(&mut self, deadline: Instant) -> Result<(u64, Secret), Error> {
        if let Some(s) = self.session {
            return Ok((s, self.secret));
        }
        // A retried register may open a second session; the unused one expires.
        match self.call(Op::Register, deadline, false).await? {
            (Ok(Success::Registered { session, secret }), _) => {
                self.session = Some(session);
                self.secret = secret;
                self.next_seq = 1;
                Ok((session, secret))
            }
            (Ok(other), _) => Err(unexpected(other)),
            (Err(f), _) => Err(rejected(f)),
        }
    }

    /// Runs a write to a definite outcome, retrying with the same seq.
    async fn write(&mut self, op: KvOp) -> Result<KvOutput, Error> {
        let deadline = Instant::now() + self.opts.timeout;
        loop {
            let (session, secret) = self.ensure_session(deadline).await?;
            let seq = self.next_seq;
            // One write at a time: the lowest seq awaited is this one.
            let write = Op::Write { session, secret, seq, ack: seq, op: op.clone() };
            let (result, maybe_applied) = self.call(write, deadline, true).await?;
            match result {
                Ok(s) => {
                    self.next_seq += 1;
                    return output(s);
                }
                Err(f) if f.error == ErrorCode::SessionExpired => {
                    self.session = None;
                    if maybe_applied {
                        return Err(Error::OutcomeUnknown);
                    }
                    // This write never reached the log: safe to redo on a new session.
                }
                Err(f) => {
                    self.next_seq += 1;
                    return Err(rejected(f));
                }
            }
        }
    }

    /// Runs a linearizable read (no session needed).
    async fn read(&mut self, op: KvOp) -> Result<KvOutput, Error> {
        let deadline = Instant::now() + self.opts.timeout;
        match self.call(Op::Read { op }, deadline, false).await? {
            (Ok(s), _) => output(s),
            (Err(f), _) => Err(rejected(f)),
        }
    }

    async fn keep_alive(&mut self) -> Result<(), Error> {
        let Some(session) = self.session else { return Ok(()) };
        let deadline = Instant::now() + self.opts.timeout;
        match self.call(Op::KeepAlive { session, secret: self.secret, ack: self.next_seq }, deadline, true).await? {
            (Ok(_), _) => Ok(()),
            (Err(f), _) if f.error == ErrorCode::SessionExpired => {
                self.session = None;
                Ok(())
            }
            (Err(f), _) => Err(rejected(f)),
        }
    }

    /// Sends `op` until an answer that is not about where or when to send it:
    /// follows `not_leader` hints, waits out `busy`, retries `unknown_outcome`
    /// and lost connections. Returns the answer and whether an earlier attempt
    /// may have taken effect.
    async fn call(
        &mut self,
        op: Op,
        deadline: Instant,
        is_write: bool,
    ) -> Result<(Result<Success, Failure>, bool), Error> {
        if self.addrs.is_empty() {
            return Err(Error::NoAddresses);
        }
        let mut maybe_applied = false;
        let mut last = String::from("no attempt made");
        let mut misses = 0u32;
        // Consecutive attempts that could not even connect.
        let mut unreached = 0usize;
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout { outcome_unknown: is_write && maybe_applied, last });
            }
            let attempt_deadline = deadline.min(now + self.opts.attempt_timeout);
            let attempt = self.attempt(&op, attempt_deadline).await;
            // A request that left may have reached the log.
            let sent = matches!(attempt, Attempt::Lost(_));
            unreached = if matches!(attempt, Attempt::Unreached(_)) { unreached + 1 } else { 0 };
            match attempt {
                Attempt::Reply(Ok(s)) => {
                    self.last_used = Instant::now();
                    return Ok((Ok(s), maybe_applied));
                }
                Attempt::Reply(Err(f)) => match f.error {
                    ErrorCode::NotLeader | ErrorCode::UnknownOutcome => {
                        if f.error == ErrorCode::UnknownOutcome {
                            maybe_applied = true;
                        }
                        last = format!("{} from {}", f.error.as_str(), self.target);
                        match f.leader {
                            Some(l) if l.addr != self.target => self.switch_to(l.addr),
                            _ => {
                                misses += 1;
                                self.next_node(misses).await;
                            }
                        }
                    }
                    ErrorCode::Busy => {
                        last = format!("busy at {}", self.target);
                        misses += 1;
                        tokio::time::sleep(backoff(misses)).await;
                    }
                    _ => {
                        self.last_used = Instant::now();
                        return Ok((Err(f), maybe_applied));
                    }
                },
                Attempt::Lost(why) | Attempt::Unreached(why) => {
                    maybe_applied |= sent;
                    last = why;
                    self.conn = None;
                    // Three full rounds of refused connections over at least a
                    // second: nobody is there (a crashed leader alone does not
                    // look like this, the others still answer).
                    let gave_time = started.elapsed() >= Duration::from_secs(1).min(self.opts.timeout / 2);
                    if unreached >= 3 * self.addrs.len() && gave_time && !maybe_applied {
                        return Err(Error::Unreachable { last });
                    }
                    misses += 1;
                    self.next_node(misses).await;
                }
            }
        }
    }

    /// Talks to a hinted leader next; a leader not in the list (a member
    /// added since) joins it, so the client keeps up with the membership.
    fn switch_to(&mut self, addr: String) {
        match self.addrs.iter().position(|a| *a == addr) {
            Some(i) => self.idx = i,
            None if self.addrs.len() < MAX_ADDRS => self.addrs.push(addr.clone()),
            None => {}
        }
        self.target = addr;
        self.conn = None;
    }

    /// Moves on to the next node of the list, pausing once per round so an
    /// election has time to finish.
    async fn next_node(&mut self, misses: u32) {
        self.idx = (self.idx + 1) % self.addrs.len();
        self.target = self.addrs[self.idx].clone();
        self.conn = None;
        if misses as usize % self.addrs.len() == 0 {
            tokio::time::sleep(backoff(misses / self.addrs.len() as u32)).await;
        }
    }

    async fn attempt(&mut self, op: &Op, deadline: Instant) -> Attempt {
        let until = tokio::time::Instant::from_std(deadline);
        if self.conn.is_none() {
            let url = format!("{}/client", self.target);
            let cfg = WebSocketConfig::default()
                .max_message_size(Some(self.opts.max_frame))
                .read_buffer_size(crate::protocol::READ_BUFFER);
            let request = match upgrade_request(&url, self.opts.token.as_deref()) {
                Ok(r) => r,
                Err(e) => return Attempt::Unreached(e),
            };
            let tls = self.opts.tls.clone();
            let connect = async {
                let stream = crate::tls::dial(&url, tls.as_ref()).await.map_err(ConnectError::Dial)?;
                tokio_tungstenite::client_async_with_config(request, stream, Some(cfg)).await.map_err(ConnectError::Ws)
            };
            match tokio::time::timeout_at(until, connect).await {
                Ok(Ok((ws, _))) => self.conn = Some(ws),
                Ok(Err(ConnectError::Dial(e))) => return Attempt::Unreached(e),
                // A refused token is an answer: every node would say the same.
                Ok(Err(ConnectError::Ws(tokio_tungstenite::tungstenite::Error::Http(r))))
                    if r.status().as_u16() == 401 =>
                {
                    let why = if self.opts.token.is_some() { "refused the token" } else { "needs a token" };
                    return Attempt::Reply(Err(crate::protocol::Failure::forbidden(format!("{url} {why} (401)"))));
                }
                Ok(Err(ConnectError::Ws(e))) => return Attempt::Unreached(format!("cannot connect to {url}: {e}")),
                Err(_) => return Attempt::Unreached(format!("connecting to {url} timed out")),
            }
        }
        let Some(ws) = self.conn.as_mut() else { return Attempt::Unreached("no connection".into()) };
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_request(&Request { id, op: op.clone() });
        let max = self.opts.max_frame;
        let exchange = async {
            ws.send(WsMessage::binary(frame)).await.map_err(|e| format!("send failed: {e}"))?;
            loop {
                match ws.next().await {
                    None => return Err("connection closed".to_string()),
                    Some(Err(e)) => return Err(format!("connection error: {e}")),
                    Some(Ok(WsMessage::Binary(b))) => {
                        let r = decode_response(&b, max).map_err(|e| format!("unreadable reply: {e}"))?;
                        // Replies to earlier, abandoned attempts may still arrive.
                        if r.id == Some(id) {
                            return Ok(r.result);
                        }
                        if r.id.is_none() {
                            return Ok(r.result);
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) => return Err("connection closed by the node".to_string()),
                    Some(Ok(_)) => {}
                }
            }
        };
        match tokio::time::timeout_at(until, exchange).await {
            Ok(Ok(result)) => Attempt::Reply(result),
            Ok(Err(e)) => Attempt::Lost(format!("{e} ({})", self.target)),
            Err(_) => Attempt::Lost(format!("no reply from {} in time", self.target)),
        }
    }
}

/// Most addresses a client learns from hints (a node cannot grow the list
/// without bound).
const MAX_ADDRS: usize = 64;

/// The WebSocket upgrade request for `url`, with the bearer token if any.
fn upgrade_request(
    url: &str,
    token: Option<&str>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().map_err(|e| format!("{url}: {e}"))?;
    if let Some(t) = token {
        let v = format!("Bearer {t}").parse().map_err(|_| "the token is not a valid header value".to_string())?;
        req.headers_mut().insert("authorization", v);
    }
    Ok(req)
}

fn backoff(n: u32) -> Duration {
    Duration::from_millis((10u64 << n.min(5)).min(250))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_refused_once() {
        let e = Error::Rejected { code: ErrorCode::Refused, message: Some("would lose the quorum".into()) };
        assert_eq!(e.to_string(), "refused: would lose the quorum");
        let e = Error::Rejected { code: ErrorCode::Refused, message: None };
        assert_eq!(e.to_string(), "refused");
        let e = Error::Rejected { code: ErrorCode::Forbidden, message: Some("needs admin".into()) };
        assert_eq!(e.to_string(), "refused: forbidden: needs admin");
        assert_eq!(Error::Refused { reason: "too many keys".into() }.to_string(), "refused: too many keys");
    }
}
