//! [`Text`]: a value's bytes as the store and its watch window hold them —
//! short values inline, longer ones shared.
//!
//! Every put replaces a value, and the window keeps the old one and the new
//! one for watchers. With every value in an `Arc<str>` that cost one
//! allocation per put and, once the window let the old version go, one free
//! — on every replica, the largest single cost of applying a put
//! (`examples/closed_loop`, BENCHMARKS.md). Most values a configuration
//! store holds are short, so a value of up to [`INLINE_BYTES_MAX`](crate::types::INLINE_BYTES_MAX) bytes lives in
//! the `Text` itself: copying it into the window copies 24 bytes, and there is
//! nothing to free. A longer value is shared as before (cloning it is a
//! reference count). `Text` is [`Bytes`] that hold a `str`: 24 bytes either
//! way, 8 more than the `Arc<str>` it replaces.

use alloc::string::String;
use core::fmt;
use core::ops::Deref;

use crate::types::Bytes;

/// A string, inline up to [`INLINE_BYTES_MAX`](crate::types::INLINE_BYTES_MAX) bytes, shared beyond: [`Bytes`]
/// that are always the whole of a `str`.
///
/// Equal when the strings are (whichever way each is held: `Bytes`
/// compares bytes).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Text(Bytes);

impl Text {
    /// The string.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: a `Text` is built only from a `str` or a `String` (the
        // `From` impls below), whose bytes it holds unchanged, whole: valid
        // UTF-8. Checking again here would cost every read, comparison and
        // snapshot row.
        unsafe { core::str::from_utf8_unchecked(self.0.as_slice()) }
    }

    /// Whether the bytes live in the `Text` itself (no allocation).
    #[cfg(test)]
    fn is_inline(&self) -> bool {
        self.0.is_inline()
    }
}

impl From<&str> for Text {
    #[inline]
    fn from(s: &str) -> Self {
        Text(Bytes::from(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::INLINE_BYTES_MAX;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    #[test]
    fn short_values_are_inline_long_ones_shared_and_both_read_back() {
        assert_eq!(core::mem::size_of::<Text>(), 24);
        let long = "x".repeat(INLINE_BYTES_MAX + 1);
        let cases: Vec<String> = ["", "v", "é", "ab\u{1F600}c", &"y".repeat(INLINE_BYTES_MAX), &long]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for s in &cases {
            let inline = s.len() <= INLINE_BYTES_MAX;
            for t in [Text::from(s.as_str()), Text::from(s.clone())] {
                assert_eq!(t.as_str(), s.as_str());
                assert_eq!(&*t, s.as_str());
                assert_eq!(t.is_inline(), inline, "{s:?}");
                assert_eq!(t.clone(), t);
                assert_eq!(alloc::format!("{t:?}"), alloc::format!("{s:?}"));
            }
        }
    }

    #[test]
    fn text_is_equal_as_its_str_whichever_way_it_is_held() {
        let words =
            ["", "a", "ab", "b", &"a".repeat(INLINE_BYTES_MAX), &"a".repeat(INLINE_BYTES_MAX + 1), &"b".repeat(30)];
        for x in words {
            for y in words {
                let (tx, ty) = (Text::from(x), Text::from(String::from(y)));
                assert_eq!(tx == ty, x == y, "{x:?} {y:?}");
            }
        }
    }
}
