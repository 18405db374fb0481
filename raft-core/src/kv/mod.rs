//! The shipped state machine: a replicated key-value store with ordered keys,
//! revisions, transactions, leases and a window of recent events for watches.
//!
//! Keys and values are UTF-8 strings, ordered by their bytes. A missing key
//! reads as `None`, distinct from the empty string. `append` to a missing key
//! creates it — and because appending twice changes the value, a command
//! applied twice is visible to the linearizability checker, which is why it
//! exists.
//!
//! **Revisions.** Every log entry's index is a revision: a write's revision is
//! the index of its entry, and a read answers as of the store's revision, the
//! index of the last entry applied (so a read at revision `r` reflects every
//! write with revision `≤ r` and none after). Each key carries its
//! `create_revision` (the write that created it since it last did not exist),
//! `mod_revision` (its last write) and `version` (writes since creation, from
//! 1); all three come back with every read ([`KeyValue`]).
//!
//! **Ranges.** `range`, `prefix` and `count` read keys in order, linearizably
//! like `get` (ReadIndex). A page holds at most `limit` keys (at most
//! [`MAX_PAGE_KEYS`], and stops early past [`MAX_PAGE_BYTES`]) and says where
//! the next page starts. Each page is linearizable on its own and returns its
//! revision; a range read in several pages is **not** one snapshot (the store
//! keeps no old versions): writes between pages show in later pages.
//!
//! **Transactions** ([`Txn`]): comparisons, then one list of operations if all
//! hold and another if not, applied atomically as one log entry (one
//! revision), exactly once through the client's session.
//!
//! **Leases** ([`lease`]): granted with a TTL in cluster time, kept alive,
//! revoked. Keys put with a lease are deleted when it ends. Expiry is decided
//! at apply time, in this order for every entry: the clock advances to the
//! entry's time, sessions expire, leases expire (deleting their keys), then
//! the entry's command runs — so a put on a lease that expired at this very
//! entry gets [`KvOutput::LeaseNotFound`].
//!
//! **Watch events** ([`watch`]): every change is also an event, numbered
//! `(revision, sub)`, kept in a bounded window for the host's watchers.
//!
//! Commands and queries travel inside log entries and read requests as
//! postcard bytes ([`KvOp::encode`]); outputs come back the same way
//! ([`KvOutput::decode`]). [`spec`] is the sequential specification the store
//! implements and the checker checks against.
//!
//! ```
//! use raft_core::kv::{KvOp, KvOutput, KvStore};
//! use raft_core::StateMachine;
//! let mut kv = KvStore::default();
//! let put = KvOp::Put { key: "k".into(), value: "v".into() };
//! kv.advance(1, 0);
//! kv.apply(1, 0, &put.encode());
//! let get = KvOp::Get { key: "k".into() };
//! match KvOutput::decode(&kv.query(&get.encode())).unwrap() {
//!     KvOutput::Value { kv: Some(kv), revision } => {
//!         assert_eq!((kv.value.as_str(), kv.create_revision, kv.version, revision), ("v", 1, 1, 1));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

mod keys;
pub mod lease;
mod op_ref;
mod record;
pub mod spec;
mod store;
mod text;
pub mod watch;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};

