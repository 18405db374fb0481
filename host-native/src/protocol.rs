//! The public client protocol (DESIGN.md §6) and its mapping onto raft-core.
//!
//! A client opens a WebSocket at `/client` on any node. Text frames carry one
//! JSON object each; binary frames carry the same [`Request`] and [`Response`]
//! types as postcard behind a 4-byte magic (`RKVC`) and a version byte. `id` is
//! the client's own request number, echoed in the reply; replies may come in
//! any order.
//!
//! ```text
//! {"id":1,"op":"register"}                                   -> {"id":1,"ok":true,"session":17,"secret":"<43 chars>"}
//! {"id":2,"op":"put","session":17,"secret":S,"seq":1,"ack":1,"key":"k","value":"v"}   -> {"id":2,"ok":true,"revision":18}
//! {"id":3,"op":"append","session":17,"secret":S,"seq":2,"ack":2,"key":"k","value":"w"}-> {"id":3,"ok":true,"revision":19}
//! {"id":4,"op":"cas","session":17,"secret":S,"seq":3,"ack":3,"key":"k","expect":"vw","value":"x"}
//!                                           -> {"id":4,"ok":true,"swapped":true,"revision":20}
//!                                           (or "swapped":false,"current":<value or null>)
//! {"id":5,"op":"delete","session":17,"secret":S,"seq":4,"ack":4,"key":"k"}  -> {"id":5,"ok":true,"existed":true,"revision":21}
//! {"id":6,"op":"get","key":"k"}                -> {"id":6,"ok":true,"value":null,"kv":null,"revision":21}
//! {"id":7,"op":"keepalive","session":17,"secret":S,"ack":5}             -> {"id":7,"ok":true}
//! {"id":8,"op":"prefix","prefix":"app/","limit":2}
//!     -> {"id":8,"ok":true,"kvs":[{"key":"app/a","value":"1","create_revision":9,"mod_revision":9,
//!         "version":1,"lease":0}, ...],"next":"app/c","revision":21}
//! {"id":9,"op":"range","from":"a","to":"b"}  {"id":10,"op":"count","prefix":"app/"} -> "count":3
//! {"id":11,"op":"lease_grant","session":17,"secret":S,"seq":5,"ack":5,"ttl_ms":10000}
//!                                           -> {"id":11,"ok":true,"lease":22,"ttl_ms":10000,"revision":22}
//! {"id":12,"op":"put","session":17,"secret":S,"seq":6,"ack":6,"key":"lock","value":"me","lease":22}
//! {"id":13,"op":"lease_keep_alive","session":17,"secret":S,"seq":7,"ack":7,"lease":22}   (and "lease_revoke")
//! {"id":14,"op":"txn","session":17,"secret":S,"seq":8,"ack":8,
//!     "compare":[{"key":"k","version":0}],            (also "value", "mod_revision", "exists"; "cmp": "=" "!=" "<" ">")
//!     "success":[{"op":"put","key":"k","value":"v"}], "failure":[{"op":"get","key":"k"}]}
//!     -> {"id":14,"ok":true,"succeeded":true,"results":[{"put":true}],"revision":25}
//! errors: {"id":N,"ok":false,"error":"not_leader","leader":{"id":2,"addr":"ws://127.0.0.1:7002"}}
//!         {"id":N,"ok":false,"error":"lease_not_found","lease":22,"revision":30}
//! ```
//!
//! Input is checked strictly: unknown ops and fields, missing fields, wrong
//! types, integers of 2^53 or more, oversize keys and values all get
//! `bad_request` with a message, and the connection stays open.
//!
//! # One vocabulary
//!
//! The protocol defines no operations of its own. A request is raft-core's
//! [`ClientRequest`] with its command typed as a [`KvOp`] instead of bytes
//! ([`Op`]); a reply carries raft-core's [`KvOutput`]. The JSON form is a
//! flat object — the op's name from [`KvOp::name`], the session fields, the
//! op's fields — written and read by hand here, because its tag sits inside
//! the object (which postcard cannot encode) and its checks are stricter
//! than serde's (`expect` is required, integers stop at 2^53).
//!
//! # Binary frames
//!
//! postcard numbers enum variants by position, so every enum below documents
//! its variants' numbers; new variants go at the end, and `tests/golden.rs`
//! pins the bytes of every request and reply. Version 2 is the first with
//! [`Op`] wrapping [`KvOp`] (version 1 had one variant per operation), and
//! with session secrets.
//!
//! # Session secrets
//!
//! `register` answers with the session's id and a secret: 32 bytes the node
//! drew from the OS's random source (base64url in JSON). Every write and
//! keep-alive on the session must carry it; the log keeps only its SHA-256
//! ([`secret_hash`]), and a request with another secret is answered
//! `session_expired` and changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use base64::Engine as _;
use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::kv::watch::{Event, EventKind, Selector};
use raft_core::kv::{prefix_end, Cmp, Compare, KeyValue, KvOp, KvOutput, Txn, TxnOp, TxnResult};
use sha2::{Digest, Sha256};

use raft_core::{ClientError, ClientReply, ClientRequest, NodeId, Owner, SecretHash};

/// A session's secret: what `register` returns and every write presents.
pub type Secret = [u8; 32];

/// The hash of a secret, as the log keeps it.
pub fn secret_hash(secret: &Secret) -> SecretHash {
    Sha256::digest(secret).into()
}

/// A secret in JSON: base64url without padding (43 characters).
pub fn secret_to_text(secret: &Secret) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
}

/// A secret from its JSON text.
pub fn secret_from_text(text: &str) -> Option<Secret> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Magic number of binary client frames.
pub const CLIENT_MAGIC: [u8; 4] = *b"RKVC";
/// Version of the binary client frame format.
pub const CLIENT_VERSION: u8 = 2;
/// Integers in the protocol stay below this, so JavaScript reads them exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// WebSocket read buffer for client connections, at both ends. Requests and
/// most replies are small; tungstenite zero-fills the free part of its read
/// buffer before every read, so its default of 128 KiB would cost more per
/// request than the request itself. (Bigger frames are read into a buffer of
/// their own size.)
pub const READ_BUFFER: usize = 8 * 1024;

/// A client request: the client's id for it and the operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the reply.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// What a request asks: raft-core's [`ClientRequest`], variant for variant
/// and in the same order, with the state machine's command as a [`KvOp`].
///
/// Writes name their session, their sequence number within it, and `ack`,
/// the lowest sequence number whose reply the client still awaits.
///
/// Binary frames number the variants `Register` 0, `Write` 1, `KeepAlive` 2,
/// `Read` 3, `Admin` 4, `Watch` 5, `CancelWatch` 6.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Open a session.
    Register,
    /// A write on a session: put, append, cas or delete.
    Write {
        /// The session.
        session: u64,
        /// The secret `register` returned for it.
        secret: Secret,
        /// This write's number within the session (from 1).
        seq: u64,
        /// Lowest seq whose reply the client still awaits.
        ack: u64,
        /// The operation; [`KvOp::Get`] is not a write.
        op: KvOp,
    },
    /// Keep an idle session alive.
    KeepAlive {
        /// The session.
        session: u64,
        /// The secret `register` returned for it.
        secret: Secret,
        /// Lowest seq whose reply the client still awaits.
        ack: u64,
    },
    /// A linearizable read.
    Read {
        /// The operation: [`KvOp::Get`].
        op: KvOp,
    },
    /// An operator's command: membership, leadership, backups.
    Admin(AdminOp),
    /// Subscribe to the changes of a key or a prefix (answered
    /// [`Success::Watching`], then pushed [`Success::WatchEvents`] and
    /// friends on the same connection).
    Watch(WatchSpec),
    /// End a watch of this connection (answered [`Success::Unwatched`]; no
    /// frame of the watch follows the answer).
    CancelWatch {
        /// The id [`Success::Watching`] gave it.
        watch_id: u64,
    },
}

/// What a watch follows and how (the `watch` op).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSpec {
    /// One key or every key under a prefix.
    pub selector: Selector,
    /// The first revision wanted; `None`: the changes after the node's
    /// applied revision ("now"). A start beyond it waits; one below the
    /// node's window is answered `compacted`.
    pub start_rev: Option<u64>,
    /// Events carry the key as it was before.
    pub prev_kv: bool,
    /// Send [`Success::WatchProgress`] every `watch_progress_ms`.
    pub progress_notify: bool,
    /// Cancel the watch (reason `no_leader`) when the node has known no
    /// leader for an election timeout.
    pub no_leader_cancel: bool,
}

/// Why the node ended a watch. Binary frames number the variants
/// `Compacted` 0, `Slow` 1, `NoLeader` 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    /// Events it had not received left the node's window (it started too
    /// far back, fell too far behind, or a snapshot install jumped past
    /// them); `compact_revision` is the oldest revision it can resume from.
    Compacted,
    /// Its connection did not take its frames fast enough: more than
    /// `watch_queue_bytes` were waiting. Resuming from the last complete
    /// revision + 1 loses nothing (while the window still holds it).
    Slow,
    /// The node has known no leader for an election timeout (asked for
    /// with `no_leader_cancel`).
    NoLeader,
}

impl CancelReason {
    /// Every reason, in wire order.
    pub const ALL: [CancelReason; 3] = [CancelReason::Compacted, CancelReason::Slow, CancelReason::NoLeader];

