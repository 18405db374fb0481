//! The shipped state machine: a replicated key-value store.
//!
//! Keys and values are UTF-8 strings. A missing key reads as `None`, distinct
//! from the empty string. `append` to a missing key creates it — and because
//! appending twice changes the value, a command applied twice is visible to
//! the linearizability checker, which is why it exists.
//!
//! Commands and queries travel inside log entries and read requests as
//! postcard bytes ([`KvOp::encode`]); outputs come back the same way
//! ([`KvOutput::decode`]).
//!
//! ```
//! use raft_core::kv::{KvOp, KvOutput, KvStore};
//! use raft_core::StateMachine;
//! let mut kv = KvStore::default();
//! let put = KvOp::Put { key: "k".into(), value: "v".into() };
//! kv.apply(1, 0, &put.encode());
//! let get = KvOp::Get { key: "k".into() };
//! let out = KvOutput::decode(&kv.query(&get.encode())).unwrap();
//! assert_eq!(out, KvOutput::Value(Some("v".into())));
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::hash::FxBuild;
use crate::state_machine::{RestoreError, StateMachine};
use crate::types::{Bytes, Index};

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// One key-value operation. `Get` is a read; the others are writes.
///
/// This is the one definition of an operation: the log's commands, the
/// hosts' client protocols and the checker's histories all carry it.
///
/// **Encoding.** postcard numbers the variants by position — `Put` 0,
/// `Append` 1, `Get` 2, `Delete` 3, `Cas` 4 — and these bytes are in every
/// journal and snapshot, so new variants go at the end and none is ever
/// reordered (`tests/golden.rs` pins the bytes). Self-describing formats
/// (JSON) name the variant in snake case, as [`KvOp::name`] does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append `value` to the current value (creating the key if missing).
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
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Append { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. } => key,
        }
    }

    /// Whether the operation only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }

    /// The operation's name in the client protocols and the CLI: `put`,
    /// `append`, `get`, `delete` or `cas` (the same names serde gives the
    /// variants in JSON).
    pub fn name(&self) -> &'static str {
        match self {
            KvOp::Put { .. } => "put",
            KvOp::Append { .. } => "append",
            KvOp::Get { .. } => "get",
            KvOp::Delete { .. } => "delete",
            KvOp::Cas { .. } => "cas",
        }
    }

    /// Checks the size limits.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.view().validate()
    }

    /// The borrowed view the hot path works on.
    fn view(&self) -> KvOpRef<'_> {
        match self {
            KvOp::Put { key, value } => KvOpRef::Put { key, value },
            KvOp::Append { key, value } => KvOpRef::Append { key, value },
            KvOp::Get { key } => KvOpRef::Get { key },
            KvOp::Delete { key } => KvOpRef::Delete { key },
            KvOp::Cas { key, expect, value } => KvOpRef::Cas { key, expect: expect.as_deref(), value },
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

/// A borrowed view of an encoded [`KvOp`] (same variants, same order, so the
/// same bytes): decoding it allocates nothing, which keeps validation and
/// apply on the hot path cheap. Not a second vocabulary: it exists only to
/// read [`KvOp`]'s bytes in place, and `ref_view_reads_every_op` checks that
/// it reads each of them back to the same operation.
#[derive(Debug, Deserialize)]
enum KvOpRef<'a> {
    Put {
        key: &'a str,
        value: &'a str,
    },
    Append {
        key: &'a str,
        value: &'a str,
    },
    Get {
        key: &'a str,
    },
    Delete {
        key: &'a str,
    },
    Cas {
        key: &'a str,
        #[serde(borrow)]
        expect: Option<&'a str>,
        value: &'a str,
    },
}

impl<'a> KvOpRef<'a> {
    fn decode(bytes: &'a [u8]) -> Option<KvOpRef<'a>> {
        match postcard::take_from_bytes::<KvOpRef<'a>>(bytes) {
            Ok((op, [])) => Some(op),
            _ => None,
        }
    }