pub use spec::{step, Spec};
pub use store::{KvLimits, KvStore};

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Most keys in one page of a range read (and the page size when the
/// request's `limit` is 0).
pub const MAX_PAGE_KEYS: u64 = 1000;
/// A page stops once its keys and values reach this many bytes (it always
/// holds at least one key, so a page is at most this plus one value).
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Most comparisons plus operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;
/// Most bytes of keys and values in one transaction (comparisons included).
pub const MAX_TXN_BYTES: usize = 2 << 20;
/// Largest lease TTL, in milliseconds (about 115 days).
pub const MAX_LEASE_TTL: u64 = 10_000_000_000;

/// One key-value operation. `Get`, `Range`, `Prefix` and `Count` are reads;
/// the others are writes.
///
/// This is the one definition of an operation: the log's commands, the
/// hosts' client protocols and the checker's histories all carry it.
///
/// **Encoding.** postcard numbers the variants by position — `Put` 0,
/// `Append` 1, `Get` 2, `Delete` 3, `Cas` 4, `Range` 5, `Prefix` 6, `Count` 7,
/// `Txn` 8, `PutLease` 9, `LeaseGrant` 10, `LeaseKeepAlive` 11,
/// `LeaseRevoke` 12 — and these bytes are in every journal and snapshot, so
/// new variants go at the end and none is ever reordered (`tests/golden.rs`
/// pins the bytes). Self-describing formats (JSON) name the variant in snake
/// case, as [`KvOp::name`] does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    /// Set `key` to `value` (detaching it from any lease).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append `value` to the current value (creating the key if missing; a
    /// key keeps its lease).
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
    /// Read the current value.
    Get {
        /// The key.
        key: String,
    },
    /// Remove the key.
    Delete {
        /// The key.
        key: String,
    },
    /// Set `key` to `value` if its current value equals `expect` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value required for the swap (`None`: the key must be absent).
        expect: Option<String>,
        /// The new value.
        value: String,
    },
    /// Read the keys in `[from, to)` in order (`to: None`: to the end).
    Range {
        /// First key (inclusive); a continuation passes the previous page's `next`.
        from: String,
        /// End (exclusive); `None`: no end.
        to: Option<String>,
        /// Most keys in the page (0: [`MAX_PAGE_KEYS`]).
        limit: u64,
    },
    /// Read the keys that start with `prefix`, in order.
    Prefix {
        /// The prefix.
        prefix: String,
        /// Continue from this key (a previous page's `next`); `None`: from the start.
        from: Option<String>,
        /// Most keys in the page (0: [`MAX_PAGE_KEYS`]).
        limit: u64,
    },
    /// How many keys lie in `[from, to)`.
    Count {
        /// First key (inclusive).
        from: String,
        /// End (exclusive); `None`: no end.
        to: Option<String>,
    },
    /// A transaction.
    Txn(Txn),
    /// Set `key` to `value`, attached to lease `lease`: the key is deleted
    /// when the lease ends.
    PutLease {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The lease.
        lease: u64,
    },
    /// Grant a lease of `ttl` milliseconds of cluster time; its id is the
    /// entry's index.
    LeaseGrant {
        /// Time to live, in milliseconds (rounded up to whole ticks).
        ttl: u64,
    },
    /// Restart a lease's TTL.
    LeaseKeepAlive {
        /// The lease.
        id: u64,
    },
    /// End a lease now, deleting its keys.
    LeaseRevoke {
        /// The lease.
        id: u64,
    },
}

/// A transaction: if every comparison holds, `success` runs, else `failure`;
/// either way atomically, in one log entry, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Txn {
    /// Conditions on the state before the transaction.
    pub compare: Vec<Compare>,
    /// Run when every comparison holds (an empty `compare` always holds).
    pub success: Vec<TxnOp>,
    /// Run otherwise.
    pub failure: Vec<TxnOp>,
}

/// How a comparison relates the key's field to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// The field is less than the target.
    Less,
    /// The field is greater than the target.
    Greater,
}

impl Cmp {
    /// Whether `field` relates to `target` this way.
    pub fn holds<T: Ord + ?Sized>(self, field: &T, target: &T) -> bool {
        match self {
            Cmp::Equal => field == target,
            Cmp::NotEqual => field != target,
            Cmp::Less => field < target,
            Cmp::Greater => field > target,
        }
    }

    /// The operator's symbol: `=`, `!=`, `<`, `>`.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Equal => "=",
            Cmp::NotEqual => "!=",
            Cmp::Less => "<",
            Cmp::Greater => ">",
        }
    }
}

/// One condition of a transaction, on one key as it is before the
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The key's value against `value`; false whenever the key is absent.
    Value {
        /// The key.
        key: String,
        /// How.
        cmp: Cmp,
        /// The value compared with.
        value: String,
    },
    /// The key's version (0 when absent) against `version`.
    Version {
        /// The key.
        key: String,
        /// How.
        cmp: Cmp,
        /// The version compared with.
        version: u64,
    },
    /// The key's mod_revision (0 when absent) against `revision`.
    ModRevision {
        /// The key.
        key: String,
        /// How.
        cmp: Cmp,
        /// The revision compared with.
        revision: u64,
    },
    /// Whether the key exists.
    Exists {
        /// The key.
        key: String,
        /// Required presence.
        exists: bool,
    },
}

