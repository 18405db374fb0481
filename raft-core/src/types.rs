//! The vocabulary every other module speaks: ids, terms, indexes and log entries.
//!
//! Every field is an integer or bytes, so the wire and journal encodings (postcard)
//! stay compact and language-neutral; nothing here is positional (node ids are
//! configured numbers, not offsets into an array).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::{Deref, Range};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's configured identity. Ids are chosen by the operator; `0` is reserved
/// to mean "nobody" in places where an `Option` would not survive a format.
pub type NodeId = u64;

/// A Raft term: a logical epoch in which at most one leader exists.
pub type Term = u64;

/// A log position. The first real entry has index 1; index 0 is the empty prefix.
pub type Index = u64;

/// A journal record sequence number. Sequence numbers start at 1 and grow by one
/// for every record the core asks the host to persist.
pub type Seq = u64;

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Accepts entries from the leader of its term and grants votes.
    Follower,
    /// Asking peers whether it could win an election, without raising anyone's term.
    PreCandidate,
    /// Raised its term and voted for itself; collecting votes.
    Candidate,
    /// Replicates its log to the others and decides what is committed.
    Leader,
}

impl Role {
    /// A short lower-case name, used in logs, metrics and the web demo.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// Immutable shared bytes: an entry's command is written once and then only
/// read — by the log, the journal record, every follower's AppendEntries, the
/// state machine — so clones share one buffer instead of copying it.
/// On the wire and on disk it is a plain byte string (the same postcard
/// encoding as `Vec<u8>`).
///
/// Three representations, one value: up to [`INLINE_BYTES_MAX`] bytes held
/// in the `Bytes` itself (anything that short built in memory or decoded
/// with serde: no allocation, nothing to free, a clone copies 24 bytes), a
/// buffer of its own (anything longer), or a range of a read buffer that
/// many payloads share ([`Bytes::shared`]: journal replay decodes a
/// segment's payloads this way, with no allocation each). Equality,
/// ordering, hashing, `Debug` and the encoding see only the bytes, never
/// which one it is.
///
/// Why inline: every write leaves a reply in its session's cache on every
/// replica, and most replies (and many commands) are a few bytes; with a
/// buffer each, that was an allocation and a free per write per node
/// (`examples/closed_loop`, BENCHMARKS.md).
///
/// **Retention.** A shared range keeps its whole read buffer alive. The
/// journal's replay bounds that (see [`crate::log::Log`]): after replay a
/// buffer stays only if its live payloads, copied out, would take at least
/// half its size, and when a log compacts, the replayed entries it keeps are
/// copied out, so no read buffer outlives the first snapshot after a restart.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]`, with `len <= INLINE_BYTES_MAX`.
    Inline { len: u8, bytes: [u8; INLINE_BYTES_MAX] },
    /// A buffer of its own (more than `INLINE_BYTES_MAX` bytes).
    Owned(Arc<[u8]>),
    /// `start .. start + len` of a read buffer. `u32` offsets keep `Bytes`
    /// (and so every `Entry`) small; ranges past 4 GiB are copied instead
    /// (see [`Bytes::shared`]).
    Shared { buf: Arc<Vec<u8>>, start: u32, len: u32 },
}

/// The most bytes a [`Bytes`] holds inline, without a buffer (what fits
/// beside its length and tag in the 24 bytes the other representations take).
pub const INLINE_BYTES_MAX: usize = 22;

/// The largest end offset of a range [`Bytes::shared`] points into rather
/// than copies (4 GiB - 1: the offsets are `u32`).
pub const SHARED_RANGE_END_MAX: usize = u32::MAX as usize;

