//! CRC-32C (Castagnoli): the checksum of journal frames and snapshots.
//!
//! Two implementations that must give the same value for every input: the
//! table-driven one (16 bytes at a time, any target, `no_std`), and the
//! processor's own `crc32` instruction (SSE4.2 on x86-64), which checksums
//! 8 bytes per instruction — about ten times the table's speed, and what lets
//! journal replay and snapshot checksums keep up with the disk.
//!
//! Which one runs is decided per call, and changes nothing but speed:
//!
//! * built with SSE4.2 enabled (`-C target-feature=+sse4.2` or a
//!   `target-cpu` that has it): the instruction, always;
//! * with the `std` feature on x86-64 (the native host enables it): the
//!   instruction if the processor has it, detected at run time (std caches
//!   the answer, so the check is one load);
//! * otherwise (wasm, the simulator in `no_std`, other targets): the table.
//!
//! The tests below check the two against each other on many inputs, and the
//! table against the standard check value.

/// CRC-32C of `bytes` (initial value and final xor `0xFFFF_FFFF`, reflected:
/// the iSCSI / ext4 / journal-format parameters).
///
/// ```
/// assert_eq!(raft_core::codec::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse4.2"))]
    {
        // SAFETY: the build enables SSE4.2 for every function of this crate.
        unsafe { x86::crc32c(bytes) }
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse4.2"), feature = "std"))]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the processor has just been seen to support SSE4.2.
            return unsafe { x86::crc32c(bytes) };
        }
        table(bytes)
    }
    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "sse4.2"),
        all(target_arch = "x86_64", feature = "std")
    )))]
    {
        table(bytes)
    }
}

/// Whether [`crc32c`] uses the processor's instruction on this machine (for
/// hosts that report it, and for benches that compare the two).
pub fn hardware() -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse4.2"))]
    {
        true
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse4.2"), feature = "std"))]
    {
        std::is_x86_feature_detected!("sse4.2")
    }
    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "sse4.2"),
        all(target_arch = "x86_64", feature = "std")
    )))]
    {
        false
    }
}

/// The table-driven CRC-32C, 16 bytes at a time: what every target can run.
pub fn table(bytes: &[u8]) -> u32 {
    const CASTAGNOLI: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
    CASTAGNOLI.checksum(bytes)
}

#[cfg(all(target_arch = "x86_64", any(target_feature = "sse4.2", feature = "std", test)))]
mod x86 {
    use core::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};

    /// CRC-32C with the SSE4.2 `crc32` instruction: 8 bytes at a time, then
    /// the tail of up to 7 in at most three steps (4, 2, 1 bytes). The instruction is the reflected CRC-32C update
    /// without the initial and final inversion, which are done here.
    ///
    /// # Safety
    ///
    /// The processor must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn crc32c(bytes: &[u8]) -> u32 {
        let mut crc = u64::from(u32::MAX);
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(a));
        }
        // The instruction leaves the upper half zero: the value is 32 bits.
        let mut crc = crc as u32;
        let mut tail = words.remainder();
        if let Some((four, rest)) = tail.split_first_chunk::<4>() {
            crc = _mm_crc32_u32(crc, u32::from_le_bytes(*four));
            tail = rest;
        }
        if let Some((two, rest)) = tail.split_first_chunk::<2>() {
            crc = _mm_crc32_u16(crc, u16::from_le_bytes(*two));
            tail = rest;
        }
        if let Some(&b) = tail.first() {
            crc = _mm_crc32_u8(crc, b);
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use alloc::vec::Vec;

    #[test]
    fn check_value() {
        // The standard check value of CRC-32C, for both implementations.
        assert_eq!(table(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn instruction_and_table_agree() {
        // Every length from 0 to 300 (all tail lengths, all alignments of
        // a slice into the buffer), then random lengths up to 64 KiB.
        let mut rng = Rng::new(0xC3C);
        let buf: Vec<u8> = (0..70_000).map(|_| rng.range(0, 256) as u8).collect();
        for len in 0..300 {
            for start in 0..9 {
                let s = &buf[start..start + len];
                assert_eq!(crc32c(s), table(s), "len {len} at {start}");
            }
        }
        for _ in 0..2_000 {
            let start = rng.range(0, 1000) as usize;
            let len = rng.range(0, 65_536) as usize;
            let s = &buf[start..start + len];
            assert_eq!(crc32c(s), table(s), "len {len} at {start}");
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("sse4.2") {
            // Call the instruction directly too, whatever `crc32c` picked.
            for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 4095, 65_536] {
                // SAFETY: SSE4.2 was just detected.
                assert_eq!(unsafe { x86::crc32c(&buf[..len]) }, table(&buf[..len]), "len {len}");
            }
        }
    }
}