    /// The reason's name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Compacted => "compacted",
            CancelReason::Slow => "slow",
            CancelReason::NoLeader => "no_leader",
        }
    }

    /// The reason of a name.
    pub fn parse(s: &str) -> Option<CancelReason> {
        CancelReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Operator commands (see the README's "Operating a cluster"). Binary frames
/// number the variants `MemberList` 0, `MemberAdd` 1, `MemberPromote` 2,
/// `MemberRemove` 3, `MemberReplace` 4, `TransferLeader` 5, `SnapshotSave` 6.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    /// The members, their roles and replication state (any node answers;
    /// match and lag come from the leader).
    MemberList,
    /// Add node `id`, reached at `url`, as a learner; without `learner` the
    /// caller promotes it once it caught up (`raftkv member add` does).
    MemberAdd {
        /// The new node.
        id: NodeId,
        /// Its base URL (`ws://` or `wss://`).
        url: String,
        /// Stay a learner (no promotion asked).
        learner: bool,
    },
    /// Make learner `id` a voter, bound to its incarnation; refused while it
    /// lags by more than the bound unless `force`.
    MemberPromote {
        /// The learner.
        id: NodeId,
        /// Promote however far behind it is.
        force: bool,
    },
    /// Remove `id`, whatever its role (the leader too: it steps down once
    /// the removal commits).
    MemberRemove {
        /// The node.
        id: NodeId,
    },
    /// Replace voter `old` by the caught-up learner `new` in one joint
    /// change; `old == new` rebinds a voter that came back with a new
    /// incarnation (its directory lost data).
    MemberReplace {
        /// The voter to remove.
        old: NodeId,
        /// The learner to make a voter.
        new: NodeId,
    },
    /// Hand leadership to `id` (or to the most caught-up voter).
    TransferLeader {
        /// The target, if one is wanted.
        id: Option<NodeId>,
    },
    /// A consistent snapshot at the leader's applied (committed) index,
    /// streamed back as [`Success::SnapshotChunk`]s.
    SnapshotSave,
}

impl AdminOp {
    /// The op's name in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            AdminOp::MemberList => "member_list",
            AdminOp::MemberAdd { .. } => "member_add",
            AdminOp::MemberPromote { .. } => "member_promote",
            AdminOp::MemberRemove { .. } => "member_remove",
            AdminOp::MemberReplace { .. } => "member_replace",
            AdminOp::TransferLeader { .. } => "transfer_leader",
            AdminOp::SnapshotSave => "snapshot_save",
        }
    }

    fn validate(&self) -> Result<(), String> {
        let ids: Vec<NodeId> = match self {
            AdminOp::MemberAdd { id, url, .. } => {
                check_url(url)?;
                vec![*id]
            }
            AdminOp::MemberPromote { id, .. } | AdminOp::MemberRemove { id } => vec![*id],
            AdminOp::MemberReplace { old, new } => vec![*old, *new],
            AdminOp::TransferLeader { id } => id.iter().copied().collect(),
            AdminOp::MemberList | AdminOp::SnapshotSave => vec![],
        };
        if ids.iter().any(|&i| i == 0 || i > MAX_SAFE_INTEGER) {
            return Err("node ids must be from 1 to 2^53-1".into());
        }
        Ok(())
    }
}

/// Longest node URL accepted.
pub const MAX_URL_LEN: usize = 256;

/// Checks a node URL: `ws://` or `wss://`, printable, bounded.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN || !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(format!("a node URL starts with ws:// or wss:// and is at most {MAX_URL_LEN} bytes"));
    }
    if url.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("a node URL is printable ASCII without spaces".into());
    }
    Ok(())
}

/// Keys that start with this are the cluster's own (the replicated address
/// map, [`addr_key`]); clients may neither read nor write them.
pub const RESERVED_PREFIX: &str = "\u{0}raftkv/";

/// Whether `op` names a reserved key (a transaction: any of its keys; a
/// range: its start). A range that starts below them and ends above is
/// allowed: the store skips them in range, prefix and count reads
/// (`KvLimits::hidden`).
fn touches_reserved(op: &KvOp) -> bool {
    let reserved = |k: &str| k.starts_with(RESERVED_PREFIX);
    match op {
        KvOp::Txn(t) => {
            t.compare.iter().any(|c| reserved(c.key())) || t.success.iter().chain(&t.failure).any(|o| reserved(o.key()))
        }
        other => reserved(other.key()),
    }
}

/// The reserved key under which the log keeps node `id`'s URL, so every node
/// (and every node that joins later, through the snapshot) knows how to reach
/// members added after bootstrap.
pub fn addr_key(id: NodeId) -> String {
    format!("{RESERVED_PREFIX}addr/{id}")
}

/// The node id of an address-map key.
pub fn addr_key_id(key: &str) -> Option<NodeId> {
    key.strip_prefix(RESERVED_PREFIX)?.strip_prefix("addr/")?.parse().ok()
}

/// One member as `member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node id.
    pub id: NodeId,
    /// Its URL (empty if no node knows it).
    pub url: String,
    /// Votes (in either half of a joint configuration).
    pub voter: bool,
    /// The incarnation the configuration binds it to (0: unbound).
    pub incarnation: u64,
    /// Leader's view: highest index known replicated on it.
    pub match_index: u64,
    /// Leader's view: entries it lacks.
    pub lag: u64,
    /// Leader's view: heard from within the last election timeout.
    pub reachable: bool,
    /// It came back with another incarnation than the one it is bound to
    /// (its directory was wiped or its journal cut): it does not vote until
    /// `member replace ID ID` rebinds it.
    pub lost_data: bool,
}

/// A configuration and its members, as `member list` and every member
/// command answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    /// The node that answered.
    pub node: NodeId,
    /// The leader it knows (0: none).
    pub leader: NodeId,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit_index: u64,
    /// Voters (of the incoming half while joint).
    pub voters: Vec<NodeId>,
    /// Voters of the outgoing half (non-empty only while joint).
    pub outgoing: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
    /// Whether a joint change is in progress.
    pub joint: bool,
    /// Every member.
    pub members: Vec<MemberInfo>,
}

impl Op {
    /// The name of the request in JSON's `"op"` field.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::KeepAlive { .. } => "keepalive",
            Op::Write { op, .. } | Op::Read { op } => op.name(),
            Op::Admin(a) => a.name(),
            Op::Watch(_) => "watch",
            Op::CancelWatch { .. } => "cancel_watch",
        }
    }

    /// Checks integer ranges, size limits and that writes write and reads
    /// read (the same for JSON and binary, before the request reaches the
    /// node task).
    pub fn validate(&self) -> Result<(), String> {
        let ints: &[(&str, u64)] = match self {
            Op::Write { session, seq, ack, .. } => &[("session", *session), ("seq", *seq), ("ack", *ack)],
            Op::KeepAlive { session, ack, .. } => &[("session", *session), ("ack", *ack)],
            Op::Watch(WatchSpec { start_rev: Some(r), .. }) => &[("start_rev", *r)],
            Op::CancelWatch { watch_id } => &[("watch_id", *watch_id)],
            Op::Register | Op::Read { .. } | Op::Admin(_) | Op::Watch(_) => &[],
        };
        for (name, v) in ints {
            if *v > MAX_SAFE_INTEGER {
                return Err(format!("\"{name}\" must be below 2^53"));
            }
        }
        match self {
            Op::Write { op, .. } if op.is_read() => Err(format!("\"{}\" is a read, not a write", op.name())),
            Op::Read { op } if !op.is_read() => Err(format!("\"{}\" is a write, not a read", op.name())),
            // The size limits are the state machine's own.
            Op::Write { op, .. } | Op::Read { op } if touches_reserved(op) => {
                Err("keys starting with \"\\u0000raftkv/\" are reserved for the cluster".into())
            }
            Op::Write { op, .. } | Op::Read { op } => op.validate().map_err(str::to_string),
            Op::Admin(a) => a.validate(),
            Op::Watch(w) => {
                let key = match &w.selector {
                    Selector::Key(k) | Selector::Prefix(k) => k,
                };
                if key.len() > raft_core::kv::MAX_KEY_LEN {
                    return Err(format!("key longer than {} bytes", raft_core::kv::MAX_KEY_LEN));
                }
                if matches!(&w.selector, Selector::Key(k) | Selector::Prefix(k) if k.starts_with(RESERVED_PREFIX)) {
                    return Err("keys starting with \"\\u0000raftkv/\" are reserved for the cluster".into());
                }
                Ok(())
            }
            Op::Register | Op::KeepAlive { .. } | Op::CancelWatch { .. } => Ok(()),
        }
    }

    /// The raft-core request carrying this operation: the same fields, the
    /// command encoded as the log stores it, secrets as their hashes. A
    /// `register` is for `owner`, with a new secret whose hash is `fresh`
    /// (drawn by the caller, who hands the secret to the client). Operator
    /// commands and watches are no client requests of the core's: they
    /// come back as `Err`, for the host to carry out.
    pub fn into_client_request(self, owner: Owner, fresh: SecretHash) -> Result<ClientRequest, Box<Op>> {
        Ok(match self {
            op @ (Op::Admin(_) | Op::Watch(_) | Op::CancelWatch { .. }) => return Err(Box::new(op)),
            Op::Register => ClientRequest::Register { owner, secret_hash: fresh },
            Op::Write { session, secret, seq, ack, op } => ClientRequest::Write {
                session,
                secret_hash: secret_hash(&secret),
                seq,
                ack,
                command: op.encode().into(),
            },
            Op::KeepAlive { session, secret, ack } => {
                ClientRequest::KeepAlive { session, secret_hash: secret_hash(&secret), ack }
            }
            Op::Read { op } => ClientRequest::Read { query: op.encode() },
        })
    }
}