    fn key(&self) -> &'a str {
        match self {
            KvOpRef::Put { key, .. }
            | KvOpRef::Append { key, .. }
            | KvOpRef::Get { key }
            | KvOpRef::Delete { key }
            | KvOpRef::Cas { key, .. } => key,
        }
    }

    fn validate(&self) -> Result<(), &'static str> {
        if self.key().len() > MAX_KEY_LEN {
            return Err("key longer than 1 KiB");
        }
        let too_long = |v: &str| v.len() > MAX_VALUE_LEN;
        match self {
            KvOpRef::Put { value, .. } | KvOpRef::Append { value, .. } if too_long(value) => {
                Err("value longer than 1 MiB")
            }
            KvOpRef::Cas { expect, value, .. } if too_long(value) || expect.is_some_and(too_long) => {
                Err("value longer than 1 MiB")
            }
            _ => Ok(()),
        }
    }
}

/// The result of one operation.
///
/// **Encoding.** postcard numbers the variants by position — `Written` 0,
/// `Value` 1, `Deleted` 2, `Cas` 3, `Invalid` 4 — and these bytes are in
/// every session's reply cache (so in snapshots): new variants go at the end
/// and none is ever reordered (`tests/golden.rs` pins the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOutput {
    /// A put or append took effect.
    Written,
    /// A get's result (`None`: the key is absent).
    Value(Option<String>),
    /// A delete's result.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// A compare-and-swap's result. On failure `current` is the value found.
    Cas {
        /// Whether the swap happened.
        swapped: bool,
        /// The value found when the swap failed (`None` on success or if absent).
        current: Option<String>,
    },
    /// The command bytes were not a valid operation (never produced for
    /// commands that passed [`StateMachine::validate_command`]).
    Invalid,
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
}

/// Applies `op` to the value `state` of its key: the sequential specification
/// the store implements and the linearizability checker checks against.
pub fn step(state: Option<&str>, op: &KvOp) -> (Option<Option<String>>, KvOutput) {
    // The first element is the key's new state if it changed.
    match op {
        KvOp::Put { value, .. } => (Some(Some(value.clone())), KvOutput::Written),
        KvOp::Append { value, .. } => {
            let mut v = String::from(state.unwrap_or(""));
            v.push_str(value);
            (Some(Some(v)), KvOutput::Written)
        }
        KvOp::Get { .. } => (None, KvOutput::Value(state.map(String::from))),
        KvOp::Delete { .. } => (Some(None), KvOutput::Deleted { existed: state.is_some() }),
        KvOp::Cas { expect, value, .. } => {
            if state == expect.as_deref() {
                (Some(Some(value.clone())), KvOutput::Cas { swapped: true, current: None })
            } else {
                (None, KvOutput::Cas { swapped: false, current: state.map(String::from) })
            }
        }
    }
}

/// The key-value store: a hash table (O(1) lookups; keys are never iterated in
/// hash order — snapshots and listings sort them), seeded so clients cannot
/// aim keys at one bucket.
#[derive(Clone, Debug)]
pub struct KvStore {
    map: hashbrown::HashMap<String, String, FxBuild>,
    /// Bytes of keys and values held.
    bytes: usize,
    /// Encoded outputs that repeat, shared instead of allocated per command.
    common: CommonOutputs,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::with_hash_seed(0)
    }
}

impl PartialEq for KvStore {
    fn eq(&self, o: &Self) -> bool {
        self.map == o.map
    }
}
impl Eq for KvStore {}

#[derive(Clone, Debug)]
struct CommonOutputs {
    written: Bytes,
    existed: Bytes,
    absent: Bytes,
    swapped: Bytes,
}

impl CommonOutputs {
    fn new() -> Self {
        CommonOutputs {
            written: KvOutput::Written.encode().into(),
            existed: KvOutput::Deleted { existed: true }.encode().into(),
            absent: KvOutput::Deleted { existed: false }.encode().into(),
            swapped: KvOutput::Cas { swapped: true, current: None }.encode().into(),
        }
    }

    fn encode(&self, out: &KvOutput) -> Bytes {
        match out {
            KvOutput::Written => self.written.clone(),
            KvOutput::Deleted { existed: true } => self.existed.clone(),
            KvOutput::Deleted { existed: false } => self.absent.clone(),
            KvOutput::Cas { swapped: true, .. } => self.swapped.clone(),
            other => other.encode().into(),
        }
    }
}

impl KvStore {
    /// An empty store whose hash table uses `seed` (hosts pick it at random;
    /// replicas need not agree on it).
    pub fn with_hash_seed(seed: u64) -> Self {
        KvStore { map: hashbrown::HashMap::with_hasher(FxBuild { seed }), bytes: 0, common: CommonOutputs::new() }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut pairs: Vec<(&str, &str)> = self.map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.sort_unstable();
        pairs.into_iter()
    }