impl Bytes {
    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Owned(b) => b,
            Repr::Shared { buf, start, len } => {
                let start = *start as usize;
                &buf[start..start + *len as usize]
            }
        }
    }

    /// Bytes `range` of `buf`, pointing into it (a reference count, no copy)
    /// when the range ends at or before [`SHARED_RANGE_END_MAX`], copied
    /// otherwise. The result keeps all of `buf` alive while it (or a clone)
    /// lives: see the retention rule on [`Bytes`].
    ///
    /// # Panics
    /// If `range` is not within `buf` (a caller's bug: ranges come from the
    /// caller's own parse of `buf`).
    #[inline]
    pub fn shared(buf: &Arc<Vec<u8>>, range: Range<usize>) -> Bytes {
        let part = &buf[range.clone()];
        // (`try_from`, not a comparison with SHARED_RANGE_END_MAX: on a
        // 32-bit target every `usize` fits and the comparison is constant.)
        if u32::try_from(range.end).is_err() {
            return Bytes::from(part);
        }
        // Both fit: `start <= end <= u32::MAX`.
        Bytes(Repr::Shared { buf: buf.clone(), start: range.start as u32, len: part.len() as u32 })
    }

    /// The number of bytes (without reading the buffer's own length, as
    /// slicing it would: the log sums payload lengths on every append).
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => *len as usize,
            Repr::Owned(b) => b.len(),
            Repr::Shared { len, .. } => *len as usize,
        }
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are held in the `Bytes` itself.
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// Whether these bytes point into a shared read buffer.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared { .. })
    }

    /// The read buffer these bytes point into, if they do.
    pub(crate) fn read_buffer(&self) -> Option<&Arc<Vec<u8>>> {
        match &self.0 {
            Repr::Inline { .. } | Repr::Owned(_) => None,
            Repr::Shared { buf, .. } => Some(buf),
        }
    }

    /// Copies shared bytes into a buffer of their own, letting go of the read
    /// buffer (a no-op for bytes that own theirs).
    pub fn unshare(&mut self) {
        if self.is_shared() {
            *self = Bytes::from(self.as_slice());
        }
    }
}

impl Default for Bytes {
    #[inline]
    fn default() -> Self {
        Bytes(Repr::Inline { len: 0, bytes: [0; INLINE_BYTES_MAX] })
    }
}

impl Deref for Bytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Bytes {
    #[inline]
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_BYTES_MAX {
            Bytes::from(v.as_slice())
        } else {
            Bytes(Repr::Owned(v.into()))
        }
    }
}