/// A reply. `id` is `None` only when the request was too broken to carry one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: Option<u64>,
    /// The outcome.
    pub result: Result<Success, Failure>,
}

/// A successful outcome. Binary frames number the variants `Registered` 0,
/// `KeptAlive` 1, `Output` 2, `Members` 3, `Transferred` 4, `SnapshotChunk`
/// 5, `Watching` 6, `Unwatched` 7, `WatchEvents` 8, `WatchProgress` 9,
/// `WatchCanceled` 10.
///
/// The last three are *pushed*: the node sends them on its own, as replies
/// without an id (`Response { id: None, .. }`; in JSON, objects with a
/// `"push"` field and no `"id"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Success {
    /// `register`: the new session.
    Registered {
        /// Its id.
        session: u64,
        /// Its secret, for every write and keep-alive on it.
        secret: Secret,
    },
    /// `keepalive`.
    KeptAlive,
    /// A write or a read: the state machine's answer (never
    /// [`KvOutput::Invalid`], which [`outcome`] turns into `bad_request`).
    Output(KvOutput),
    /// A member command or `member_list`: the configuration (after the
    /// change committed, for a change).
    Members(MembersView),
    /// `transfer_leader`: the node that leads now.
    Transferred {
        /// The new leader.
        leader: NodeId,
    },
    /// `snapshot_save`: one piece of the snapshot file; the pieces of one
    /// snapshot share the request's id and come in order.
    SnapshotChunk {
        /// The snapshot's last index.
        index: u64,
        /// Its term.
        term: u64,
        /// The whole file's size in bytes.
        size: u64,
        /// Where this piece goes.
        offset: u64,
        /// CRC-32C of the whole file, to check once it is assembled.
        crc32c: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `watch`: the watch is on.
    Watching {
        /// Its id on this connection (what pushed frames and `cancel_watch` name).
        watch_id: u64,
        /// The node's applied revision when it started (a watch from "now"
        /// gets the changes after it).
        revision: u64,
    },
    /// `cancel_watch`: the watch is over.
    Unwatched {
        /// Its id.
        watch_id: u64,
    },
    /// Pushed: every matching event of one revision, in order. Each
    /// revision comes once, complete, and after the node applied it.
    WatchEvents {
        /// The watch.
        watch_id: u64,
        /// The revision.
        revision: u64,
        /// Its events (`prev` only if the watch asked for it).
        events: Vec<Event>,
    },
    /// Pushed (with `progress_notify`): the watch has received every event
    /// up to `revision`, and the node has applied that far.
    WatchProgress {
        /// The watch.
        watch_id: u64,
        /// The confirmed revision: resuming from it + 1 loses nothing.
        revision: u64,
    },
    /// Pushed: the node ended the watch; no frame of it follows.
    WatchCanceled {
        /// The watch.
        watch_id: u64,
        /// Why.
        reason: CancelReason,
        /// For `compacted`: the oldest revision the node still has.
        compact_revision: Option<u64>,
    },
}

impl Success {
    /// Whether the node sends this on its own (no request's reply).
    pub fn is_push(&self) -> bool {
        matches!(self, Success::WatchEvents { .. } | Success::WatchProgress { .. } | Success::WatchCanceled { .. })
    }
}

/// A failed outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub error: ErrorCode,
    /// For `not_leader` and `unknown_outcome`: the leader, if known.
    pub leader: Option<LeaderHint>,
    /// For `bad_request` (and sometimes others): why.
    pub message: Option<String>,
}

/// Where the leader is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    /// Its node id.
    pub id: NodeId,
    /// Its base URL (`ws://host:port`; the client path is `/client`).
    pub addr: String,
}

/// The protocol's error codes: [`ClientError`]'s kinds, without their data.
///
/// The discriminants are the numbers binary frames carry (serde numbers the
/// variants by position; a test checks the two agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum ErrorCode {
    /// Not the leader; the command was not accepted.
    NotLeader = 0,
    /// A limit is full; the command was not accepted.
    Busy = 1,
    /// The session is gone; an earlier attempt of this write may or may not have applied.
    SessionExpired = 2,
    /// `seq` is below the session's ack.
    StaleSeq = 3,
    /// Malformed or oversize request.
    BadRequest = 4,
    /// The write may have applied or may still apply: retry with the same session and seq.
    UnknownOutcome = 5,
    /// The connection's token does not allow this request (its role is too low).
    Forbidden = 6,
    /// An operator command was refused; "message" says why (a change in
    /// progress, a learner too far behind, it would lose the quorum...).
    Refused = 7,
}

impl ErrorCode {
    /// Every code, in discriminant order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::NotLeader,
        ErrorCode::Busy,
        ErrorCode::SessionExpired,
        ErrorCode::StaleSeq,
        ErrorCode::BadRequest,
        ErrorCode::UnknownOutcome,
        ErrorCode::Forbidden,
        ErrorCode::Refused,
    ];

    /// The code's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Busy => "busy",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::StaleSeq => "stale_seq",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOutcome => "unknown_outcome",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Refused => "refused",
        }
    }

    /// The code of a name.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl Failure {
    /// A `bad_request` with a message.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure { error: ErrorCode::BadRequest, leader: None, message: Some(message.into()) }
    }

    /// A `refused` with a message.
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure { error: ErrorCode::Refused, leader: None, message: Some(message.into()) }
    }

    /// A `not_leader` pointing at `leader`.
    pub fn not_leader(leader: Option<LeaderHint>) -> Failure {
        Failure { error: ErrorCode::NotLeader, leader, message: None }
    }

    /// A `forbidden` with a message.
    pub fn forbidden(message: impl Into<String>) -> Failure {
        Failure { error: ErrorCode::Forbidden, leader: None, message: Some(message.into()) }
    }

    /// Maps a raft-core error; `addr_of` turns a node id into its URL.
    pub fn from_error(e: ClientError, addr_of: impl Fn(NodeId) -> Option<String>) -> Failure {
        let hint = |h: Option<NodeId>| h.and_then(|id| addr_of(id).map(|addr| LeaderHint { id, addr }));
        let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::BadRequest);
        match e {
            ClientError::NotLeader { leader_hint } | ClientError::UnknownOutcome { leader_hint } => {
                Failure { error: code, leader: hint(leader_hint), message: None }
            }
            ClientError::BadRequest(m) => Failure::bad_request(m),
            _ => Failure { error: code, leader: None, message: None },
        }
    }
}

/// Reads a raft-core reply; `addr_of` turns a node id into its URL for
/// leader hints. The state machine answers each command with the output of
/// that command, so the reply alone says how to read it.
pub fn outcome(reply: ClientReply, addr_of: impl Fn(NodeId) -> Option<String>) -> Result<Success, Failure> {
    match reply {
        ClientReply::Rejected(e) => Err(Failure::from_error(e, addr_of)),
        // The secret is the connection's to fill in: it drew it.
        ClientReply::Registered { session } => Ok(Success::Registered { session, secret: [0; 32] }),
        ClientReply::KeptAlive => Ok(Success::KeptAlive),
        ClientReply::Written { output } | ClientReply::Read { output } => match KvOutput::decode(&output) {
            Ok(KvOutput::Invalid) => Err(Failure::bad_request("the state machine refused the command")),
            Ok(out) => Ok(Success::Output(out)),
            Err(_) => Err(Failure::bad_request("unreadable output")),
        },
    }
}

// ----------------------------------------------------------------------
// JSON
// ----------------------------------------------------------------------

