//! postcard's variable-length integers, for the few encoders written by hand
//! on hot paths (a write's output, the rows of a snapshot): seven bits a
//! byte, lowest first, the high bit set on every byte but the last — the
//! bytes postcard writes for a `u64` or `usize`. Each user has a test that
//! its bytes are postcard's.

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn varints_are_postcards() {
        let mut v = 1u64;
        let mut all = vec![0, 127, 128, 255, 16_383, 16_384, u64::MAX, u64::MAX >> 1];
        while v < u64::MAX / 3 {
            all.extend([v, v * 2, v * 3 - 1]);
            v *= 3;
        }
        for x in all {
            let mut out = Vec::new();
            push(&mut out, x);
            assert_eq!(out, postcard::to_allocvec(&x).unwrap(), "{x}");
            assert!(out.len() <= MAX_LEN);
        }
        let mut out = Vec::new();
        push_bytes(&mut out, &[7; 200]);
        assert_eq!(out, postcard::to_allocvec(&vec![7u8; 200]).unwrap());
    }
}
