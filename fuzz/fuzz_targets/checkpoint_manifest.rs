#![no_main]
//! Arbitrary bytes as a checkpoint manifest: decoder round trip and a full open,
//! of a checkpoint directory with and without fallback (never a panic).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_checkpoint::fuzzing::manifest(data);
});