/// A request that could not be read: the id if one was found, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// The request's id, if it had a valid one.
    pub id: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl BadRequest {
    /// The reply to send.
    pub fn response(self) -> Response {
        Response { id: self.id, result: Err(Failure::bad_request(self.message)) }
    }
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
    op: &'a str,
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.obj.get(name).ok_or_else(|| format!("op \"{}\" needs the field \"{name}\"", self.op))
    }
    fn int(&self, name: &str) -> Result<u64, String> {
        match self.get(name)?.as_u64() {
            Some(v) if v <= MAX_SAFE_INTEGER => Ok(v),
            _ => Err(format!("\"{name}\" must be an integer from 0 to 2^53-1")),
        }
    }
    fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(format!("\"{name}\" must be a string")),
        }
    }
    fn secret(&self, name: &str) -> Result<Secret, String> {
        match self.get(name)? {
            Value::String(s) => secret_from_text(s)
                .ok_or_else(|| format!("\"{name}\" must be the 43-character secret that register returned")),
            _ => Err(format!("\"{name}\" must be a string")),
        }
    }
    fn string_or_null(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name)? {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            _ => Err(format!("\"{name}\" must be a string or null")),
        }
    }
    fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("\"{name}\" must be a string or null")),
        }
    }
    fn opt_int(&self, name: &str) -> Result<Option<u64>, String> {
        if self.obj.get(name).is_none_or(Value::is_null) {
            return Ok(None);
        }
        self.int(name).map(Some)
    }
    fn opt_bool(&self, name: &str) -> Result<bool, String> {
        match self.obj.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("\"{name}\" must be true or false")),
        }
    }
    fn admin(&self) -> Result<AdminOp, String> {
        Ok(match self.op {
            "member_list" => AdminOp::MemberList,
            "member_add" => AdminOp::MemberAdd {
                id: self.int("node")?,
                url: self.string("url")?,
                learner: self.opt_bool("learner")?,
            },
            "member_promote" => AdminOp::MemberPromote { id: self.int("node")?, force: self.opt_bool("force")? },
            "member_remove" => AdminOp::MemberRemove { id: self.int("node")? },
            "member_replace" => AdminOp::MemberReplace { old: self.int("old")?, new: self.int("new")? },
            "transfer_leader" => AdminOp::TransferLeader { id: self.opt_int("node")? },
            "snapshot_save" => AdminOp::SnapshotSave,
            other => return Err(format!("unknown op {other:?}")),
        })
    }
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        for k in self.obj.keys() {
            if k != "id" && k != "op" && !allowed.contains(&k.as_str()) {
                return Err(format!("unknown field \"{k}\" for op \"{}\"", self.op));
            }
        }
        Ok(())
    }

    /// The session fields of a write, then the operation named `name`.
    fn write(&self, name: &str) -> Result<Op, String> {
        let (session, seq, ack) = (self.int("session")?, self.int("seq")?, self.int("ack")?);
        let secret = self.secret("secret")?;
        let op = match name {
            "put" | "put_lease" => {
                let (key, value) = (self.string("key")?, self.string("value")?);
                let lease = if name == "put_lease" { Some(self.int("lease")?) } else { self.opt_int("lease")? };
                match lease {
                    Some(lease) if lease != 0 => KvOp::PutLease { key, value, lease },
                    _ => KvOp::Put { key, value },
                }
            }
            "append" => KvOp::Append { key: self.string("key")?, value: self.string("value")? },
            "cas" => KvOp::Cas {
                key: self.string("key")?,
                expect: self.string_or_null("expect")?,
                value: self.string("value")?,
            },
            "delete" => KvOp::Delete { key: self.string("key")? },
            "txn" => KvOp::Txn(Txn {
                compare: self.list("compare", compare_from_json)?,
                success: self.list("success", txn_op_from_json)?,
                failure: self.list("failure", txn_op_from_json)?,
            }),
            "lease_grant" => KvOp::LeaseGrant { ttl: self.int("ttl_ms")? },
            "lease_keep_alive" => KvOp::LeaseKeepAlive { id: self.int("lease")? },
            "lease_revoke" => KvOp::LeaseRevoke { id: self.int("lease")? },
            other => return Err(format!("unknown op {other:?}")),
        };
        Ok(Op::Write { session, secret, seq, ack, op })
    }

    /// A read: get, range, prefix or count.
    fn read(&self, name: &str) -> Result<Op, String> {
        let limit = || Ok::<u64, String>(self.opt_int("limit")?.unwrap_or(0));
        let op = match name {
            "get" => KvOp::Get { key: self.string("key")? },
            "range" => KvOp::Range { from: self.string("from")?, to: self.opt_string("to")?, limit: limit()? },
            "prefix" => {
                KvOp::Prefix { prefix: self.string("prefix")?, from: self.opt_string("from")?, limit: limit()? }
            }
            "count" => match self.opt_string("prefix")? {
                Some(p) if !self.obj.contains_key("from") && !self.obj.contains_key("to") => {
                    KvOp::Count { to: prefix_end(&p), from: p }
                }
                Some(_) => return Err("\"count\" takes a prefix or a range (from, to), not both".into()),
                None => KvOp::Count { from: self.opt_string("from")?.unwrap_or_default(), to: self.opt_string("to")? },
            },
            other => return Err(format!("unknown op {other:?}")),
        };
        Ok(Op::Read { op })
    }

    /// A watch: `key` or `prefix` (exactly one), and its options.
    fn watch(&self) -> Result<WatchSpec, String> {
        let selector = match (self.opt_string("key")?, self.opt_string("prefix")?) {
            (Some(k), None) => Selector::Key(k),
            (None, Some(p)) => Selector::Prefix(p),
            _ => return Err("\"watch\" takes exactly one of \"key\" and \"prefix\"".into()),
        };
        Ok(WatchSpec {
            selector,
            // 0 means "now" too: no revision 0 exists.
            start_rev: self.opt_int("start_rev")?.filter(|&r| r != 0),
            prev_kv: self.opt_bool("prev_kv")?,
            progress_notify: self.opt_bool("progress_notify")?,
            no_leader_cancel: self.opt_bool("no_leader_cancel")?,
        })
    }

    /// An optional list field (absent: empty), each item read by `item`.
    fn list<T>(&self, name: &str, item: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(item).collect(),
            Some(_) => Err(format!("\"{name}\" must be a list")),
        }
    }
}

/// A transaction written as JSON: `{"compare":[...],"success":[...],
/// "failure":[...]}` with items as in a `txn` request (what `raftkv txn`
/// reads from its standard input).
pub fn txn_from_json(text: &str) -> Result<Txn, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = value else { return Err("a transaction must be a JSON object".into()) };
    let f = Fields { obj: &obj, op: "txn" };
    for k in obj.keys() {
        if !["compare", "success", "failure"].contains(&k.as_str()) {
            return Err(format!("unknown field \"{k}\" in a transaction"));
        }
    }
    let txn = Txn {
        compare: f.list("compare", compare_from_json)?,
        success: f.list("success", txn_op_from_json)?,
        failure: f.list("failure", txn_op_from_json)?,
    };
    txn.validate().map_err(str::to_string)?;
    Ok(txn)
}

/// The fields of a nested object (a comparison or a transaction's op).
fn nested<'a>(v: &'a Value, what: &'a str) -> Result<Fields<'a>, String> {
    match v {
        Value::Object(obj) => Ok(Fields { obj, op: what }),
        _ => Err(format!("each item of a transaction's {what} list must be an object")),
    }
}

fn cmp_from_json(f: &Fields<'_>) -> Result<Cmp, String> {
    match f.obj.get("cmp") {
        None => Ok(Cmp::Equal),
        Some(Value::String(s)) => match s.as_str() {
            "=" | "==" => Ok(Cmp::Equal),
            "!=" => Ok(Cmp::NotEqual),
            "<" => Ok(Cmp::Less),
            ">" => Ok(Cmp::Greater),
            other => Err(format!("unknown comparison {other:?} (use =, !=, < or >)")),
        },
        Some(_) => Err("\"cmp\" must be a string".into()),
    }
}

/// `{"key":"k","value":"v"}`, `{"key":"k","version":2,"cmp":">"}`,
/// `{"key":"k","mod_revision":7}`, `{"key":"k","exists":false}`.
fn compare_from_json(v: &Value) -> Result<Compare, String> {
    let f = nested(v, "compare")?;
    let key = f.string("key")?;
    let targets = ["value", "version", "mod_revision", "exists"];
    let named: Vec<&str> = targets.iter().copied().filter(|t| f.obj.contains_key(*t)).collect();
    let [target] = named.as_slice() else {
        return Err("a comparison names exactly one of value, version, mod_revision, exists".into());
    };
    f.only(&["key", "cmp", target])?;
    Ok(match *target {
        "value" => Compare::Value { key, cmp: cmp_from_json(&f)?, value: f.string("value")? },
        "version" => Compare::Version { key, cmp: cmp_from_json(&f)?, version: f.int("version")? },
        "mod_revision" => Compare::ModRevision { key, cmp: cmp_from_json(&f)?, revision: f.int("mod_revision")? },
        _ => match (f.obj.get("exists"), f.obj.contains_key("cmp")) {
            (Some(Value::Bool(exists)), false) => Compare::Exists { key, exists: *exists },
            (Some(Value::Bool(_)), true) => return Err("\"exists\" takes no \"cmp\"".into()),
            _ => return Err("\"exists\" must be true or false".into()),
        },
    })
}

/// `{"op":"put","key":"k","value":"v","lease":0}`, `{"op":"delete","key":"k"}`,
/// `{"op":"get","key":"k"}`.
fn txn_op_from_json(v: &Value) -> Result<TxnOp, String> {
    let f = nested(v, "operation")?;
    let op = match f.obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err("each transaction operation needs an \"op\": put, delete or get".into()),
    };
    let key = f.string("key")?;
    Ok(match op {
        "put" => {
            f.only(&["key", "value", "lease"])?;
            TxnOp::Put { key, value: f.string("value")?, lease: f.opt_int("lease")?.unwrap_or(0) }
        }
        "delete" => {
            f.only(&["key"])?;
            TxnOp::Delete { key }
        }
        "get" => {
            f.only(&["key"])?;
            TxnOp::Get { key }
        }
        other => return Err(format!("unknown transaction operation {other:?}")),
    })
}

