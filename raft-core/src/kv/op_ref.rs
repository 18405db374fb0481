//! [`KvOpRef`]: an encoded [`KvOp`] of one of the hot kinds (put, append,
//! get, delete, compare-and-swap) read in place, without allocating.
//!
//! Every write is decoded once to validate it on the leader and once more to
//! apply it on each replica, so this reader is on the path of every write
//! four times over in a three-node cluster. It reads postcard's bytes by hand
//! with [`Reader`] (the journal's decoder) — a variant number, then each
//! string as a length and its bytes — and checks that the strings are text
//! with [`text`], which is where most of a decode's time went. Anything it does not read (the other variants, an
//! unusual encoding) it declines, and the caller decodes a whole [`KvOp`]
//! with serde instead: this reader may refuse what postcard accepts, never the
//! reverse, and never reads bytes differently (the tests check both against
//! `KvOp::decode`, on every hot kind and on random bytes).

#[cfg(test)]
use alloc::string::String;

#[cfg(test)]
use super::KvOp;
use super::{check_key, check_value};
use crate::codec::Reader;

/// A borrowed view of an encoded [`KvOp`] for its first five variants (same
/// order, so the same bytes). Not a second vocabulary: it exists only to
/// read [`KvOp`]'s bytes in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KvOpRef<'a> {
    /// [`KvOp::Put`].
    Put {
        /// The key.
        key: &'a str,
        /// The new value.
        value: &'a str,
    },
    /// [`KvOp::Append`].
    Append {
        /// The key.
        key: &'a str,
        /// What to append.
        value: &'a str,
    },
    /// [`KvOp::Get`].
    Get {
        /// The key.
        key: &'a str,
    },
    /// [`KvOp::Delete`].
    Delete {
        /// The key.
        key: &'a str,
    },
    /// [`KvOp::Cas`].
    Cas {
        /// The key.
        key: &'a str,
        /// The value required for the swap.
        expect: Option<&'a str>,
        /// The new value.
        value: &'a str,
    },
}

impl<'a> KvOpRef<'a> {
    /// Reads `bytes` as a whole hot operation; `None` if they are anything
    /// else (another variant, malformed, trailing bytes).
    pub(crate) fn decode(bytes: &'a [u8]) -> Option<KvOpRef<'a>> {
        let mut r = Reader::new(bytes);
        // postcard writes the variant as a varint; the five hot ones are one
        // byte (a longer spelling is declined, for serde to read).
        let op = match r.u8().ok()? {
            0 => KvOpRef::Put { key: read_text(&mut r)?, value: read_text(&mut r)? },
            1 => KvOpRef::Append { key: read_text(&mut r)?, value: read_text(&mut r)? },
            2 => KvOpRef::Get { key: read_text(&mut r)? },
            3 => KvOpRef::Delete { key: read_text(&mut r)? },
            4 => {
                let key = read_text(&mut r)?;
                let expect = match r.u8().ok()? {
                    0 => None,
                    1 => Some(read_text(&mut r)?),
                    _ => return None,
                };
                KvOpRef::Cas { key, expect, value: read_text(&mut r)? }
            }
            _ => return None,
        };
        r.finish().ok().map(|()| op)
    }

    /// The size limits [`KvOp::validate`] checks, on the view (a `Get` is
    /// valid here; that it is no write is the caller's to say).
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        match *self {
            KvOpRef::Put { key, value } | KvOpRef::Append { key, value } => {
                check_key(key)?;
                check_value(value)
            }
            KvOpRef::Get { key } | KvOpRef::Delete { key } => check_key(key),
            KvOpRef::Cas { key, expect, value } => {
                check_key(key)?;
                check_value(value)?;
                expect.map_or(Ok(()), check_value)
            }
        }
    }

    /// The operation the view reads (tests compare it with serde's).
    #[cfg(test)]
    pub(crate) fn to_owned(self) -> KvOp {
        match self {
            KvOpRef::Put { key, value } => KvOp::Put { key: key.into(), value: value.into() },
            KvOpRef::Append { key, value } => KvOp::Append { key: key.into(), value: value.into() },
            KvOpRef::Get { key } => KvOp::Get { key: key.into() },
            KvOpRef::Delete { key } => KvOp::Delete { key: key.into() },
            KvOpRef::Cas { key, expect, value } => {
                KvOp::Cas { key: key.into(), expect: expect.map(String::from), value: value.into() }
            }
        }
    }
}

/// A string: its length as a varint, then its bytes, which must be text.
/// Inlined: called on its own, it spent more on saving registers around the
/// rare calls (a long varint, non-ASCII text) than on reading.
#[inline(always)]
fn read_text<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
    text(r.slice().ok()?)
}