    /// Applies a borrowed operation, reusing existing allocations where it can.
    fn execute_ref(&mut self, op: &KvOpRef<'_>) -> KvOutput {
        match *op {
            KvOpRef::Put { key, value } | KvOpRef::Append { key, value } => {
                let append = matches!(op, KvOpRef::Append { .. });
                match self.map.get_mut(key) {
                    Some(v) => {
                        if !append {
                            self.bytes -= v.len();
                            v.clear();
                        }
                        v.push_str(value);
                        self.bytes += value.len();
                    }
                    None => {
                        self.bytes += key.len() + value.len();
                        self.map.insert(String::from(key), String::from(value));
                    }
                }
                KvOutput::Written
            }
            KvOpRef::Get { key } => KvOutput::Value(self.get(key).map(String::from)),
            KvOpRef::Delete { key } => match self.map.remove(key) {
                Some(v) => {
                    self.bytes -= key.len() + v.len();
                    KvOutput::Deleted { existed: true }
                }
                None => KvOutput::Deleted { existed: false },
            },
            KvOpRef::Cas { key, expect, value } => {
                let current = self.get(key);
                if current != expect {
                    return KvOutput::Cas { swapped: false, current: current.map(String::from) };
                }
                self.execute_ref(&KvOpRef::Put { key, value });
                KvOutput::Cas { swapped: true, current: None }
            }
        }
    }

    /// Applies a decoded operation.
    pub fn execute(&mut self, op: &KvOp) -> KvOutput {
        self.execute_ref(&op.view())
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, _index: Index, _time: u64, command: &[u8]) -> Bytes {
        let out = match KvOpRef::decode(command) {
            Some(op) if !matches!(op, KvOpRef::Get { .. }) => self.execute_ref(&op),
            _ => KvOutput::Invalid,
        };
        self.common.encode(&out)
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match KvOpRef::decode(query) {
            Some(KvOpRef::Get { key }) => KvOutput::Value(self.get(key).map(String::from)).encode(),
            _ => KvOutput::Invalid.encode(),
        }
    }