impl Compare {
    /// The key compared.
    pub fn key(&self) -> &str {
        match self {
            Compare::Value { key, .. }
            | Compare::Version { key, .. }
            | Compare::ModRevision { key, .. }
            | Compare::Exists { key, .. } => key,
        }
    }

    /// Whether the comparison holds for the key's current record.
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        match self {
            Compare::Value { cmp, value, .. } => kv.is_some_and(|kv| cmp.holds(kv.value.as_str(), value.as_str())),
            Compare::Version { cmp, version, .. } => cmp.holds(&kv.map_or(0, |kv| kv.version), version),
            Compare::ModRevision { cmp, revision, .. } => cmp.holds(&kv.map_or(0, |kv| kv.mod_revision), revision),
            Compare::Exists { exists, .. } => kv.is_some() == *exists,
        }
    }
}

/// An operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    /// Set a key (`lease` 0: no lease).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The lease to attach it to (0: none).
        lease: u64,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Read a key (as it is at that point of the transaction).
    Get {
        /// The key.
        key: String,
    },
}

impl TxnOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key,
        }
    }
}

/// A key with its value and its history in revisions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Revision of the write that created the key (since it last did not exist).
    pub create_revision: u64,
    /// Revision of the key's last write.
    pub mod_revision: u64,
    /// Writes since creation (1 after the creating write).
    pub version: u64,
    /// The lease the key is attached to (0: none).
    pub lease: u64,
}

impl KeyValue {
    /// What a delete event carries as its key-value: the key, and the
    /// revision of the delete as its `mod_revision`; nothing else.
    pub fn deleted(key: &str, revision: u64) -> KeyValue {
        KeyValue {
            key: String::from(key),
            value: String::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
        }
    }
}

/// The result of one operation in a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnResult {
    /// A put took effect.
    Put,
    /// A delete's result.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// A get's result.
    Value(Option<KeyValue>),
}

/// The result of one operation. Every output carries a `revision`: a
/// write's is the index of its entry; a read's is the store's revision it
/// was answered at.
///
/// **Encoding.** postcard numbers the variants by position — `Written` 0,
/// `Value` 1, `Deleted` 2, `Cas` 3, `Invalid` 4, `Range` 5, `Count` 6, `Txn`
/// 7, `Lease` 8, `LeaseRevoked` 9, `LeaseNotFound` 10, `Refused` 11 — and
/// these bytes are in every session's reply cache (so in snapshots): new
/// variants go at the end and none is ever reordered (`tests/golden.rs` pins
/// the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOutput {
    /// A put, put-with-lease or append took effect.
    Written {
        /// The write's revision.
        revision: u64,
    },
    /// A get's result (`None`: the key is absent).
    Value {
        /// The key, if present.
        kv: Option<KeyValue>,
        /// Revision the read was answered at.
        revision: u64,
    },
    /// A delete's result.
    Deleted {
        /// Whether the key existed.
        existed: bool,
        /// The delete's revision.
        revision: u64,
    },
    /// A compare-and-swap's result. On failure `current` is the value found.
    Cas {
        /// Whether the swap happened.
        swapped: bool,
        /// The value found when the swap failed (`None` on success or if absent).
        current: Option<String>,
        /// The command's revision.
        revision: u64,
    },
    /// The command bytes were not a valid operation (never produced for
    /// commands that passed [`crate::StateMachine::validate_command`]).
    Invalid,
    /// A page of a range or prefix read.
    Range {
        /// The keys, in order.
        kvs: Vec<KeyValue>,
        /// Where the next page starts (pass it as `from`); `None`: this page
        /// ends the range.
        next: Option<String>,
        /// Revision the page was read at.
        revision: u64,
    },
    /// A count's result.
    Count {
        /// Keys in the range.
        count: u64,
        /// Revision it was counted at.
        revision: u64,
    },
    /// A transaction's result.
    Txn {
        /// Whether every comparison held (so `success` ran).
        succeeded: bool,
        /// One result per operation of the branch that ran.
        results: Vec<TxnResult>,
        /// The transaction's revision.
        revision: u64,
    },
    /// A lease granted or kept alive.
    Lease {
        /// Its id.
        id: u64,
        /// Its TTL in milliseconds.
        ttl: u64,
        /// The command's revision.
        revision: u64,
    },
    /// A lease revoked.
    LeaseRevoked {
        /// Keys deleted with it.
        deleted: u64,
        /// The command's revision.
        revision: u64,
    },
    /// The lease named (by a keep-alive, a revoke, or a put or transaction
    /// attaching a key to it) does not exist (never granted, revoked, or
    /// expired); the command had no effect.
    LeaseNotFound {
        /// The lease.
        id: u64,
        /// The command's revision.
        revision: u64,
    },
    /// A limit of the store refused the command (it had no effect).
    Refused {
        /// Which limit.
        reason: String,
        /// The command's revision.
        revision: u64,
    },
}

