#![no_main]
//! Arbitrary bytes as one of a generation's own files (pending tail, payloads, collection
//! metadata), chosen by the first byte. Logic in `vellum::fuzzing::collection_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum::fuzzing::collection_files(data);
});
