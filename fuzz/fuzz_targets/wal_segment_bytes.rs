//! Arbitrary bytes as WAL segment files: open in every recovery mode and read back.
//! The logic lives in `vellum_wal::fuzzing::segment_bytes` (replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_wal::fuzzing::segment_bytes(data);
});
