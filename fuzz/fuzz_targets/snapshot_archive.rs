#![no_main]
//! The snapshot archive decoder on arbitrary bytes: the streaming and the footer-first
//! decoders agree, return a typed error or a verified archive, and a verified full archive
//! restores to exactly the files its state table describes. Logic in
//! `vellum_snapshot_format::fuzzing::fuzz_archive` (replayed by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_snapshot_format::fuzzing::fuzz_archive(data);
});