impl KvOutput {
    /// Postcard encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes an output.
    pub fn decode(bytes: &[u8]) -> Result<KvOutput, DecodeError> {
        codec::decode_body(bytes)
    }

    /// The revision the output carries (`None` for `Invalid`).
    pub fn revision(&self) -> Option<u64> {
        match self {
            KvOutput::Written { revision }
            | KvOutput::Value { revision, .. }
            | KvOutput::Deleted { revision, .. }
            | KvOutput::Cas { revision, .. }
            | KvOutput::Range { revision, .. }
            | KvOutput::Count { revision, .. }
            | KvOutput::Txn { revision, .. }
            | KvOutput::Lease { revision, .. }
            | KvOutput::LeaseRevoked { revision, .. }
            | KvOutput::LeaseNotFound { revision, .. }
            | KvOutput::Refused { revision, .. } => Some(*revision),
            KvOutput::Invalid => None,
        }
    }
}

/// The keys an operation may read or change: `[from, to)` (`to: None`: no
/// end). Lease operations touch no key directly ([`KeySpan::None`]); a
/// transaction lists the keys it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpan<'a> {
    /// No key.
    None,
    /// One key.
    Key(&'a str),
    /// The keys in `[from, to)`.
    Range(&'a str, Option<String>),
    /// The keys a transaction names (sorted, deduplicated).
    Keys(Vec<&'a str>),
}

impl KeySpan<'_> {
    /// Whether `key` lies in the span.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            KeySpan::None => false,
            KeySpan::Key(k) => *k == key,
            KeySpan::Range(from, to) => in_range(key, from, to.as_deref()),
            KeySpan::Keys(ks) => ks.binary_search(&key).is_ok(),
        }
    }
}

/// A key's size limit ([`MAX_KEY_LEN`]), as validation checks it.
pub(crate) fn check_key(key: &str) -> Result<(), &'static str> {
    if key.len() > MAX_KEY_LEN {
        Err("key longer than 1 KiB")
    } else {
        Ok(())
    }
}

/// A value's size limit ([`MAX_VALUE_LEN`]), as validation checks it.
pub(crate) fn check_value(value: &str) -> Result<(), &'static str> {
    if value.len() > MAX_VALUE_LEN {
        Err("value longer than 1 MiB")
    } else {
        Ok(())
    }
}

/// Whether `key` lies in `[from, to)`.
pub fn in_range(key: &str, from: &str, to: Option<&str>) -> bool {
    key >= from && to.is_none_or(|to| key < to)
}

