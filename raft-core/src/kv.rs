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

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::state_machine::{RestoreError, StateMachine};
use crate::types::Index;

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// One key-value operation. `Get` is a read; the others are writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// Checks the size limits.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.key().len() > MAX_KEY_LEN {
            return Err("key longer than 1 KiB");
        }
        let too_long = |v: &str| v.len() > MAX_VALUE_LEN;
        match self {
            KvOp::Put { value, .. } | KvOp::Append { value, .. } if too_long(value) => Err("value longer than 1 MiB"),
            KvOp::Cas { expect, value, .. } if too_long(value) || expect.as_deref().is_some_and(too_long) => {
                Err("value longer than 1 MiB")
            }
            _ => Ok(()),
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

/// The result of one operation.
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

/// The key-value store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
    /// Bytes of keys and values held.
    bytes: usize,
}

impl KvStore {
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

    /// Every key and value in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Applies a decoded operation.
    pub fn execute(&mut self, op: &KvOp) -> KvOutput {
        let key = op.key();
        let (new, out) = step(self.get(key), op);
        if let Some(new) = new {
            if let Some(old) = self.map.remove(key) {
                self.bytes -= key.len() + old.len();
            }
            if let Some(v) = new {
                self.bytes += key.len() + v.len();
                self.map.insert(String::from(key), v);
            }
        }
        out
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, _index: Index, _time: u64, command: &[u8]) -> Vec<u8> {
        match KvOp::decode(command) {
            Ok(op) if !op.is_read() => self.execute(&op).encode(),
            _ => KvOutput::Invalid.encode(),
        }
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match KvOp::decode(query) {
            Ok(KvOp::Get { key }) => KvOutput::Value(self.get(&key).map(String::from)).encode(),
            _ => KvOutput::Invalid.encode(),
        }
    }

    fn validate_command(&self, command: &[u8]) -> Result<(), &'static str> {
        match KvOp::decode(command) {
            Ok(op) if op.is_read() => Err("get is a read, not a write"),
            Ok(op) => op.validate(),
            Err(_) => Err("command does not decode"),
        }
    }

    fn validate_query(&self, query: &[u8]) -> Result<(), &'static str> {
        match KvOp::decode(query) {
            Ok(op @ KvOp::Get { .. }) => op.validate(),
            Ok(_) => Err("only get is a read"),
            Err(_) => Err("query does not decode"),
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
