#![no_main]
//! The chunk-stream importer on arbitrary chunk sequences (in any order, with resumes):
//! nothing is published unless the whole archive verifies, nothing is written outside the
//! staging area, and a published archive equals the bytes of the chunks. Logic in
//! `vellum_snapshot_format::fuzzing::fuzz_chunks` (replayed by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_snapshot_format::fuzzing::fuzz_chunks(data);
});
