#![no_main]
//! The backup catalog decoder on arbitrary bytes: a typed error or a catalog whose entries'
//! hashes and chains are values or typed errors, and which re-encodes to itself. Logic in
//! `vellum_backup::fuzzing::fuzz_catalog` (replayed by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_backup::fuzzing::fuzz_catalog(data);
});
