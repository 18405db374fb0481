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
/// start of `bytes`; returns it and how many bytes it took. The one byte of
/// a value below 128 — nearly every number in a record — is read inline;
/// longer ones call [`read_long`].
///
/// The error comes as the caller's type `E`, converted from [`Unread`] on
/// the long path only, so the one-byte path returns the caller's `Result`
/// as it is.
#[inline]
pub(crate) fn read<E: From<Unread>>(bytes: &[u8], max_bytes: usize, last_max: u8) -> Result<(u64, usize), E> {
    match bytes.first() {
        Some(&b) if b & 0x80 == 0 => Ok((u64::from(b), 1)),
        _ => read_long(bytes, max_bytes, last_max).map_err(E::from),
    }
}

/// [`read`] of a varint of more than one byte (or of none).
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
