//! Shared encoding helpers: a magic number and a version in front of postcard,
//! size limits on every decode, and errors instead of panics.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use serde::{de::DeserializeOwned, Serialize};

use crate::types::Bytes;
use crate::varint::{self, Unread};

pub use crate::crc::crc32c;

/// Why a byte string could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is longer than the caller's limit.
    TooLarge {
        /// Bytes offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended before the header or body was complete.
    Truncated,
    /// The magic number is not ours: wrong file or wrong protocol.
    BadMagic,
    /// A format version this build does not understand.
    UnsupportedVersion(u8),
    /// The body is not valid postcard for the expected type.
    Malformed,
    /// Bytes were left over after the value.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "input of {len} bytes exceeds the limit of {max}")
            }
            DecodeError::Truncated => write!(f, "input ends early"),
            DecodeError::BadMagic => write!(f, "bad magic number"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeError::Malformed => write!(f, "malformed body"),
            DecodeError::TrailingBytes => write!(f, "trailing bytes after the value"),
        }
    }
}

/// Encodes `value` as `magic ++ [version] ++ postcard(value)`.
pub fn encode_with_header<T: Serialize>(magic: &[u8; 4], version: u8, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(magic);
    out.push(version);
    // Serialising our own in-memory types into a Vec cannot fail: postcard only
    // errors on unsupported serde features (none are used) or a full buffer.
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard encoding of raft-core types into a Vec is infallible"),
    }
}

/// Decodes what `encode_with_header` wrote.
pub fn decode_with_header<T: DeserializeOwned>(
    magic: &[u8; 4],
    version: u8,
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    decode_body(body_after_header(magic, version, bytes, max_len)?)
}

/// The postcard body behind `encode_with_header`'s magic and version, after
/// the checks [`decode_with_header`] makes first (size limit, magic,
/// version): for the decoders written by hand.
pub(crate) fn body_after_header<'a>(
    magic: &[u8; 4],
    version: u8,
    bytes: &'a [u8],
    max_len: usize,
) -> Result<&'a [u8], DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: max_len });
    }
    if bytes.len() < 5 {
        return Err(DecodeError::Truncated);
    }
    if &bytes[..4] != magic {
        return Err(DecodeError::BadMagic);
    }
    if bytes[4] != version {
        return Err(DecodeError::UnsupportedVersion(bytes[4]));
    }
    Ok(&bytes[5..])
}

/// Decodes a postcard body that must use every byte.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok(_) => Err(DecodeError::TrailingBytes),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// A cursor over postcard bytes, for the decoders written by hand where
/// serde's would cost too much: journal replay, which decodes millions of
/// entries at a restart. It reads exactly what postcard 1's deserializer
/// reads, and refuses exactly what it refuses (the journal's tests decode
/// every record both ways and compare), so the formats stay those serde
/// writes; only the decoding is faster. Byte strings either point into a
/// shared read buffer or are copied (see [`Reader::bytes`]).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The buffer `bytes` lies in and the offset it starts at: byte strings
    /// then point into it instead of being copied.
    shared: Option<(&'a Arc<Vec<u8>>, usize)>,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, copying the byte strings it decodes.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0, shared: None }
    }

    /// Reads `buf[range]`, decoding byte strings as ranges of `buf`.
    pub(crate) fn shared(buf: &'a Arc<Vec<u8>>, range: Range<usize>) -> Self {
        Reader { bytes: &buf[range.clone()], pos: 0, shared: Some((buf, range.start)) }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Errors unless every byte was read (as `decode_body` does).
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    /// A varint of at most `max_bytes` bytes whose last byte is at most
    /// `last_max`: [`varint::read`] from the cursor.
    #[inline]
    fn varint(&mut self, max_bytes: usize, last_max: u8) -> Result<u64, DecodeError> {
        let (v, n) = varint_at(self.rest(), max_bytes, last_max)?;
        self.pos += n;
        Ok(v)
    }

    /// The `u32` at the cursor, without moving it: an enum's variant, to
    /// choose its decoder by.
    #[inline]
    pub(crate) fn peek_u32(&self) -> Result<u32, DecodeError> {
        varint_at(self.rest(), 5, 0x0f).map(|(v, _)| v as u32)
    }

    /// One byte: postcard writes an `Option`'s tag (and a `u8`) as one.
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A `u64` (varint).
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(10, 1)
    }

    /// A `u32` (varint): enum variant indexes are these.
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        // At most 5 bytes, the last holding 4 bits: the value fits.
        self.varint(5, 0x0f).map(|v| v as u32)
    }

    /// A `usize` (varint): lengths of sequences and byte strings. Its width
    /// is the platform's, as in postcard.
    #[inline]
    pub(crate) fn usize(&mut self) -> Result<usize, DecodeError> {
        let (v, n) = usize_at(self.rest())?;
        self.pos += n;
        Ok(v)
    }

    /// A fixed array of `N` bytes: postcard writes it as a tuple, the bytes
    /// one after the other with no length (read here at once, not one
    /// serde element at a time).
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.pos.checked_add(N).ok_or(DecodeError::Truncated)?;
        let part = self.bytes.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        let mut out = [0u8; N];
        out.copy_from_slice(part);
        self.pos = end;
        Ok(out)
    }

    /// A byte string (length, then the bytes): a range of the shared read
    /// buffer when there is one, else a copy.
    #[inline(always)]
    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.usize()?;
        let end = self.pos.checked_add(len).ok_or(DecodeError::Truncated)?;
        if end > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let start = self.pos;
        self.pos = end;
        Ok(match self.shared {
            Some((buf, base)) => Bytes::shared(buf, base + start..base + end),
            None => Bytes::from(&self.bytes[start..end]),
        })
    }

    /// A byte string (length, then the bytes) borrowed from the input.
    #[inline]
    pub(crate) fn slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self.rest();
        let (len, n) = usize_at(rest)?;
        let part = rest.get(n..).and_then(|r| r.get(..len)).ok_or(DecodeError::Truncated)?;
        self.pos += n + len;
        Ok(part)
    }

    /// A value serde decodes (the rare parts of a format, not worth a
    /// decoder by hand), read from where the cursor is.
    pub(crate) fn serde<T: DeserializeOwned>(&mut self) -> Result<T, DecodeError> {
        match postcard::take_from_bytes::<T>(self.rest()) {
            Ok((v, rest)) => {
                self.pos = self.bytes.len() - rest.len();
                Ok(v)
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
            Err(_) => Err(DecodeError::Malformed),
        }
    }
}

impl From<Unread> for DecodeError {
    fn from(e: Unread) -> DecodeError {
        match e {
            Unread::Truncated => DecodeError::Truncated,
            Unread::TooWide => DecodeError::Malformed,
        }
    }
}

/// [`varint::read`] with the codec's errors: the value and its length.
#[inline]
fn varint_at(bytes: &[u8], max_bytes: usize, last_max: u8) -> Result<(u64, usize), DecodeError> {
    varint::read(bytes, max_bytes, last_max)
}

/// A `usize` at the start of `bytes` (postcard's width: the platform's) and
/// its length in bytes.
#[inline]
fn usize_at(bytes: &[u8]) -> Result<(usize, usize), DecodeError> {
    #[cfg(target_pointer_width = "64")]
    let (v, n) = varint_at(bytes, 10, 1)?;
    #[cfg(target_pointer_width = "32")]
    let (v, n) = varint_at(bytes, 5, 0x0f)?;
    #[cfg(target_pointer_width = "16")]
    let (v, n) = varint_at(bytes, 3, 0x03)?;
    Ok((usize::try_from(v).map_err(|_| DecodeError::Malformed)?, n))
}