/// The end of the range of keys that start with `prefix`: the smallest
/// string above every such key (`None` when there is none: the empty prefix,
/// or one made only of `char::MAX`). Keys order by their UTF-8 bytes, which
/// is the order of their characters, so incrementing the last character that
/// can be incremented is enough.
///
/// ```
/// use raft_core::kv::prefix_end;
/// assert_eq!(prefix_end("app/").as_deref(), Some("app0"));
/// assert_eq!(prefix_end(""), None);
/// ```
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000; // skip the surrogates: no char lives there
        }
        if let Some(n) = char::from_u32(next) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl KvOp {
    /// The keys the operation may touch.
    pub fn span(&self) -> KeySpan<'_> {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Append { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. }
            | KvOp::PutLease { key, .. } => KeySpan::Key(key),
            KvOp::Range { from, to, .. } | KvOp::Count { from, to } => KeySpan::Range(from, to.clone()),
            KvOp::Prefix { prefix, .. } => KeySpan::Range(prefix, prefix_end(prefix)),
            KvOp::Txn(t) => {
                let mut keys: Vec<&str> = t.compare.iter().map(Compare::key).collect();
                keys.extend(t.success.iter().chain(&t.failure).map(TxnOp::key));
                keys.sort_unstable();
                keys.dedup();
                KeySpan::Keys(keys)
            }
            KvOp::LeaseGrant { .. } | KvOp::LeaseKeepAlive { .. } | KvOp::LeaseRevoke { .. } => KeySpan::None,
        }
    }

    /// The key the operation names first: its key, the start of its range,
    /// its prefix, a transaction's first key; `""` for lease operations.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Append { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. }
            | KvOp::PutLease { key, .. } => key,
            KvOp::Range { from, .. } | KvOp::Count { from, .. } => from,
            KvOp::Prefix { prefix, .. } => prefix,
            KvOp::Txn(t) => t.compare.first().map(Compare::key).or(t.success.first().map(TxnOp::key)).unwrap_or(""),
            KvOp::LeaseGrant { .. } | KvOp::LeaseKeepAlive { .. } | KvOp::LeaseRevoke { .. } => "",
        }
    }

    /// Whether the operation only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. } | KvOp::Range { .. } | KvOp::Prefix { .. } | KvOp::Count { .. })
    }

    /// The operation's name in the client protocols and the CLI (the same
    /// names serde gives the variants in JSON).
    pub fn name(&self) -> &'static str {
        match self {
            KvOp::Put { .. } => "put",
            KvOp::Append { .. } => "append",
            KvOp::Get { .. } => "get",
            KvOp::Delete { .. } => "delete",
            KvOp::Cas { .. } => "cas",
            KvOp::Range { .. } => "range",
            KvOp::Prefix { .. } => "prefix",
            KvOp::Count { .. } => "count",
            KvOp::Txn(_) => "txn",
            KvOp::PutLease { .. } => "put_lease",
            KvOp::LeaseGrant { .. } => "lease_grant",
            KvOp::LeaseKeepAlive { .. } => "lease_keep_alive",
            KvOp::LeaseRevoke { .. } => "lease_revoke",
        }
    }

    /// Checks the size limits.
    pub fn validate(&self) -> Result<(), &'static str> {
        let (key, value) = (check_key, check_value);
        let limit = |l: u64| if l > MAX_PAGE_KEYS { Err("limit above 1000 keys") } else { Ok(()) };
        match self {
            KvOp::Put { key: k, value: v }
            | KvOp::Append { key: k, value: v }
            | KvOp::PutLease { key: k, value: v, .. } => {
                key(k)?;
                value(v)
            }
            KvOp::Get { key: k } | KvOp::Delete { key: k } => key(k),
            KvOp::Cas { key: k, expect, value: v } => {
                key(k)?;
                value(v)?;
                expect.as_deref().map_or(Ok(()), value)
            }
            KvOp::Range { from, to, limit: l } => {
                key(from)?;
                to.as_deref().map_or(Ok(()), key)?;
                limit(*l)
            }
            KvOp::Prefix { prefix, from, limit: l } => {
                key(prefix)?;
                from.as_deref().map_or(Ok(()), key)?;
                limit(*l)
            }
            KvOp::Count { from, to } => {
                key(from)?;
                to.as_deref().map_or(Ok(()), key)
            }
            KvOp::Txn(t) => t.validate(),
            KvOp::LeaseGrant { ttl } => {
                if *ttl == 0 || *ttl > MAX_LEASE_TTL {
                    Err("lease TTL must be from 1 ms to 10^10 ms")
                } else {
                    Ok(())
                }
            }
            KvOp::LeaseKeepAlive { .. } | KvOp::LeaseRevoke { .. } => Ok(()),
        }
    }

    /// Postcard encoding, as carried in log entries and read requests.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes an operation.
    pub fn decode(bytes: &[u8]) -> Result<KvOp, DecodeError> {
        codec::decode_body(bytes)
    }
}

