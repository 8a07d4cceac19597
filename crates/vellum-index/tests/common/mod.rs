//! Data shared by the index's integration tests.

// Each test binary uses only some of these helpers.
#[allow(dead_code)]
pub mod files;

/// Deterministic pseudo-random floats in [-1, 1) (xorshift from `seed`).
pub fn random_data(seed: u64, rows: usize, dim: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..rows * dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