    fn validate_command(&self, command: &[u8]) -> Result<(), &'static str> {
        match KvOpRef::decode(command) {
            Some(KvOpRef::Get { .. }) => Err("get is a read, not a write"),
            Some(op) => op.validate(),
            None => Err("command does not decode"),
        }
    }

    fn validate_query(&self, query: &[u8]) -> Result<(), &'static str> {
        match KvOpRef::decode(query) {
            Some(op @ KvOpRef::Get { .. }) => op.validate(),
            Some(_) => Err("only get is a read"),
            None => Err("query does not decode"),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let pairs: Vec<(&str, &str)> = self.iter().collect();
        postcard::to_allocvec(&pairs).unwrap_or_default()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        let pairs: Vec<(String, String)> =
            codec::decode_body(data).map_err(|_| RestoreError("key-value snapshot does not decode"))?;
        self.map.clear();
        self.bytes = 0;
        for (k, v) in pairs {
            self.bytes += k.len() + v.len();
            self.map.insert(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn semantics() {
        let mut kv = KvStore::default();
        assert_eq!(kv.execute(&KvOp::Get { key: s("k") }), KvOutput::Value(None));
        assert_eq!(kv.execute(&KvOp::Append { key: s("k"), value: s("a") }), KvOutput::Written);
        assert_eq!(kv.execute(&KvOp::Append { key: s("k"), value: s("b") }), KvOutput::Written);
        assert_eq!(kv.get("k"), Some("ab"));
        let cas = |e: Option<&str>, v: &str| KvOp::Cas { key: s("k"), expect: e.map(s), value: s(v) };
        assert_eq!(kv.execute(&cas(Some("x"), "c")), KvOutput::Cas { swapped: false, current: Some(s("ab")) });
        assert_eq!(kv.execute(&cas(Some("ab"), "c")), KvOutput::Cas { swapped: true, current: None });
        assert_eq!(kv.execute(&KvOp::Delete { key: s("k") }), KvOutput::Deleted { existed: true });
        assert_eq!(kv.execute(&KvOp::Delete { key: s("k") }), KvOutput::Deleted { existed: false });
        assert_eq!(kv.execute(&cas(None, "")), KvOutput::Cas { swapped: true, current: None });
        assert_eq!(kv.execute(&KvOp::Get { key: s("k") }), KvOutput::Value(Some(s(""))), "empty is not absent");
        assert_eq!(kv.bytes(), 1);
    }

    #[test]
    fn the_store_follows_the_sequential_spec() {
        let ops = [
            KvOp::Put { key: s("a"), value: s("1") },
            KvOp::Append { key: s("a"), value: s("2") },
            KvOp::Cas { key: s("a"), expect: Some(s("12")), value: s("3") },
            KvOp::Cas { key: s("a"), expect: Some(s("12")), value: s("4") },
            KvOp::Cas { key: s("b"), expect: None, value: s("") },
            KvOp::Append { key: s("c"), value: s("x") },
            KvOp::Delete { key: s("a") },
            KvOp::Delete { key: s("a") },
            KvOp::Get { key: s("b") },
        ];
        let mut store = KvStore::default();
        let mut model: alloc::collections::BTreeMap<String, String> = Default::default();
        for op in &ops {
            let bytes = op.encode();
            assert_eq!(KvOpRef::decode(&bytes).map(|r| r.key().to_string()), Some(op.key().to_string()));
            let (change, want) = step(model.get(op.key()).map(String::as_str), op);
            match change {
                Some(Some(v)) => {
                    model.insert(op.key().to_string(), v);
                }
                Some(None) => {
                    model.remove(op.key());
                }
                None => {}
            }
            let got = if op.is_read() {
                KvOutput::decode(&store.query(&bytes)).unwrap()
            } else {
                KvOutput::decode(&store.apply(1, 0, &bytes)).unwrap()
            };
            assert_eq!(got, want, "{op:?}");
        }
        let held: Vec<(String, String)> = store.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(held, model.into_iter().collect::<Vec<_>>());
        assert!(KvOpRef::decode(b"\x09").is_none());
    }

    impl KvOpRef<'_> {
        fn to_owned(&self) -> KvOp {
            match *self {
                KvOpRef::Put { key, value } => KvOp::Put { key: s(key), value: s(value) },
                KvOpRef::Append { key, value } => KvOp::Append { key: s(key), value: s(value) },
                KvOpRef::Get { key } => KvOp::Get { key: s(key) },
                KvOpRef::Delete { key } => KvOp::Delete { key: s(key) },
                KvOpRef::Cas { key, expect, value } => {
                    KvOp::Cas { key: s(key), expect: expect.map(s), value: s(value) }
                }
            }
        }
    }

    #[test]
    fn ref_view_reads_every_op() {
        let ops = [
            KvOp::Put { key: s("k"), value: s("v") },
            KvOp::Append { key: s("k"), value: s("w") },
            KvOp::Get { key: s("k") },
            KvOp::Delete { key: s("k") },
            KvOp::Cas { key: s("k"), expect: Some(s("v")), value: s("x") },
            KvOp::Cas { key: s("k"), expect: None, value: s("") },
        ];
        for op in &ops {
            // Same variant, same fields, from the same bytes: the view and the
            // owned type cannot drift apart unnoticed.
            assert_eq!(KvOpRef::decode(&op.encode()).map(|r| r.to_owned()).as_ref(), Some(op));
            assert_eq!(op.view().to_owned(), *op);
        }
        let names: alloc::vec::Vec<&str> = ops.iter().map(KvOp::name).collect();
        assert_eq!(names, ["put", "append", "get", "delete", "cas", "cas"]);
    }

    #[test]
    fn snapshot_roundtrip_and_limits() {
        let mut kv = KvStore::default();
        kv.execute(&KvOp::Put { key: s("a"), value: s("1") });
        kv.execute(&KvOp::Put { key: s("b"), value: s("22") });
        let mut other = KvStore::default();
        other.restore(&kv.snapshot()).unwrap();
        assert_eq!(other, kv);
        assert!(other.restore(b"\xff\xff\xff").is_err());
        let big = KvOp::Put { key: "k".repeat(MAX_KEY_LEN + 1), value: s("") };
        assert!(kv.validate_command(&big.encode()).is_err());
        assert!(kv.validate_command(b"garbage").is_err());
        assert!(kv.validate_command(&KvOp::Get { key: s("a") }.encode()).is_err());
        assert!(kv.validate_query(&KvOp::Get { key: s("a") }.encode()).is_ok());
    }
}