/// The fields each JSON op takes besides `id` and `op`; `None`: no such op.
fn json_fields(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "register" => &[],
        "keepalive" => &["session", "secret", "ack"],
        "get" => &["key"],
        "range" => &["from", "to", "limit"],
        "prefix" => &["prefix", "from", "limit"],
        "count" => &["from", "to", "prefix"],
        "put" | "put_lease" => &["session", "secret", "seq", "ack", "key", "value", "lease"],
        "append" => &["session", "secret", "seq", "ack", "key", "value"],
        "cas" => &["session", "secret", "seq", "ack", "key", "expect", "value"],
        "delete" => &["session", "secret", "seq", "ack", "key"],
        "member_list" | "snapshot_save" => &[],
        "member_add" => &["node", "url", "learner"],
        "member_promote" => &["node", "force"],
        "member_remove" => &["node"],
        "member_replace" => &["old", "new"],
        "transfer_leader" => &["node"],
        "txn" => &["session", "secret", "seq", "ack", "compare", "success", "failure"],
        "lease_grant" => &["session", "secret", "seq", "ack", "ttl_ms"],
        "lease_keep_alive" | "lease_revoke" => &["session", "secret", "seq", "ack", "lease"],
        "watch" => &["key", "prefix", "start_rev", "prev_kv", "progress_notify", "no_leader_cancel"],
        "cancel_watch" => &["watch_id"],
        _ => return None,
    })
}

/// Parses one JSON text frame.
pub fn parse_json_request(text: &str) -> Result<Request, BadRequest> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| BadRequest { id: None, message: format!("malformed JSON: {e}") })?;
    let Value::Object(obj) = value else {
        return Err(BadRequest { id: None, message: "a request must be a JSON object".into() });
    };
    let id = match obj.get("id") {
        None => return Err(BadRequest { id: None, message: "missing \"id\"".into() }),
        Some(v) => match v.as_u64() {
            Some(id) if id <= MAX_SAFE_INTEGER => id,
            _ => return Err(BadRequest { id: None, message: "\"id\" must be an integer from 0 to 2^53-1".into() }),
        },
    };
    let fail = |message: String| BadRequest { id: Some(id), message };
    let name = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(fail("\"op\" must be a string".into())),
        None => return Err(fail("missing \"op\"".into())),
    };
    let f = Fields { obj: &obj, op: name };
    let parsed = (|| -> Result<Op, String> {
        let allowed = json_fields(name).ok_or_else(|| format!("unknown op {name:?}"))?;
        // Unknown fields first: a misspelt field reads better as that than as
        // the field it was meant to be missing.
        f.only(allowed)?;
        Ok(match name {
            "register" => Op::Register,
            "keepalive" => {
                Op::KeepAlive { session: f.int("session")?, secret: f.secret("secret")?, ack: f.int("ack")? }
            }
            "get" | "range" | "prefix" | "count" => f.read(name)?,
            "watch" => Op::Watch(f.watch()?),
            "cancel_watch" => Op::CancelWatch { watch_id: f.int("watch_id")? },
            n if n.starts_with("member_") || n == "transfer_leader" || n == "snapshot_save" => Op::Admin(f.admin()?),
            write => f.write(write)?,
        })
    })()
    .map_err(fail)?;
    parsed.validate().map_err(fail)?;
    Ok(Request { id, op: parsed })
}

/// Adds the fields of `op` to `obj` (the inverse of the parsing above).
fn insert_kv_fields(op: &KvOp, obj: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        obj.insert(k.into(), v);
    };
    match op {
        KvOp::Put { key, value } | KvOp::Append { key, value } => {
            put("key", json!(key));
            put("value", json!(value));
        }
        KvOp::PutLease { key, value, lease } => {
            put("key", json!(key));
            put("value", json!(value));
            put("lease", json!(lease));
        }
        KvOp::Cas { key, expect, value } => {
            put("key", json!(key));
            put("expect", json!(expect));
            put("value", json!(value));
        }
        KvOp::Get { key } | KvOp::Delete { key } => put("key", json!(key)),
        KvOp::Range { from, to, limit } => {
            put("from", json!(from));
            put("to", json!(to));
            put("limit", json!(limit));
        }
        KvOp::Prefix { prefix, from, limit } => {
            put("prefix", json!(prefix));
            put("from", json!(from));
            put("limit", json!(limit));
        }
        KvOp::Count { from, to } => {
            put("from", json!(from));
            put("to", json!(to));
        }
        KvOp::Txn(t) => {
            put("compare", Value::Array(t.compare.iter().map(compare_to_json).collect()));
            put("success", Value::Array(t.success.iter().map(txn_op_to_json).collect()));
            put("failure", Value::Array(t.failure.iter().map(txn_op_to_json).collect()));
        }
        KvOp::LeaseGrant { ttl } => put("ttl_ms", json!(ttl)),
        KvOp::LeaseKeepAlive { id } | KvOp::LeaseRevoke { id } => put("lease", json!(id)),
    }
}

fn compare_to_json(c: &Compare) -> Value {
    match c {
        Compare::Value { key, cmp, value } => json!({"key": key, "cmp": cmp.symbol(), "value": value}),
        Compare::Version { key, cmp, version } => json!({"key": key, "cmp": cmp.symbol(), "version": version}),
        Compare::ModRevision { key, cmp, revision } => {
            json!({"key": key, "cmp": cmp.symbol(), "mod_revision": revision})
        }
        Compare::Exists { key, exists } => json!({"key": key, "exists": exists}),
    }
}

fn txn_op_to_json(o: &TxnOp) -> Value {
    match o {
        TxnOp::Put { key, value, lease } => json!({"op": "put", "key": key, "value": value, "lease": lease}),
        TxnOp::Delete { key } => json!({"op": "delete", "key": key}),
        TxnOp::Get { key } => json!({"op": "get", "key": key}),
    }
}

/// A key with its revisions, as JSON.
pub fn kv_to_json(kv: &KeyValue) -> Value {
    json!({
        "key": kv.key,
        "value": kv.value,
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    })
}

/// Adds the fields of a state machine output to a reply object (`ok` set
/// by the caller; outputs that are refusals set it to false themselves).
fn insert_output_fields(out: &KvOutput, obj: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        obj.insert(k.into(), v);
    };
    match out {
        // (A node never sends `Invalid` as a success; should a binary reply
        // carry one, it has nothing to show.)
        KvOutput::Invalid => {}
        KvOutput::Written { .. } => {}
        KvOutput::Cas { swapped, current, .. } => {
            put("swapped", json!(swapped));
            if !swapped {
                put("current", json!(current));
            }
        }
        KvOutput::Deleted { existed, .. } => put("existed", json!(existed)),
        KvOutput::Value { kv, .. } => {
            put("value", json!(kv.as_ref().map(|kv| &kv.value)));
            put("kv", kv.as_ref().map_or(Value::Null, kv_to_json));
        }
        KvOutput::Range { kvs, next, .. } => {
            put("kvs", Value::Array(kvs.iter().map(kv_to_json).collect()));
            put("next", json!(next));
        }
        KvOutput::Count { count, .. } => put("count", json!(count)),
        KvOutput::Txn { succeeded, results, .. } => {
            put("succeeded", json!(succeeded));
            let results = results
                .iter()
                .map(|r| match r {
                    TxnResult::Put => json!({"put": true}),
                    TxnResult::Deleted { existed } => json!({"deleted": existed}),
                    TxnResult::Value(kv) => json!({"kv": kv.as_ref().map_or(Value::Null, kv_to_json)}),
                })
                .collect();
            put("results", Value::Array(results));
        }
        KvOutput::Lease { id, ttl, .. } => {
            put("lease", json!(id));
            put("ttl_ms", json!(ttl));
        }
        KvOutput::LeaseRevoked { deleted, .. } => put("deleted", json!(deleted)),
        KvOutput::LeaseNotFound { id, .. } => {
            put("ok", Value::Bool(false));
            put("error", json!("lease_not_found"));
            put("lease", json!(id));
        }
        KvOutput::Refused { reason, .. } => {
            put("ok", Value::Bool(false));
            put("error", json!("refused"));
            put("message", json!(reason));
        }
    }
    if let Some(r) = out.revision() {
        put("revision", json!(r));
    }
}

/// One watch event as JSON: `{"type":"put","kv":{...}}`, with `"prev_kv"`
/// when the watch asked for it and the key existed before.
pub fn event_to_json(e: &Event) -> Value {
    let mut obj = Map::new();
    let kind = match e.kind {
        EventKind::Put => "put",
        EventKind::Delete => "delete",
    };
    obj.insert("type".into(), json!(kind));
    obj.insert("kv".into(), kv_to_json(&e.kv));
    if let Some(p) = &e.prev {
        obj.insert("prev_kv".into(), kv_to_json(p));
    }
    Value::Object(obj)
}

/// The JSON object of a pushed frame (see [`Success::is_push`]).
fn push_to_json(s: &Success) -> Option<Value> {
    Some(match s {
        Success::WatchEvents { watch_id, revision, events } => json!({
            "push": "watch_events",
            "watch_id": watch_id,
            "revision": revision,
            "events": events.iter().map(event_to_json).collect::<Vec<_>>(),
        }),
        Success::WatchProgress { watch_id, revision } => {
            json!({"push": "watch_progress", "watch_id": watch_id, "revision": revision})
        }
        Success::WatchCanceled { watch_id, reason, compact_revision } => {
            let mut obj = Map::new();
            obj.insert("push".into(), json!("watch_canceled"));
            obj.insert("watch_id".into(), json!(watch_id));
            obj.insert("reason".into(), json!(reason.as_str()));
            if let Some(c) = compact_revision {
                obj.insert("compact_revision".into(), json!(c));
            }
            Value::Object(obj)
        }
        _ => return None,
    })
}