impl Txn {
    /// Checks the transaction's limits: at most [`MAX_TXN_OPS`] comparisons
    /// and operations, [`MAX_TXN_BYTES`] of keys and values, each key and
    /// value within its own limit.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.compare.len() + self.success.len() + self.failure.len() > MAX_TXN_OPS {
            return Err("more than 128 comparisons and operations in a transaction");
        }
        let mut bytes = 0usize;
        let mut key = |k: &str| {
            bytes += k.len();
            if k.len() > MAX_KEY_LEN {
                Err("key longer than 1 KiB")
            } else {
                Ok(())
            }
        };
        for c in &self.compare {
            key(c.key())?;
        }
        for op in self.success.iter().chain(&self.failure) {
            key(op.key())?;
        }
        let values = self.compare.iter().map(|c| match c {
            Compare::Value { value, .. } => value.len(),
            _ => 0,
        });
        let puts = self.success.iter().chain(&self.failure).map(|op| match op {
            TxnOp::Put { value, .. } => value.len(),
            _ => 0,
        });
        let mut total = bytes;
        for v in values.chain(puts) {
            if v > MAX_VALUE_LEN {
                return Err("value longer than 1 MiB");
            }
            total += v;
        }
        if total > MAX_TXN_BYTES {
            return Err("transaction larger than 2 MiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn prefix_end_bounds_exactly_the_prefixed_keys() {
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let keys = ["a", "a/", "a/b", "a/\u{10FFFF}", "a0", "a.", "b", "a/\u{7f}x"];
        let op = KvOp::Prefix { prefix: "a/".into(), from: None, limit: 0 };
        for k in keys {
            let span = op.span();
            assert_eq!(span.contains(k), k.starts_with("a/"), "{k:?}");
        }
    }

    #[test]
    fn limits() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(KvOp::Range { from: long.clone(), to: None, limit: 0 }.validate().is_err());
        assert!(KvOp::Range { from: "a".into(), to: None, limit: MAX_PAGE_KEYS + 1 }.validate().is_err());
        assert!(KvOp::Range { from: "a".into(), to: None, limit: MAX_PAGE_KEYS }.validate().is_ok());
        assert!(KvOp::LeaseGrant { ttl: 0 }.validate().is_err());
        assert!(KvOp::LeaseGrant { ttl: MAX_LEASE_TTL + 1 }.validate().is_err());
        let get = |i: usize| TxnOp::Get { key: i.to_string() };
        let full = Txn { compare: vec![], success: (0..MAX_TXN_OPS).map(get).collect(), failure: vec![] };
        assert!(full.validate().is_ok());
        let over = Txn { failure: vec![get(0)], ..full };
        assert_eq!(over.validate(), Err("more than 128 comparisons and operations in a transaction"));
        let big = |_| TxnOp::Put { key: "k".into(), value: "v".repeat(MAX_VALUE_LEN), lease: 0 };
        let heavy = Txn { compare: vec![], success: (0..3).map(big).collect(), failure: vec![] };
        assert_eq!(heavy.validate(), Err("transaction larger than 2 MiB"));
    }

    #[test]
    fn compares() {
        let kv =
            KeyValue { key: "k".into(), value: "b".into(), create_revision: 3, mod_revision: 5, version: 2, lease: 0 };
        let key = String::from("k");
        let value = |cmp, v: &str| Compare::Value { key: key.clone(), cmp, value: v.into() };
        assert!(value(Cmp::Equal, "b").holds(Some(&kv)));
        assert!(value(Cmp::Greater, "a").holds(Some(&kv)));
        assert!(!value(Cmp::NotEqual, "x").holds(None), "a value comparison on an absent key is false");
        assert!(Compare::Version { key: key.clone(), cmp: Cmp::Equal, version: 0 }.holds(None));
        assert!(Compare::ModRevision { key: key.clone(), cmp: Cmp::Less, revision: 6 }.holds(Some(&kv)));
        assert!(Compare::Exists { key: key.clone(), exists: false }.holds(None));
        assert!(!Compare::Exists { key, exists: false }.holds(Some(&kv)));
    }
}
