//! What the store holds for one key, shared with the watch window.
//!
//! The key is an `Arc<str>` (the map's own key), the value a [`Text`]: a
//! short value inline, a longer one shared, so the event a write leaves in
//! the window (and the previous value the event remembers) never copies a
//! long value's bytes. Before this, every put copied its key and both values
//! into the window — four allocations and four frees per put on every
//! replica, more than the rest of the write path together
//! (`examples/closed_loop`, BENCHMARKS.md).

use alloc::string::String;
use alloc::sync::Arc;

use super::text::Text;
use super::KeyValue;

/// One version of a key: its value and its history in revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// The key (the same allocation as the store's map key).
    pub(crate) key: Arc<str>,
    /// The value (inline, or shared with the events that carry it).
    pub(crate) value: Text,
    /// Revision of the write that created the key.
    pub(crate) create: u64,
    /// Revision of the key's last write.
    pub(crate) modr: u64,
    /// Writes since creation.
    pub(crate) version: u64,
    /// The lease the key is attached to (0: none).
    pub(crate) lease: u64,
}

impl Record {
    /// This version as the API shows it (copies the bytes).
    pub(crate) fn kv(&self) -> KeyValue {
        key_value(&self.key, &self.value, [self.create, self.modr, self.version, self.lease])
    }

    /// The version a [`KeyValue`] describes (copies the bytes).
    pub(crate) fn of(kv: &KeyValue) -> Record {
        Record {
            key: Arc::from(kv.key.as_str()),
            value: Text::from(kv.value.as_str()),
            create: kv.create_revision,
            modr: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

/// A key-value as the API shows it, from its key, its value and its
/// numbers `[create_revision, mod_revision, version, lease]` (copies the
/// bytes): what the store's records and the watch window's events become.
pub(crate) fn key_value(key: &str, value: &str, [create, modr, version, lease]: [u64; 4]) -> KeyValue {
    KeyValue {
        key: String::from(key),
        value: String::from(value),
        create_revision: create,
        mod_revision: modr,
        version,
        lease,
    }
}