/// The JSON text of a reply (or of a pushed frame).
pub fn response_to_json(r: &Response) -> String {
    if let Ok(s) = &r.result {
        if let Some(v) = push_to_json(s) {
            return v.to_string();
        }
    }
    let mut obj = Map::new();
    obj.insert("id".into(), r.id.map_or(Value::Null, Value::from));
    match &r.result {
        Ok(s) => {
            obj.insert("ok".into(), Value::Bool(true));
            match s {
                Success::Registered { session, secret } => {
                    obj.insert("session".into(), json!(session));
                    obj.insert("secret".into(), json!(secret_to_text(secret)));
                }
                Success::KeptAlive => {}
                Success::Output(out) => insert_output_fields(out, &mut obj),
                Success::Members(view) => {
                    obj.insert("configuration".into(), serde_json::to_value(view).unwrap_or(Value::Null));
                }
                Success::Transferred { leader } => {
                    obj.insert("leader".into(), json!(leader));
                }
                Success::SnapshotChunk { index, term, size, offset, crc32c, data } => {
                    obj.insert("index".into(), json!(index));
                    obj.insert("term".into(), json!(term));
                    obj.insert("size".into(), json!(size));
                    obj.insert("offset".into(), json!(offset));
                    obj.insert("crc32c".into(), json!(crc32c));
                    let text = base64::engine::general_purpose::STANDARD.encode(data);
                    obj.insert("data".into(), json!(text));
                }
                Success::Watching { watch_id, revision } => {
                    obj.insert("watch_id".into(), json!(watch_id));
                    obj.insert("revision".into(), json!(revision));
                }
                Success::Unwatched { watch_id } => {
                    obj.insert("watch_id".into(), json!(watch_id));
                    obj.insert("canceled".into(), json!(true));
                }
                // Rendered by `push_to_json` above.
                Success::WatchEvents { .. } | Success::WatchProgress { .. } | Success::WatchCanceled { .. } => {}
            }
        }
        Err(f) => {
            obj.insert("ok".into(), Value::Bool(false));
            obj.insert("error".into(), json!(f.error.as_str()));
            if matches!(f.error, ErrorCode::NotLeader | ErrorCode::UnknownOutcome) {
                let leader = f.leader.as_ref().map(|l| json!({"id": l.id, "addr": l.addr}));
                obj.insert("leader".into(), leader.unwrap_or(Value::Null));
            }
            if let Some(m) = &f.message {
                obj.insert("message".into(), json!(m));
            }
        }
    }
    Value::Object(obj).to_string()
}

/// The JSON text of a request (for clients that speak JSON).
pub fn request_to_json(r: &Request) -> String {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(r.id));
    obj.insert("op".into(), json!(r.op.name()));
    match &r.op {
        Op::Register => {}
        Op::Write { session, secret, seq, ack, op } => {
            obj.insert("session".into(), json!(session));
            obj.insert("secret".into(), json!(secret_to_text(secret)));
            obj.insert("seq".into(), json!(seq));
            obj.insert("ack".into(), json!(ack));
            insert_kv_fields(op, &mut obj);
        }
        Op::KeepAlive { session, secret, ack } => {
            obj.insert("session".into(), json!(session));
            obj.insert("secret".into(), json!(secret_to_text(secret)));
            obj.insert("ack".into(), json!(ack));
        }
        Op::Read { op } => insert_kv_fields(op, &mut obj),
        Op::Watch(w) => {
            match &w.selector {
                Selector::Key(k) => obj.insert("key".into(), json!(k)),
                Selector::Prefix(p) => obj.insert("prefix".into(), json!(p)),
            };
            if let Some(r) = w.start_rev {
                obj.insert("start_rev".into(), json!(r));
            }
            for (name, on) in [
                ("prev_kv", w.prev_kv),
                ("progress_notify", w.progress_notify),
                ("no_leader_cancel", w.no_leader_cancel),
            ] {
                if on {
                    obj.insert(name.into(), json!(true));
                }
            }
        }
        Op::CancelWatch { watch_id } => {
            obj.insert("watch_id".into(), json!(watch_id));
        }
        Op::Admin(a) => match a {
            AdminOp::MemberList | AdminOp::SnapshotSave => {}
            AdminOp::MemberAdd { id, url, learner } => {
                obj.insert("node".into(), json!(id));
                obj.insert("url".into(), json!(url));
                obj.insert("learner".into(), json!(learner));
            }
            AdminOp::MemberPromote { id, force } => {
                obj.insert("node".into(), json!(id));
                obj.insert("force".into(), json!(force));
            }
            AdminOp::MemberRemove { id } => {
                obj.insert("node".into(), json!(id));
            }
            AdminOp::MemberReplace { old, new } => {
                obj.insert("old".into(), json!(old));
                obj.insert("new".into(), json!(new));
            }
            AdminOp::TransferLeader { id } => {
                obj.insert("node".into(), json!(id));
            }
        },
    }
    Value::Object(obj).to_string()
}

// ----------------------------------------------------------------------
// Binary (postcard)
// ----------------------------------------------------------------------

/// Encodes a request as a binary frame.
pub fn encode_request(r: &Request) -> Vec<u8> {
    encode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, r)
}

/// Decodes a binary request frame (size limit `max_len`).
pub fn decode_request(bytes: &[u8], max_len: usize) -> Result<Request, BadRequest> {
    let r: Request = decode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, bytes, max_len)
        .map_err(|e| BadRequest { id: None, message: format!("binary frame does not decode: {e}") })?;
    if r.id > MAX_SAFE_INTEGER {
        return Err(BadRequest { id: None, message: "\"id\" must be below 2^53".into() });
    }
    r.op.validate().map_err(|message| BadRequest { id: Some(r.id), message })?;
    Ok(r)
}

/// Encodes a reply as a binary frame.
pub fn encode_response(r: &Response) -> Vec<u8> {
    encode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, r)
}

