//! Batch frames: after the handshake the dialer sends binary frames of every
//! message queued for that peer, up to a byte budget, so a burst of appends
//! and heartbeats costs one WebSocket frame and one system call.
//!
//! A frame is `RKVB`, version 2, postcard `(seq, Vec<Message>)`, then a
//! 32-byte HMAC-SHA256 tag over everything before it, keyed with the link
//! key both sides derived in the handshake. `seq` counts the link's frames
//! from 0, so a frame that is rewritten, replayed, dropped or reordered by
//! anything between the two nodes fails on arrival ([`Opener::open`]) and the
//! link is closed: the handshake proves who is at the other end, and the tag
//! carries that proof to every frame after it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use raft_core::codec::encode_with_header;
use raft_core::message::decode_numbered;
use raft_core::Message;

/// Magic of message batch frames.
pub const BATCH_MAGIC: [u8; 4] = *b"RKVB";
/// Version of the batch format.
pub const BATCH_VERSION: u8 = 2;
/// Bytes of the tag at the end of every frame.
pub const TAG_LEN: usize = 32;

fn tag(key: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac
}

/// The sending end of a link: numbers and tags frames.
#[derive(Debug)]
pub struct Sealer {
    key: [u8; 32],
    next: u64,
}

impl Sealer {
    /// A sealer for a link whose handshake gave `key`.
    pub fn new(key: [u8; 32]) -> Sealer {
        Sealer { key, next: 0 }
    }

    /// The frame carrying `msgs`, the link's next.
    pub fn seal(&mut self, msgs: &[Message]) -> Vec<u8> {
        let mut frame = encode_with_header(&BATCH_MAGIC, BATCH_VERSION, &(self.next, msgs));
        self.next += 1;
        let t: [u8; TAG_LEN] = tag(&self.key, &frame).finalize().into_bytes().into();
        frame.extend_from_slice(&t);
        frame
    }
}

/// The receiving end of a link: checks every frame's tag and number.
#[derive(Debug)]
pub struct Opener {
    key: [u8; 32],
    next: u64,
}

impl Opener {
    /// An opener for a link whose handshake gave `key`.
    pub fn new(key: [u8; 32]) -> Opener {
        Opener { key, next: 0 }
    }

    /// The messages of the link's next frame (size limit `max_len`); `Err`
    /// if the frame was not sealed with this link's key, is out of order,
    /// or does not decode. After an error the link must be closed.
    pub fn open(&mut self, frame: &[u8], max_len: usize) -> Result<Vec<Message>, String> {
        if frame.len() < TAG_LEN {
            return Err("frame shorter than its tag".into());
        }
        let (body, t) = frame.split_at(frame.len() - TAG_LEN);
        // verify_slice compares in constant time.
        tag(&self.key, body).verify_slice(t).map_err(|_| "frame fails its MAC (rewritten on the way?)".to_string())?;
        // The messages' entries are read by the journal's hand decoder
        // (same bytes and errors as serde; raft-core's tests compare them).
        let (seq, msgs) = decode_numbered(&BATCH_MAGIC, BATCH_VERSION, body, max_len).map_err(|e| e.to_string())?;
        if seq != self.next {
            return Err(format!("frame {seq} where {} was due (replayed or dropped on the way?)", self.next));
        }
        self.next += 1;
        Ok(msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Body;

    #[test]
    fn frames_roundtrip_and_anything_else_is_refused() {
        let msgs = vec![
            Message::new(1, 2, 3, Body::VoteResp { granted: true }),
            Message::new(1, 2, 3, Body::PreVoteResp { granted: false }),
        ];
        let mut s = Sealer::new([7; 32]);
        let (f0, f1, f2) = (s.seal(&msgs), s.seal(&msgs[..1]), s.seal(&[]));
        let mut o = Opener::new([7; 32]);
        assert_eq!(o.open(&f0, 1 << 20).unwrap(), msgs);
        // A replay of frame 0, a skipped frame: refused.
        assert!(o.open(&f0, 1 << 20).unwrap_err().contains("due"));
        let mut o2 = Opener::new([7; 32]);
        assert!(o2.open(&f1, 1 << 20).unwrap_err().contains("due"));
        assert_eq!(o.open(&f1, 1 << 20).unwrap(), msgs[..1]);
        // Any flipped bit, another key, a cut frame, garbage: refused.
        for i in 0..f2.len() {
            let mut bad = f2.clone();
            bad[i] ^= 1;
            assert!(o.open(&bad, 1 << 20).is_err(), "bit flipped at {i}");
        }
        assert!(Opener::new([8; 32]).open(&f0, 1 << 20).unwrap_err().contains("MAC"));
        assert!(o.open(&f2[..f2.len() - 1], 1 << 20).is_err());
        assert!(o.open(b"garbage!", 1 << 20).is_err());
        assert!(Opener::new([7; 32]).open(&f0, 4).is_err(), "size limit");
        assert_eq!(o.open(&f2, 1 << 20).unwrap(), vec![]);
    }
}
