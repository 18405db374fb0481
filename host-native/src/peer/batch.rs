//! Batch frames: after the handshake the dialer sends binary frames of
//! `RKVB`, version 1, postcard `Vec<Message>` — every message queued for that
//! peer, up to a byte budget, in one frame, so a burst of appends and
//! heartbeats costs one WebSocket frame and one system call.

use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::Message;

/// Magic of message batch frames.
pub const BATCH_MAGIC: [u8; 4] = *b"RKVB";
/// Version of the batch format.
pub const BATCH_VERSION: u8 = 1;

/// Encodes a batch of messages for one frame.
pub fn encode_batch(msgs: &[Message]) -> Vec<u8> {
    encode_with_header(&BATCH_MAGIC, BATCH_VERSION, &msgs)
}

/// Decodes a batch frame (size limit `max_len`).
pub fn decode_batch(bytes: &[u8], max_len: usize) -> Result<Vec<Message>, String> {
    decode_with_header(&BATCH_MAGIC, BATCH_VERSION, bytes, max_len).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_roundtrip_and_garbage_is_refused() {
        use raft_core::Body;
        let msgs = vec![
            Message::new(1, 2, 3, Body::VoteResp { granted: true }),
            Message::new(1, 2, 3, Body::PreVoteResp { granted: false }),
        ];
        let f = encode_batch(&msgs);
        assert_eq!(decode_batch(&f, 1 << 20).unwrap(), msgs);
        assert!(decode_batch(&f[..f.len() - 1], 1 << 20).is_err());
        assert!(decode_batch(b"garbage!", 1 << 20).is_err());
        assert!(decode_batch(&f, 4).is_err());
    }
}
