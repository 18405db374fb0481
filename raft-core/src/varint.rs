//! postcard's variable-length integers, written and read by hand on hot
//! paths (a write's output, the rows of a snapshot, journal records, the
//! operations a store applies): seven bits a byte, lowest first, the high
//! bit set on every byte but the last — the bytes postcard writes for a
//! `u64` or `usize`. Each writer has a test that its bytes are postcard's;
//! [`read`] reads what postcard 1's deserializer reads and refuses what it
//! refuses ([`crate::codec::Reader`] is its one caller and maps the
//! refusals to its errors).

use alloc::vec::Vec;

/// Most bytes a `u64` takes.
pub(crate) const MAX_LEN: usize = 10;

/// Writes `v` at the start of `buf`; returns how many bytes it took.
#[inline]
pub(crate) fn put(mut v: u64, buf: &mut [u8; MAX_LEN]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    n + 1
}

/// Appends `v` to `out`.
#[inline]
pub(crate) fn push(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; MAX_LEN];
    let n = put(v, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Appends a byte string as postcard writes one (`&[u8]`, `&str`,
/// `Vec<u8>`): its length, then its bytes.
#[inline]
pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Why [`read`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unread {
    /// The bytes end inside the varint.
    Truncated,
    /// Longer than the type allows, or bits past its width.
    TooWide,
}

/// Reads a varint of at most `max_bytes` bytes whose last byte is at most
/// `last_max` (postcard's rule: no bits past the type's width) from the
/// start of `bytes`; returns it and how many bytes it took. Values of up to
/// three bytes (below 2^21: nearly every number in a record, indexes and
/// sequence numbers of the first two million records included) are read
/// inline; longer ones call [`read_long`]. The inline paths apply only where
/// the type allows more bytes than they read, so `last_max` never limits
/// them (`max_bytes` is a constant at every call site: the test folds away).
///
/// The error comes as the caller's type `E`, converted from [`Unread`] on
/// the long path only, so the short paths return the caller's `Result` as
/// it is.
#[inline]
pub(crate) fn read<E: From<Unread>>(bytes: &[u8], max_bytes: usize, last_max: u8) -> Result<(u64, usize), E> {
    match *bytes {
        [b0, ..] if b0 < 0x80 => Ok((u64::from(b0), 1)),
        // (b0 has its high bit set from here on.)
        [b0, b1, ..] if b1 < 0x80 && max_bytes > 2 => Ok((u64::from(b0 & 0x7f) | u64::from(b1) << 7, 2)),
        [b0, b1, b2, ..] if b1 >= 0x80 && b2 < 0x80 && max_bytes > 3 => {
            Ok((u64::from(b0 & 0x7f) | u64::from(b1 & 0x7f) << 7 | u64::from(b2) << 14, 3))
        }
        _ => read_long(bytes, max_bytes, last_max).map_err(E::from),
    }
}

/// [`read`] of a varint its inline paths do not take: more than three bytes,
/// cut short, or one the type's limits may refuse.
#[inline(never)]
fn read_long(bytes: &[u8], max_bytes: usize, last_max: u8) -> Result<(u64, usize), Unread> {
    let mut out = 0u64;
    let mut shift = 0;
    let mut i = 0;
    while i < max_bytes {
        let Some(&b) = bytes.get(i) else { return Err(Unread::Truncated) };
        out |= u64::from(b & 0x7f) << shift;
        i += 1;
        if b < 0x80 {
            if i == max_bytes && b > last_max {
                return Err(Unread::TooWide);
            }
            return Ok((out, i));
        }
        shift += 7;
    }
    // `max_bytes` bytes, each saying "more": too long for the type.
    Err(Unread::TooWide)
}

/// The `u64`s every varint test tries, here and in the writers' own tests:
/// each byte count's boundaries (`2^7k - 1`, `2^7k`), the extremes, and a
/// spread of values between (powers of three and their neighbours).
#[cfg(test)]
pub(crate) fn edge_cases() -> Vec<u64> {
    let mut all = alloc::vec![0, 1, u64::MAX, u64::MAX >> 1];
    all.extend((1..10).map(|k| 1u64 << (7 * k)).flat_map(|p| [p - 1, p]));
    let mut v = 1u64;
    while v < u64::MAX / 3 {
        all.extend([v, v * 2, v * 3 - 1]);
        v *= 3;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn varints_are_postcards() {
        for x in edge_cases() {
            let mut out = Vec::new();
            push(&mut out, x);
            assert_eq!(out, postcard::to_allocvec(&x).unwrap(), "{x}");
            assert!(out.len() <= MAX_LEN);
            assert_eq!(read::<Unread>(&out, MAX_LEN, 1), Ok((x, out.len())), "{x}");
        }
        let mut out = Vec::new();
        push_bytes(&mut out, &[7; 200]);
        assert_eq!(out, postcard::to_allocvec(&vec![7u8; 200]).unwrap());
    }

    #[test]
    fn the_inline_paths_read_what_the_long_path_reads() {
        // Every first and second byte, third bytes at the limits' edges, cut
        // at every length, under each type's limits (u64, u32, the usize of
        // 16-bit targets with its 3-byte limit, and a 2-byte one): `read`
        // and `read_long` agree on every value, length and refusal.
        let limits = [(10, 1), (5, 0x0f), (3, 0x03), (2, 0x01)];
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                for b2 in [0, 1, 3, 4, 0x0f, 0x10, 0x7f, 0x80, 0xff] {
                    let bytes = [b0, b1, b2, 0x01];
                    for cut in 0..=bytes.len() {
                        for (max, last) in limits {
                            let part = &bytes[..cut];
                            assert_eq!(read::<Unread>(part, max, last), read_long(part, max, last), "{part:?} {max}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn reading_refuses_what_postcard_refuses() {
        // Cut short, and too long or too wide for the type (the limits of
        // `read`: `max_bytes`, then the last byte's `last_max`).
        assert_eq!(read::<Unread>(&[], 10, 1), Err(Unread::Truncated));
        assert_eq!(read::<Unread>(&[0x80, 0x80], 10, 1), Err(Unread::Truncated));
        assert_eq!(read::<Unread>(&[0xff; 10], 10, 1), Err(Unread::TooWide));
        assert_eq!(read::<Unread>(&[0xff, 0xff, 0xff, 0xff, 0x0f], 5, 0x0f), Ok((u64::from(u32::MAX), 5)));
        assert_eq!(read::<Unread>(&[0xff, 0xff, 0xff, 0xff, 0x10], 5, 0x0f), Err(Unread::TooWide));
        for (bytes, max, last) in
            [(&[0x80, 0x80][..], 10, 1), (&[0xff; 10][..], 10, 1), (&[0xff, 0xff, 0xff, 0xff, 0x10][..], 5, 0x0f)]
        {
            let serde_u64 = postcard::from_bytes::<u64>(bytes).is_ok();
            let serde_u32 = postcard::from_bytes::<u32>(bytes).is_ok();
            let ours = read::<Unread>(bytes, max, last).is_ok();
            assert_eq!(ours, if max == 5 { serde_u32 } else { serde_u64 }, "{bytes:?}");
        }
        // A value below 128 in one byte, a non-minimal one as postcard reads it.
        assert_eq!(read::<Unread>(&[0x05, 0xff], 10, 1), Ok((5, 1)));
        assert_eq!(read::<Unread>(&[0x81, 0x00], 10, 1), Ok((1, 2)));
        assert_eq!(postcard::from_bytes::<u64>(&[0x81, 0x00]).ok(), Some(1));
    }
}