/// `bytes` as text, if they are UTF-8. Keys and values are nearly always
/// ASCII: `<[u8]>::is_ascii` checks those a word at a time, where
/// `str::from_utf8` walks short strings a byte at a time (about 10
/// instructions a byte; the two strings of a put were 60 % of decoding it).
/// The safe `str::from_utf8` alone costs the closed loop (`closed_loop 64
/// 50000` under callgrind) 7.1 % more instructions (503.9 M against
/// 470.3 M, 2026-12-03), so the one `unsafe` stays, behind the ASCII check
/// that makes it sound.
pub(crate) fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every sequence of ASCII bytes is valid UTF-8.
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    } else {
        core::str::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// The view of these bytes agrees with serde's decoder: whatever the view
    /// reads, `KvOp::decode` reads the same way; and a hot operation that
    /// `KvOp::decode` reads in its usual encoding, the view reads too.
    fn agree(bytes: &[u8]) {
        let view = KvOpRef::decode(bytes);
        let full = KvOp::decode(bytes);
        if let Some(v) = view {
            assert_eq!(full.as_ref().ok(), Some(&v.to_owned()), "{bytes:?}");
        }
        if let Ok(op) = &full {
            let hot = matches!(
                op,
                KvOp::Put { .. } | KvOp::Append { .. } | KvOp::Get { .. } | KvOp::Delete { .. } | KvOp::Cas { .. }
            );
            if hot && op.encode() == bytes && op.validate().is_ok() {
                assert_eq!(view.map(KvOpRef::to_owned).as_ref(), Some(op), "{bytes:?}");
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
            KvOp::Put { key: s("ключ"), value: s("значение ✓") },
            KvOp::Put { key: s(""), value: "v".repeat(300) },
        ];
        for op in &ops {
            // Same variant, same fields, from the same bytes: the view and the
            // owned type cannot drift apart unnoticed.
            assert_eq!(KvOpRef::decode(&op.encode()).map(KvOpRef::to_owned).as_ref(), Some(op));
            agree(&op.encode());
        }
        assert!(KvOpRef::decode(&KvOp::LeaseGrant { ttl: 1 }.encode()).is_none(), "later variants decode whole");
        let names: Vec<&str> = ops.iter().map(KvOp::name).collect();
        assert_eq!(names, ["put", "append", "get", "delete", "cas", "cas", "put", "put"]);
    }

    #[test]
    fn the_view_declines_what_it_does_not_read() {
        let put = KvOp::Put { key: s("key"), value: s("value") }.encode();
        assert!(KvOpRef::decode(&put[..put.len() - 1]).is_none(), "truncated");
        let mut longer = put.clone();
        longer.push(0);
        assert!(KvOpRef::decode(&longer).is_none(), "trailing bytes");
        let mut bad = put.clone();
        bad[2] = 0xff;
        assert!(KvOpRef::decode(&bad).is_none() && KvOp::decode(&bad).is_err(), "not UTF-8");
        let cas = KvOp::Cas { key: s("k"), expect: Some(s("a")), value: s("b") }.encode();
        let mut tag = cas.clone();
        tag[3] = 2;
        assert!(KvOpRef::decode(&tag).is_none() && KvOp::decode(&tag).is_err(), "an option tag of 2");
        // Lengths of any width are read as serde reads them (four varint
        // bytes here); the size limits are `validate`'s.
        let long = KvOp::Put { key: s("k"), value: "v".repeat(1 << 21) }.encode();
        assert_eq!(KvOpRef::decode(&long).map(KvOpRef::to_owned), KvOp::decode(&long).ok());
        assert!(KvOpRef::decode(&long).is_some_and(|op| op.validate().is_err()));
        agree(&long);
        // A non-minimal varint (0 as 0x80 0x00) is read the same by both.
        let odd = [0u8, 0x81, 0x00, b'k', 0x00];
        assert_eq!(KvOpRef::decode(&odd), Some(KvOpRef::Put { key: "k", value: "" }));
        agree(&odd);
    }

    #[test]
    fn the_view_agrees_with_serde_on_random_bytes() {
        let mut rng = Rng::new(16);
        let seeds = [
            KvOp::Put { key: s("k1"), value: s("vvvv") }.encode(),
            KvOp::Cas { key: s("k"), expect: Some(s("é")), value: s("b") }.encode(),
            KvOp::Delete { key: s("abc") }.encode(),
        ];
        for i in 0..20_000u64 {
            let mut b = seeds[(i % 3) as usize].clone();
            for _ in 0..rng.range(1, 4) {
                let at = rng.below(b.len() as u64) as usize;
                match rng.below(3) {
                    0 => b[at] = rng.below(256) as u8,
                    1 => b.truncate(at),
                    _ => b.insert(at, [0, 1, 0x80, 0xc3, 0xa9, 0x7f][rng.below(6) as usize]),
                }
                if b.is_empty() {
                    break;
                }
            }
            agree(&b);
        }
    }

    #[test]
    fn text_is_from_utf8() {
        for t in [&b""[..], b"ascii", "é".as_bytes(), b"\xff", b"a\xc3", "日本".as_bytes(), b"\x7f\x00"] {
            assert_eq!(text(t), core::str::from_utf8(t).ok(), "{t:?}");
        }
    }
}