impl From<&[u8]> for Bytes {
    #[inline]
    fn from(v: &[u8]) -> Self {
        if v.len() <= INLINE_BYTES_MAX {
            let mut bytes = [0; INLINE_BYTES_MAX];
            bytes[..v.len()].copy_from_slice(v);
            Bytes(Repr::Inline { len: v.len() as u8, bytes })
        } else {
            Bytes(Repr::Owned(v.into()))
        }
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Bytes {
    /// The slice's hash: the same as the `Arc<[u8]>` this type held before it
    /// could share (length, then the bytes), whichever representation.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl Serialize for Bytes {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    /// Always a buffer of its own: serde cannot say which shared buffer its
    /// input lives in (journal replay decodes payloads itself to share them).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                // Bounded pre-allocation: the length hint comes from input.
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Bytes::from(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The state that must be durable before a node may vote or act on a term
/// (Raft Figure 2, "persistent state"), plus the role for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// The role at the time of writing. A restart always begins as follower;
    /// this is kept for tooling and for the record.
    pub role: Role,
    /// This node found at recovery that its journal lost records it had
    /// made durable (a damaged frame in a group-commit batch whose end marker
    /// survived), and has not yet durably matched a current leader up to
    /// that leader's commit index. Until then it grants no vote or pre-vote,
    /// does not campaign, and its acknowledgements are not counted.
    pub lost_data: bool,
}

impl Default for HardState {
    fn default() -> Self {
        HardState { term: 0, voted_for: None, role: Role::Follower, lost_data: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn bytes_encode_like_a_vec() {
        for v in [vec![1, 2, 3, 200], vec![9; INLINE_BYTES_MAX + 1], vec![]] {
            let as_vec = postcard::to_allocvec(&v).unwrap();
            let as_bytes = postcard::to_allocvec(&Bytes::from(v.clone())).unwrap();
            assert_eq!(as_vec, as_bytes, "same wire and journal format as Vec<u8>");
            let back: Bytes = postcard::from_bytes(&as_vec).unwrap();
            assert_eq!(&*back, &v[..]);
            assert_eq!(back.is_inline(), v.len() <= INLINE_BYTES_MAX);
            let clone = back.clone();
            assert_eq!(clone, back);
            if !back.is_inline() {
                assert!(core::ptr::eq(clone.as_slice(), back.as_slice()), "clones share the buffer");
            }
        }
        // A length prefix larger than the input is an error, not an allocation.
        assert!(postcard::from_bytes::<Bytes>(&[0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn short_bytes_are_inline_and_the_same_value_as_a_buffer_of_their_own() {
        let buf: Arc<Vec<u8>> = Arc::new((0..=255u8).collect());
        for n in [0, 1, INLINE_BYTES_MAX - 1, INLINE_BYTES_MAX, INLINE_BYTES_MAX + 1, 100] {
            let part = &buf[7..7 + n];
            let made = [Bytes::from(part), Bytes::from(part.to_vec())];
            for b in &made {
                assert_eq!(b.is_inline(), n <= INLINE_BYTES_MAX, "{n} bytes");
                assert!(!b.is_shared() && b.read_buffer().is_none());
                assert_eq!((b.as_slice(), b.len(), b.is_empty()), (part, n, n == 0));
            }
            // Against the same bytes in each other representation.
            let owned = Bytes(Repr::Owned(part.into()));
            let shared = Bytes::shared(&buf, 7..7 + n);
            for other in [&owned, &shared] {
                assert_eq!(&made[0], other);
                assert_eq!(made[0].cmp(other), Ordering::Equal);
                assert_eq!(hash_of(&made[0]), hash_of(other));
                assert_eq!(std::format!("{:?}", made[0]), std::format!("{other:?}"));
            }
            let mut unshared = shared.clone();
            unshared.unshare();
            assert_eq!((unshared.is_inline(), &unshared), (n <= INLINE_BYTES_MAX, &made[0]));
        }
        assert!(Bytes::default().is_inline() && Bytes::default().is_empty());
        // Order across representations follows the bytes.
        let (short, long) = (Bytes::from(&[1u8, 2][..]), Bytes::from(vec![1u8; 40]));
        assert_eq!(short.cmp(&long), [1u8, 2][..].cmp(&[1u8; 40][..]));
    }

    fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_shared_range_is_the_same_value_as_owned_bytes() {
        let buf: Arc<Vec<u8>> = Arc::new((0..=255u8).collect());
        for range in [0..0, 3..10, 0..256, 255..256, 100..100] {
            let shared = Bytes::shared(&buf, range.clone());
            let owned = Bytes::from(&buf[range.clone()]);
            assert!(shared.is_shared() && !owned.is_shared());
            assert_eq!(shared.as_slice(), &buf[range.clone()]);
            assert_eq!(&*shared, &buf[range.clone()], "Deref");
            assert_eq!(shared, owned);
            assert_eq!(shared.cmp(&owned), Ordering::Equal);
            assert_eq!(hash_of(&shared), hash_of(&owned));
            // The hash is the one the type had when it was an `Arc<[u8]>`.
            let old: Arc<[u8]> = buf[range.clone()].into();
            assert_eq!(hash_of(&shared), hash_of(&old));
            assert_eq!(std::format!("{shared:?}"), std::format!("{owned:?}"));
            let (a, b) = (postcard::to_allocvec(&shared).unwrap(), postcard::to_allocvec(&owned).unwrap());
            assert_eq!(a, b, "same encoding");
            let back: Bytes = postcard::from_bytes(&a).unwrap();
            assert!(!back.is_shared(), "serde decodes into a buffer of its own");
            assert_eq!(back, shared);
            // Clones point into the same buffer; `unshare` copies out.
            let clone = shared.clone();
            assert!(core::ptr::eq(clone.as_slice(), shared.as_slice()));
            let mut copied = shared.clone();
            copied.unshare();
            assert!(!copied.is_shared());
            assert_eq!(copied, shared);
        }
        // Ordering follows the bytes, not the representation or the offset.
        let (a, b) = (Bytes::shared(&buf, 5..9), Bytes::shared(&buf, 4..9));
        assert_eq!(a.cmp(&b), Bytes::from(&buf[5..9]).cmp(&Bytes::from(&buf[4..9])));
        assert_eq!(a.cmp(&b), Ordering::Greater);
        assert_eq!(Bytes::shared(&buf, 3..3), Bytes::default());
        assert_eq!(Arc::strong_count(&buf), 3, "the buffer, a and b");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn ranges_ending_past_4_gib_are_copied() {
        // 4 GiB and a little, zeroed lazily by the allocator: only the pages
        // read below are ever touched.
        let size = SHARED_RANGE_END_MAX + 17;
        let buf = Arc::new(vec![0u8; size]);
        let at_limit = Bytes::shared(&buf, SHARED_RANGE_END_MAX - 8..SHARED_RANGE_END_MAX);
        assert!(at_limit.is_shared(), "ends at the limit: shared");
        assert_eq!(at_limit.len(), 8);
        let past = Bytes::shared(&buf, SHARED_RANGE_END_MAX - 8..SHARED_RANGE_END_MAX + 1);
        assert!(!past.is_shared(), "ends one past the limit: copied");
        assert_eq!(past.as_slice(), &[0u8; 9]);
        assert!(!Bytes::shared(&buf, size - 4..size).is_shared());
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn bytes_takes_three_words() {
        // Three representations in the space of a fat pointer and two `u32`s
        // (the inline one: 22 bytes and their length).
        assert_eq!(core::mem::size_of::<Bytes>(), 24);
    }
}
