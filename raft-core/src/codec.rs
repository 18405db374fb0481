//! Shared encoding helpers: a magic number and a version in front of postcard,
//! size limits on every decode, and errors instead of panics.

use alloc::vec::Vec;
use core::fmt;
use serde::{de::DeserializeOwned, Serialize};

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
    decode_body(&bytes[5..])
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
