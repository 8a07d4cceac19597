#![no_main]
//! Arbitrary bytes as a payload location table or a payload run, chosen by the first byte.
//! Logic in `vellum::fuzzing::payload_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum::fuzzing::payload_files(data);
});
