//! Randomness: [`random_u64`], the one source of salts and ids that must differ between
//! files, processes and machines, and a tiny deterministic generator (SplitMix64) for the
//! simulator and tests.
//!
//! Hand-written on purpose: crash images and regression seeds are pinned in tests and in
//! closing notes, so the stream for a seed must never change with a dependency upgrade, and
//! SplitMix64 is eight lines with published constants.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "SplitMix64::below(0)");
        // Lemire's multiply-shift; the tiny bias is irrelevant for test generation.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability one half.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// 64 random bits from the operating system, for salts and ids that must differ between
/// files, processes and machines (log segment salts, database ids, snapshot ids). If the
/// operating system's source fails (it practically never does), the time, the process id
/// and a counter mixed through SplitMix64 stand in: distinct, though not secret.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (nanos as u64) ^ ((nanos >> 64) as u64) ^ (u64::from(std::process::id()) << 32);
    SplitMix64::new(seed ^ count.rotate_left(17)).next_u64()
}