/// Decodes a binary reply frame.
pub fn decode_response(bytes: &[u8], max_len: usize) -> Result<Response, String> {
    decode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, bytes, max_len).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::kv::MAX_KEY_LEN;

    fn bad(text: &str) -> BadRequest {
        parse_json_request(text).unwrap_err()
    }

    fn put(key: &str, value: &str) -> KvOp {
        KvOp::Put { key: key.into(), value: value.into() }
    }

    #[test]
    fn the_design_examples_parse() {
        let r = parse_json_request(r#"{"id":1,"op":"register"}"#).unwrap();
        assert_eq!(r, Request { id: 1, op: Op::Register });
        let r = parse_json_request(
            r#"{"id":4,"op":"cas","session":17,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":3,"ack":3,"key":"k","expect":null,"value":"x"}"#,
        )
        .unwrap();
        let cas = KvOp::Cas { key: "k".into(), expect: None, value: "x".into() };
        assert_eq!(r.op, Op::Write { session: 17, secret: [4; 32], seq: 3, ack: 3, op: cas });
        let r = parse_json_request(
            r#"{"id":7,"op":"keepalive","session":17,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","ack":5}"#,
        )
        .unwrap();
        assert_eq!(r.op, Op::KeepAlive { session: 17, secret: [4; 32], ack: 5 });
        let write = |op| Op::Write { session: 1, secret: [4; 32], seq: 2, ack: 2, op };
        for op in [
            Op::Register,
            write(put("k", "v")),
            write(KvOp::Append { key: "k".into(), value: "w".into() }),
            write(KvOp::Cas { key: "k".into(), expect: Some("".into()), value: "v".into() }),
            write(KvOp::Delete { key: "k".into() }),
            Op::Read { op: KvOp::Get { key: "k".into() } },
            Op::KeepAlive { session: 1, secret: [4; 32], ack: 2 },
        ] {
            let r = Request { id: 9, op };
            assert_eq!(parse_json_request(&request_to_json(&r)).unwrap(), r);
            assert_eq!(decode_request(&encode_request(&r), 1 << 20).unwrap(), r);
        }
        assert_eq!(
            request_to_json(&Request { id: 2, op: write(put("k", "v")) }),
            r#"{"id":2,"op":"put","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":2,"ack":2,"key":"k","value":"v"}"#
        );
    }

    #[test]
    fn admin_ops_roundtrip_and_are_checked() {
        for a in [
            AdminOp::MemberList,
            AdminOp::MemberAdd { id: 4, url: "ws://127.0.0.1:7004".into(), learner: true },
            AdminOp::MemberPromote { id: 4, force: false },
            AdminOp::MemberRemove { id: 2 },
            AdminOp::MemberReplace { old: 3, new: 4 },
            AdminOp::TransferLeader { id: Some(2) },
            AdminOp::TransferLeader { id: None },
            AdminOp::SnapshotSave,
        ] {
            let r = Request { id: 3, op: Op::Admin(a) };
            assert_eq!(parse_json_request(&request_to_json(&r)).unwrap(), r);
            assert_eq!(decode_request(&encode_request(&r), 1 << 20).unwrap(), r);
        }
        assert_eq!(
            parse_json_request(r#"{"id":1,"op":"transfer_leader"}"#).unwrap().op,
            Op::Admin(AdminOp::TransferLeader { id: None })
        );
        assert!(bad(r#"{"id":1,"op":"member_add","node":4,"url":"http://x"}"#).message.contains("ws://"));
        assert!(bad(r#"{"id":1,"op":"member_remove","node":0}"#).message.contains("node ids"));
        assert!(bad(r#"{"id":1,"op":"member_remove"}"#).message.contains("\"node\""));
        assert!(bad(r#"{"id":1,"op":"member_promote","node":4,"force":1}"#).message.contains("true or false"));
        let reserved = format!(r#"{{"id":1,"op":"get","key":"{}"}}"#, "\\u0000raftkv/addr/1");
        assert!(bad(&reserved).message.contains("reserved"));
        let chunk = Success::SnapshotChunk { index: 9, term: 2, size: 3, offset: 0, crc32c: 7, data: vec![1, 2, 3] };
        let text = response_to_json(&Response { id: Some(1), result: Ok(chunk) });
        assert_eq!(text, r#"{"id":1,"ok":true,"index":9,"term":2,"size":3,"offset":0,"crc32c":7,"data":"AQID"}"#);
    }

    #[test]
    fn range_txn_and_lease_requests_parse_and_round_trip() {
        let r = parse_json_request(r#"{"id":8,"op":"prefix","prefix":"app/","limit":2}"#).unwrap();
        assert_eq!(r.op, Op::Read { op: KvOp::Prefix { prefix: "app/".into(), from: None, limit: 2 } });
        let r = parse_json_request(r#"{"id":10,"op":"count","prefix":"app/"}"#).unwrap();
        assert_eq!(r.op, Op::Read { op: KvOp::Count { from: "app/".into(), to: Some("app0".into()) } });
        let r = parse_json_request(
            r#"{"id":12,"op":"put","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":6,"ack":6,"key":"lock","value":"me","lease":22}"#,
        )
        .unwrap();
        let w = |op| Op::Write { session: 1, secret: [4; 32], seq: 6, ack: 6, op };
        assert_eq!(r.op, w(KvOp::PutLease { key: "lock".into(), value: "me".into(), lease: 22 }));
        let r = parse_json_request(
            r#"{"id":14,"op":"txn","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":6,"ack":6,"compare":[{"key":"k","version":0},{"key":"j","value":"x","cmp":"!="},{"key":"i","exists":true},{"key":"h","mod_revision":4,"cmp":">"}],"success":[{"op":"put","key":"k","value":"v"}],"failure":[{"op":"get","key":"k"},{"op":"delete","key":"j"}]}"#,
        )
        .unwrap();
        let txn = Txn {
            compare: vec![
                Compare::Version { key: "k".into(), cmp: Cmp::Equal, version: 0 },
                Compare::Value { key: "j".into(), cmp: Cmp::NotEqual, value: "x".into() },
                Compare::Exists { key: "i".into(), exists: true },
                Compare::ModRevision { key: "h".into(), cmp: Cmp::Greater, revision: 4 },
            ],
            success: vec![TxnOp::Put { key: "k".into(), value: "v".into(), lease: 0 }],
            failure: vec![TxnOp::Get { key: "k".into() }, TxnOp::Delete { key: "j".into() }],
        };
        assert_eq!(r.op, w(KvOp::Txn(txn.clone())));
        for op in [
            Op::Read { op: KvOp::Range { from: "a".into(), to: Some("b".into()), limit: 3 } },
            Op::Read { op: KvOp::Range { from: "a".into(), to: None, limit: 0 } },
            Op::Read { op: KvOp::Prefix { prefix: "p".into(), from: Some("p/x".into()), limit: 0 } },
            Op::Read { op: KvOp::Count { from: "".into(), to: None } },
            w(KvOp::Txn(txn)),
            w(KvOp::LeaseGrant { ttl: 5000 }),
            w(KvOp::LeaseKeepAlive { id: 3 }),
            w(KvOp::LeaseRevoke { id: 3 }),
            w(KvOp::PutLease { key: "k".into(), value: "v".into(), lease: 3 }),
        ] {
            let r = Request { id: 9, op };
            assert_eq!(parse_json_request(&request_to_json(&r)).unwrap(), r);
            assert_eq!(decode_request(&encode_request(&r), 1 << 20).unwrap(), r);
        }
        assert!(bad(r#"{"id":3,"op":"txn","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":1,"ack":1,"compare":[{"key":"k"}]}"#)
            .message
            .contains("exactly one"));
        assert!(bad(r#"{"id":3,"op":"txn","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":1,"ack":1,"success":[{"op":"frob","key":"k"}]}"#)
            .message
            .contains("unknown transaction operation"));
        assert!(bad(r#"{"id":3,"op":"count","prefix":"a","from":"b"}"#).message.contains("not both"));
        assert!(bad(r#"{"id":3,"op":"range","from":"a","limit":1001}"#).message.contains("limit"));
        assert!(bad(r#"{"id":3,"op":"lease_grant","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":1,"ack":1,"ttl_ms":0}"#).message.contains("TTL"));
        assert_eq!(txn_from_json(r#"{"success":[{"op":"get","key":"k"}]}"#).unwrap().success.len(), 1);
        assert!(txn_from_json(r#"{"succes":[]}"#).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn watch_requests_and_frames_as_designed() {
        let r = parse_json_request(r#"{"id":5,"op":"watch","prefix":"app/","start_rev":12,"prev_kv":true}"#).unwrap();
        let spec = WatchSpec {
            selector: Selector::Prefix("app/".into()),
            start_rev: Some(12),
            prev_kv: true,
            progress_notify: false,
            no_leader_cancel: false,
        };
        assert_eq!(r.op, Op::Watch(spec));
        let now =
            parse_json_request(r#"{"id":5,"op":"watch","key":"k","start_rev":0,"progress_notify":true}"#).unwrap();
        let Op::Watch(w) = &now.op else { panic!() };
        assert_eq!((w.start_rev, w.progress_notify, &w.selector), (None, true, &Selector::Key("k".into())));
        for op in [now.op.clone(), r.op.clone(), Op::CancelWatch { watch_id: 2 }] {
            let r = Request { id: 9, op };
            assert_eq!(parse_json_request(&request_to_json(&r)).unwrap(), r);
            assert_eq!(decode_request(&encode_request(&r), 1 << 20).unwrap(), r);
        }
        assert!(bad(r#"{"id":5,"op":"watch"}"#).message.contains("exactly one"));
        assert!(bad(r#"{"id":5,"op":"watch","key":"a","prefix":"b"}"#).message.contains("exactly one"));
        assert!(bad(r#"{"id":5,"op":"watch","key":"k","start_rev":-1}"#).message.contains("integer"));
        assert!(bad(r#"{"id":5,"op":"cancel_watch"}"#).message.contains("watch_id"));
        let reserved = format!(r#"{{"id":1,"op":"watch","key":"{}"}}"#, "\\u0000raftkv/addr/1");
        assert!(bad(&reserved).message.contains("reserved"));

        let r = |result| response_to_json(&Response { id: Some(5), result: Ok(result) });
        let push = |result| response_to_json(&Response { id: None, result: Ok(result) });
        assert_eq!(
            r(Success::Watching { watch_id: 1, revision: 30 }),
            r#"{"id":5,"ok":true,"watch_id":1,"revision":30}"#
        );
        assert_eq!(r(Success::Unwatched { watch_id: 1 }), r#"{"id":5,"ok":true,"watch_id":1,"canceled":true}"#);
        let kv = |v: &str, rev| KeyValue {
            key: "app/a".into(),
            value: v.into(),
            create_revision: 9,
            mod_revision: rev,
            version: 2,
            lease: 0,
        };
        let put = Event { revision: 31, sub: 0, kind: EventKind::Put, kv: kv("2", 31), prev: Some(kv("1", 9)) };
        let del_kv = KeyValue {
            key: "app/b".into(),
            value: "".into(),
            create_revision: 0,
            mod_revision: 31,
            version: 0,
            lease: 0,
        };
        let del = Event { revision: 31, sub: 1, kind: EventKind::Delete, kv: del_kv, prev: None };
        assert_eq!(
            push(Success::WatchEvents { watch_id: 1, revision: 31, events: vec![put, del] }),
            r#"{"push":"watch_events","watch_id":1,"revision":31,"events":[{"type":"put","kv":{"key":"app/a","value":"2","create_revision":9,"mod_revision":31,"version":2,"lease":0},"prev_kv":{"key":"app/a","value":"1","create_revision":9,"mod_revision":9,"version":2,"lease":0}},{"type":"delete","kv":{"key":"app/b","value":"","create_revision":0,"mod_revision":31,"version":0,"lease":0}}]}"#
        );
        assert_eq!(
            push(Success::WatchProgress { watch_id: 1, revision: 40 }),
            r#"{"push":"watch_progress","watch_id":1,"revision":40}"#
        );
        assert_eq!(
            push(Success::WatchCanceled { watch_id: 1, reason: CancelReason::Compacted, compact_revision: Some(25) }),
            r#"{"push":"watch_canceled","watch_id":1,"reason":"compacted","compact_revision":25}"#
        );
        assert_eq!(
            push(Success::WatchCanceled { watch_id: 1, reason: CancelReason::Slow, compact_revision: None }),
            r#"{"push":"watch_canceled","watch_id":1,"reason":"slow"}"#
        );
        for reason in CancelReason::ALL {
            assert_eq!(CancelReason::parse(reason.as_str()), Some(reason));
        }
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(bad("{nope").message.contains("malformed JSON"));
        assert!(bad("[1]").message.contains("object"));
        assert_eq!(bad(r#"{"op":"get","key":"k"}"#).id, None);
        let b = bad(r#"{"id":3,"op":"frobnicate"}"#);
        assert_eq!((b.id, b.message.contains("unknown op")), (Some(3), true));
        assert!(bad(r#"{"id":3,"op":"put","session":1,"seq":1,"ack":1,"key":"k"}"#).message.contains("\"secret\""));
        let no_value = r#"{"id":3,"op":"put","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":1,"ack":1,"key":"k"}"#;
        assert!(bad(no_value).message.contains("\"value\""));
        let short = r#"{"id":3,"op":"put","session":1,"secret":"BAQE","seq":1,"ack":1,"key":"k","value":"v"}"#;
        assert!(bad(short).message.contains("43-character"));
        assert!(bad(r#"{"id":3,"op":"put","session":"1","seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("integer"));
        assert!(bad(r#"{"id":3,"op":"put","session":1.5,"seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("integer"));
        assert!(bad(r#"{"id":3,"op":"get","key":5}"#).message.contains("string"));
        assert!(bad(r#"{"id":3,"op":"get","key":"k","extra":1}"#).message.contains("unknown field"));
        assert!(bad(r#"{"id":3,"op":"cas","session":1,"secret":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("expect"));
        assert!(bad(r#"{"id":9007199254740992,"op":"register"}"#).message.contains("2^53"));
        let big = format!(r#"{{"id":3,"op":"get","key":"{}"}}"#, "k".repeat(MAX_KEY_LEN + 1));
        assert!(bad(&big).message.contains("key longer"));
        assert!(decode_request(b"RKVC\x02\xff\xff", 100).is_err());
        assert!(decode_request(b"garbage", 100).is_err());
        // A frame of the first binary version is refused by its version byte.
        assert!(decode_request(b"RKVC\x01\x09\x00", 100).unwrap_err().message.contains("version 1"));
    }

    #[test]
    fn binary_writes_write_and_reads_read() {
        let get = KvOp::Get { key: "k".into() };
        let frame = |op| encode_request(&Request { id: 5, op });
        let b =
            decode_request(&frame(Op::Write { session: 1, secret: [0; 32], seq: 1, ack: 1, op: get.clone() }), 1 << 20);
        assert_eq!(b.unwrap_err(), BadRequest { id: Some(5), message: "\"get\" is a read, not a write".into() });
        let b = decode_request(&frame(Op::Read { op: put("k", "v") }), 1 << 20).unwrap_err();
        assert_eq!(b.message, "\"put\" is a write, not a read");
        let b =
            decode_request(&frame(Op::KeepAlive { session: MAX_SAFE_INTEGER + 1, secret: [0; 32], ack: 1 }), 1 << 20);
        assert!(b.unwrap_err().message.contains("2^53"));
        assert!(decode_request(&frame(Op::Read { op: get }), 1 << 20).is_ok());
    }

    #[test]
    fn ops_become_the_cores_requests() {
        let op = put("k", "v");
        let h = secret_hash(&[9; 32]);
        let w = Op::Write { session: 3, secret: [9; 32], seq: 4, ack: 2, op: op.clone() };
        let want = ClientRequest::Write { session: 3, secret_hash: h, seq: 4, ack: 2, command: op.encode().into() };
        assert_eq!(w.into_client_request(0, [0; 32]), Ok(want), "the log gets the hash, never the secret");
        let g = KvOp::Get { key: "k".into() };
        assert_eq!(
            Op::Read { op: g.clone() }.into_client_request(0, [0; 32]),
            Ok(ClientRequest::Read { query: g.encode() })
        );
        assert_eq!(
            Op::Register.into_client_request(5, [6; 32]),
            Ok(ClientRequest::Register { owner: 5, secret_hash: [6; 32] })
        );
        let ka = Op::KeepAlive { session: 3, secret: [9; 32], ack: 5 }.into_client_request(0, [0; 32]);
        assert_eq!(ka, Ok(ClientRequest::KeepAlive { session: 3, secret_hash: h, ack: 5 }));
        assert_eq!(secret_from_text(&secret_to_text(&[9; 32])), Some([9; 32]));
        assert_eq!(secret_from_text("short"), None);
    }

    #[test]
    fn replies_are_read_from_the_output() {
        let none = |_: NodeId| None;
        let out = |o: KvOutput| ClientReply::Written { output: o.encode().into() };
        let w = KvOutput::Written { revision: 3 };
        assert_eq!(outcome(out(w.clone()), none), Ok(Success::Output(w)));
        let v = KvOutput::Value { kv: None, revision: 3 };
        let read = ClientReply::Read { output: v.encode().into() };
        assert_eq!(outcome(read, none), Ok(Success::Output(v)));
        assert_eq!(outcome(ClientReply::KeptAlive, none), Ok(Success::KeptAlive));
        assert_eq!(
            outcome(ClientReply::Registered { session: 9 }, none),
            Ok(Success::Registered { session: 9, secret: [0; 32] })
        );
        assert_eq!(outcome(out(KvOutput::Invalid), none).unwrap_err().error, ErrorCode::BadRequest);
        let garbage = ClientReply::Read { output: vec![0xff, 0xff].into() };
        assert_eq!(outcome(garbage, none).unwrap_err().message.as_deref(), Some("unreadable output"));
        let busy = outcome(ClientReply::Rejected(ClientError::Busy), none).unwrap_err();
        assert_eq!((busy.error, busy.leader, busy.message), (ErrorCode::Busy, None, None));
    }

    #[test]
    fn error_codes_are_their_wire_numbers_and_names() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, i, "ALL lists the codes in discriminant order");
            // serde numbers variants by position; the discriminant must say the same.
            assert_eq!(postcard::to_allocvec(&code).unwrap(), [code as u8]);
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        for e in [
            ClientError::NotLeader { leader_hint: None },
            ClientError::Busy,
            ClientError::SessionExpired,
            ClientError::StaleSeq,
            ClientError::BadRequest("x".into()),
            ClientError::UnknownOutcome { leader_hint: None },
        ] {
            assert!(ErrorCode::parse(e.code()).is_some(), "{e:?} has a protocol code");
        }
    }

    #[test]
    fn replies_render_as_designed() {
        let addr = |id: NodeId| Some(format!("ws://127.0.0.1:700{id}"));
        let r = |id, result| response_to_json(&Response { id: Some(id), result });
        let out = |o| Ok(Success::Output(o));
        assert_eq!(
            r(1, Ok(Success::Registered { session: 17, secret: [0xff; 32] })),
            r#"{"id":1,"ok":true,"session":17,"secret":"__________________________________________8"}"#
        );
        assert_eq!(r(2, out(KvOutput::Written { revision: 18 })), r#"{"id":2,"ok":true,"revision":18}"#);
        assert_eq!(r(7, Ok(Success::KeptAlive)), r#"{"id":7,"ok":true}"#);
        assert_eq!(
            r(4, out(KvOutput::Cas { swapped: true, current: None, revision: 20 })),
            r#"{"id":4,"ok":true,"swapped":true,"revision":20}"#
        );
        assert_eq!(
            r(4, out(KvOutput::Cas { swapped: false, current: None, revision: 20 })),
            r#"{"id":4,"ok":true,"swapped":false,"current":null,"revision":20}"#
        );
        assert_eq!(
            r(5, out(KvOutput::Deleted { existed: true, revision: 21 })),
            r#"{"id":5,"ok":true,"existed":true,"revision":21}"#
        );
        assert_eq!(
            r(6, out(KvOutput::Value { kv: None, revision: 21 })),
            r#"{"id":6,"ok":true,"value":null,"kv":null,"revision":21}"#
        );
        let kv = KeyValue {
            key: "app/a".into(),
            value: "1".into(),
            create_revision: 9,
            mod_revision: 9,
            version: 1,
            lease: 0,
        };
        assert_eq!(
            r(8, out(KvOutput::Range { kvs: vec![kv], next: Some("app/c".into()), revision: 21 })),
            r#"{"id":8,"ok":true,"kvs":[{"key":"app/a","value":"1","create_revision":9,"mod_revision":9,"version":1,"lease":0}],"next":"app/c","revision":21}"#
        );
        assert_eq!(
            r(11, out(KvOutput::Lease { id: 22, ttl: 10_000, revision: 22 })),
            r#"{"id":11,"ok":true,"lease":22,"ttl_ms":10000,"revision":22}"#
        );
        assert_eq!(
            r(14, out(KvOutput::Txn { succeeded: true, results: vec![TxnResult::Put], revision: 25 })),
            r#"{"id":14,"ok":true,"succeeded":true,"results":[{"put":true}],"revision":25}"#
        );
        assert_eq!(
            r(15, out(KvOutput::LeaseNotFound { id: 22, revision: 30 })),
            r#"{"id":15,"ok":false,"error":"lease_not_found","lease":22,"revision":30}"#
        );
        let nl = Failure::from_error(ClientError::NotLeader { leader_hint: Some(2) }, addr);
        assert_eq!(
            r(8, Err(nl)),
            r#"{"id":8,"ok":false,"error":"not_leader","leader":{"id":2,"addr":"ws://127.0.0.1:7002"}}"#
        );
        let nl = Failure::from_error(ClientError::NotLeader { leader_hint: None }, addr);
        assert_eq!(r(8, Err(nl)), r#"{"id":8,"ok":false,"error":"not_leader","leader":null}"#);
        let b = BadRequest { id: None, message: "x".into() }.response();
        assert_eq!(response_to_json(&b), r#"{"id":null,"ok":false,"error":"bad_request","message":"x"}"#);
    }
}
