//! A small, fast, deterministic hasher for the hash tables in raft-core.
//!
//! Hash tables here are only ever *looked up*, never iterated in hash order
//! where order could leak into behaviour (snapshots sort first), so replicas
//! stay deterministic. A table whose keys come from clients takes a seed the
//! host can pick at random, so clients cannot aim for collisions.

use core::hash::{BuildHasher, Hasher};

/// 64-bit finaliser (MurmurHash3's fmix64): spreads every input bit over the
/// whole word, so hashbrown's use of both high and low bits is safe.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// FxHash-style streaming hasher (rotate, xor, multiply) with a strong
/// finaliser; fast on short strings and fully deterministic.
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        // Mixing in the length keeps "a\0" and "a" apart.
        self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        fmix64(self.hash)
    }
}

/// Builds [`FxHasher`]s starting from a seed; the default seed is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FxBuild {
    /// Starting state of every hasher built.
    pub seed: u64,
}

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher { hash: self.seed }
    }
}
