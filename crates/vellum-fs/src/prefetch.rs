//! A hint to the CPU to start loading memory that a caller reads next (the mapped vectors a
//! search is about to score), so the cache misses overlap instead of following one another.
//! Here because prefetching is an `unsafe` intrinsic and this crate is where Vellum keeps
//! the `unsafe` of its memory maps; the hint itself cannot change or fault on memory.
#![allow(unsafe_code)]

/// Bytes of one cache line on the CPUs Vellum runs on.
pub const CACHE_LINE_BYTES: usize = 64;

/// Asks the CPU to bring the first `max_lines` cache lines of `bytes` into its caches. Does
/// nothing on targets without a prefetch instruction wired here (only x86-64 is).
#[inline(always)]
pub fn prefetch_read(bytes: &[u8], max_lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = bytes.len().div_ceil(CACHE_LINE_BYTES).min(max_lines);
        for line in 0..lines {
            // SAFETY: the address lies inside `bytes`, a live slice (`line * 64 <
            // bytes.len()`); a prefetch is only a hint: it neither faults nor changes
            // memory, and SSE (which provides it) is part of every x86-64 CPU.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    bytes.as_ptr().add(line * CACHE_LINE_BYTES).cast(),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, max_lines);
}

/// Asks the CPU to bring the cache line holding `value` into its caches (a node's fields
/// in an array read at random, before the loop that reads them).
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the address is that of a live reference; a prefetch is only a hint (above).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_slice_changes_nothing_and_never_faults() {
        let bytes: Vec<u8> = (0..=255).collect();
        prefetch_read(&bytes, 100);
        prefetch_read(&bytes[..0], 4);
        prefetch_read(&bytes[255..], 4);
        prefetch(&bytes[17]);
        assert_eq!(bytes, (0..=255).collect::<Vec<u8>>());
    }
}
